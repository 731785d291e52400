/**
 * Convolutional PC networks on the GPU against the float64 reference (test/reference/conv64.ts): every layer kind's
 * energy, activity gradient and parameter gradient (odd sizes, stride 2, padding, channels not a multiple of 4,
 * batch 1), and a whole Heun + PID solve on a small CNN against the reference's trajectory.
 */
import { describe, expect, it } from 'vitest';
import {
  type ConvModel,
  type LayerOp,
  type PcLayer,
  activityGrads,
  energy,
  ffwd,
  paramGrads,
  pcVectorField,
} from '../reference/conv64.js';
import { type Act, type Loss, type Mat, integrateHeunPid, mat } from '../reference/jpc64.js';
import { makeCifarDataset } from '../../src/data/cifar.js';
import { batches } from '../../src/data/dataset.js';
import { makeModel } from '../../src/pc/architecture.js';
import { adam } from '../../src/pc/optim.js';
import { makePcStep } from '../../src/pc/train.js';
import { cifarBytes, labelsFor } from '../support/cifar-fixtures.js';
import { computePcActivityGrad, computePcParamGrads, pcEnergy } from '../../src/pc/energy.js';
import { solveInference } from '../../src/pc/infer.js';
import {
  type LayerDef,
  avgPool,
  conv,
  convTranspose,
  dense,
  flatten,
  maxPool,
  reshape,
  residual,
} from '../../src/pc/layer-defs.js';
import type { Model } from '../../src/pc/model.js';
import type { Activation } from '../../src/pc/model.js';
import { Random } from '../../src/util/random.js';
import { expectClose, flat, readAll, tensorOf, useRuntime } from '../support/helpers.js';

const rt = useRuntime();

/** The reference twin of a GPU model made by makeModel: the same ops, activations, scalings and parameters. */
async function referenceOf(model: Model, actFn: Activation): Promise<ConvModel> {
  const { weights, biases } = await model.toArrays();
  const layers: PcLayer[] = model.layers.map((l, i) => {
    let op: LayerOp;
    // A dense layer whose output the next layer sees as an image (reshape) is the reference's Linear + reshape.
    const next = model.layers[i + 1];
    const seenAs = next && next.kind !== 'dense' ? next.inShape : undefined;
    if (l.kind === 'dense') op = { kind: 'dense', out: seenAs ?? [l.outDim] };
    else if (l.kind === 'conv')
      op = { kind: 'conv', outChannels: l.outShape[0], kernel: l.kernel[0], stride: l.stride, padding: l.padding };
    else if (l.kind === 'convTranspose')
      op = {
        kind: 'convTranspose',
        outChannels: l.outShape[0],
        kernel: l.kernel[0],
        stride: l.stride,
        padding: l.padding,
        outputPadding: l.outputPadding,
      };
    else op = { kind: l.kind, kernel: l.kernel[0], stride: l.stride };
    const w = weights[i]!;
    const rows = l.kind === 'dense' ? l.outDim : l.outShape[0];
    return {
      op,
      act: (i === 0 || l.linearInput ? 'linear' : actFn) as Act,
      scale: l.scale,
      skip: l.skip,
      weight: w.length > 0 ? mat(rows, w.length / rows, w) : null,
      bias: biases[i] ? Float64Array.from(biases[i]!) : null,
    };
  });
  const shape = model.shapes[0]!;
  return { inputShape: shape.length === 3 ? [shape[0]!, shape[1]!, shape[2]!] : [shape[0]!], layers };
}

function randomMat(rng: Random, rows: number, cols: number, scale = 1): Mat {
  return mat(
    rows,
    cols,
    Array.from({ length: rows * cols }, () => Math.fround(scale * rng.normal())),
  );
}

/** Activities near the feedforward pass, perturbed so that every error is non-zero (float32 values). */
function perturbed(rng: Random, ref: ConvModel, x: Mat): Mat[] {
  return ffwd(ref, x).map((m) =>
    mat(
      m.rows,
      m.cols,
      Array.from(m.data, (v) => Math.fround(v + 0.3 * rng.normal())),
    ),
  );
}

interface Case {
  name: string;
  inputShape: number[];
  layers: LayerDef[];
  actFn: Activation;
  B: number;
  loss?: Loss;
  useBias?: boolean;
  unsupervised?: boolean;
}

const CASES: Case[] = [
  {
    name: 'conv stride 2 padding 1, 3 → 5 channels, 5×7, dense readout (tanh, bias)',
    inputShape: [3, 5, 7],
    layers: [conv(5, 3, { padding: 1, stride: 2 }), conv(3, 3, { padding: 2 }), flatten(), dense(4)],
    actFn: 'tanh',
    B: 3,
    useBias: true,
  },
  {
    name: 'average pooling (overlapping, stride 1) and max pooling, batch 1 (relu)',
    inputShape: [2, 7, 6],
    layers: [conv(5, 3, { padding: 1 }), avgPool(2, { stride: 1 }), maxPool(2), flatten(), dense(3)],
    actFn: 'relu',
    B: 1,
  },
  {
    name: 'a residual block with linear conv layers around it, as JPC ResNet (gelu, ce)',
    inputShape: [3, 6, 5],
    layers: [conv(4, 3, { padding: 1 }), residual(3), avgPool(2, { act: 'linear' }), dense(5, { act: 'linear' })],
    actFn: 'gelu',
    B: 3,
    loss: 'ce',
  },
  {
    name: 'a transposed-convolution decoder from a vector (dense → reshape → convT stride 2, output padding 1)',
    inputShape: [4],
    layers: [
      dense(3 * 3 * 3),
      reshape([3, 3, 3]),
      convTranspose(5, 3, { stride: 2, padding: 1, outputPadding: 1 }),
      convTranspose(2, 3, { padding: 1 }),
    ],
    actFn: 'tanh',
    B: 2,
    useBias: true,
  },
  {
    name: 'unsupervised: a free image z_0 under a strided conv and max pooling (leaky_relu)',
    inputShape: [3, 7, 5],
    layers: [conv(5, 3, { stride: 2, padding: 1 }), maxPool(2, { stride: 1 }), flatten(), dense(3)],
    actFn: 'leaky_relu',
    B: 3,
    unsupervised: true,
  },
];

describe('convolutional PC against the float64 reference', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const loss = c.loss ?? 'mse';
      const model = makeModel(rt(), {
        seed: 11,
        inputShape: c.inputShape,
        layers: c.layers,
        actFn: c.actFn,
        useBias: c.useBias ?? false,
      });
      const ref = await referenceOf(model, c.actFn);
      const rng = new Random(7);
      const x = randomMat(rng, c.B, model.dims[0]!);
      let y = randomMat(rng, c.B, model.outputDim);
      if (loss === 'ce') {
        y = mat(c.B, model.outputDim);
        for (let b = 0; b < c.B; b++) y.data[b * model.outputDim + Math.floor(rng.uniform(0, model.outputDim))] = 1;
      }
      const acts = perturbed(rng, ref, x);
      const refActs = c.unsupervised ? [x, ...acts] : acts;
      const refX = c.unsupervised ? null : x;
      const opts = { loss };
      const gpuActs = refActs.map((a) => tensorOf(rt(), a));
      const input = c.unsupervised ? {} : { input: tensorOf(rt(), x) };
      const output = tensorOf(rt(), y);

      const e = await (await pcEnergy(model, gpuActs, output, { ...input, loss })).toArray();
      const eRef = energy(ref, refActs, y, refX, opts);
      expect(Math.abs(e[0]! - eRef) / eRef, 'energy').toBeLessThan(2e-5);

      const grads = await computePcActivityGrad(model, gpuActs, output, { ...input, loss });
      const gRef = activityGrads(ref, refActs, y, refX, opts);
      expectClose(await readAll(grads.grads), flat(gRef), 1e-4, 'activity gradients');

      const pg = await computePcParamGrads(model, gpuActs, output, { ...input, loss });
      const pRef = paramGrads(ref, refActs, y, refX, opts);
      expectClose(await readAll(pg.weights), flat(pRef.weights.filter((w): w is Mat => w !== null)), 1e-4, 'weights');
      const refBiases = pRef.biases.filter((b): b is Float64Array => b !== null);
      if (refBiases.length > 0) {
        const all = new Float64Array(refBiases.reduce((s, b) => s + b.length, 0));
        let at = 0;
        for (const b of refBiases) {
          all.set(b, at);
          at += b.length;
        }
        expectClose(await readAll(pg.biases), all, 1e-4, 'biases');
      }
      model.dispose();
    });
  }

  it('a CNN trains on CIFAR-10-shaped data read from files in its binary format', async () => {
    const data = makeCifarDataset('cifar10-test', [{ file: 'test_batch.bin', bytes: cifarBytes(5, labelsFor(5, 8)) }]);
    expect(data.shape).toEqual([3, 32, 32]);
    const model = makeModel(rt(), {
      seed: 0,
      inputShape: data.shape,
      actFn: 'relu',
      useBias: true,
      layers: [
        conv(4, 3, { padding: 1, stride: 2 }),
        avgPool(2),
        conv(8, 3, { padding: 1, stride: 2 }),
        flatten(),
        dense(10),
      ],
    });
    const optim = adam({ lr: 1e-2 });
    const state = optim.init(model);
    const [batch] = [...batches(data, { batchSize: 8, shuffle: false })];
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const step = await makePcStep(model, optim, state, batch!.y, {
        input: batch!.x,
        solver: 'euler',
        stepsizeController: 'constant',
        dt: 0.1,
        maxT1: 1,
      });
      losses.push(await step.loss.item());
      step.loss.dispose();
      step.energies.dispose();
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.at(-1)!).toBeLessThan(0.8 * losses[0]!);
    state.dispose();
    model.dispose();
  });

  it('a Heun + PID solve on a small CNN follows the reference trajectory (steps, decisions, final state)', async () => {
    const model = makeModel(rt(), {
      seed: 5,
      inputShape: [2, 6, 6],
      layers: [conv(3, 3, { padding: 1 }), avgPool(2), conv(4, 3, { padding: 1, stride: 2 }), flatten(), dense(3)],
      actFn: 'tanh',
      useBias: true,
    });
    const ref = await referenceOf(model, 'tanh');
    const rng = new Random(3);
    const B = 2;
    const x = randomMat(rng, B, model.dims[0]!);
    const y = randomMat(rng, B, model.outputDim);
    const acts0 = perturbed(rng, ref, x);
    const pid = { rtol: 1e-3, atol: 1e-3 };
    const refSolve = integrateHeunPid(pcVectorField(ref, y, x, { loss: 'mse' }), acts0, {
      ...pid,
      t1: 20,
      dt0: 0.5,
      timeDtype: 'float32',
    });
    const r = await solveInference(
      model,
      acts0.map((a) => tensorOf(rt(), a)),
      tensorOf(rt(), y),
      { input: tensorOf(rt(), x), solver: 'heun', stepsizeController: { pid }, maxT1: 20, dt: 0.5 },
    );
    expect(refSolve.rejected + refSolve.accepted, 'the solve takes several steps').toBeGreaterThan(3);
    expect(r.steps.accepted).toBe(refSolve.accepted);
    expect(r.steps.rejected).toBe(refSolve.rejected);
    expect(r.t).toBe(Math.fround(20));
    expectClose(await readAll(r.activities), flat(refSolve.y), 1e-4, 'final activities');
    model.dispose();
  });
});
