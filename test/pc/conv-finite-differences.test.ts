/**
 * The GPU's gradients of a small CNN (a non-square kernel, stride 2, padding, overlapping average pooling, biases,
 * a dense readout) against central finite differences of an energy written out here in float64, independently
 * of the reference in test/reference/conv64.ts (which takes square kernels only).
 */
import { describe, expect, it } from 'vitest';
import { makeModel } from '../../src/pc/architecture.js';
import { avgPool, conv, dense, flatten } from '../../src/pc/layer-defs.js';
import { computePcActivityGrad, computePcParamGrads, initActivitiesWithFfwd, pcEnergy } from '../../src/pc/energy.js';
import { Random } from '../../src/util/random.js';
import { useRuntime } from '../support/helpers.js';

const rt = useRuntime();

/** The fields of the layer specs (src/pc/layers) this energy reads. */
interface L {
  kind: string;
  inDim: number;
  outDim: number;
  inShape: [number, number, number];
  outShape: [number, number, number];
  kernel: [number, number];
  stride: number;
  padding: number;
  skip: boolean;
  linearInput?: boolean;
}
function refForward(
  layers: L[],
  ws: Float64Array[],
  bs: (Float64Array | null)[],
  acts: boolean[],
  input: Float64Array,
  l: number,
): Float64Array {
  const layer = layers[l]!;
  const x = acts[l] ? input.map((v) => Math.max(v, 0)) : input;
  if (layer.kind === 'dense') {
    const out = new Float64Array(layer.outDim);
    for (let o = 0; o < layer.outDim; o++) {
      let s = bs[l] ? bs[l]![o]! : 0;
      for (let i = 0; i < layer.inDim; i++) s += ws[l]![o * layer.inDim + i]! * x[i]!;
      out[o] = s;
    }
    return out;
  }
  const [c, h, w] = layer.inShape;
  const [co, oh, ow] = layer.outShape;
  const out = new Float64Array(co * oh * ow);
  const [kh, kw] = layer.kernel;
  const s = layer.stride;
  const p = layer.kind === 'conv' ? layer.padding : 0;
  for (let o = 0; o < co; o++)
    for (let y = 0; y < oh; y++)
      for (let xx = 0; xx < ow; xx++) {
        let sum = layer.kind === 'conv' && bs[l] ? bs[l]![o]! : 0;
        for (let ci = 0; ci < c; ci++) {
          if (layer.kind === 'avgPool' && ci !== o) continue;
          for (let ky = 0; ky < kh; ky++)
            for (let kx = 0; kx < kw; kx++) {
              const iy = y * s + ky - p;
              const ix = xx * s + kx - p;
              if (iy < 0 || ix < 0 || iy >= h || ix >= w) continue;
              const v = x[(ci * h + iy) * w + ix]!;
              sum += layer.kind === 'conv' ? ws[l]![((o * c + ci) * kh + ky) * kw + kx]! * v : v / (kh * kw);
            }
        }
        out[(o * oh + y) * ow + xx] = layer.skip ? sum + input[(o * oh + y) * ow + xx]! : sum;
      }
  return out;
}

describe('convolutional PC against finite differences', () => {
  it('energy, activity and param grads match a float64 finite-difference reference', async () => {
    const B = 2;
    const model = makeModel(rt(), {
      seed: 3,
      inputShape: [3, 7, 5],
      actFn: 'relu',
      useBias: true,
      layers: [
        conv(5, 3, { padding: 1, stride: 2 }),
        avgPool(2, { stride: 1 }),
        conv(3, [2, 3], { padding: 2 }),
        flatten(),
        dense(4),
      ],
    });
    const layers = model.layers as unknown as L[];
    const { weights, biases } = await model.toArrays();
    const ws = weights.map((w) => Float64Array.from(w));
    const bs = biases.map((b) => (b ? Float64Array.from(b) : null));
    const acts = layers.map((l, i) => i > 0 && !l.linearInput);
    const rng = new Random(5);
    const x = Float32Array.from({ length: B * model.dims[0]! }, () => rng.normal());
    const y = Float32Array.from({ length: B * model.outputDim }, () => rng.normal());
    const input = rt().tensor(x, [B, model.dims[0]!]);
    const output = rt().tensor(y, [B, model.outputDim]);
    const ff = await initActivitiesWithFfwd(model, input);
    const zs = await Promise.all(ff.map((t) => t.toArray()));
    const Lc = model.depth;
    // perturb
    const z = zs.map((a) => Float32Array.from(a, (v) => v + 0.3 * rng.normal()));
    const activities = z.map((a, i) => rt().tensor(a, [B, model.dims[i + 1]!]));
    const energy = (zz: Float64Array[], wws: Float64Array[], bbs: (Float64Array | null)[]) => {
      let F = 0;
      for (let b = 0; b < B; b++) {
        let prev = Float64Array.from(x.subarray(b * model.dims[0]!, (b + 1) * model.dims[0]!));
        for (let l = 0; l < Lc; l++) {
          const mu = refForward(layers, wws, bbs, acts, prev, l);
          const target =
            l === Lc - 1
              ? y.subarray(b * model.outputDim, (b + 1) * model.outputDim)
              : zz[l]!.subarray(b * model.dims[l + 1]!, (b + 1) * model.dims[l + 1]!);
          for (let i = 0; i < mu.length; i++) F += 0.5 * (target[i]! - mu[i]!) ** 2;
          prev = Float64Array.from(zz[l]!.subarray(b * model.dims[l + 1]!, (b + 1) * model.dims[l + 1]!));
        }
      }
      return F / B;
    };
    const z64 = z.map((a) => Float64Array.from(a));
    const e = await (await pcEnergy(model, activities, output, { input })).toArray();
    const F = energy(z64, ws, bs);
    expect(Math.abs(e[0]! - F) / F).toBeLessThan(1e-5);
    const fd = (arr: Float64Array, i: number, f: () => number) => {
      const h = 1e-5;
      const v = arr[i]!;
      arr[i] = v + h;
      const up = f();
      arr[i] = v - h;
      const dn = f();
      arr[i] = v;
      return (up - dn) / (2 * h);
    };
    const grad = await computePcActivityGrad(model, activities, output, { input });
    for (let l = 0; l < Lc - 1; l++) {
      const g = await grad.grads[l]!.toArray();
      let maxErr = 0;
      let scale = 0;
      for (let i = 0; i < g.length; i++) {
        const r = fd(z64[l]!, i, () => energy(z64, ws, bs));
        maxErr = Math.max(maxErr, Math.abs(g[i]! - r));
        scale = Math.max(scale, Math.abs(r));
      }
      expect(maxErr / scale, `activity ${l}`).toBeLessThan(1e-4);
    }
    const pg = await computePcParamGrads(model, activities, output, { input });
    for (let l = 0; l < Lc; l++) {
      if (!pg.weights[l] || ws[l]!.length === 0) continue;
      const g = await pg.weights[l]!.toArray();
      let maxErr = 0;
      let scale = 0;
      for (let i = 0; i < g.length; i++) {
        const r = fd(ws[l]!, i, () => energy(z64, ws, bs));
        maxErr = Math.max(maxErr, Math.abs(g[i]! - r));
        scale = Math.max(scale, Math.abs(r));
      }
      expect(maxErr / scale, `weights ${l}`).toBeLessThan(1e-4);
      if (bs[l]) {
        const gb = await pg.biases[l]!.toArray();
        for (let i = 0; i < gb.length; i++)
          expect(Math.abs(gb[i]! - fd(bs[l]!, i, () => energy(z64, ws, bs)))).toBeLessThan(1e-4 * (scale + 1));
      }
    }
  });
});
