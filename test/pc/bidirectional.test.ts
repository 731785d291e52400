/**
 * Bidirectional PC on the GPU against the float64 reference (test/reference/variants64.ts): energies in JPC's
 * record order, activity and parameter gradients of both networks, updates; supervised and unsupervised, with
 * and without skips, for several energy weights, and for every pair of activations of the two networks (each
 * network applies its own; the reference's gradients are checked against finite differences in
 * variants-reference.test.ts for the same pairs).
 */
import { describe, expect, it } from 'vitest';
import {
  bpcEnergy,
  computeBpcActivityGrad,
  computeBpcParamGrads,
  initBpcActivities,
  makeSkipModel,
  mlpFromWeights,
  sgd,
  updateBpcActivities,
  updateBpcParams,
  type Model,
  type Runtime,
} from '../../src/node.js';
import { Random } from '../../src/util/random.js';
import { ACTIVATIONS, type Act, mat } from '../reference/jpc64.js';
import {
  type GenModel,
  bpcActivityGrads,
  bpcLayerEnergies,
  bpcParamGrads,
  initActivitiesWithAmort,
  makeSkips,
} from '../reference/variants64.js';
import {
  expectClose,
  flat,
  oneHotMat,
  randomMat,
  randomRefModel,
  readAll,
  tensorOf,
  useRuntime,
} from '../support/helpers.js';

const rt = useRuntime();

function gpu(r: Runtime, ref: GenModel, act: Act, bias: boolean): Model {
  const dims = [ref.weights[0]!.cols, ...ref.weights.map((w) => w.rows)];
  return mlpFromWeights(r, {
    dims,
    weights: ref.weights.map((w) => Float32Array.from(w.data)),
    biases: bias ? ref.biases.map((b) => Float32Array.from(b!)) : null,
    actFn: act,
    skipModel: ref.skips ? [...ref.skips] : null,
  });
}

const CASES = [
  { name: 'one hidden layer (the notebook’s shape)', dims: [4, 9, 12], skips: false, act: 'relu' as Act },
  { name: 'three hidden layers with skips', dims: [5, 7, 7, 7, 11], skips: true, act: 'tanh' as Act },
  // Every width ≡ 0 mod 4: the layer kernels take their vec4 epilogues (accumulating gradients included).
  { name: 'two hidden layers with skips, widths ≡ 0 mod 4', dims: [4, 8, 8, 12], skips: true, act: 'tanh' as Act },
];

describe.each(CASES.map((c) => [c.name, c] as const))('%s', (_n, c) => {
  for (const unsupervised of [false, true]) {
    for (const [alphaF, alphaB] of [
      [1, 1],
      [1e-3, 1],
      [0.5, 2],
    ] as const) {
      it(`${unsupervised ? 'unsupervised' : 'supervised'} α_f=${alphaF} α_b=${alphaB}: energies, gradients and updates match the reference`, async () => {
        const H = c.dims.length - 2;
        const bias = !c.skips;
        const tdRef: GenModel = {
          ...randomRefModel(3, c.dims, c.act, bias),
          ...(c.skips ? { skips: makeSkips(H + 1) } : {}),
        };
        const buRef: GenModel = {
          ...randomRefModel(4, [...c.dims].reverse(), c.act, bias),
          ...(c.skips ? { skips: makeSkips(H + 1) } : {}),
        };
        const td = gpu(rt(), tdRef, c.act, bias);
        const bu = gpu(rt(), buRef, c.act, bias);
        const rng = new Random(7);
        const B = 5;
        const x = oneHotMat(rng, B, c.dims[0]!);
        const y = randomMat(rng, B, c.dims.at(-1)!);
        const acts = (unsupervised ? c.dims.slice(0, H + 1) : c.dims.slice(1, H + 1)).map((d) =>
          randomMat(rng, B, d, 0.5),
        );
        const opts = { alphaF, alphaB };
        const xr = unsupervised ? null : x;
        const base = {
          forwardEnergyWeight: alphaF,
          backwardEnergyWeight: alphaB,
          ...(unsupervised ? {} : { input: tensorOf(rt(), x) }),
        };
        const activities = acts.map((a) => tensorOf(rt(), a));
        const output = tensorOf(rt(), y);

        const layers = await (await bpcEnergy(td, bu, activities, output, { ...base, recordLayers: true })).toArray();
        const expected = bpcLayerEnergies(tdRef, buRef, acts, y, xr, opts);
        expectClose(layers, expected, 1e-4, 'layer energies');
        const total = expected.reduce((p, q) => p + q, 0);
        expectClose([await (await bpcEnergy(td, bu, activities, output, base)).item()], [total], 1e-4, 'total');

        const { energy, grads } = await computeBpcActivityGrad(td, bu, activities, output, base);
        expectClose([await energy.item()], [total], 1e-4, 'energy with the gradient');
        expectClose(
          await readAll(grads),
          flat(bpcActivityGrads(tdRef, buRef, acts, y, xr, opts)),
          2e-4,
          'activity gradients',
        );

        const pg = await computeBpcParamGrads(td, bu, activities, output, base);
        const ref = bpcParamGrads(tdRef, buRef, acts, y, xr, opts);
        expectClose(await readAll(pg.topDown.weights), flat(ref.td.weights), 2e-4, 'top-down weight gradients');
        expectClose(await readAll(pg.bottomUp.weights), flat(ref.bu.weights), 2e-4, 'bottom-up weight gradients');
        if (bias)
          expectClose(
            await readAll(pg.bottomUp.biases.map((b) => b!)),
            Float64Array.from(ref.bu.biases.flatMap((b) => [...b!])),
            2e-4,
            'bottom-up bias gradients',
          );

        // One SGD step on the activities, then one on each network's parameters.
        const optim = sgd({ lr: 0.5 });
        const up = await updateBpcActivities(td, bu, activities, optim, optim.init(activities), output, base);
        const g = bpcActivityGrads(tdRef, buRef, acts, y, xr, opts);
        expectClose(
          await readAll(up.activities),
          flat(
            acts.map((a, i) =>
              mat(
                a.rows,
                a.cols,
                Float64Array.from(a.data, (v, j) => v - 0.5 * g[i]!.data[j]!),
              ),
            ),
          ),
          1e-4,
          'updated activities',
        );
        const before = await Promise.all([td.toArrays(), bu.toArrays()]);
        const optims = [sgd({ lr: 0.1 }), sgd({ lr: 0.1 })] as const;
        await updateBpcParams(td, bu, activities, optims, [optims[0].init(td), optims[1].init(bu)], output, base);
        const after = await Promise.all([td.toArrays(), bu.toArrays()]);
        [ref.td, ref.bu].forEach((grad, m) =>
          after[m]!.weights.forEach((w, i) =>
            expectClose(
              w,
              Float64Array.from(before[m]!.weights[i]!, (v, j) => v - 0.1 * grad.weights[i]!.data[j]!),
              1e-5,
              `updated weights ${m}/${i}`,
            ),
          ),
        );
        td.dispose();
        bu.dispose();
      });
    }
  }
});

describe('bPC helpers and checks', () => {
  it('initBpcActivities is the bottom-up feedforward pass in top-down order', async () => {
    const dims = [4, 6, 8, 10];
    const tdRef = randomRefModel(1, dims, 'relu', true);
    const buRef = randomRefModel(2, [...dims].reverse(), 'relu', true);
    const td = gpu(rt(), tdRef, 'relu', true);
    const bu = gpu(rt(), buRef, 'relu', true);
    const y = randomMat(new Random(3), 3, 10);
    const amort = initActivitiesWithAmort(buRef, tdRef, y); // [x guess, z_1, z_2, image guess]
    const sup = await initBpcActivities(td, bu, tensorOf(rt(), y));
    expect(sup.map((t) => t.shape)).toEqual([
      [3, 6],
      [3, 8],
    ]);
    expectClose(await readAll(sup), flat(amort.slice(1, 3)), 1e-4, 'supervised start');
    const unsup = await initBpcActivities(td, bu, tensorOf(rt(), y), { mode: 'unsupervised' });
    expectClose(await readAll(unsup), flat(amort.slice(0, 3)), 1e-4, 'unsupervised start');
    td.dispose();
    bu.dispose();
  });

  it('refuses JPC’s H + 1 activities, reversed bottom-up lists and bad weights', async () => {
    const dims = [4, 6, 10];
    const td = gpu(rt(), randomRefModel(1, dims, 'relu', false), 'relu', false);
    const bu = gpu(rt(), randomRefModel(2, [...dims].reverse(), 'relu', false), 'relu', false);
    const y = tensorOf(rt(), randomMat(new Random(1), 2, 10));
    const x = tensorOf(rt(), randomMat(new Random(2), 2, 4));
    const z = tensorOf(rt(), randomMat(new Random(3), 2, 6));
    const dummy = tensorOf(rt(), randomMat(new Random(4), 2, 4));
    await expect(bpcEnergy(td, bu, [z, dummy], y, { input: x })).rejects.toThrow(
      /WPC takes exactly the hidden activities/,
    );
    await expect(bpcEnergy(td, td, [z], y, { input: x })).rejects.toThrow(
      /bottomUp must run the other way .* not reversed/,
    );
    await expect(bpcEnergy(td, bu, [z], y, { input: x, forwardEnergyWeight: -1 })).rejects.toThrow(
      /forwardEnergyWeight/,
    );
    const skip = makeSkipModel(2);
    expect(skip).toEqual([false, false]);
    td.dispose();
    bu.dispose();
  });
});

/** Checks every bPC function at one (top-down activation, bottom-up activation) pair against the reference. */
async function checkPair(
  r: Runtime,
  tdAct: Act,
  buAct: Act,
  unsupervised: boolean,
  skips: boolean,
  seed: number,
): Promise<void> {
  const dims = [3, 4, 4, 2];
  const H = dims.length - 2;
  const what = `top-down ${tdAct}, bottom-up ${buAct}, ${unsupervised ? 'unsupervised' : 'supervised'}${skips ? ', skips' : ''}`;
  // O(1) weights, so that every activation's curvature matters.
  const scaled = (m: GenModel): GenModel => ({
    ...m,
    weights: m.weights.map((w) =>
      mat(
        w.rows,
        w.cols,
        Float64Array.from(w.data, (v) => Math.fround(2 * v)),
      ),
    ),
  });
  const sk = skips ? { skips: makeSkips(H + 1) } : {};
  const tdRef: GenModel = { ...scaled(randomRefModel(seed, dims, tdAct, true)), ...sk };
  const buRef: GenModel = { ...scaled(randomRefModel(seed + 1, [...dims].reverse(), buAct, true)), ...sk };
  const td = gpu(r, tdRef, tdAct, true);
  const bu = gpu(r, buRef, buAct, true);
  const rng = new Random(seed + 2);
  const B = 3;
  const x = randomMat(rng, B, dims[0]!);
  const y = randomMat(rng, B, dims.at(-1)!);
  const acts = (unsupervised ? dims.slice(0, H + 1) : dims.slice(1, H + 1)).map((d) => randomMat(rng, B, d));
  const xr = unsupervised ? null : x;
  const opts = { alphaF: 0.7, alphaB: 1.3 };
  const base = {
    forwardEnergyWeight: 0.7,
    backwardEnergyWeight: 1.3,
    ...(unsupervised ? {} : { input: tensorOf(r, x) }),
  };
  const activities = acts.map((a) => tensorOf(r, a));
  const output = tensorOf(r, y);
  try {
    const expected = bpcLayerEnergies(tdRef, buRef, acts, y, xr, opts);
    expectClose(
      await (await bpcEnergy(td, bu, activities, output, { ...base, recordLayers: true })).toArray(),
      expected,
      1e-4,
      `${what}: layer energies`,
    );
    const { energy, grads } = await computeBpcActivityGrad(td, bu, activities, output, base);
    expectClose([await energy.item()], [expected.reduce((p, q) => p + q, 0)], 1e-4, `${what}: energy`);
    expectClose(
      await readAll(grads),
      flat(bpcActivityGrads(tdRef, buRef, acts, y, xr, opts)),
      2e-4,
      `${what}: activity gradients`,
    );
    const pg = await computeBpcParamGrads(td, bu, activities, output, base);
    const ref = bpcParamGrads(tdRef, buRef, acts, y, xr, opts);
    const biases = (g: (Float64Array | null)[]) => Float64Array.from(g.flatMap((b) => [...b!]));
    expectClose(await readAll(pg.topDown.weights), flat(ref.td.weights), 2e-4, `${what}: top-down weight gradients`);
    expectClose(
      await readAll(pg.topDown.biases.map((b) => b!)),
      biases(ref.td.biases),
      2e-4,
      `${what}: top-down bias gradients`,
    );
    expectClose(await readAll(pg.bottomUp.weights), flat(ref.bu.weights), 2e-4, `${what}: bottom-up weight gradients`);
    expectClose(
      await readAll(pg.bottomUp.biases.map((b) => b!)),
      biases(ref.bu.biases),
      2e-4,
      `${what}: bottom-up bias gradients`,
    );
  } finally {
    td.dispose();
    bu.dispose();
  }
}

describe('every pair of activations: each network applies its own (JPC)', () => {
  it('the issue’s example: dims [1, 2, 1], weights 1, top-down tanh, bottom-up silu, z_1 = [1, 1], x = y = 0', async () => {
    const one = (rows: number, cols: number) => Float32Array.from({ length: rows * cols }, () => 1);
    const make = (act: Act, dims: number[]) =>
      mlpFromWeights(rt(), {
        dims,
        weights: [one(dims[1]!, dims[0]!), one(dims[2]!, dims[1]!)],
        biases: null,
        actFn: act,
      });
    const td = make('tanh', [1, 2, 1]);
    const bu = make('silu', [1, 2, 1]);
    const silu1 = 1 / (1 + Math.exp(-1));
    const layers = await (
      await bpcEnergy(td, bu, [rt().tensor(Float32Array.of(1, 1), [1, 2])], Float32Array.of(0), {
        input: Float32Array.of(0),
        recordLayers: true,
      })
    ).toArray();
    // [output forward, input backward, forward of z_1, backward of z_1]: the input term is ½(0 − 2·silu(1))².
    expect(layers[1]).toBeCloseTo(0.5 * (2 * silu1) ** 2, 5);
    expect(layers[1]).toBeCloseTo(1.06889, 5);
    expect(layers[0]).toBeCloseTo(0.5 * (2 * Math.tanh(1)) ** 2, 5);
    td.dispose();
    bu.dispose();
  });

  ACTIVATIONS.forEach((tdAct, i) => {
    it(`top-down ${tdAct} with every bottom-up activation: energies, activity and both networks' parameter gradients`, async () => {
      for (const [j, buAct] of ACTIVATIONS.entries()) {
        for (const unsupervised of [false, true])
          await checkPair(rt(), tdAct, buAct, unsupervised, (i + j) % 2 === 1, 100 + 16 * i + 2 * j);
      }
    });
  });

  it('widths and batch ≡ 0 mod 4 (the vec4 epilogues), with skips: tanh × relu and gelu × silu, both modes', async () => {
    for (const [tdAct, buAct] of [
      ['tanh', 'relu'],
      ['gelu', 'silu'],
    ] as const) {
      for (const unsupervised of [false, true]) {
        const dims = [4, 8, 8, 12];
        const tdRef: GenModel = { ...randomRefModel(500, dims, tdAct, true), skips: makeSkips(3) };
        const buRef: GenModel = { ...randomRefModel(501, [...dims].reverse(), buAct, true), skips: makeSkips(3) };
        const td = gpu(rt(), tdRef, tdAct, true);
        const bu = gpu(rt(), buRef, buAct, true);
        const rng = new Random(502);
        const B = 4;
        const x = randomMat(rng, B, 4);
        const y = randomMat(rng, B, 12);
        const acts = (unsupervised ? [4, 8, 8] : [8, 8]).map((d) => randomMat(rng, B, d));
        const xr = unsupervised ? null : x;
        const base = unsupervised ? {} : { input: tensorOf(rt(), x) };
        const activities = acts.map((a) => tensorOf(rt(), a));
        const output = tensorOf(rt(), y);
        const what = `${tdAct} × ${buAct}, ${unsupervised ? 'unsupervised' : 'supervised'}`;
        expectClose(
          await (await bpcEnergy(td, bu, activities, output, { ...base, recordLayers: true })).toArray(),
          bpcLayerEnergies(tdRef, buRef, acts, y, xr, {}),
          1e-4,
          `${what}: layer energies`,
        );
        const { grads } = await computeBpcActivityGrad(td, bu, activities, output, base);
        expectClose(
          await readAll(grads),
          flat(bpcActivityGrads(tdRef, buRef, acts, y, xr, {})),
          2e-4,
          `${what}: activity gradients`,
        );
        const pg = await computeBpcParamGrads(td, bu, activities, output, base);
        const ref = bpcParamGrads(tdRef, buRef, acts, y, xr, {});
        expectClose(
          await readAll(pg.topDown.weights),
          flat(ref.td.weights),
          2e-4,
          `${what}: top-down weight gradients`,
        );
        expectClose(
          await readAll(pg.bottomUp.weights),
          flat(ref.bu.weights),
          2e-4,
          `${what}: bottom-up weight gradients`,
        );
        td.dispose();
        bu.dispose();
      }
    }
  });

  it('updates and initBpcActivities with different activations (each activation on each side once)', async () => {
    for (const [i, tdAct] of ACTIVATIONS.entries()) {
      const buAct = ACTIVATIONS[(i + 3) % ACTIVATIONS.length]!;
      const dims = [3, 4, 5, 2];
      const tdRef = randomRefModel(200 + i, dims, tdAct, true);
      const buRef = randomRefModel(300 + i, [...dims].reverse(), buAct, true);
      const td = gpu(rt(), tdRef, tdAct, true);
      const bu = gpu(rt(), buRef, buAct, true);
      const rng = new Random(400 + i);
      const x = randomMat(rng, 2, 3);
      const y = randomMat(rng, 2, 2);
      const acts = [randomMat(rng, 2, 4), randomMat(rng, 2, 5)];
      const activities = acts.map((a) => tensorOf(rt(), a));
      const output = tensorOf(rt(), y);
      const base = { input: tensorOf(rt(), x) };
      const what = `${tdAct} × ${buAct}`;
      // The start is the bottom-up network's own feedforward pass (its activation), in top-down order.
      const amort = initActivitiesWithAmort(buRef, tdRef, y);
      expectClose(
        await readAll(await initBpcActivities(td, bu, output, { mode: 'unsupervised' })),
        flat(amort.slice(0, 3)),
        1e-4,
        `${what}: initBpcActivities`,
      );
      const optim = sgd({ lr: 0.5 });
      const up = await updateBpcActivities(td, bu, activities, optim, optim.init(activities), output, base);
      const g = bpcActivityGrads(tdRef, buRef, acts, y, x, {});
      expectClose(
        await readAll(up.activities),
        flat(
          acts.map((a, k) =>
            mat(
              a.rows,
              a.cols,
              Float64Array.from(a.data, (v, j) => v - 0.5 * g[k]!.data[j]!),
            ),
          ),
        ),
        1e-4,
        `${what}: updated activities`,
      );
      const ref = bpcParamGrads(tdRef, buRef, acts, y, x, {});
      const before = await Promise.all([td.toArrays(), bu.toArrays()]);
      const optims = [sgd({ lr: 0.1 }), sgd({ lr: 0.1 })] as const;
      await updateBpcParams(td, bu, activities, optims, [optims[0].init(td), optims[1].init(bu)], output, base);
      const after = await Promise.all([td.toArrays(), bu.toArrays()]);
      [ref.td, ref.bu].forEach((grad, m) =>
        after[m]!.weights.forEach((w, k) =>
          expectClose(
            w,
            Float64Array.from(before[m]!.weights[k]!, (v, j) => v - 0.1 * grad.weights[k]!.data[j]!),
            1e-5,
            `${what}: updated weights ${m}/${k}`,
          ),
        ),
      );
      td.dispose();
      bu.dispose();
    }
  });
});
