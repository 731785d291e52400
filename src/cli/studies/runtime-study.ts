/**
 * The JPC paper's runtime study (Figure 1; best settings as in Figures 3–6): Euler with a constant step vs Heun
 * with the PID controller (rtol = atol = 1e-3), width 300, tanh, no bias, batch 64, Adam 1e-3, one epoch, over
 * hidden depths, datasets and (T, dt) settings. Every batch times one inference solve from a fresh feedforward
 * initialisation, waiting for the GPU to finish (the paper's `block_until_ready`); see `StudyTiming`. The first
 * batch is excluded; the test accuracy is measured at the end.
 */
import { batches, epochBatchCount, type Dataset } from '../../data/dataset.js';
import type { Runtime } from '../../runtime/runtime.js';
import { SleepEstimator } from '../../runtime/polling.js';
import { initActivitiesWithFfwd } from '../../pc/energy.js';
import { solveInference } from '../../pc/infer.js';
import { makeMlp } from '../../pc/model.js';
import { adam } from '../../pc/optim.js';
import { constantStepCount, type SolverOptions } from '../../pc/solve/index.js';
import { makePcStep } from '../../pc/train.js';
import { Random } from '../../util/random.js';
import { testSetMetrics } from './test-set.js';

export type StudyDataset = 'mnist' | 'fashion-mnist' | 'cifar10-synthetic';
export type StudySolver = 'euler' | 'heun';

/** The library paper's grid. */
export const PAPER_MAX_T1 = [5, 10, 20, 50, 100, 200, 500] as const;
export const PAPER_DT = [0.5, 0.1, 0.05] as const;

/**
 * The best (T, dt) the paper reports for each dataset, depth and solver (plot_mlp_results.ipynb, the settings of
 * Figure 1). CIFAR-10 is replaced here by synthetic data of its shape, used for timing only.
 */
const PAPER_BEST: Readonly<
  Record<StudyDataset, Readonly<Record<number, Readonly<Record<StudySolver, { maxT1: number; dt: number }>>>>>
> = {
  mnist: {
    3: { euler: { maxT1: 20, dt: 0.5 }, heun: { maxT1: 20, dt: 0.05 } },
    5: { euler: { maxT1: 50, dt: 0.5 }, heun: { maxT1: 50, dt: 0.05 } },
    10: { euler: { maxT1: 200, dt: 0.05 }, heun: { maxT1: 200, dt: 0.05 } },
  },
  'fashion-mnist': {
    3: { euler: { maxT1: 20, dt: 0.5 }, heun: { maxT1: 20, dt: 0.1 } },
    5: { euler: { maxT1: 200, dt: 0.5 }, heun: { maxT1: 200, dt: 0.5 } },
    10: { euler: { maxT1: 200, dt: 0.05 }, heun: { maxT1: 200, dt: 0.05 } },
  },
  'cifar10-synthetic': {
    3: { euler: { maxT1: 50, dt: 0.05 }, heun: { maxT1: 50, dt: 0.05 } },
    5: { euler: { maxT1: 200, dt: 0.05 }, heun: { maxT1: 500, dt: 0.5 } },
    10: { euler: { maxT1: 200, dt: 0.1 }, heun: { maxT1: 500, dt: 0.1 } },
  },
};

export interface StudyConfig {
  dataset: StudyDataset;
  hidden: number;
  solver: StudySolver;
  maxT1: number;
  dt: number;
}

export interface StudyRow extends StudyConfig {
  batches: number;
  /** 'ok', or why the configuration was not run (Euler over maxSteps, as in the paper). */
  status: string;
  solveMsMean: number;
  solveMsMedian: number;
  solveMsStd: number;
  trainStepMsMean: number;
  inferenceStepsMean: number;
  rejectedMean: number;
  /** %, NaN for synthetic data (random labels). */
  testAccuracy: number;
}

/**
 * How a solve is timed. `step`: the solve inside each training step (it starts from a fresh feedforward
 * initialisation; the GPU is waited for before and after it). `separate`: the paper's procedure, an extra solve
 * after each training step from a fresh feedforward initialisation with the updated weights — the same
 * computation, at twice the cost.
 */
type StudyTiming = 'step' | 'separate';

export interface StudyOptions {
  timing: StudyTiming;
  datasets: readonly StudyDataset[];
  hidden: readonly number[];
  solvers: readonly StudySolver[];
  /** Explicit grid values, or 'best' for the paper's best setting of each configuration. */
  maxT1: readonly number[] | 'best';
  dt: readonly number[] | 'best';
  /** Batches per run (a shortened epoch); default the whole epoch. */
  batches?: number;
  seed: number;
  width: number;
  batchSize: number;
  maxSteps: number;
  load: (name: 'mnist' | 'fashion-mnist', split: 'train' | 'test') => Promise<Dataset>;
  onProgress?: (done: number, total: number, config: StudyConfig) => void;
  onRow?: (row: StudyRow) => void;
}

/** The configurations a study runs, in order. */
export function studyConfigs(o: Pick<StudyOptions, 'datasets' | 'hidden' | 'solvers' | 'maxT1' | 'dt'>): StudyConfig[] {
  const out: StudyConfig[] = [];
  for (const dataset of o.datasets) {
    for (const hidden of o.hidden) {
      for (const solver of o.solvers) {
        const best = PAPER_BEST[dataset][hidden]?.[solver];
        const ts = o.maxT1 === 'best' ? [best?.maxT1 ?? 20] : o.maxT1;
        const dts = o.dt === 'best' ? [best?.dt ?? 0.05] : o.dt;
        for (const maxT1 of ts) for (const dt of dts) out.push({ dataset, hidden, solver, maxT1, dt });
      }
    }
  }
  return out;
}

/** CIFAR-10-shaped data (3072 inputs, 10 classes) with random inputs and labels: for timing only. */
function syntheticCifar(count: number, seed: number): Dataset {
  const rng = new Random(seed);
  const inputDim = 3072;
  const images = new Float32Array(count * inputDim);
  for (let i = 0; i < images.length; i++) images[i] = rng.normal();
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) labels[i] = rng.nextInt(10);
  return {
    name: `cifar10-synthetic`,
    images,
    labels,
    count,
    inputDim,
    imageShape: [32, 32],
    shape: [3, 32, 32],
    numClasses: 10,
    normalization: { mean: 0, std: 1 },
    channelNormalization: { mean: [0, 0, 0], std: [1, 1, 1] },
  };
}

const mean = (xs: readonly number[]) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
const median = (xs: readonly number[]) =>
  xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const std = (xs: readonly number[]) => {
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
};

/** The inference options of a configuration's training steps. */
export function solverOptions(c: StudyConfig, maxSteps: number): SolverOptions {
  return c.solver === 'euler'
    ? { solver: 'euler', stepsizeController: 'constant', maxT1: c.maxT1, dt: c.dt, maxSteps }
    : { solver: 'heun', stepsizeController: { pid: { rtol: 1e-3, atol: 1e-3 } }, maxT1: c.maxT1, dt: c.dt, maxSteps };
}

/** Runs the study on `runtime`, one training run per configuration. */
export async function runRuntimeStudy(runtime: Runtime, o: StudyOptions): Promise<StudyRow[]> {
  const configs = studyConfigs(o);
  const data = new Map<StudyDataset, { train: Dataset; test: Dataset | null }>();
  for (const d of new Set(configs.map((c) => c.dataset))) {
    if (d === 'cifar10-synthetic') data.set(d, { train: syntheticCifar(60000, o.seed + 17), test: null });
    else data.set(d, { train: await o.load(d, 'train'), test: await o.load(d, 'test') });
  }
  const perRun = (c: StudyConfig) =>
    Math.min(epochBatchCount(data.get(c.dataset)!.train.count, o.batchSize), o.batches ?? Infinity);
  const total = configs.reduce((s, c) => s + perRun(c), 0);
  let done = 0;
  const rows: StudyRow[] = [];
  for (const c of configs) {
    const { train, test } = data.get(c.dataset)!;
    const n = perRun(c);
    const base = { ...c, batches: n };
    if (c.solver === 'euler' && constantStepCount(c.maxT1, c.dt) > o.maxSteps) {
      // diffrax refuses more than max_steps steps; the paper's plots have no point here either.
      const row: StudyRow = {
        ...base,
        status: `skipped: ${constantStepCount(c.maxT1, c.dt)} Euler steps > maxSteps ${o.maxSteps}`,
        solveMsMean: NaN,
        solveMsMedian: NaN,
        solveMsStd: NaN,
        trainStepMsMean: NaN,
        inferenceStepsMean: NaN,
        rejectedMean: NaN,
        testAccuracy: NaN,
      };
      rows.push(row);
      o.onRow?.(row);
      done += n;
      o.onProgress?.(done, total, c);
      continue;
    }
    const model = makeMlp(runtime, {
      seed: o.seed,
      inputDim: train.inputDim,
      width: o.width,
      depth: c.hidden + 1,
      outputDim: 10,
      actFn: 'tanh',
    });
    const optim = adam({ lr: 1e-3 });
    const optState = optim.init(model);
    const opts = solverOptions(c, o.maxSteps);
    const solveMs: number[] = [];
    const stepMs: number[] = [];
    const steps: number[] = [];
    const rejected: number[] = [];
    const solveClock = new SleepEstimator();
    const stepClock = new SleepEstimator();
    const settle = async (clock: SleepEstimator, since: number) => {
      const { waitedMs } = await runtime.finish({ expectedMs: clock.sleepFor(1, performance.now() - since) });
      clock.update(1, performance.now() - since, waitedMs);
    };
    let i = 0;
    for (const b of batches(train, { batchSize: o.batchSize, shuffle: true, seed: o.seed })) {
      if (i >= n) break;
      const t0 = performance.now();
      const r = await makePcStep(model, optim, optState, b.y, {
        input: b.x,
        ...opts,
        timeInference: o.timing === 'step',
      });
      await settle(stepClock, t0);
      const stepTime = performance.now() - t0;
      r.loss?.dispose();
      r.energies.dispose();
      let solveTime = r.inferenceMs ?? NaN;
      let solveSteps = r.steps;
      if (o.timing === 'separate') {
        // The paper's procedure: a fresh feedforward initialisation with the updated weights, then one solve,
        // blocking until done.
        const acts = await initActivitiesWithFfwd(model, b.x);
        await runtime.finish();
        const s0 = performance.now();
        const solved = await solveInference(model, acts, b.y, { input: b.x, ...opts });
        await settle(solveClock, s0);
        solveTime = performance.now() - s0;
        solveSteps = solved.steps;
        for (const t of [...acts, ...solved.activities]) t.dispose();
      }
      if (i > 0) {
        // The first batch includes compilation (the paper drops its JIT batch too).
        solveMs.push(solveTime);
        stepMs.push(stepTime);
        steps.push(solveSteps.accepted + solveSteps.rejected);
        rejected.push(solveSteps.rejected);
      }
      i++;
      done++;
      o.onProgress?.(done, total, c);
    }
    const testAccuracy = test ? (await testSetMetrics(model, test)).accuracy : NaN;
    model.dispose();
    optState.dispose();
    const row: StudyRow = {
      ...base,
      status: 'ok',
      solveMsMean: mean(solveMs),
      solveMsMedian: median(solveMs),
      solveMsStd: std(solveMs),
      trainStepMsMean: mean(stepMs),
      inferenceStepsMean: mean(steps),
      rejectedMean: mean(rejected),
      testAccuracy,
    };
    rows.push(row);
    o.onRow?.(row);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------
// Outputs: CSV, the best settings (Figures 3–6), the Heun/Euler ratios, and Figure 1 as SVG.

const CSV_COLUMNS: (keyof StudyRow)[] = [
  'dataset',
  'hidden',
  'solver',
  'maxT1',
  'dt',
  'batches',
  'status',
  'solveMsMean',
  'solveMsMedian',
  'solveMsStd',
  'trainStepMsMean',
  'inferenceStepsMean',
  'rejectedMean',
  'testAccuracy',
];

export function toCsv(rows: readonly StudyRow[]): string {
  const cell = (v: unknown) =>
    typeof v === 'number'
      ? Number.isFinite(v)
        ? String(+v.toFixed(4))
        : ''
      : /[",\n]/.test(String(v))
        ? `"${String(v).replace(/"/g, '""')}"`
        : String(v);
  return `${CSV_COLUMNS.join(',')}\n${rows.map((r) => CSV_COLUMNS.map((c) => cell(r[c])).join(',')).join('\n')}\n`;
}

/**
 * The best setting of each (dataset, depth, solver): highest test accuracy among the runs (synthetic data has no
 * accuracy: fastest), as in the paper's Figures 3–6.
 */
function bestSettings(rows: readonly StudyRow[]): StudyRow[] {
  const groups = new Map<string, StudyRow[]>();
  for (const r of rows) {
    if (r.status !== 'ok') continue;
    const key = `${r.dataset}|${r.hidden}|${r.solver}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((g) =>
    g.reduce((best, r) =>
      Number.isNaN(r.testAccuracy)
        ? r.solveMsMean < best.solveMsMean
          ? r
          : best
        : r.testAccuracy > best.testAccuracy
          ? r
          : best,
    ),
  );
}

/** Euler's mean solve time over Heun's, at each solver's best setting, per (dataset, depth). */
export function heunEulerRatios(
  rows: readonly StudyRow[],
): { dataset: StudyDataset; hidden: number; euler: StudyRow; heun: StudyRow; ratio: number }[] {
  const best = bestSettings(rows);
  const out: { dataset: StudyDataset; hidden: number; euler: StudyRow; heun: StudyRow; ratio: number }[] = [];
  for (const e of best.filter((r) => r.solver === 'euler')) {
    const h = best.find((r) => r.solver === 'heun' && r.dataset === e.dataset && r.hidden === e.hidden);
    if (h) out.push({ dataset: e.dataset, hidden: e.hidden, euler: e, heun: h, ratio: e.solveMsMean / h.solveMsMean });
  }
  return out;
}

export function bestTable(rows: readonly StudyRow[]): string {
  const best = bestSettings(rows);
  const lines = [
    '| dataset | H | solver | best T | best dt | test accuracy (%) | solve (ms, mean) | inference steps | training step (ms) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...best.map(
      (r) =>
        `| ${r.dataset} | ${r.hidden} | ${r.solver === 'heun' ? 'Heun + PID' : 'Euler'} | ${r.maxT1} | ${r.dt} | ${Number.isNaN(r.testAccuracy) ? 'n/a (synthetic)' : r.testAccuracy.toFixed(2)} | ${r.solveMsMean.toFixed(2)} | ${r.inferenceStepsMean.toFixed(1)} | ${r.trainStepMsMean.toFixed(1)} |`,
    ),
  ];
  const ratios = heunEulerRatios(rows);
  if (ratios.length > 0) {
    lines.push(
      '',
      '| dataset | H | Euler solve (ms) | Heun solve (ms) | Euler / Heun |',
      '| --- | --- | --- | --- | --- |',
    );
    for (const r of ratios)
      lines.push(
        `| ${r.dataset} | ${r.hidden} | ${r.euler.solveMsMean.toFixed(2)} | ${r.heun.solveMsMean.toFixed(2)} | ${r.ratio.toFixed(2)}× |`,
      );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Figure 1's layout: one panel per dataset, hidden depth on the x axis, mean time per inference solve (ms, log
 * scale) of Euler and Heun at their best settings as grouped bars with ±1 std whiskers.
 */
export function figureSvg(rows: readonly StudyRow[], title: string): string {
  const best = bestSettings(rows);
  const datasets = [...new Set(best.map((r) => r.dataset))];
  const depths = [...new Set(best.map((r) => r.hidden))].sort((a, b) => a - b);
  const values = best
    .flatMap((r) => [r.solveMsMean + r.solveMsStd, Math.max(1e-3, r.solveMsMean - r.solveMsStd)])
    .filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...values, 1)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values, 10)));
  const panelW = 280;
  const panelH = 240;
  const left = 64;
  const top = 48;
  const W = left + datasets.length * (panelW + 24) + 16;
  const H = top + panelH + 70;
  const y = (v: number) =>
    top + panelH - (panelH * (Math.log10(Math.max(v, lo)) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
  const colors: Record<StudySolver, string> = { euler: '#d95f02', heun: '#1b9e77' };
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  datasets.forEach((d, p) => {
    const x0 = left + p * (panelW + 24);
    parts.push(`<text x="${x0 + panelW / 2}" y="${top - 8}" text-anchor="middle" font-weight="bold">${esc(d)}</text>`);
    parts.push(`<rect x="${x0}" y="${top}" width="${panelW}" height="${panelH}" fill="none" stroke="#888"/>`);
    for (let e = Math.log10(lo); e <= Math.log10(hi); e++) {
      const yy = y(10 ** e);
      parts.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${yy}" y2="${yy}" stroke="#eee"/>`);
      if (p === 0)
        parts.push(
          `<text x="${x0 - 6}" y="${yy + 4}" text-anchor="end">${10 ** e >= 1 ? 10 ** e : (10 ** e).toPrecision(1)}</text>`,
        );
    }
    const slot = panelW / depths.length;
    depths.forEach((h, k) => {
      const cx = x0 + slot * (k + 0.5);
      parts.push(`<text x="${cx}" y="${top + panelH + 16}" text-anchor="middle">H = ${h}</text>`);
      (['euler', 'heun'] as const).forEach((s, j) => {
        const r = best.find((b) => b.dataset === d && b.hidden === h && b.solver === s);
        if (!r) return;
        const bw = slot * 0.3;
        const bx = cx + (j - 1) * bw;
        const by = y(r.solveMsMean);
        parts.push(
          `<rect x="${bx}" y="${by}" width="${bw}" height="${top + panelH - by}" fill="${colors[s]}"><title>${s}: ${r.solveMsMean.toFixed(2)} ms (T ${r.maxT1}, dt ${r.dt})</title></rect>`,
        );
        parts.push(
          `<line x1="${bx + bw / 2}" x2="${bx + bw / 2}" y1="${y(r.solveMsMean + r.solveMsStd)}" y2="${y(Math.max(lo, r.solveMsMean - r.solveMsStd))}" stroke="black"/>`,
        );
      });
    });
  });
  parts.push(
    `<text transform="translate(16 ${top + panelH / 2}) rotate(-90)" text-anchor="middle">time per inference solve (ms, log scale)</text>`,
  );
  const ly = top + panelH + 40;
  (['euler', 'heun'] as const).forEach((s, j) => {
    const lx = left + j * 170;
    parts.push(`<rect x="${lx}" y="${ly}" width="12" height="12" fill="${colors[s]}"/>`);
    parts.push(
      `<text x="${lx + 18}" y="${ly + 11}">${s === 'euler' ? 'Euler (constant step)' : 'Heun (PID, rtol = atol = 1e-3)'}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
