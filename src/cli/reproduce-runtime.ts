/**
 * `wpc reproduce runtime`: the JPC paper's runtime study (Euler vs Heun; studies/runtime-study.ts) and its outputs.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadDataset } from '../data/node.js';
import { init } from '../node.js';
import type { Runtime } from '../runtime/runtime.js';
import { MAX_DEPTH } from '../pc/model.js';
import { writeAtomically } from '../util/atomic-write.js';
import { MAX_SOLVE_STEPS, constantStepCount, resolveSolverOptions } from '../pc/solve/index.js';
import { UsageError, checkOutputFolder } from './checks.js';
import {
  PAPER_DT,
  PAPER_MAX_T1,
  bestTable,
  figureSvg,
  heunEulerRatios,
  runRuntimeStudy,
  solverOptions,
  studyConfigs,
  toCsv,
  type StudyConfig,
  type StudyDataset,
  type StudyOptions,
  type StudyRow,
  type StudySolver,
} from './studies/runtime-study.js';
import {
  INTEGER,
  POSITIVE_INTEGER,
  STANDARD_FLAGS,
  checkSolverFlags,
  choice,
  flagLines,
  list,
  listValue,
  number,
  parseFlags,
  positiveIntegerItem,
  positiveNumberItem,
  text,
  toggle,
  upTo,
  valued,
} from './args.js';
import { adapterLabel, DATASET_SHAPES, checkNetworkFits } from './device.js';
import { Progress } from './progress.js';

const STUDY_DATASETS = ['mnist', 'fashion-mnist', 'cifar10-synthetic'] as const;

/** --max-t1 and --dt: 'best' (the paper's best setting of each run), 'paper' (the paper's grid), or a list. */
const grid = (label: string, help: readonly string[], paper: readonly number[]) =>
  valued(label, help, 'best' as const, (raw, name) =>
    raw === 'best'
      ? ('best' as const)
      : raw === 'paper'
        ? [...paper]
        : listValue(name, raw, positiveNumberItem, "positive numbers (or 'paper' / 'best')"),
  );

const RUNTIME_FLAGS = {
  datasets: list(
    '--datasets LIST',
    [
      'mnist,fashion-mnist,cifar10-synthetic (CIFAR-10-shaped random data, for timing only)',
      '                                              (default: all three)',
    ],
    STUDY_DATASETS,
    (s) => ((STUDY_DATASETS as readonly string[]).includes(s) ? (s as StudyDataset) : undefined),
    STUDY_DATASETS.join(' / '),
  ),
  'data-dir': text('--data-dir DIR', [
    'folder with mnist/ and fashion-mnist/          (default: see the lookup order,',
    "                                              'wpc data path --help')",
  ]),
  hidden: list(
    '--hidden LIST',
    'hidden depths                                  (default 3,5,10)',
    [3, 5, 10],
    positiveIntegerItem,
    'positive integers',
  ),
  solvers: list(
    '--solvers LIST',
    'euler,heun                                     (default both)',
    ['euler', 'heun'] as StudySolver[],
    (s) => (s === 'euler' || s === 'heun' ? s : undefined),
    'euler / heun',
  ),
  'max-t1': grid(
    '--max-t1 LIST',
    [
      `integration times T, 'paper' for the paper's grid ${PAPER_MAX_T1.join(',')},`,
      "or 'best' for the paper's best T of each setting (default best)",
    ],
    PAPER_MAX_T1,
  ),
  dt: grid(
    '--dt LIST',
    [
      `step sizes (Heun: the initial one), 'paper' (${PAPER_DT.join(',')}) or 'best'`,
      '                                              (default best)',
    ],
    PAPER_DT,
  ),
  batches: number(
    '--batches N',
    'batches per run, a shortened epoch            (default: the whole epoch)',
    undefined,
    POSITIVE_INTEGER,
  ),
  width: number('--width N', 'units per hidden layer                         (default 300)', 300, POSITIVE_INTEGER),
  batch: number('--batch B', 'batch size                                     (default 64)', 64, POSITIVE_INTEGER),
  'max-steps': number(
    '--max-steps N',
    'most steps per solve; Euler settings beyond it are skipped, as in the paper (default 4096)',
    4096,
    upTo(MAX_SOLVE_STEPS),
  ),
  timing: choice(
    '--timing MODE',
    [
      'step: time the solve inside each training step (it starts from a fresh feedforward init);',
      "separate: the paper's extra solve after each step with the updated weights (the same",
      'computation, at twice the cost)                 (default step)',
    ],
    ['step', 'separate'] as const,
    'step',
  ),
  seed: number('--seed S', 'weights, shuffling and synthetic data          (default 0)', 0, INTEGER),
  out: valued(
    '--out DIR',
    'output folder, created if needed               (default runs/runtime)',
    'runs/runtime',
    (raw) => raw,
  ),
  quiet: toggle('--quiet', 'no progress on stderr'),
  ...STANDARD_FLAGS,
};

export const RUNTIME_HELP = `Usage: wpc reproduce runtime [options]

The JPC library paper's runtime study (Figure 1, and the best settings of Figures 3-6): Euler with a constant
step vs Heun with the PID controller (rtol = atol = 1e-3); networks of H hidden tanh layers of 300 units, no
bias, batch 64, Adam 1e-3, one epoch per setting. Every batch times one inference solve from a fresh
feedforward initialisation until the GPU is done (the first batch excluded); the test accuracy is measured at
the end of each run.

Writes OUT/runtime.csv (every run), OUT/best.md (the best setting of each dataset/depth/solver and the
Euler/Heun time ratios) and OUT/runtime.svg (Figure 1's layout); the last stdout line is a JSON summary.

${flagLines(RUNTIME_FLAGS, 21)}

The whole grid (--max-t1 paper --dt paper) is 252 training runs per depth set; on a CPU adapter such as lavapipe
it takes many hours, so start with the defaults or a subset, e.g.
  wpc reproduce runtime --hidden 3 --batches 100
`;

/** The study's settings from the command line (the loader and callbacks are added when it runs). */
type RuntimeSettings = Omit<StudyOptions, 'load' | 'onProgress' | 'onRow'> & {
  out: string;
  quiet: boolean;
  dataDir: string | undefined;
  /** The configurations run (Euler settings longer than --max-steps are skipped, as in the paper). */
  run: StudyConfig[];
  /** Every configuration, skipped ones included. */
  configs: StudyConfig[];
};

/** `wpc reproduce runtime ARGS` as settings, checked as far as is possible without the device, or 'help'. */
function parseRuntime(argv: string[]): RuntimeSettings | 'help' {
  const a = parseFlags(argv, RUNTIME_FLAGS);
  if (a === 'help') return 'help';
  const timing = a.value('timing');
  const datasets = a.value('datasets');
  const hidden = a.value('hidden');
  const deep = hidden.find((h) => h >= MAX_DEPTH);
  if (deep !== undefined) throw new UsageError(`--hidden ${deep} makes a network of more than ${MAX_DEPTH} layers`);
  const solvers = a.value('solvers');
  const maxT1 = a.value('max-t1');
  const dt = a.value('dt');
  const batches = a.value('batches');
  const s = {
    timing,
    datasets,
    hidden,
    solvers,
    maxT1,
    dt,
    ...(batches === undefined ? {} : { batches }),
    width: a.value('width'),
    batchSize: a.value('batch'),
    maxSteps: a.value('max-steps'),
    seed: a.value('seed'),
    out: a.value('out'),
    quiet: a.value('quiet'),
    dataDir: a.value('data-dir'),
  };
  const configs = studyConfigs({ datasets, hidden, solvers, maxT1, dt });
  const run = configs.filter((c) => c.solver !== 'euler' || constantStepCount(c.maxT1, c.dt) <= s.maxSteps);
  for (const c of run)
    checkSolverFlags(
      () => resolveSolverOptions('wpc reproduce runtime', solverOptions(c, s.maxSteps)),
      'wpc reproduce runtime',
    );
  return { ...s, run, configs };
}

/** Refuses, before anything is allocated, a network of the study that the device cannot hold. */
function checkStudyFits(rt: Runtime, s: RuntimeSettings): void {
  for (const c of s.run) {
    const shape = DATASET_SHAPES[c.dataset];
    const dims = [shape.inputDim, ...Array<number>(c.hidden).fill(s.width), shape.numClasses];
    checkNetworkFits(
      'wpc reproduce',
      rt,
      dims,
      false,
      `--width ${s.width} with --hidden ${c.hidden}`,
      s.batchSize,
      resolveSolverOptions('wpc reproduce runtime', solverOptions(c, s.maxSteps)),
    );
  }
}

/** `wpc reproduce runtime ARGS`: runs the study and writes its outputs, or returns 'help'. */
export async function reproduceRuntime(argv: string[]): Promise<undefined | 'help'> {
  const s = parseRuntime(argv);
  if (s === 'help') return 'help';
  await checkOutputFolder('--out', s.out, 'ancestors', ['runtime.csv', 'best.md', 'runtime.svg']);
  const started = performance.now();
  const rt = await init();
  try {
    checkStudyFits(rt, s);
    const adapter = adapterLabel(rt);
    let progress: Progress | undefined;
    if (!s.quiet)
      process.stderr.write(
        `wpc reproduce runtime: ${s.configs.length} runs (${s.datasets.join(', ')}; H ${s.hidden.join(', ')}; ${s.solvers.join(', ')}) on ${adapter}\n`,
      );
    const { out: _out, quiet, dataDir, run: _run, configs: _configs, ...options } = s;
    const rows = await runRuntimeStudy(rt, {
      ...options,
      load: (name, split) => loadDataset(name, split, dataDir === undefined ? {} : { dataDir }),
      onProgress: (done, total, c) => {
        progress ??= new Progress(total, quiet, 'batches', false);
        progress.update(done, undefined, `${c.dataset} H=${c.hidden} ${c.solver} T=${c.maxT1} dt=${c.dt}`);
      },
      onRow: (r) =>
        progress?.log(
          r.status === 'ok'
            ? `${r.dataset} H=${r.hidden} ${r.solver} T=${r.maxT1} dt=${r.dt}: solve ${r.solveMsMean.toFixed(2)} ms (${r.inferenceStepsMean.toFixed(1)} steps), test ${Number.isNaN(r.testAccuracy) ? 'n/a' : `${r.testAccuracy.toFixed(2)}%`}`
            : `${r.dataset} H=${r.hidden} ${r.solver} T=${r.maxT1} dt=${r.dt}: ${r.status}`,
        ),
    });
    progress?.end();
    await writeOutputs(s, rows, adapter, started);
  } finally {
    rt.dispose();
  }
}

/** OUT/runtime.csv, OUT/best.md and OUT/runtime.svg, the table on stderr, and the summary line on stdout. */
async function writeOutputs(s: RuntimeSettings, rows: StudyRow[], adapter: string, started: number): Promise<void> {
  const { out, quiet } = s;
  await mkdir(out, { recursive: true });
  const seconds = (performance.now() - started) / 1000;
  await writeAtomically(join(out, 'runtime.csv'), toCsv(rows));
  const table = bestTable(rows);
  const length = s.batches === undefined ? 'One epoch' : `${s.batches} batches`;
  await writeAtomically(
    join(out, 'best.md'),
    `# Runtime study: best settings\n\nAdapter: ${adapter}. ${length} per setting; ${seconds.toFixed(0)} s in all.\n\n${table}`,
  );
  await writeAtomically(
    join(out, 'runtime.svg'),
    figureSvg(rows, `Time per inference solve, Euler vs Heun (${adapter})`),
  );
  if (!quiet)
    process.stderr.write(
      `\n${table}\nwrote ${join(out, 'runtime.csv')}, ${join(out, 'best.md')}, ${join(out, 'runtime.svg')}\n`,
    );
  const ratios = heunEulerRatios(rows).map((r) => ({
    dataset: r.dataset,
    hidden: r.hidden,
    eulerMs: +r.euler.solveMsMean.toFixed(3),
    heunMs: +r.heun.solveMsMean.toFixed(3),
    eulerOverHeun: +r.ratio.toFixed(3),
  }));
  process.stdout.write(`${JSON.stringify({ runs: rows.length, seconds: +seconds.toFixed(1), ratios, out })}\n`);
}
