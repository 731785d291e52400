/**
 * Register-tile sweep of the grouped matmul (layer-matmul.wgsl, `InitOptions.kernels.tiles`): for each candidate
 * tile on this adapter, the gemm kernel's GFLOP/s on the paper's layer shapes and large squares, and µs per
 * Euler inference step of the paper networks (H = 3 and 10, width 300, batch 64, dt 0.5, T = 20: 40 steps).
 * `defaultTiles` was measured on lavapipe only; on a GPU this table is what its default should be chosen from
 * (blocked and workgroup-memory tiles of several workgroup sizes and register blocks, subgroup and split-k
 * tiles where the adapter reports one fixed subgroup size, and subgroup-matrix tiles where it has subgroup
 * matrices: Dawn is created with allow_unsafe_apis so that it shows them). Each figure is the median of repeated
 * runs after a warm-up; every candidate gets a runtime of its own, so its kernels compile afresh. Prints one JSON
 * object on stdout.
 */
import { init, initActivitiesWithFfwd, solveInference, type Runtime } from '../src/node.js';
import { defaultTiles, type TileConfig, workgroupTile } from '../src/kernels/tiles.js';
import { GemmRecorder, asMatrix } from '../src/pc/linalg.js';
import { DAWN_EXPERIMENTAL_OPTION } from '../src/runtime/adapter.js';
import { SleepEstimator } from '../src/runtime/polling.js';
import { adapterLabel, median, paperNetwork, perDispatchMs } from './common.js';

const REPEATS = Number(process.env.WPC_BENCH_REPEATS ?? 5);
const B = 64;
const HIDDEN = [3, 10];

/** Dawn shows experimental features such as subgroup matrices only with this (it changes nothing else here). */
const dawnOptions = [DAWN_EXPERIMENTAL_OPTION];

/** Subgroup-matrix tiles for `rt`'s adapter: f32 operands where it has them (exact), else f16. */
function matrixCandidates(rt: Runtime, blocks: readonly (readonly [number, number])[]): TileConfig[] {
  const { subgroupSize: lanes, subgroupMatrixConfigs: configs, shaderF16 } = rt.adapter;
  const find = (type: string) => configs.find((c) => c.componentType === type && c.resultComponentType === 'f32');
  const config = find('f32') ?? (shaderF16 ? find('f16') : undefined);
  if (lanes === null || config === undefined) return [];
  // The shape validation will pick (the first configuration of that operand type), for the labels.
  const matrixShape = { m: config.M, n: config.N, k: config.K };
  return blocks.map(([tm, tn]) => ({ wg: lanes, tm, tn, matrix: config.componentType as 'f16' | 'f32', matrixShape }));
}

/** The tiles worth comparing on `rt`'s adapter, its default first. */
function candidates(rt: Runtime): TileConfig[] {
  const adapter = rt.adapter;
  const list: TileConfig[] = [defaultTiles(adapter)];
  const lanes = adapter.subgroupSize;
  if (adapter.isSoftware) {
    // lavapipe: the alternatives BENCHMARKS.md names as measured slower, kept here to re-check on other CPUs.
    // Split k and workgroup-memory panels, the GPU-oriented layouts, for the record.
    if (lanes === 16)
      list.push(
        { wg: 16, tm: 4, tn: 32, subgroup: true },
        { wg: 16, tm: 2, tn: 64, subgroup: true },
        { wg: 16, tm: 4, tn: 4, splitK: true },
      );
    else if (lanes === 8)
      list.push(
        { wg: 8, tm: 8, tn: 32, subgroup: true },
        { wg: 8, tm: 4, tn: 64, subgroup: true },
        { wg: 8, tm: 4, tn: 4, splitK: true },
      );
    else list.push({ wg: 8, tm: 8, tn: 8 }, { wg: 16, tm: 8, tn: 8 });
    list.push({ wg: 64, tm: 8, tn: 8, shared: true });
    // Mesa 26's lavapipe has f16 subgroup matrices (8 lanes only; see scripts/matrix-lavapipe.mjs).
    if (lanes === 8) list.push(...matrixCandidates(rt, [[2, 2]]));
  } else {
    const maxWg = rt.device.limits.maxComputeInvocationsPerWorkgroup;
    for (const [wg, tm, tn] of [
      [32, 4, 4],
      [64, 2, 2],
      [64, 4, 4],
      [64, 8, 4],
      [64, 8, 8],
      [128, 4, 4],
      [256, 4, 4],
      [256, 8, 8],
    ] as const) {
      if (wg <= maxWg) list.push({ wg, tm, tn });
    }
    // Workgroup-memory panels: 32×32, 64×64, and 128×128 tiles (the large products' layout on GPUs).
    for (const [wg, tm, tn] of [
      [64, 4, 4],
      [64, 8, 8],
      [256, 4, 4],
      [256, 8, 8],
    ] as const) {
      if (wg <= maxWg) list.push({ wg, tm, tn, shared: true });
    }
    if (lanes !== null && lanes <= rt.device.limits.maxComputeInvocationsPerWorkgroup) {
      for (const [tm, tn] of [
        [2, lanes],
        [4, lanes],
        [2, 2 * lanes],
      ] as const)
        if (tm * tn <= 512) list.push({ wg: lanes, tm, tn, subgroup: true });
      for (const [tm, tn] of [
        [2, 4],
        [4, 4],
        [8, 8],
      ] as const)
        list.push({ wg: lanes, tm, tn, splitK: true });
    }
    // Tensor cores where Dawn exposes them (f16 operands unless the GPU has f32 ones, e.g. Apple's).
    list.push(
      ...matrixCandidates(rt, [
        [1, 1],
        [2, 2],
        [2, 4],
        [4, 4],
      ]),
    );
  }
  const seen = new Set<string>();
  return list.filter((t) => {
    const key = JSON.stringify({
      ...t,
      subgroup: t.subgroup === true,
      splitK: t.splitK === true,
      shared: t.shared === true,
      matrix: t.matrix ?? '',
    });
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const label = (t: TileConfig): string => {
  const { rows, cols } = workgroupTile(t);
  if (t.splitK) return `split k wg ${t.wg}, ${rows}×${cols} per workgroup (k shared by its ${t.wg} lanes)`;
  if (t.shared)
    return `shared wg ${t.wg}, ${t.tm}×${t.tn} per invocation (${rows}×${cols} per workgroup, panels in workgroup memory)`;
  if (t.matrix)
    return `matrix ${t.matrix} wg ${t.wg}, ${t.tm}×${t.tn} subgroup matrices (${rows}×${cols} per workgroup)`;
  return `${t.subgroup ? 'subgroup' : 'blocked'} wg ${t.wg}, ${t.tm}×${t.tn} per lane (${rows}×${cols} per workgroup)`;
};

/** GFLOP/s of the gemm kernel on m×k·k×n: back-to-back products, ~0.1 s of work per submit. */
async function gemmGflops(rt: Runtime, m: number, k: number, n: number): Promise<number> {
  const gemm = await GemmRecorder.create(rt);
  const a = rt.tensor(
    new Float32Array(m * k).map((_, i) => Math.sin(i)),
    [m, k],
  );
  const b = rt.tensor(
    new Float32Array(k * n).map((_, i) => Math.cos(i)),
    [k, n],
  );
  const c = rt.empty([m, n]);
  const product = (rec: Parameters<GemmRecorder['record']>[0]) =>
    gemm.record(rec, { m, n, k, a: asMatrix(a), b: asMatrix(b), c: asMatrix(c) });
  try {
    const single = await perDispatchMs(rt, 1, product, new SleepEstimator());
    const perSubmit = Math.max(1, Math.min(200, Math.round(100 / Math.max(single, 0.005))));
    const clock = new SleepEstimator();
    const times: number[] = [];
    for (let r = 0; r < REPEATS; r++) times.push(await perDispatchMs(rt, perSubmit, product, clock));
    return (2 * m * n * k) / (median(times) * 1e6);
  } finally {
    gemm.release();
    for (const t of [a, b, c]) t.dispose();
  }
}

/** µs per step of a 40-step Euler solve (dt 0.5, T = 20) of the H-hidden-layer paper network. */
async function eulerUsPerStep(rt: Runtime, H: number): Promise<number> {
  const { model, input, output } = paperNetwork(rt, H, B);
  const acts = await initActivitiesWithFfwd(model, input);
  const clock = new SleepEstimator();
  const times: number[] = [];
  try {
    for (let i = 0; i < REPEATS + 2; i++) {
      await rt.finish();
      const t0 = performance.now();
      const r = await solveInference(model, acts, output, {
        input,
        solver: 'euler',
        stepsizeController: 'constant',
        maxT1: 20,
        dt: 0.5,
      });
      const { waitedMs } = await rt.finish({ expectedMs: clock.sleepFor(1, performance.now() - t0) });
      clock.update(1, performance.now() - t0, waitedMs);
      if (i >= 2) times.push((1000 * (performance.now() - t0)) / (r.steps.accepted + r.steps.rejected));
      for (const t of r.activities) t.dispose();
    }
    return median(times);
  } finally {
    for (const t of [...acts, input, output]) t.dispose();
    model.dispose();
  }
}

const probe = await init({ dawnOptions });
const adapter = adapterLabel(probe);
const software = probe.adapter.isSoftware;
const tiles = candidates(probe);
probe.dispose();
const shapes: [string, number, number, number][] = [
  ['64×784×300', 64, 784, 300],
  ['64×300×300', 64, 300, 300],
  ['1024³', 1024, 1024, 1024],
  ...(software ? [] : [['4096³', 4096, 4096, 4096] as [string, number, number, number]]),
];
const rows: Record<string, unknown>[] = [];
for (const [i, t] of tiles.entries()) {
  const row: Record<string, unknown> = { tiles: label(t), default: i === 0 ? 'yes' : '' };
  const metrics = [...shapes.map(([name]) => `gflops ${name}`), ...HIDDEN.map((H) => `eulerUsPerStep H=${H}`)];
  // A candidate this adapter refuses (or whose kernels fail) gets a row saying so; the sweep goes on, since on a
  // lent GPU one run has to bring back the whole table.
  let rt: Runtime | undefined;
  try {
    // Validation fills in the matrix shape from the adapter; the candidate names only the operand type.
    const { matrixShape: _shape, ...asked } = t;
    rt = await init({ dawnOptions, kernels: { tiles: asked } });
    for (const [name, m, k, n] of shapes) row[`gflops ${name}`] = +(await gemmGflops(rt, m, k, n)).toFixed(1);
    for (const H of HIDDEN) row[`eulerUsPerStep H=${H}`] = Math.round(await eulerUsPerStep(rt, H));
  } catch (e) {
    for (const m of metrics) row[m] ??= 'failed';
    row.tiles = `${label(t)}: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    rt?.dispose();
  }
  rows.push(row);
  console.error(JSON.stringify(row));
}
process.stdout.write(`${JSON.stringify({ adapter, batch: B, width: 300, repeats: REPEATS, rows })}\n`);
