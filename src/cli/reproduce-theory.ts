/**
 * `wpc reproduce theory`: the JPC paper's Figure 2, theoretical vs numerical energy of a deep linear network
 * (studies/theory-study.ts), and its outputs.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadDataset } from '../data/node.js';
import { init } from '../node.js';
import { MAX_DEPTH } from '../pc/model.js';
import { writeAtomically } from '../util/atomic-write.js';
import { resolveSolverOptions } from '../pc/solve/index.js';
import { checkOutputFolder } from './checks.js';
import { THEORY_MAX_T1, type TheoryRow, runTheoryStudy, theoryCsv, theoryFigureSvg } from './studies/theory-study.js';
import {
  INTEGER,
  POSITIVE,
  POSITIVE_INTEGER,
  STANDARD_FLAGS,
  checkSolverFlags,
  choice,
  flagLines,
  list,
  number,
  parseFlags,
  positiveNumberItem,
  text,
  toggle,
  upTo,
  valued,
} from './args.js';
import { adapterLabel, DATASET_SHAPES, checkNetworkFits } from './device.js';
import { Progress } from './progress.js';

const THEORY_FLAGS = {
  dataset: choice(
    '--dataset NAME',
    'mnist or fashion-mnist                           (default mnist)',
    ['mnist', 'fashion-mnist'] as const,
    'mnist',
  ),
  'data-dir': text('--data-dir DIR', [
    'folder with mnist/ and fashion-mnist/            (default: see the lookup order,',
    "                                                'wpc data path --help')",
  ]),
  'max-t1': list(
    '--max-t1 LIST',
    `inference limits T                               (default ${THEORY_MAX_T1.join(',')})`,
    THEORY_MAX_T1,
    positiveNumberItem,
    'positive numbers',
  ),
  iters: number('--iters N', 'training iterations per T                        (default 100)', 100, POSITIVE_INTEGER),
  'test-every': number(
    '--test-every N',
    'test every N iterations                          (default 10)',
    10,
    POSITIVE_INTEGER,
  ),
  'test-images': number(
    '--test-images N',
    'test on the first N test images                  (default: all)',
    undefined,
    POSITIVE_INTEGER,
  ),
  hidden: number(
    '--hidden N',
    'hidden layers                                    (default 10)',
    10,
    upTo(MAX_DEPTH - 1),
  ),
  width: number('--width N', 'units per hidden layer                           (default 300)', 300, POSITIVE_INTEGER),
  batch: number('--batch B', 'batch size                                       (default 64)', 64, POSITIVE_INTEGER),
  lr: number('--lr LR', 'Adam learning rate                               (default 1e-3)', 1e-3, POSITIVE),
  seed: number('--seed S', 'weights and batch order                          (default 0)', 0, INTEGER),
  out: valued(
    '--out DIR',
    'output folder, created if needed                 (default runs/theory)',
    'runs/theory',
    (raw) => raw,
  ),
  quiet: toggle('--quiet', 'no progress'),
  ...STANDARD_FLAGS,
};

export const THEORY_HELP = `Usage: wpc reproduce theory [options]

The JPC library paper's Figure 2 (Figure 7 with --dataset fashion-mnist): a deep linear network (H hidden
layers of W units, no bias) trained with PC, batch 64, Adam 1e-3, once per inference limit T (Heun + PID, the
same initial weights for every T). Before each step the theoretical energy at the exact inference equilibrium
(linearEquilibEnergy, paper Eq. 4) is computed for the batch; the step's inference ends at the numerical
energy; the test accuracy is measured every --test-every iterations. As T grows the numerical energy approaches
the theoretical one.

Writes OUT/theory-DATASET.csv (every iteration of every T) and OUT/theory-DATASET.svg (energies and accuracies,
Figure 2's layout); the last stdout line is a JSON summary (mean |numerical − theory| / theory per T).

${flagLines(THEORY_FLAGS, 21)}
`;

/** The study's settings from the command line. */
interface TheorySettings {
  dataset: 'mnist' | 'fashion-mnist';
  maxT1s: number[];
  iters: number;
  testEvery: number;
  testImages: number | undefined;
  hidden: number;
  width: number;
  batchSize: number;
  lr: number;
  seed: number;
  out: string;
  quiet: boolean;
  dataDir: string | undefined;
}

/** The inference options of a training step with limit T = `maxT1` (Heun + PID). */
const theorySolver = (maxT1: number) => resolveSolverOptions('wpc reproduce theory', { maxT1 });

/** `wpc reproduce theory ARGS` as settings, checked as far as is possible without the device, or 'help'. */
function parseTheory(argv: string[]): TheorySettings | 'help' {
  const a = parseFlags(argv, THEORY_FLAGS);
  if (a === 'help') return 'help';
  const s: TheorySettings = {
    dataset: a.value('dataset'),
    maxT1s: a.value('max-t1'),
    iters: a.value('iters'),
    testEvery: a.value('test-every'),
    testImages: a.value('test-images'),
    hidden: a.value('hidden'),
    width: a.value('width'),
    batchSize: a.value('batch'),
    lr: a.value('lr'),
    seed: a.value('seed'),
    out: a.value('out'),
    quiet: a.value('quiet'),
    dataDir: a.value('data-dir'),
  };
  for (const t of s.maxT1s) checkSolverFlags(() => theorySolver(t), 'wpc reproduce theory');
  return s;
}

/** `wpc reproduce theory ARGS`: runs the study and writes its outputs, or returns 'help'. */
export async function reproduceTheory(argv: string[]): Promise<undefined | 'help'> {
  const s = parseTheory(argv);
  if (s === 'help') return 'help';
  const { dataset, maxT1s, iters, hidden, width, batchSize, out, quiet } = s;
  await checkOutputFolder('--out', out, 'ancestors', [`theory-${dataset}.csv`, `theory-${dataset}.svg`]);
  const started = performance.now();
  const rt = await init();
  try {
    const shape = DATASET_SHAPES[dataset];
    const dims = [shape.inputDim, ...Array<number>(hidden).fill(width), shape.numClasses];
    for (const t of maxT1s)
      checkNetworkFits(
        'wpc reproduce',
        rt,
        dims,
        false,
        `--width ${width} with --hidden ${hidden}`,
        batchSize,
        theorySolver(t),
      );
    const dataOptions = s.dataDir === undefined ? {} : { dataDir: s.dataDir };
    const [train, test] = await Promise.all([
      loadDataset(dataset, 'train', dataOptions),
      loadDataset(dataset, 'test', dataOptions),
    ]);
    const adapter = adapterLabel(rt);
    if (!quiet)
      process.stderr.write(
        `wpc reproduce theory: ${dataset}, linear ${hidden}×${width}, T ∈ {${maxT1s.join(', ')}}, ${iters} iterations each, on ${adapter}\n`,
      );
    const progress = new Progress(maxT1s.length * iters, quiet, 'steps', false);
    const rows = await runTheoryStudy(rt, {
      dataset,
      train,
      test,
      maxT1s,
      iters,
      testEvery: s.testEvery,
      width,
      hidden,
      batchSize,
      lr: s.lr,
      seed: s.seed,
      ...(s.testImages === undefined ? {} : { testImages: s.testImages }),
      onProgress: (done, _total, t) => progress.update(done, undefined, `T=${t}`),
      onTest: (r) =>
        progress.log(
          `T=${r.maxT1} iter ${r.iter}: theory ${r.theoryEnergy.toFixed(4)}, numerical ${r.numericalEnergy.toFixed(4)}, test ${r.testAccuracy.toFixed(2)}%`,
        ),
    });
    progress.end();
    await writeOutputs(s, rows, adapter, started);
  } finally {
    rt.dispose();
  }
}

/** OUT/theory-DATASET.csv and .svg, and the summary line (the mean relative gap per T) on stdout. */
async function writeOutputs(s: TheorySettings, rows: TheoryRow[], adapter: string, started: number): Promise<void> {
  const { dataset, out } = s;
  await mkdir(out, { recursive: true });
  const csv = join(out, `theory-${dataset}.csv`);
  const svg = join(out, `theory-${dataset}.svg`);
  await writeAtomically(csv, theoryCsv(rows));
  const title = `Theoretical vs numerical PC energy, deep linear network (${dataset}, ${s.hidden}×${s.width})`;
  await writeAtomically(svg, theoryFigureSvg(rows, title));
  const gaps = s.maxT1s.map((t) => {
    const run = rows.filter((r) => r.maxT1 === t);
    const gap =
      run.reduce((sum, r) => sum + Math.abs(r.numericalEnergy - r.theoryEnergy) / r.theoryEnergy, 0) / run.length;
    const last = run[run.length - 1]!;
    return { maxT1: t, meanRelativeGap: +gap.toFixed(5), finalTestAccuracy: +last.testAccuracy.toFixed(2) };
  });
  const seconds = (performance.now() - started) / 1000;
  if (!s.quiet) process.stderr.write(`wrote ${csv} and ${svg}\n`);
  process.stdout.write(`${JSON.stringify({ dataset, seconds: +seconds.toFixed(1), gaps, csv, svg, adapter })}\n`);
}
