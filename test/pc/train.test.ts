import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import {
  type adamInit,
  adamUpdate,
  ffwd,
  flattenParams,
  jpcRecordLayersOrder,
  layerEnergies,
  mseLoss,
  crossEntropyLoss,
  computeAccuracy,
  paramGrads,
  sgdInit,
  sgdUpdate,
  solveEuler,
  solveHeunPid,
  unflattenParams,
  updatePcActivities as refUpdateActivities,
  optimInit,
  type Loss,
  type Optimiser,
  type RefModel,
} from '../reference/jpc64.js';
import { adam, sgd } from '../../src/pc/optim.js';
import { makePcStep } from '../../src/pc/train.js';
import { updatePcActivities, updatePcParams } from '../../src/pc/updates.js';
import {
  testDiscriminativePc,
  mseLoss as gpuMse,
  crossEntropyLoss as gpuCe,
  computeAccuracy as gpuAcc,
} from '../../src/pc/evaluate.js';
import { makeMlp } from '../../src/pc/model.js';
import { loadDataset } from '../../src/data/node.js';
import { batches, oneHot, subset } from '../../src/data/dataset.js';
import { Random } from '../../src/util/random.js';
import {
  activityGradScale,
  expectClose,
  expectCloseScaled,
  f32,
  flat,
  gpuModel,
  oneHotMat,
  randomMat,
  randomRefModel,
  readAll,
  tensorOf,
  useRuntime,
} from '../support/helpers.js';

const rt = useRuntime();
const DATA_DIR = process.env.WPC_DATA_DIR ?? fileURLToPath(new URL('../../../shared/datasets', import.meta.url));

async function paramsOf(model: ReturnType<typeof gpuModel>): Promise<Float64Array> {
  const { weights, biases } = await model.toArrays();
  const parts: number[] = [];
  weights.forEach((w, l) => {
    parts.push(...w);
    if (biases[l]) parts.push(...biases[l]!);
  });
  return Float64Array.from(parts);
}

function setup(seed: number, loss: Loss, dims = [7, 10, 9, 4], B = 6) {
  const rng = new Random(seed);
  const ref = randomRefModel(seed, dims, 'tanh', true);
  const x = randomMat(rng, B, dims[0]!);
  const y = loss === 'ce' ? oneHotMat(rng, B, dims.at(-1)!) : randomMat(rng, B, dims.at(-1)!);
  return { ref, x, y, B, rng };
}

describe('optimisers (optax semantics)', () => {
  const configs: { name: string; gpu: () => ReturnType<typeof sgd>; ref: Optimiser }[] = [
    { name: 'sgd', gpu: () => sgd({ lr: 0.3 }), ref: { kind: 'sgd', lr: 0.3 } },
    {
      name: 'sgd + momentum',
      gpu: () => sgd({ lr: 0.2, momentum: 0.9 }),
      ref: { kind: 'sgd', lr: 0.2, momentum: 0.9 },
    },
    {
      name: 'sgd + nesterov',
      gpu: () => sgd({ lr: 0.2, momentum: 0.8, nesterov: true }),
      ref: { kind: 'sgd', lr: 0.2, momentum: 0.8, nesterov: true },
    },
    { name: 'adam', gpu: () => adam({ lr: 1e-2 }), ref: { kind: 'adam', lr: 1e-2 } },
    {
      name: 'adam (eps, epsRoot, betas)',
      gpu: () => adam({ lr: 5e-3, b1: 0.8, b2: 0.99, eps: 1e-3, epsRoot: 1e-6 }),
      ref: { kind: 'adam', lr: 5e-3, b1: 0.8, b2: 0.99, eps: 1e-3, epsRoot: 1e-6 },
    },
  ];
  // 219 parameters take the scalar kernel; 248 (≡ 0 mod 4) the vec4 one (optimizer.wgsl VEC4).
  for (const [c, dims] of configs.flatMap(
    (c) =>
      [
        [c, [7, 10, 9, 4]],
        [c, [8, 12, 8, 4]],
      ] as const,
  )) {
    it(`${c.name}: three updatePcParams steps match the reference (${dims.join('-')})`, async () => {
      const p = setup(5, 'mse', [...dims]);
      const acts = ffwd(p.ref, p.x).map((m) => ({
        ...m,
        data: Float64Array.from(m.data, (v) => Math.fround(v + 0.2 * p.rng.normal())),
      }));
      const model = gpuModel(rt(), p.ref);
      const optim = c.gpu();
      const state = optim.init(model);
      let ref: RefModel = p.ref;
      let refState = optimInit(c.ref, flattenParams(ref).length);
      for (let step = 0; step < 3; step++) {
        const g = flattenParams(paramGrads(ref, acts, p.y, p.x, 'mse'));
        const r =
          c.ref.kind === 'adam'
            ? adamUpdate(flattenParams(ref), g, refState as ReturnType<typeof adamInit>, c.ref)
            : sgdUpdate(flattenParams(ref), g, refState as ReturnType<typeof sgdInit>, c.ref);
        ref = unflattenParams(r.params, ref);
        refState = r.state;
        await updatePcParams(
          model,
          acts.map((a) => tensorOf(rt(), a)),
          optim,
          state,
          f32(p.y),
          { input: f32(p.x) },
        );
      }
      expect(state.count).toBe(3);
      expectClose(await paramsOf(model), flattenParams(ref), 1e-4, `${c.name} parameters`);
      model.dispose();
    });
  }

  it("updatePcActivities: JPC's sgd(0.5·B) steps and adam steps match the reference", async () => {
    for (const [name, gpuOpt, refOpt] of [
      ['sgd', sgd({ lr: 0.5 * 6 }), { kind: 'sgd', lr: 0.5 * 6 }],
      ['adam', adam({ lr: 0.05 }), { kind: 'adam', lr: 0.05 }],
    ] as const) {
      // Batch 6: 138 activity values (scalar kernel); batch 8: 184 (vec4 kernel).
      for (const [loss, B] of [
        ['mse', 6],
        ['ce', 6],
        ['mse', 8],
      ] as const) {
        const p = setup(9, loss, undefined, B);
        const model = gpuModel(rt(), p.ref);
        // Start away from the feedforward point, where hidden errors are exactly zero and Adam would only be
        // normalising rounding noise (any float32 implementation differs from float64 there by O(lr)).
        let tensors = ffwd(p.ref, p.x).map((m) =>
          tensorOf(rt(), { ...m, data: Float64Array.from(m.data, (v) => Math.fround(v + 0.3 * p.rng.normal())) }),
        );
        const state = gpuOpt.init(tensors);
        let refState = optimInit(
          refOpt as Optimiser,
          tensors.reduce((s, a) => s + a.size, 0),
        );
        for (let step = 0; step < 4; step++) {
          // Each step is checked from the GPU's own current activities, so float32 rounding cannot compound.
          const here = await Promise.all(
            tensors.map(async (t) => ({
              rows: t.shape[0]!,
              cols: t.shape[1]!,
              data: Float64Array.from(await t.toArray()),
            })),
          );
          const r = refUpdateActivities(p.ref, here, p.y, p.x, loss, refOpt as Optimiser, refState);
          const g = await updatePcActivities(model, tensors, gpuOpt, state, f32(p.y), {
            input: f32(p.x),
            loss,
            returnGrads: true,
          });
          expectClose([await g.energy.item()], [r.energy], 1e-4, `${name}/${loss} energy before step ${step}`);
          const scale = activityGradScale(p.ref, here, p.y, p.x, loss);
          expectCloseScaled(
            await readAll(g.grads!),
            flat(r.grads),
            scale,
            1e-4,
            `${name}/${loss} gradients at step ${step}`,
          );
          expectClose(
            await readAll(g.activities),
            flat(r.activities),
            1e-4,
            `${name}/${loss} activities after step ${step}`,
          );
          for (const t of tensors) t.dispose();
          tensors = g.activities;
          refState = r.state;
        }
        expect(state.count).toBe(4);
        model.dispose();
      }
    }
  });
});

describe('makePcStep', () => {
  // 219 parameters: the scalar optimiser kernel; 248 (≡ 0 mod 4, batch 8): the vec4 one and vec4 epilogues.
  for (const [loss, dims, B] of [
    ['mse', [7, 10, 9, 4], 6],
    ['ce', [7, 10, 9, 4], 6],
    ['mse', [8, 12, 8, 4], 8],
  ] as const) {
    it(`ffwd → loss → Heun+PID inference → gradients at equilibrium → update, as the reference (${loss}, ${dims.join('-')})`, async () => {
      const p = setup(13, loss, [...dims], B);
      const model = gpuModel(rt(), p.ref);
      const optim = sgd({ lr: 0.5, momentum: 0.5 });
      const state = optim.init(model);
      let ref = p.ref;
      let refState = sgdInit(flattenParams(ref).length, { lr: 0.5, momentum: 0.5 });
      const L = ref.weights.length;
      for (let step = 0; step < 3; step++) {
        const acts0 = ffwd(ref, p.x);
        const refLoss = loss === 'mse' ? mseLoss(acts0[L - 1]!, p.y) : crossEntropyLoss(acts0[L - 1]!, p.y);
        const sol = solveHeunPid(ref, acts0, p.y, p.x, {
          maxT1: 20,
          dt0: 0.05,
          rtol: 1e-3,
          atol: 1e-3,
          loss,
          timeDtype: 'float32',
        });
        const energies = jpcRecordLayersOrder(layerEnergies(ref, sol.activities, p.y, p.x, loss));
        const g = flattenParams(paramGrads(ref, sol.activities, p.y, p.x, loss));
        const r = sgdUpdate(flattenParams(ref), g, refState, { lr: 0.5, momentum: 0.5 });
        ref = unflattenParams(r.params, ref);
        refState = r.state;

        const res = await makePcStep(model, optim, state, f32(p.y), { input: f32(p.x), loss, maxT1: 20, dt: 0.05 });
        expect(res.steps).toEqual({ accepted: sol.accepted, rejected: sol.rejected });
        expect(res.t).toBe(Math.fround(20));
        expectClose([await res.loss.item()], [refLoss], 1e-4, `loss at step ${step}`);
        expectClose(await res.energies.toArray(), energies, 1e-4, `energies at step ${step}`);
      }
      expectClose(await paramsOf(model), flattenParams(ref), 1e-4, 'parameters after 3 steps');
      model.dispose();
    });
  }

  it('with Euler at a constant step, as the reference', async () => {
    const p = setup(17, 'mse');
    const model = gpuModel(rt(), p.ref);
    const optim = sgd({ lr: 0.5 });
    const state = optim.init(model);
    const acts0 = ffwd(p.ref, p.x);
    const sol = solveEuler(p.ref, acts0, p.y, p.x, { maxT1: 4, dt: 0.5, loss: 'mse', timeDtype: 'float32' });
    const g = flattenParams(paramGrads(p.ref, sol.activities, p.y, p.x, 'mse'));
    const expected = sgdUpdate(flattenParams(p.ref), g, sgdInit(g.length, { lr: 0.5 }), { lr: 0.5 }).params;
    const readsBefore = rt().stats.readbacks;
    const res = await makePcStep(model, optim, state, f32(p.y), {
      input: f32(p.x),
      solver: 'euler',
      stepsizeController: 'constant',
      maxT1: 4,
      dt: 0.5,
    });
    expect(rt().stats.readbacks, 'no readback inside a constant-step training step').toBe(readsBefore);
    expect(res.steps).toEqual({ accepted: 8, rejected: 0 });
    expect(res.inferenceDispatches, 'a network this small solves in one fused dispatch').toBe(1);
    expectClose(await paramsOf(model), expected, 1e-4, 'parameters');
    model.dispose();
  });
});

describe("JPC's loss and accuracy utilities", () => {
  it('mseLoss, crossEntropyLoss and computeAccuracy match the reference', async () => {
    const rng = new Random(2);
    const preds = randomMat(rng, 33, 10, 2);
    const labels = oneHotMat(rng, 33, 10);
    // Make some predictions right so the accuracy is not trivially 0.
    for (let r = 0; r < 10; r++)
      for (let c = 0; c < 10; c++) preds.data[r * 10 + c] = Math.fround(labels.data[r * 10 + c]! * 5);
    const P = tensorOf(rt(), preds);
    const Y = tensorOf(rt(), labels);
    expectClose([await (await gpuMse(P, Y)).item()], [mseLoss(preds, labels)], 1e-4, 'mse');
    expectClose([await (await gpuCe(P, Y)).item()], [crossEntropyLoss(preds, labels)], 1e-4, 'ce');
    const acc = await (await gpuAcc(Y, P)).item();
    expect(acc).toBeCloseTo(computeAccuracy(labels, preds), 4);
    expect(acc).toBeGreaterThan(25);
  });

  it('testDiscriminativePc reports the feedforward loss and accuracy', async () => {
    const p = setup(3, 'ce', [7, 10, 9, 4], 40);
    const model = gpuModel(rt(), p.ref);
    const pred = ffwd(p.ref, p.x).at(-1)!;
    const r = await testDiscriminativePc(model, f32(p.y), f32(p.x), { loss: 'ce' });
    expectClose([r.loss], [crossEntropyLoss(pred, p.y)], 1e-4, 'test loss');
    expect(r.acc).toBeCloseTo(computeAccuracy(p.y, pred), 4);
    model.dispose();
  });
});

describe('training on MNIST', () => {
  it('150 steps of the paper network on an MNIST subset reach ≥ 80% on 1,000 test images', async () => {
    const [train, test] = await Promise.all([
      loadDataset('mnist', 'train', { dataDir: DATA_DIR }),
      loadDataset('mnist', 'test', { dataDir: DATA_DIR }),
    ]);
    const model = makeMlp(rt(), { seed: 0, inputDim: 784, width: 300, depth: 4, outputDim: 10, actFn: 'tanh' });
    const optim = adam({ lr: 1e-3 });
    const state = optim.init(model);
    let steps = 0;
    for (const b of batches(subset(train, 150 * 64), { batchSize: 64, shuffle: true, seed: 0 })) {
      const r = await makePcStep(model, optim, state, b.y, { input: b.x, maxT1: 20, dt: 0.05 });
      r.loss!.dispose();
      r.energies.dispose();
      steps++;
    }
    expect(steps).toBe(150);
    const few = subset(test, 1000);
    const { acc } = await testDiscriminativePc(model, oneHot(few.labels), few.images);
    expect(acc).toBeGreaterThanOrEqual(80);
    model.dispose();
  });
});
