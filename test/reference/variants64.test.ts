/**
 * Self-tests of test/reference/variants64.ts, the float64 reference of the JPC variants (parameterisations, skips,
 * the generalised PC energy, hybrid, bidirectional and error-reparameterised PC). CPU only: every analytic
 * gradient against central finite differences of its energy, literal transcriptions of JPC's index arithmetic,
 * reductions to plain PC, and the documented departures from JPC's bugs.
 */
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/util/random.js';
import {
  ACTIVATIONS,
  ACT_KINKS,
  activityGrads,
  cloneMats,
  energy,
  ffwd,
  layerEnergies,
  layerForward,
  mat,
  matFromRows,
  maxAbsDiff,
  mseLoss,
  paramGrads,
  randomModel,
  randomNormalMat,
  randomUniformMat,
  type Act,
  type Loss,
  type Mat,
  type ParamGrads,
  type RefModel,
} from './jpc64.js';
import {
  bpcActivityGrads,
  bpcEnergy,
  bpcLayerEnergies,
  bpcParamGrads,
  epcEnergy,
  epcErrorGrads,
  epcForward,
  epcParamGrads,
  genFfwd,
  hpcEnergy,
  hpcLayerEnergies,
  hpcParamGrads,
  initActivitiesWithAmort,
  jpcEpcEnergy,
  makeSkips,
  paramScalings,
  pcActivityGrads,
  pcEnergyTotal,
  pcLayerEnergies,
  pcParamGrads,
  pcRegularisers,
  type GenModel,
  type PcOpts,
} from './variants64.js';

// ─────────────────────────────────────────── helpers ───────────────────────────────────────────

/** Finite-difference step and tolerance: |analytic − fd| ≤ REL·max(|fd|, FLOOR). */
const FD_H = 1e-6;
const REL = 1e-6;
const FLOOR = 1e-2;

function awayFromKinks(rng: Random, a: Act, lo: number, hi: number, gap = 0.05): number {
  for (;;) {
    const v = rng.uniform(lo, hi);
    if (ACT_KINKS[a].every((k) => Math.abs(v - k) > gap)) return v;
  }
}

/** A B×n matrix with entries in [−2, 2] away from the kinks of `a`. */
function actMat(rng: Random, a: Act, B: number, n: number): Mat {
  const m = mat(B, n);
  for (let i = 0; i < m.data.length; i++) m.data[i] = awayFromKinks(rng, a, -2, 2);
  return m;
}

/** Like `actMat`, away from the kinks of both `a` and `b` (an activity that two networks activate). */
function awayFromBoth(rng: Random, a: Act, b: Act, B: number, n: number): Mat {
  const m = mat(B, n);
  for (let i = 0; i < m.data.length; i++) {
    let v = awayFromKinks(rng, a, -2, 2);
    while (ACT_KINKS[b].some((k) => Math.abs(v - k) <= 0.05)) v = awayFromKinks(rng, a, -2, 2);
    m.data[i] = v;
  }
  return m;
}

function maxAbs(ms: readonly Mat[]): number {
  return ms.reduce((m, a) => a.data.reduce((mm, v) => Math.max(mm, Math.abs(v)), m), 0);
}

function sum(v: readonly number[]): number {
  return v.reduce((a, b) => a + b, 0);
}

/**
 * Central differences of `f` with respect to every entry of `values` (perturbed in place, then restored), compared
 * with `analytic`. Returns the largest relative error seen.
 */
function checkFD(f: () => number, values: Float64Array, analytic: ArrayLike<number>, what: string): number {
  expect(analytic.length, `${what}: gradient length`).toBe(values.length);
  let worst = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    values[i] = v + FD_H;
    const fp = f();
    values[i] = v - FD_H;
    const fm = f();
    values[i] = v;
    const fd = (fp - fm) / (2 * FD_H);
    const err = Math.abs(analytic[i]! - fd) / Math.max(Math.abs(fd), FLOOR);
    worst = Math.max(worst, err);
    if (!(err <= REL)) throw new Error(`${what}[${i}]: analytic ${analytic[i]} vs finite difference ${fd}`);
  }
  return worst;
}

/** FD check of the gradients of a list of free matrices (perturbed in place). */
function checkMatsFD(f: () => number, free: readonly Mat[], grads: readonly Mat[], what: string): void {
  expect(grads.length, `${what}: number of gradients`).toBe(free.length);
  free.forEach((m, k) => {
    expect([grads[k]!.rows, grads[k]!.cols]).toEqual([m.rows, m.cols]);
    checkFD(f, m.data, grads[k]!.data, `${what} ${k}`);
  });
}

/** FD check of every weight and bias gradient of `model` (perturbed in place; `f` must read `model`). */
function checkParamsFD(f: () => number, model: RefModel, g: ParamGrads, what: string): void {
  expect(g.weights.length).toBe(model.weights.length);
  model.weights.forEach((w, l) => {
    checkFD(f, w.data, g.weights[l]!.data, `${what} W${l}`);
    const b = model.biases[l];
    const gb = g.biases[l];
    if (b) {
      expect(gb, `${what} b${l}`).toBeTruthy();
      checkFD(f, b, gb!, `${what} b${l}`);
    } else {
      expect(gb).toBeNull();
    }
  });
}

function paramMats(g: ParamGrads): Mat[] {
  const out: Mat[] = [...g.weights];
  for (const b of g.biases) if (b) out.push(mat(1, b.length, b));
  return out;
}

/** A random model with O(1) weights (doubled U(±1/√in)), biases, optional scalings and skips. */
function genModel(
  rng: Random,
  dims: readonly number[],
  a: Act,
  opts: { scales?: readonly number[]; skips?: boolean; bias?: boolean } = {},
): GenModel {
  const m: GenModel = randomModel(rng, dims, a, {
    bias: opts.bias ?? true,
    ...(opts.scales ? { scales: opts.scales } : {}),
  });
  for (const w of m.weights) for (let i = 0; i < w.data.length; i++) w.data[i] = 2 * w.data[i]!;
  if (opts.skips) m.skips = makeSkips(dims.length - 1);
  return m;
}

/** Labels for a loss: normal for mse, positive rows not summing to 1 for ce (exercises the softmax·Σy term). */
function labels(rng: Random, loss: Loss, B: number, n: number): Mat {
  return loss === 'mse' ? randomNormalMat(rng, B, n) : randomUniformMat(rng, B, n, 0.1, 1);
}

const SMOOTH: readonly Act[] = ['tanh', 'gelu', 'silu', 'linear'];
const LOSSES: readonly Loss[] = ['mse', 'ce'];

// ─────────────────────────────────────── parameterisations and skips ───────────────────────────────────────

describe('paramScalings (_get_param_scalings)', () => {
  it('sp is all ones, L entries', () => {
    expect(paramScalings([5, 7, 7, 3], 'sp')).toEqual([1, 1, 1]);
    expect(paramScalings([5, 3], 'sp')).toEqual([1]); // JPC: 2 entries for L = 1
    expect(paramScalings([5, 7, 3], 'sp', { gamma: 4 })).toEqual([1, 0.25]);
  });

  it('ntp and mupc: D = 9, N = 16, L = 4', () => {
    expect(paramScalings([9, 16, 16, 16, 10], 'ntp')).toEqual([1 / 3, 1 / 4, 1 / 4, 1 / 4]);
    expect(paramScalings([9, 16, 16, 16, 10], 'mupc')).toEqual([1 / 3, 1 / 4, 1 / 4, 1 / 16]);
    // with skips the middle layers get 1/√(N·L) = 1/8
    expect(paramScalings([9, 16, 16, 16, 10], 'mupc', { skips: true })).toEqual([1 / 3, 1 / 8, 1 / 8, 1 / 16]);
    expect(paramScalings([9, 16, 16, 16, 10], 'ntp', { skips: true })).toEqual([1 / 3, 1 / 8, 1 / 8, 1 / 4]);
    // gamma divides the last entry only
    expect(paramScalings([9, 16, 16, 16, 10], 'mupc', { gamma: 2 })).toEqual([1 / 3, 1 / 4, 1 / 4, 1 / 32]);
    // L = 2: no middle layers
    expect(paramScalings([4, 25, 3], 'mupc')).toEqual([1 / 2, 1 / 25]);
    expect(paramScalings([4, 25, 3], 'ntp')).toEqual([1 / 2, 1 / 5]);
  });
});

describe('skips and genFfwd', () => {
  it('makeSkips follows make_skip_model: true at 1..L−2', () => {
    expect(makeSkips(5)).toEqual([false, true, true, true, false]);
    expect(makeSkips(3)).toEqual([false, true, false]);
    expect(makeSkips(2)).toEqual([false, false]);
  });

  it('genFfwd without skips is jpc64 ffwd; with skips z_{l+1} = s_l f_l(z_l) + z_l and hidden energies vanish', () => {
    const rng = new Random(1);
    const dims = [3, 4, 4, 4, 2];
    const plain = genModel(rng, dims, 'tanh', { scales: [0.8, 1.2, 0.6, 0.9] });
    const x = randomNormalMat(rng, 3, 3);
    expect(maxAbsDiff(genFfwd(plain, x), ffwd(plain, x))).toBe(0);
    const sk: GenModel = { ...plain, skips: makeSkips(4) };
    const z = genFfwd(sk, x);
    const zPlain = ffwd(plain, x);
    expect(maxAbsDiff([z[0]!], [zPlain[0]!])).toBe(0);
    for (let l = 1; l < 4; l++) {
      const f = layerForward(plain, l, z[l - 1]!);
      const expected = mat(
        3,
        f.cols,
        f.data.map((v, i) => v + (l <= 2 ? z[l - 1]!.data[i]! : 0)),
      );
      expect(maxAbsDiff([z[l]!], [expected])).toBeLessThan(1e-15);
    }
    const y = randomNormalMat(rng, 3, 2);
    const e = pcLayerEnergies(sk, z, y, x, { loss: 'mse' });
    expect(e.slice(0, 3)).toEqual([0, 0, 0]);
    expect(e[3]).toBeCloseTo(mseLoss(z[3]!, y), 14);
  });

  it('rejects skips on the first or last layer, on non-square layers, and of the wrong length', () => {
    const rng = new Random(2);
    const x = randomNormalMat(rng, 2, 3);
    const m = genModel(rng, [3, 4, 4, 2], 'tanh');
    expect(() => genFfwd({ ...m, skips: [true, false, false] }, x)).toThrow(RangeError);
    expect(() => genFfwd({ ...m, skips: [false, false, true] }, x)).toThrow(RangeError);
    expect(() => genFfwd({ ...m, skips: [false, true] }, x)).toThrow(RangeError);
    const rect = genModel(rng, [3, 4, 5, 2], 'tanh');
    expect(() => genFfwd({ ...rect, skips: [false, true, false] }, x)).toThrow(RangeError);
    expect(() => genFfwd({ ...m, skips: [false, true, false] }, x)).not.toThrow();
  });
});

// ─────────────────────────────────────────── generalised PC ───────────────────────────────────────────

interface PcProblem {
  model: GenModel;
  acts: Mat[];
  y: Mat;
  x: Mat | null;
}

/** B = 3, dims 3→4→4→4→2 (L = 4), non-unit scalings; unsupervised adds a free z_0. */
function pcProblem(seed: number, a: Act, loss: Loss, unsup: boolean, skips: boolean): PcProblem {
  const rng = new Random(seed);
  const dims = [3, 4, 4, 4, 2];
  const B = 3;
  const model = genModel(rng, dims, a, { scales: [0.8, 1.2, 0.6, 0.9], skips });
  const acts = (unsup ? dims : dims.slice(1)).map((d) => actMat(rng, a, B, d));
  const x = unsup ? null : randomNormalMat(rng, B, dims[0]!);
  return { model, acts, y: labels(rng, loss, B, 2), x };
}

describe('generalised PC energy', () => {
  it.each(['tanh', 'relu', 'gelu'] as const)('%s: with default options it equals jpc64 exactly', (a) => {
    for (const loss of LOSSES) {
      const p = pcProblem(10, a, loss, false, false);
      const x = p.x!;
      const o: PcOpts = { loss };
      expect(pcEnergyTotal(p.model, p.acts, p.y, x, o)).toBeCloseTo(energy(p.model, p.acts, p.y, x, loss), 14);
      const le = pcLayerEnergies(p.model, p.acts, p.y, x, o);
      layerEnergies(p.model, p.acts, p.y, x, loss).forEach((e, l) => expect(le[l]).toBeCloseTo(e, 14));
      expect(
        maxAbsDiff(pcActivityGrads(p.model, p.acts, p.y, x, o), activityGrads(p.model, p.acts, p.y, x, loss)),
      ).toBeLessThan(1e-14);
      const g1 = pcParamGrads(p.model, p.acts, p.y, x, o);
      const g2 = paramGrads(p.model, p.acts, p.y, x, loss);
      expect(maxAbsDiff(paramMats(g1), paramMats(g2))).toBeLessThan(1e-14);
    }
  });

  const cases: [Act, Loss, boolean, boolean][] = [];
  for (const a of SMOOTH)
    for (const l of LOSSES) for (const u of [false, true]) for (const s of [false, true]) cases.push([a, l, u, s]);
  cases.push(['relu', 'mse', false, true], ['hard_tanh', 'ce', true, false], ['leaky_relu', 'mse', true, true]);

  it.each(cases)(
    '%s / %s / unsupervised=%s / skips=%s: activity and parameter gradients vs finite differences',
    (a, loss, unsup, skips) => {
      const p = pcProblem(
        100 + cases.findIndex((c) => c[0] === a && c[1] === loss && c[2] === unsup && c[3] === skips),
        a,
        loss,
        unsup,
        skips,
      );
      const o: PcOpts = { loss, lambda: 0.7, weightDecay: 0.03, spectralPenalty: 0.02, activityDecay: 0.05 };
      const F = (): number => pcEnergyTotal(p.model, p.acts, p.y, p.x, o);
      const ga = pcActivityGrads(p.model, p.acts, p.y, p.x, o);
      expect(ga.length).toBe(p.acts.length);
      expect(maxAbs(ga)).toBeGreaterThan(1e-2);
      // the dummy's gradient is ad·z_L/B
      const dummy = p.acts[p.acts.length - 1]!;
      ga[ga.length - 1]!.data.forEach((v, i) => expect(v).toBeCloseTo((0.05 * dummy.data[i]!) / 3, 15));
      const gp = pcParamGrads(p.model, p.acts, p.y, p.x, o);
      expect(maxAbs(gp.weights)).toBeGreaterThan(1e-2);
      checkMatsFD(F, p.acts, ga, 'activity');
      checkParamsFD(F, p.model, gp, 'param');
    },
  );

  it('unsupervised gradients of z_0: only −s_0 (g_1 W_0)/B (+ activity decay)', () => {
    const p = pcProblem(7, 'tanh', 'mse', true, false);
    const o: PcOpts = { loss: 'mse' };
    const g0 = pcActivityGrads(p.model, p.acts, p.y, null, o)[0]!;
    const pred = layerForward(p.model, 0, p.acts[0]!);
    const W0 = p.model.weights[0]!;
    for (let r = 0; r < 3; r++) {
      for (let i = 0; i < 3; i++) {
        let s = 0;
        for (let k = 0; k < 4; k++) s += (p.acts[1]!.data[r * 4 + k]! - pred.data[r * 4 + k]!) * W0.data[k * 3 + i]!;
        expect(g0.data[r * 3 + i]).toBeCloseTo((-0.8 * s) / 3, 14);
      }
    }
  });

  it('unsupervised E_1 keeps the scaling s_0 (JPC drops it); λ scales only the output term', () => {
    const p = pcProblem(8, 'silu', 'mse', true, false);
    const e1 = pcLayerEnergies(p.model, p.acts, p.y, null, { loss: 'mse', lambda: 2.5 });
    const e0 = pcLayerEnergies(p.model, p.acts, p.y, null, { loss: 'mse' });
    // E_1 by hand: ½Σ‖z_1 − 0.8(W_0 z_0 + b_0)‖²/B
    const W0 = p.model.weights[0]!;
    const b0 = p.model.biases[0]!;
    let s = 0;
    for (let r = 0; r < 3; r++) {
      for (let o = 0; o < 4; o++) {
        let pre = b0[o]!;
        for (let i = 0; i < 3; i++) pre += W0.data[o * 3 + i]! * p.acts[0]!.data[r * 3 + i]!;
        const d = p.acts[1]!.data[r * 4 + o]! - 0.8 * pre;
        s += 0.5 * d * d;
      }
    }
    expect(e1[0]).toBeCloseTo(s / 3, 14);
    expect(e1.length).toBe(4);
    expect(e1.slice(0, 3)).toEqual(e0.slice(0, 3));
    expect(e1[3]).toBeCloseTo(2.5 * e0[3]!, 14);
    // the unsupervised energy equals the supervised one with x := z_0
    const sup = pcLayerEnergies(p.model, p.acts.slice(1), p.y, p.acts[0]!, { loss: 'mse' });
    sup.forEach((e, l) => expect(e).toBeCloseTo(e0[l]!, 14));
  });

  it('regularisers by hand: weight decay and spectral penalty on every layer, activity decay on every activity', () => {
    const m: GenModel = {
      weights: [
        matFromRows([
          [1, 2],
          [0, -1],
          [3, 0],
        ]),
        matFromRows([[0.5, -1, 2]]),
      ],
      biases: [null, null],
      act: 'tanh',
    };
    const acts = [
      matFromRows([
        [1, 0, 2],
        [0, 1, 1],
      ]),
      matFromRows([[3], [-1]]),
    ];
    const r = pcRegularisers(m, acts, { loss: 'mse', weightDecay: 0.1, spectralPenalty: 0.2, activityDecay: 0.3 });
    // ‖W_0‖² = 15, ‖W_1‖² = 5.25
    expect(r.weight).toBeCloseTo(0.05 * 20.25, 15);
    // W_0ᵀW_0 = [[10, 2], [2, 5]] → −I: [[9, 2], [2, 4]], ‖·‖² = 105
    // W_1ᵀW_1 = [[0.25, −0.5, 1], [−0.5, 1, −2], [1, −2, 4]] → −I: diag (−0.75, 0, 3), ‖·‖² = 0.5625 + 9 + 2(0.25 + 1 + 4) = 20.0625
    expect(r.spectral).toBeCloseTo(0.1 * (105 + 20.0625), 13);
    // mean_b ‖z_b‖²: (5 + 2)/2 + (9 + 1)/2 = 8.5
    expect(r.activity).toBeCloseTo(0.15 * 8.5, 15);
    expect(pcRegularisers(m, acts, { loss: 'mse' })).toEqual({ weight: 0, spectral: 0, activity: 0 });
  });

  it('rejects wrong activity counts', () => {
    const p = pcProblem(9, 'tanh', 'mse', false, false);
    expect(() => pcEnergyTotal(p.model, p.acts, p.y, null, { loss: 'mse' })).toThrow(RangeError);
    expect(() => pcEnergyTotal(p.model, p.acts.slice(1), p.y, p.x, { loss: 'mse' })).toThrow(RangeError);
  });
});

// ─────────────────────────────────────────── hybrid PC ───────────────────────────────────────────

/**
 * JPC's `hpc_energy_fn(record_layers=True)` transcribed index for index (reversals and all), given the generator's
 * equilibrium in its own order, as `make_hpc_step` calls it: equilib_activities = genActs[::-1][1:].
 */
function jpcHpcLiteral(
  amortiser: RefModel,
  genActs: readonly Mat[],
  amortActs: readonly Mat[],
  x: Mat,
  y: Mat | null,
): number[] {
  const equilib = genActs.slice().reverse().slice(1);
  const amort = amortActs.slice().reverse().slice(1);
  const B = x.rows;
  const nLayers = amortiser.weights.length - 1;
  const sq = (t: Mat, p: Mat): number => t.data.reduce((s, v, i) => s + (v - p.data[i]!) ** 2, 0);
  const last = amortiser.weights.length - 1;
  const out = [sq(y ?? equilib[equilib.length - 1]!, layerForward(amortiser, last, amort[amort.length - 2]!))];
  for (let l = 1; l < nLayers; l++) out.push(sq(equilib[l]!, layerForward(amortiser, l, amort[l - 1]!)));
  out.push(sq(equilib[0]!, layerForward(amortiser, 0, x)));
  return out.map((e) => e / B);
}

/** Generator label(3) → 4 → 5 → image(6) (L = 3, or 3 → 4 → 4 → 5 → 6 with L = 4); the amortiser mirrors it. */
function hpcProblem(seed: number, L: 3 | 4, a: Act = 'tanh') {
  const rng = new Random(seed);
  const gdims = L === 3 ? [3, 4, 5, 6] : [3, 4, 4, 5, 6];
  const B = 3;
  const generator = genModel(rng, gdims, a);
  const amortiser = genModel(rng, gdims.slice().reverse(), a);
  const image = randomNormalMat(rng, B, 6);
  const label = randomUniformMat(rng, B, 3, 0, 1);
  const amortActs = initActivitiesWithAmort(amortiser, generator, image);
  // an "equilibrium": the amortised guesses moved by noise
  const genUnsup = amortActs.map((m) => {
    const o = cloneMats([m])[0]!;
    for (let i = 0; i < o.data.length; i++) o.data[i] = o.data[i]! + 0.3 * rng.normal();
    return o;
  });
  return { generator, amortiser, image, label, amortActs, genSup: genUnsup.slice(1), genUnsup, L };
}

describe('hybrid PC', () => {
  it('initActivitiesWithAmort: the amortiser ffwd reversed, then the generator dummy', () => {
    const p = hpcProblem(20, 3);
    const a = ffwd(p.amortiser, p.image);
    expect(p.amortActs.length).toBe(4);
    expect(p.amortActs.slice(0, 3)).toEqual([a[2], a[1], a[0]]);
    expect(p.amortActs[3]).toEqual(layerForward(p.generator, 2, a[0]!));
    expect(p.amortActs.map((m) => m.cols)).toEqual([3, 4, 5, 6]); // widths of the generator's z_0..z_3
  });

  it.each([3, 4] as const)('L = %i: equals a literal transcription of JPC (record order, no ½)', (L) => {
    const p = hpcProblem(21 + L, L);
    const sup = hpcLayerEnergies(p.amortiser, p.genSup, p.amortActs, p.image, p.label);
    const jSup = jpcHpcLiteral(p.amortiser, p.genSup, p.amortActs, p.image, p.label);
    expect(sup.length).toBe(L);
    sup.forEach((e, i) => expect(e).toBeCloseTo(jSup[i]!, 14));
    const uns = hpcLayerEnergies(p.amortiser, p.genUnsup, p.amortActs, p.image, null);
    const jUns = jpcHpcLiteral(p.amortiser, p.genUnsup, p.amortActs, p.image, null);
    uns.forEach((e, i) => expect(e).toBeCloseTo(jUns[i]!, 14));
    expect(hpcEnergy(p.amortiser, p.genUnsup, p.amortActs, p.image, null)).toBeCloseTo(sum(uns), 14);
    // supervised vs unsupervised differ only in the last layer's target (label vs z_0)
    expect(sup.slice(1)).toEqual(hpcLayerEnergies(p.amortiser, p.genUnsup, p.amortActs, p.image, p.label).slice(1));
  });

  it('at the amortised initialisation only the label term remains: Σ‖label − a_L‖²/B (no ½)', () => {
    const p = hpcProblem(25, 3);
    const e = hpcLayerEnergies(p.amortiser, p.amortActs.slice(1), p.amortActs, p.image, p.label);
    expect(e[1]).toBe(0);
    expect(e[2]).toBe(0);
    expect(e[0]).toBeCloseTo(2 * mseLoss(p.amortActs[0]!, p.label), 14);
    // E_1 by hand for a perturbed z_2 target (generator z_{L−1} is amortiser layer 1's target)
    const g = p.amortActs.slice(1).map((m) => cloneMats([m])[0]!);
    g[1]!.data[0] = g[1]!.data[0]! + 0.5; // z_2
    const e2 = hpcLayerEnergies(p.amortiser, g, p.amortActs, p.image, p.label);
    expect(e2[2]).toBeCloseTo(0.25 / 3, 14);
    expect(e2[1]).toBe(0);
  });

  it.each([
    [3, 'tanh'],
    [4, 'gelu'],
    [3, 'silu'],
  ] as const)('L = %i, %s: amortiser gradients vs finite differences (supervised and unsupervised)', (L, a) => {
    const p = hpcProblem(30 + L, L, a);
    for (const [gen, label] of [
      [p.genSup, p.label],
      [p.genUnsup, null],
      [p.genUnsup, p.label],
    ] as const) {
      const g = hpcParamGrads(p.amortiser, gen, p.amortActs, p.image, label);
      expect(maxAbs(g.weights)).toBeGreaterThan(1e-2);
      checkParamsFD(() => hpcEnergy(p.amortiser, gen, p.amortActs, p.image, label), p.amortiser, g, 'amortiser');
    }
    // scaled amortiser
    const scaled: RefModel = { ...p.amortiser, scales: Array.from({ length: L }, (_, l) => 0.5 + 0.25 * l) };
    const gs = hpcParamGrads(scaled, p.genSup, p.amortActs, p.image, p.label);
    checkParamsFD(() => hpcEnergy(scaled, p.genSup, p.amortActs, p.image, p.label), scaled, gs, 'scaled amortiser');
  });

  it('an amortiser with skips adds a_{l−1} to its layer l in its forward pass and in its energy; gradients vs FD', () => {
    const p = hpcProblem(45, 4);
    const skipped: GenModel = { ...p.amortiser, skips: [false, false, true, false] }; // the square 4 → 4 layer
    const acts = initActivitiesWithAmort(skipped, p.generator, p.image);
    const a = genFfwd(skipped, p.image);
    expect(acts.slice(0, 4)).toEqual(a.slice().reverse());
    // at its own amortised initialisation only the label term remains, skips included
    const e = hpcLayerEnergies(skipped, acts.slice(1), acts, p.image, p.label);
    expect(e.slice(1).every((v) => v === 0)).toBe(true);
    const g = hpcParamGrads(skipped, p.genUnsup, acts, p.image, p.label);
    checkParamsFD(() => hpcEnergy(skipped, p.genUnsup, acts, p.image, p.label), skipped, g, 'skipped amortiser');
  });

  it('rejects a missing z_0 without a label, and wrong list lengths', () => {
    const p = hpcProblem(40, 3);
    expect(() => hpcEnergy(p.amortiser, p.genSup, p.amortActs, p.image, null)).toThrow(RangeError);
    expect(() => hpcEnergy(p.amortiser, p.genSup.slice(1), p.amortActs, p.image, p.label)).toThrow(RangeError);
    expect(() => hpcEnergy(p.amortiser, p.genSup, p.amortActs.slice(1), p.image, p.label)).toThrow(RangeError);
  });
});

// ───────────────────────────────────────── bidirectional PC ─────────────────────────────────────────

interface BpcProblem {
  td: GenModel;
  bu: GenModel;
  acts: Mat[];
  y: Mat;
  x: Mat | null;
  H: number;
}

/**
 * Skips: H = 3, x(3) → 4 → 4 → 4 → y(2), makeSkips(4) on both models. No skips: H = 2, x(3) → 4 → 5 → y(2).
 * bu mirrors td (y → … → x).
 */
function bpcProblem(seed: number, a: Act, unsup: boolean, skips: boolean, buAct: Act = a): BpcProblem {
  const rng = new Random(seed);
  const dims = skips ? [3, 4, 4, 4, 2] : [3, 4, 5, 2];
  const H = dims.length - 2;
  const B = 3;
  const td = genModel(rng, dims, a, { skips });
  const bu = genModel(rng, dims.slice().reverse(), buAct, { skips });
  const acts = (unsup ? dims.slice(0, H + 1) : dims.slice(1, H + 1)).map((d) => awayFromBoth(rng, a, buAct, B, d));
  const x = unsup ? null : randomNormalMat(rng, B, 3);
  return { td, bu, acts, y: randomNormalMat(rng, B, 2), x, H };
}

/**
 * JPC's `bpc_energy_fn(record_layers=True)` transcribed literally, in its intended supervised layout: activities
 * [z_1..z_H, unused], `bottom_up_model[k]` = bu layer H − k, one shared `skip_model`.
 */
function jpcBpcLiteral(p: BpcProblem, shared: readonly boolean[], aF: number, aB: number): number[] {
  const { td, bu, y, H } = p;
  const x = p.x!;
  const activities = [...p.acts, mat(1, 1)];
  const bottomUp = (k: number, z: Mat): Mat => layerForward(bu, H - k, z);
  const half = (a: Mat, b: Mat, extra: Mat | null): number =>
    0.5 * a.data.reduce((s, v, i) => s + (v - b.data[i]! - (extra ? extra.data[i]! : 0)) ** 2, 0);
  const B = activities[0]!.rows;
  const out: number[] = [];
  const delta0 = aB * half(x, bottomUp(0, activities[0]!), null);
  const eL = aF * half(y, layerForward(td, H, activities[activities.length - 2]!), null);
  out.push(eL, delta0);
  for (let l = 0; l < H; l++) {
    const prev = l === 0 ? x : activities[l - 1]!;
    const fe = aF * half(activities[l]!, layerForward(td, l, prev), shared[l] && l > 0 ? prev : null);
    const next = l === H - 1 ? y : activities[l + 1]!;
    const be = aB * half(activities[l]!, bottomUp(l + 1, next), shared[l + 1] && l < H - 1 ? next : null);
    out.push(fe, be);
  }
  return out.map((e) => e / B);
}

describe('bidirectional PC', () => {
  it.each([false, true])('supervised, skips=%s: equals a literal transcription of JPC (record order)', (skips) => {
    const p = bpcProblem(50, 'tanh', false, skips);
    const o = { alphaF: 0.7, alphaB: 1.4 };
    const e = bpcLayerEnergies(p.td, p.bu, p.acts, p.y, p.x, o);
    expect(e.length).toBe(2 * (p.H + 1));
    const shared = skips ? makeSkips(p.H + 1) : new Array<boolean>(p.H + 1).fill(false);
    const j = jpcBpcLiteral(p, shared, 0.7, 1.4);
    e.forEach((v, i) => expect(v).toBeCloseTo(j[i]!, 14));
    expect(bpcEnergy(p.td, p.bu, p.acts, p.y, p.x, o)).toBeCloseTo(sum(e), 14);
  });

  it('layout by hand (H = 2): bu layer 0 reads y with the identity, its last layer predicts x', () => {
    const p = bpcProblem(51, 'tanh', false, false);
    const e = bpcLayerEnergies(p.td, p.bu, p.acts, p.y, p.x, {});
    const half = (a: Mat, b: Mat): number => (0.5 * a.data.reduce((s, v, i) => s + (v - b.data[i]!) ** 2, 0)) / 3;
    const [z1, z2] = p.acts as [Mat, Mat];
    expect(e[0]).toBeCloseTo(half(p.y, layerForward(p.td, 2, z2)), 14); // output forward
    expect(e[1]).toBeCloseTo(half(p.x!, layerForward(p.bu, 2, z1)), 14); // input backward
    expect(e[2]).toBeCloseTo(half(z1, layerForward(p.td, 0, p.x!)), 14); // forward error of z_1
    expect(e[3]).toBeCloseTo(half(z1, layerForward(p.bu, 1, z2)), 14); // backward error of z_1
    expect(e[4]).toBeCloseTo(half(z2, layerForward(p.td, 1, z1)), 14); // forward error of z_2
    expect(e[5]).toBeCloseTo(half(z2, layerForward(p.bu, 0, p.y)), 14); // backward error of z_2 (from y, identity)
    // bu layer 0 applies no activation to y (affine in y)
    const yBig = mat(
      3,
      2,
      p.y.data.map((v) => 10 * v),
    );
    const pred = layerForward(p.bu, 0, yBig);
    const W = p.bu.weights[0]!;
    expect(pred.data[0]).toBeCloseTo(W.data[0]! * yBig.data[0]! + W.data[1]! * yBig.data[1]! + p.bu.biases[0]![0]!, 13);
  });

  it.each([
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ])(
    'unsupervised=%s, skips=%s: α_b = 0 is the PC energy of td; α_f = 0 that of bu on the reversed chain',
    (unsup, skips) => {
      const p = bpcProblem(60 + 2 * Number(unsup) + Number(skips), 'gelu', unsup, skips);
      const rng = new Random(7);
      const dummy = randomNormalMat(rng, 3, 2);
      const pcActs = [...p.acts, dummy];
      const fwd = { alphaF: 1, alphaB: 0 };
      expect(bpcEnergy(p.td, p.bu, p.acts, p.y, p.x, fwd)).toBeCloseTo(
        pcEnergyTotal(p.td, pcActs, p.y, p.x, { loss: 'mse' }),
        14,
      );
      // the gradients agree too (the PC dummy's gradient is 0)
      const gPc = pcActivityGrads(p.td, pcActs, p.y, p.x, { loss: 'mse' });
      expect(maxAbsDiff(bpcActivityGrads(p.td, p.bu, p.acts, p.y, p.x, fwd), gPc.slice(0, -1))).toBeLessThan(1e-15);
      expect(maxAbs([gPc[gPc.length - 1]!])).toBe(0);
      const gt = bpcParamGrads(p.td, p.bu, p.acts, p.y, p.x, fwd);
      expect(
        maxAbsDiff(paramMats(gt.td), paramMats(pcParamGrads(p.td, pcActs, p.y, p.x, { loss: 'mse' }))),
      ).toBeLessThan(1e-15);
      expect(maxAbs(paramMats(gt.bu))).toBe(0);
      // α_f = 0: bu is a supervised PC net from y to z_0 (x, or the free z_0) through z_H, …, z_1
      const hidden = unsup ? p.acts.slice(1) : p.acts;
      const z0 = p.x ?? p.acts[0]!;
      const buActs = [...hidden.slice().reverse(), randomNormalMat(rng, 3, 3)];
      const bwd = { alphaF: 0, alphaB: 1 };
      expect(bpcEnergy(p.td, p.bu, p.acts, p.y, p.x, bwd)).toBeCloseTo(
        pcEnergyTotal(p.bu, buActs, z0, p.y, { loss: 'mse' }),
        14,
      );
      const gb = bpcParamGrads(p.td, p.bu, p.acts, p.y, p.x, bwd);
      expect(
        maxAbsDiff(paramMats(gb.bu), paramMats(pcParamGrads(p.bu, buActs, z0, p.y, { loss: 'mse' }))),
      ).toBeLessThan(1e-15);
    },
  );

  const cases: [Act, boolean, boolean][] = [];
  for (const a of ['tanh', 'gelu', 'silu'] as const)
    for (const u of [false, true]) for (const s of [false, true]) cases.push([a, u, s]);
  cases.push(['relu', true, true]);

  it.each(cases)(
    '%s / unsupervised=%s / skips=%s: activity and parameter gradients vs finite differences',
    (a, unsup, skips) => {
      const p = bpcProblem(
        70 + cases.findIndex((c) => c[0] === a && c[1] === unsup && c[2] === skips),
        a,
        unsup,
        skips,
      );
      const o = { alphaF: 0.6, alphaB: 1.3 };
      const F = (): number => bpcEnergy(p.td, p.bu, p.acts, p.y, p.x, o);
      const ga = bpcActivityGrads(p.td, p.bu, p.acts, p.y, p.x, o);
      expect(maxAbs(ga)).toBeGreaterThan(1e-2);
      checkMatsFD(F, p.acts, ga, 'activity');
      const gp = bpcParamGrads(p.td, p.bu, p.acts, p.y, p.x, o);
      expect(maxAbs(gp.td.weights)).toBeGreaterThan(1e-2);
      expect(maxAbs(gp.bu.weights)).toBeGreaterThan(1e-2);
      checkParamsFD(F, p.td, gp.td, 'td');
      checkParamsFD(F, p.bu, gp.bu, 'bu');
    },
  );

  it('each network applies its own activation: the issue’s example, by hand', () => {
    // dims [1, 2, 1], all weights 1, no biases, td tanh, bu silu, z_1 = [1, 1], x = y = 0.
    const ones = (rows: number, cols: number) => mat(rows, cols, new Float64Array(rows * cols).fill(1));
    const td: GenModel = { act: 'tanh', weights: [ones(2, 1), ones(1, 2)], biases: [null, null] };
    const bu: GenModel = { act: 'silu', weights: [ones(2, 1), ones(1, 2)], biases: [null, null] };
    const z = [matFromRows([[1, 1]])];
    const e = bpcLayerEnergies(td, bu, z, matFromRows([[0]]), matFromRows([[0]]), {});
    const silu1 = 1 / (1 + Math.exp(-1));
    expect(e[1]).toBeCloseTo(0.5 * (2 * silu1) ** 2, 14); // input backward: x − bu(z_1) = −2·silu(1)
    expect(e[1]).toBeCloseTo(1.06889, 5);
    expect(e[0]).toBeCloseTo(0.5 * (2 * Math.tanh(1)) ** 2, 14); // output forward: y − td(z_1) = −2·tanh(1)
    expect(e[2]).toBeCloseTo(0.5 * 2 * 1 ** 2, 14); // z_1 − td_0(x) = z_1
    expect(e[3]).toBeCloseTo(0.5 * 2 * 1 ** 2, 14); // z_1 − bu_0(y) = z_1
  });

  // Every (top-down, bottom-up) pair of activations, both orders, supervised and unsupervised: the reference's
  // gradients (each network's own φ') against finite differences of its energy (test/pc/bidirectional.test.ts then
  // holds the GPU to this reference for the same pairs).
  const pairs: [Act, Act, boolean][] = [];
  for (const a of ACTIVATIONS) for (const b of ACTIVATIONS) for (const u of [false, true]) pairs.push([a, b, u]);
  it.each(pairs)('top-down %s, bottom-up %s, unsupervised=%s: gradients vs finite differences', (a, b, unsup) => {
    const p = bpcProblem(90 + pairs.findIndex((c) => c[0] === a && c[1] === b && c[2] === unsup), a, unsup, false, b);
    expect([p.td.act, p.bu.act]).toEqual([a, b]);
    const o = { alphaF: 0.8, alphaB: 1.2 };
    const F = (): number => bpcEnergy(p.td, p.bu, p.acts, p.y, p.x, o);
    checkMatsFD(F, p.acts, bpcActivityGrads(p.td, p.bu, p.acts, p.y, p.x, o), 'activity');
    const gp = bpcParamGrads(p.td, p.bu, p.acts, p.y, p.x, o);
    checkParamsFD(F, p.td, gp.td, 'td');
    checkParamsFD(F, p.bu, gp.bu, 'bu');
  });

  it('rejects mismatched models and activity counts', () => {
    const p = bpcProblem(80, 'tanh', false, false);
    expect(() => bpcEnergy(p.td, p.bu, [...p.acts, p.acts[0]!], p.y, p.x, {})).toThrow(RangeError);
    expect(() => bpcEnergy(p.td, p.td, p.acts, p.y, p.x, {})).toThrow(RangeError);
  });
});

// ──────────────────────────────────── error-reparameterised PC ────────────────────────────────────

interface EpcProblem {
  model: GenModel;
  errors: Mat[];
  y: Mat;
  x: Mat | null;
}

/** dims 3→4→4→4→2 (L = 4), scalings, B = 3; errors ~ 0.5·N(0, 1), z_0 ~ N(0, 1) when unsupervised. */
function epcProblem(seed: number, a: Act, loss: Loss, unsup: boolean, skips: boolean): EpcProblem {
  const rng = new Random(seed);
  const dims = [3, 4, 4, 4, 2];
  const model = genModel(rng, dims, a, { scales: [0.8, 1.2, 0.6, 0.9], skips });
  const errors = dims.slice(unsup ? 0 : 1, 4).map((d, k) => randomNormalMat(rng, 3, d, unsup && k === 0 ? 1 : 0.5));
  const x = unsup ? null : randomNormalMat(rng, 3, 3);
  return { model, errors, y: labels(rng, loss, 3, 2), x };
}

describe('error-reparameterised PC', () => {
  const grid: [Loss, boolean, boolean][] = [];
  for (const l of LOSSES) for (const u of [false, true]) for (const s of [false, true]) grid.push([l, u, s]);

  it.each(grid)('%s / unsupervised=%s / skips=%s: F(ε) equals the PC energy at z(ε)', (loss, unsup, skips) => {
    const p = epcProblem(90, 'tanh', loss, unsup, skips);
    const z = epcForward(p.model, p.errors, p.x);
    expect(z.length).toBe(unsup ? 5 : 4);
    if (unsup) expect(z[0]).toBe(p.errors[0]);
    const F = epcEnergy(p.model, p.errors, p.y, p.x, loss);
    expect(F).toBeCloseTo(pcEnergyTotal(p.model, z, p.y, p.x, { loss }), 13);
    // the hidden PC errors of z(ε) are the ε's
    const e = pcLayerEnergies(p.model, z, p.y, p.x, { loss });
    const hidden = unsup ? p.errors.slice(1) : p.errors;
    hidden.forEach((m, l) => expect(e[l]).toBeCloseTo((0.5 * m.data.reduce((s, v) => s + v * v, 0)) / 3, 13));
    // the last hidden error's gradient is the PC activity gradient of z_{L−1} (its only dependant is the output)
    const gE = epcErrorGrads(p.model, p.errors, p.y, p.x, loss);
    const gZ = pcActivityGrads(p.model, z, p.y, p.x, { loss });
    expect(maxAbsDiff([gE[gE.length - 1]!], [gZ[gZ.length - 2]!])).toBeLessThan(1e-14);
  });

  it('zero errors give the (skip) feedforward pass', () => {
    const p = epcProblem(91, 'silu', 'mse', false, true);
    const zero = p.errors.map((m) => mat(m.rows, m.cols));
    expect(maxAbsDiff(epcForward(p.model, zero, p.x), genFfwd(p.model, p.x!))).toBe(0);
    expect(epcEnergy(p.model, zero, p.y, p.x, 'mse')).toBeCloseTo(mseLoss(genFfwd(p.model, p.x!)[3]!, p.y), 14);
  });

  const cases: [Act, Loss, boolean, boolean][] = [];
  for (const a of ['tanh', 'silu', 'gelu'] as const) for (const [l, u, s] of grid) cases.push([a, l, u, s]);

  it.each(cases)(
    '%s / %s / unsupervised=%s / skips=%s: error and parameter gradients vs finite differences',
    (a, loss, unsup, skips) => {
      const p = epcProblem(
        200 + cases.findIndex((c) => c[0] === a && c[1] === loss && c[2] === unsup && c[3] === skips),
        a,
        loss,
        unsup,
        skips,
      );
      const F = (): number => epcEnergy(p.model, p.errors, p.y, p.x, loss);
      const ge = epcErrorGrads(p.model, p.errors, p.y, p.x, loss);
      expect(ge.length).toBe(p.errors.length);
      expect(maxAbs(ge)).toBeGreaterThan(1e-2);
      checkMatsFD(F, p.errors, ge, 'error');
      const gp = epcParamGrads(p.model, p.errors, p.y, p.x, loss);
      expect(maxAbs(gp.weights)).toBeGreaterThan(1e-2);
      checkParamsFD(F, p.model, gp, 'param');
    },
  );

  it("JPC's supervised layout with ε_L = 0 agrees; choosing ε_L = prediction − y drives JPC's energy to 0", () => {
    const p = epcProblem(300, 'tanh', 'mse', false, true);
    const z = epcForward(p.model, p.errors, p.x);
    const ours = epcEnergy(p.model, p.errors, p.y, p.x, 'mse');
    expect(jpcEpcEnergy(p.model, [...p.errors, mat(3, 2)], p.y, p.x, 'mse')).toBeCloseTo(ours, 14);
    // with zero hidden errors, ε_L = z_L − y cancels the output term in JPC; ours keeps the loss
    const zero = p.errors.map((m) => mat(m.rows, m.cols));
    const pred = epcForward(p.model, zero, p.x)[3]!;
    const epsL = mat(
      3,
      2,
      pred.data.map((v, i) => v - p.y.data[i]!),
    );
    expect(Math.abs(jpcEpcEnergy(p.model, [...zero, epsL], p.y, p.x, 'mse'))).toBeLessThan(1e-30);
    expect(epcEnergy(p.model, zero, p.y, p.x, 'mse')).toBeCloseTo(mseLoss(pred, p.y), 14);
    expect(mseLoss(pred, p.y)).toBeGreaterThan(0.1);
    expect(z[3]).toEqual(layerForward(p.model, 3, z[2]!));
  });

  it.each([false, true])(
    "JPC's unsupervised energy (ε_0 penalised, ε_{L−1} not) is not the PC energy at z(ε); ours is (skips=%s)",
    (skips) => {
      const p = epcProblem(301, 'gelu', 'ce', true, skips);
      const z = epcForward(p.model, p.errors, null);
      const pc = pcEnergyTotal(p.model, z, p.y, null, { loss: 'ce' });
      const ours = epcEnergy(p.model, p.errors, p.y, null, 'ce');
      const jpc = jpcEpcEnergy(p.model, [...p.errors, mat(3, 2)], p.y, null, 'ce');
      expect(ours).toBeCloseTo(pc, 13);
      const half = (m: Mat): number => (0.5 * m.data.reduce((s, v) => s + v * v, 0)) / 3;
      expect(jpc).toBeCloseTo(ours + half(p.errors[0]!) - half(p.errors[3]!), 13);
      expect(Math.abs(jpc - pc)).toBeGreaterThan(1e-2);
    },
  );

  it('rejects wrong error counts', () => {
    const p = epcProblem(302, 'tanh', 'mse', false, false);
    expect(() => epcEnergy(p.model, p.errors, p.y, null, 'mse')).toThrow(RangeError);
    expect(() => epcEnergy(p.model, p.errors.slice(1), p.y, p.x, 'mse')).toThrow(RangeError);
    expect(() => jpcEpcEnergy(p.model, p.errors, p.y, p.x, 'mse')).toThrow(RangeError);
  });
});
