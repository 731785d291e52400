/**
 * Error-reparameterised PC on the GPU against the float64 reference (test/reference/variants64.ts): energy,
 * error and parameter gradients, updates and the forward pass; supervised and unsupervised, mse and ce, with
 * skips and μPC scalings. Also the property that makes ePC a reparameterisation: F(ε) is the PC energy at z(ε).
 */
import { describe, expect, it } from 'vitest';
import {
  computeEpcErrorGrad,
  computeEpcParamGrads,
  epcActivities,
  epcEnergy,
  initEpcErrors,
  makeSkipModel,
  mlpFromWeights,
  pcEnergy,
  sgd,
  updateEpcErrors,
  updateEpcParams,
  type Model,
  type ParamType,
  type Runtime,
} from '../../src/node.js';
import { Random } from '../../src/util/random.js';
import { type Act, type Loss, mat } from '../reference/jpc64.js';
import {
  type GenModel,
  epcEnergy as refEnergy,
  epcErrorGrads,
  epcForward,
  epcParamGrads,
  makeSkips,
  paramScalings,
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

interface Case {
  name: string;
  dims: number[];
  act: Act;
  skips: boolean;
  paramType: ParamType;
}

const CASES: Case[] = [
  { name: 'sp', dims: [6, 9, 8, 5], act: 'tanh', skips: false, paramType: 'sp' },
  { name: 'μPC with skips', dims: [5, 7, 7, 7, 4], act: 'gelu', skips: true, paramType: 'mupc' },
];

function models(r: Runtime, c: Case): { ref: GenModel; model: Model } {
  const L = c.dims.length - 1;
  const base = randomRefModel(9, c.dims, c.act, true);
  const ref: GenModel = {
    ...base,
    scales: paramScalings(c.dims, c.paramType, { skips: c.skips }).map(Math.fround),
    ...(c.skips ? { skips: makeSkips(L) } : {}),
  };
  const model = mlpFromWeights(r, {
    dims: c.dims,
    weights: ref.weights.map((w) => Float32Array.from(w.data)),
    biases: ref.biases.map((b) => Float32Array.from(b!)),
    actFn: c.act,
    paramType: c.paramType,
    skipModel: c.skips ? makeSkipModel(L) : null,
  });
  return { ref, model };
}

describe.each(CASES.map((c) => [c.name, c] as const))('%s', (_n, c) => {
  for (const unsupervised of [false, true]) {
    for (const loss of ['mse', 'ce'] as Loss[]) {
      it(`${unsupervised ? 'unsupervised' : 'supervised'} ${loss}: energy, gradients, updates and z(ε) match the reference`, async () => {
        const { ref, model } = models(rt(), c);
        const L = c.dims.length - 1;
        const rng = new Random(4);
        const B = 5;
        const x = randomMat(rng, B, c.dims[0]!);
        const y = loss === 'ce' ? oneHotMat(rng, B, c.dims[L]!) : randomMat(rng, B, c.dims[L]!);
        const widths = unsupervised ? c.dims.slice(0, L) : c.dims.slice(1, L);
        const errors = widths.map((d) => randomMat(rng, B, d, 0.3));
        const xr = unsupervised ? null : x;
        const opts = { loss, ...(unsupervised ? {} : { input: tensorOf(rt(), x) }) };
        const errs = errors.map((e) => tensorOf(rt(), e));
        const output = tensorOf(rt(), y);

        const F = refEnergy(ref, errors, y, xr, loss);
        expectClose([await (await epcEnergy(model, errs, output, opts)).item()], [F], 1e-4, 'energy');
        const zs = await epcActivities(model, errs, output, opts);
        const zRef = epcForward(ref, errors, xr);
        expectClose(await readAll(zs), flat(zRef), 1e-4, 'z(ε)');
        // The reparameterisation: the PC energy at z(ε) is F(ε).
        expectClose([await (await pcEnergy(model, zs, output, opts)).item()], [F], 1e-4, 'PC energy at z(ε)');

        const { energy, grads } = await computeEpcErrorGrad(model, errs, output, opts);
        expectClose([await energy.item()], [F], 1e-4, 'energy with the gradient');
        const g = epcErrorGrads(ref, errors, y, xr, loss);
        expectClose(await readAll(grads), flat(g), 2e-4, 'error gradients');
        const pg = await computeEpcParamGrads(model, errs, output, opts);
        const pref = epcParamGrads(ref, errors, y, xr, loss);
        expectClose(await readAll(pg.weights), flat(pref.weights), 2e-4, 'weight gradients');
        expectClose(
          await readAll(pg.biases.map((b) => b!)),
          Float64Array.from(pref.biases.flatMap((b) => [...b!])),
          2e-4,
          'bias gradients',
        );

        const optim = sgd({ lr: 0.5 });
        const up = await updateEpcErrors(model, errs, optim, optim.init(errs), output, opts);
        expectClose([await up.energy.item()], [F], 1e-4, 'energy before the update');
        expectClose(
          await readAll(up.errors),
          flat(
            errors.map((e, i) =>
              mat(
                e.rows,
                e.cols,
                Float64Array.from(e.data, (v, j) => v - 0.5 * g[i]!.data[j]!),
              ),
            ),
          ),
          1e-4,
          'updated errors',
        );
        const before = await model.toArrays();
        const popt = sgd({ lr: 0.1 });
        await updateEpcParams(model, errs, popt, popt.init(model), output, opts);
        const after = await model.toArrays();
        after.weights.forEach((w, i) =>
          expectClose(
            w,
            Float64Array.from(before.weights[i]!, (v, j) => v - 0.1 * pref.weights[i]!.data[j]!),
            1e-5,
            `updated weights ${i}`,
          ),
        );
        model.dispose();
      });
    }
  }
});

describe('ePC conventions', () => {
  it('initEpcErrors gives zeros for the hidden errors (and z_0 when unsupervised), and zero errors are the feedforward pass', async () => {
    const { ref, model } = models(rt(), CASES[0]!);
    const sup = initEpcErrors(model, { batchSize: 3 });
    expect(sup.map((t) => t.shape)).toEqual([
      [3, 9],
      [3, 8],
    ]);
    expect([...(await readAll(sup))].every((v) => v === 0)).toBe(true);
    const unsup = initEpcErrors(model, { batchSize: 3, mode: 'unsupervised' });
    expect(unsup.map((t) => t.shape)).toEqual([
      [3, 6],
      [3, 9],
      [3, 8],
    ]);
    const x = randomMat(new Random(1), 3, 6);
    const y = randomMat(new Random(2), 3, 5);
    const zs = await epcActivities(model, sup, tensorOf(rt(), y), { input: tensorOf(rt(), x) });
    expectClose(await readAll(zs), flat(epcForward(ref, [mat(3, 9), mat(3, 8)], x)), 1e-4, 'feedforward pass');
    model.dispose();
  });

  it('refuses JPC’s output error and wrong shapes', async () => {
    const { model } = models(rt(), CASES[0]!);
    const x = tensorOf(rt(), randomMat(new Random(1), 3, 6));
    const y = tensorOf(rt(), randomMat(new Random(2), 3, 5));
    const jpcStyle = [rt().zeros([3, 9]), rt().zeros([3, 8]), rt().zeros([3, 5])];
    await expect(epcEnergy(model, jpcStyle, y, { input: x })).rejects.toThrow(/WPC has no output error ε_L/);
    await expect(epcEnergy(model, [rt().zeros([3, 9]), rt().zeros([3, 7])], y, { input: x })).rejects.toThrow(
      /errors\[1\]/,
    );
    expect(() => initEpcErrors(model, { batchSize: 0 })).toThrow(/batchSize/);
    model.dispose();
  });
});
