/**
 * Shared test helpers: one runtime per test file, conversions between the float64 reference (test/reference)
 * and GPU models, and the tolerance check every kernel test uses.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { init, mlpFromWeights, type Model, type Runtime, type Tensor } from '../../src/node.js';
import {
  type Act,
  type Mat,
  type RefModel,
  actDeriv,
  ffwd,
  layerErrors,
  mat,
  randomModel,
} from '../reference/jpc64.js';
import { Random } from '../../src/util/random.js';
import { Recorder } from '../../src/runtime/recorder.js';
import { WpcArgumentError } from '../../src/runtime/errors.js';

/** A runtime for the whole file (real Dawn adapter; never the null backend). */
export function useRuntime(): () => Runtime {
  let rt: Runtime | undefined;
  beforeAll(async () => {
    rt = await init();
  });
  afterAll(() => rt?.dispose());
  return () => {
    if (!rt) throw new Error('runtime not initialised');
    return rt;
  };
}

/** The dispatches (kernel name and workgroups) recorded while `run` runs (Recorder.dispatch observed). */
export async function recordedDispatches(
  run: () => Promise<unknown>,
): Promise<{ kernel: string; workgroups: unknown }[]> {
  const seen: { kernel: string; workgroups: unknown }[] = [];
  type Dispatch = (
    this: Recorder,
    kernel: { spec: { name: string } },
    group: unknown,
    workgroups: unknown,
    ...rest: unknown[]
  ) => void;
  const proto = Recorder.prototype as unknown as { dispatch: Dispatch };
  const original = proto.dispatch;
  proto.dispatch = function (kernel, group, workgroups, ...rest) {
    seen.push({ kernel: kernel.spec.name, workgroups });
    return original.call(this, kernel, group, workgroups, ...rest);
  };
  try {
    await run();
  } finally {
    proto.dispatch = original;
  }
  return seen;
}

/** Rounds every parameter of a reference model to float32, so the reference computes on the GPU's exact inputs. */
export function roundModel(ref: RefModel): RefModel {
  const r = (m: Mat) => mat(m.rows, m.cols, Float64Array.from(m.data, Math.fround));
  return {
    ...ref,
    weights: ref.weights.map(r),
    biases: ref.biases.map((b) => (b ? Float64Array.from(b, Math.fround) : null)),
  };
}

export function randomRefModel(seed: number, dims: number[], act: Act, bias: boolean): RefModel {
  return roundModel(randomModel(new Random(seed), dims, act, { bias }));
}

export function gpuModel(rt: Runtime, ref: RefModel): Model {
  const dims = [ref.weights[0]!.cols, ...ref.weights.map((w) => w.rows)];
  return mlpFromWeights(rt, {
    dims,
    weights: ref.weights.map((w) => Float32Array.from(w.data)),
    biases: ref.biases.every((b) => b) ? ref.biases.map((b) => Float32Array.from(b!)) : null,
    actFn: ref.act,
  });
}

/** A random matrix already rounded to float32. */
export function randomMat(rng: Random, rows: number, cols: number, scale = 1): Mat {
  return mat(
    rows,
    cols,
    Float64Array.from({ length: rows * cols }, () => Math.fround(scale * rng.normal())),
  );
}

export function oneHotMat(rng: Random, rows: number, cols: number): Mat {
  const m = mat(rows, cols);
  for (let r = 0; r < rows; r++) m.data[r * cols + rng.nextInt(cols)] = 1;
  return m;
}

/**
 * A random network and state for the layer-kernel checks: 3–5 layers of 1–45 units and a batch of 1–90, or with
 * `aligned` every width and the batch ≡ 0 mod 4 (the vec4 epilogue path); cross-entropy on even trials when the
 * output has more than one unit; biases except on every third trial; activities a noisy feedforward pass.
 */
/** The feedforward activities of `ref` on `x`, each moved by 0.3·N(0, 1) and rounded to float32: a point away from the energy's minimum. */
export function perturbedActivities(rng: Random, ref: RefModel, x: Mat): Mat[] {
  return ffwd(ref, x).map((m) => ({
    ...m,
    data: Float64Array.from(m.data, (v) => Math.fround(v + 0.3 * rng.normal())),
  }));
}

export function randomLayerProblem(rng: Random, trial: number, modelSeed: number, act: Act, aligned: boolean) {
  const dims = Array.from({ length: 3 + rng.nextInt(3) }, () =>
    aligned ? 4 * (1 + rng.nextInt(12)) : 1 + rng.nextInt(45),
  );
  const B = aligned ? 4 * (1 + rng.nextInt(20)) : 1 + rng.nextInt(90);
  const loss: 'mse' | 'ce' = trial % 2 === 0 && dims.at(-1)! > 1 ? 'ce' : 'mse';
  const ref = randomRefModel(modelSeed, dims, act, trial % 3 !== 0);
  const x = randomMat(rng, B, dims[0]!);
  const y = loss === 'ce' ? oneHotMat(rng, B, dims.at(-1)!) : randomMat(rng, B, dims.at(-1)!);
  const acts = perturbedActivities(rng, ref, x);
  return { dims, B, loss, ref, x, y, acts, what: `dims ${dims.join('-')}, B ${B}, ${act}, ${loss}` };
}

export function f32(m: Mat): Float32Array {
  return Float32Array.from(m.data);
}

export function tensorOf(rt: Runtime, m: Mat): Tensor {
  return rt.tensor(f32(m), [m.rows, m.cols]);
}

/**
 * Relative closeness, elementwise with a floor: |a − e| ≤ rtol·max(|e|, floor·‖e‖∞). The floor (1e-2 of the
 * largest magnitude) keeps entries that cancel to nearly zero from demanding more than float32 can give.
 * Returns the worst ratio |a − e| / bound, so tests can report it.
 */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol = 1e-4,
  what = 'values',
  floor = 1e-2,
): number {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) maxAbs = Math.max(maxAbs, Math.abs(expected[i]!));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const bound = rtol * Math.max(Math.abs(expected[i]!), floor * maxAbs, 1e-30);
    const ratio = Math.abs(actual[i]! - expected[i]!) / bound;
    if (!(ratio <= worst)) {
      worst = ratio;
      at = i;
    }
  }
  if (!(worst <= 1)) {
    expect.fail(
      `${what}: element ${at} is ${actual[at]} but the reference is ${expected[at]} (error ${(worst * rtol).toExponential(2)} relative, tolerance ${rtol})`,
    );
  }
  return worst;
}

export function flat(ms: readonly Mat[]): Float64Array {
  const n = ms.reduce((s, m) => s + m.data.length, 0);
  const out = new Float64Array(n);
  let at = 0;
  for (const m of ms) {
    out.set(m.data, at);
    at += m.data.length;
  }
  return out;
}

export async function readAll(ts: readonly (Tensor | null)[]): Promise<Float32Array> {
  const parts = await Promise.all(ts.filter((t): t is Tensor => t !== null).map((t) => t.toArray()));
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Float32Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * |a − e| ≤ rtol·scale elementwise, where `scale` is the magnitude of what was summed to get e (see
 * `activityGradScale`): the float32 error bound for quantities that cancel, like gradients near equilibrium.
 */
export function expectCloseScaled(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  scale: ArrayLike<number>,
  rtol: number,
  what: string,
): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!);
    if (!(err <= rtol * scale[i]! + 1e-30)) {
      expect.fail(
        `${what}: element ${i} is ${actual[i]} but the reference is ${expected[i]} (error ${err.toExponential(2)}, ${(err / scale[i]!).toExponential(2)} of the summands' magnitude ${scale[i]!.toExponential(2)}, tolerance ${rtol})`,
      );
    }
  }
}

/**
 * The magnitude of the terms summed into ∂F/∂z_l = (e_l − s·φ'(z_l)⊙(e_{l+1}W))/B, with e_l = z_l − pred_l:
 * (|z_l| + |pred_l| + |s·φ'(z_l)|·(|e_{l+1}|·|W|))/B per element (0 for the dummy output activity).
 */
export function activityGradScale(
  ref: RefModel,
  acts: readonly Mat[],
  y: Mat,
  x: Mat,
  loss: 'mse' | 'ce',
): Float64Array {
  const { errors } = layerErrors(ref, acts, y, x, loss);
  const L = ref.weights.length;
  const B = y.rows;
  const out: number[] = [];
  for (let l = 0; l < L - 1; l++) {
    const z = acts[l]!;
    const e = errors[l]!;
    const next = errors[l + 1]!;
    const w = ref.weights[l + 1]!;
    const s = ref.scales?.[l + 1] ?? 1;
    const n = z.cols;
    for (let r = 0; r < z.rows; r++) {
      for (let i = 0; i < n; i++) {
        let back = 0;
        for (let o = 0; o < w.rows; o++) back += Math.abs(next.data[r * w.rows + o]!) * Math.abs(w.data[o * n + i]!);
        const zi = z.data[r * n + i]!;
        const pred = zi - e.data[r * n + i]!;
        out.push((Math.abs(zi) + Math.abs(pred) + Math.abs(s * actDeriv(ref.act, zi)) * back) / B);
      }
    }
  }
  for (let i = 0; i < acts[L - 1]!.data.length; i++) out.push(0);
  return Float64Array.from(out);
}

/** A random classification batch on the GPU: x ~ N(0, 1) [B, inDim], one-hot y [B, outDim]. */
export function randomBatch(
  rt: Runtime,
  seed: number,
  B: number,
  inDim: number,
  outDim: number,
): { x: Tensor; y: Tensor } {
  const rng = new Random(seed);
  const x = Float32Array.from({ length: B * inDim }, () => rng.normal());
  const y = new Float32Array(B * outDim);
  for (let b = 0; b < B; b++) y[b * outDim + rng.nextInt(outDim)] = 1;
  return { x: rt.tensor(x, [B, inDim]), y: rt.tensor(y, [B, outDim]) };
}

/** The raw bits of float32 values, for bit-exact comparisons. */
export function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

/**
 * What `runtime` has allocated: persistent buffers (models, optimiser state) and the pool's total. Not the pool's
 * in-use / free split, which moves when a forgotten tensor is garbage-collected.
 */
export function allocated(runtime: Runtime): { persistentBytes: number; totalBytes: number } {
  const { persistentBytes, totalBytes } = runtime.memoryStats();
  return { persistentBytes, totalBytes };
}

/** Runs `f`, which must throw a WpcArgumentError; returns its message. */
export function refusal(f: () => unknown, label = ''): string {
  try {
    f();
  } catch (e) {
    expect(e, label).toBeInstanceOf(WpcArgumentError);
    return (e as Error).message;
  }
  throw new Error(`expected a refusal, but the call succeeded ${label}`);
}
