/**
 * Matrix-product throughput: WPC's gemm kernel (the register-tiled WGSL matmul, gemm.wgsl) on the paper's layer
 * shapes (batch 64: 64×784×300, 64×300×300, 64×300×10) and large squares (1024³, 4096³), against the CPU's BLAS
 * through numpy in the same run when python3 and numpy are present. Each WPC figure is the median over
 * repeated submits of back-to-back products (about 0.2 s of work per submit) after a warm-up
 * (GFLOP/s = 2·m·n·k / time).
 *
 * The floor: the same kernel on the same m × n grid with k = 4, so nearly no arithmetic, timed in rounds that
 * alternate with the product's (this machine's speed drifts). It is what one dispatch costs before any
 * multiply-add (on lavapipe mostly its thread pool waking and joining), so flops / floor bounds what the
 * shape can reach with this kernel: `ceilingOverBlas` is that bound as a share of BLAS. The last row is the
 * adapter's own floor, a dispatch of one workgroup that stores one value.
 * Prints one JSON object on stdout.
 */
import { execFileSync } from 'node:child_process';
import { GemmRecorder, asMatrix } from '../src/pc/linalg.js';
import { createBindGroup } from '../src/runtime/kernel.js';
import type { Recorder } from '../src/runtime/recorder.js';
import { SleepEstimator } from '../src/runtime/polling.js';
import { adapterLabel, benchInit, median, perDispatchMs } from './common.js';

const SHAPES: [string, number, number, number][] = [
  ['paper: 64×784×300', 64, 784, 300],
  ['paper: 64×300×300', 64, 300, 300],
  ['paper: 64×300×10', 64, 300, 10],
  ['1024³', 1024, 1024, 1024],
  ['4096³', 4096, 4096, 4096],
];

/** Depth of the floor's product: the same grid and dispatch as the real one, next to no arithmetic. */
const FLOOR_K = 4;
/** Dispatches per submit for the empty-dispatch row. */
const EMPTY_PER_SUBMIT = 200;

/** numpy's float32 matmul on the same shapes (BLAS), or null without python3/numpy. */
function numpyGflops(): Record<string, number> | null {
  const script = `
import json, time, numpy as np
out = {}
for name, m, k, n in ${JSON.stringify(SHAPES.map(([s, m, k, n]) => [s, m, k, n]))}:
    a = np.random.rand(m, k).astype(np.float32); b = np.random.rand(k, n).astype(np.float32)
    reps = max(3, min(2000, int(2e9 / (2 * m * n * k))))
    a @ b
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps): a @ b
        ts.append((time.perf_counter() - t0) / reps)
    ts.sort()
    out[name] = 2 * m * n * k / ts[2] / 1e9
print(json.dumps(out))
`;
  try {
    return JSON.parse(
      execFileSync('python3', ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(),
    ) as Record<string, number>;
  } catch {
    return null;
  }
}

const rt = await benchInit();
const gemm = await GemmRecorder.create(rt);
const blas = numpyGflops();
const rows: Record<string, unknown>[] = [];

for (const [name, m, k, n] of SHAPES) {
  const flops = 2 * m * n * k;
  const probeA = rt.tensor(
    new Float32Array(m * k).map((_, i) => Math.sin(i)),
    [m, k],
  );
  const probeB = rt.tensor(
    new Float32Array(k * n).map((_, i) => Math.cos(i)),
    [k, n],
  );
  const c = rt.empty([m, n]);
  // The floor's product (depth FLOOR_K) reads the first FLOOR_K columns of A (row length k) and rows of B.
  const product = (depth: number) => (rec: Recorder) =>
    gemm.record(rec, { m, n, k: depth, a: asMatrix(probeA), b: asMatrix(probeB), c: asMatrix(c) });
  const clocks = { product: new SleepEstimator(), floor: new SleepEstimator() };
  // Warm-up (compilation) and a first estimate: enough products per submit for ~0.2 s of work, at least one.
  const single = await perDispatchMs(rt, 1, product(k), new SleepEstimator());
  await perDispatchMs(rt, 1, product(FLOOR_K), new SleepEstimator());
  const perSubmit = Math.max(1, Math.min(200, Math.round(200 / Math.max(single, 0.01))));
  const repeats = flops > 1e11 ? 3 : 7;
  const times: number[] = [];
  const floors: number[] = [];
  for (let r = 0; r < repeats; r++) {
    times.push(await perDispatchMs(rt, perSubmit, product(k), clocks.product));
    floors.push(await perDispatchMs(rt, perSubmit, product(FLOOR_K), clocks.floor));
  }
  gemm.release();
  const ms = median(times);
  const floorMs = median(floors);
  const gflops = flops / (ms * 1e6);
  const ceiling = flops / (floorMs * 1e6);
  rows.push({
    shape: name,
    productsPerSubmit: perSubmit,
    msPerProduct: +ms.toFixed(3),
    floorMs: +floorMs.toFixed(3),
    wpcGflops: +gflops.toFixed(2),
    blasGflops: blas ? +blas[name]!.toFixed(1) : 'n/a',
    wpcOverBlas: blas ? `${((100 * gflops) / blas[name]!).toFixed(1)}%` : 'n/a',
    ceilingOverBlas: blas ? `${((100 * ceiling) / blas[name]!).toFixed(0)}%` : 'n/a',
  });
  for (const t of [probeA, probeB, c]) t.dispose();
  console.error(JSON.stringify(rows.at(-1)));
}
{
  // The adapter's own floor: one workgroup that stores one value, dispatched back to back like the products.
  const probe = await rt.kernel({
    name: 'bench.empty-dispatch',
    parts: [
      {
        file: 'empty-dispatch.wgsl',
        source:
          '@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n@compute @workgroup_size(1) fn main() { out[0] = 1.0; }',
      },
    ],
    entryPoint: 'main',
    bindings: [{ name: 'out', kind: 'storage' }],
    workgroupSize: 1,
  });
  const out = rt.empty([1]);
  const group = createBindGroup(rt.device, probe, { out: out.buffer });
  const clock = new SleepEstimator();
  const times: number[] = [];
  // The first round is the warm-up.
  for (let r = 0; r < 8; r++) {
    const ms = await perDispatchMs(rt, EMPTY_PER_SUBMIT, (rec) => rec.dispatch(probe, group, 1), clock);
    if (r > 0) times.push(ms);
  }
  out.dispose();
  const ms = median(times);
  rows.push({
    shape: 'empty dispatch (1 workgroup)',
    productsPerSubmit: EMPTY_PER_SUBMIT,
    msPerProduct: +ms.toFixed(3),
    floorMs: +ms.toFixed(3),
    wpcGflops: '',
    blasGflops: '',
    wpcOverBlas: '',
    ceilingOverBlas: '',
  });
  console.error(JSON.stringify(rows.at(-1)));
}
process.stdout.write(`${JSON.stringify({ adapter: adapterLabel(rt), rows })}\n`);
rt.dispose();
