// Sizes are checked against the device's limits and WPC's documented caps before anything is allocated: every
// function that allocates from a size the caller gives refuses one too large with a WpcArgumentError naming the
// argument and the limit, leaving memoryStats() and the buffer pool as they were and no GPU error behind.
//
// Most cases run on a runtime whose device *reports* a 1 MiB storage binding (a proxy over a real Dawn device),
// so that the sizes which must be refused are small enough to build their inputs cheaply.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  WpcArgumentError,
  adam,
  batches,
  computeBpcActivityGrad,
  computeEpcErrorGrad,
  computeHpcParamGrads,
  computeLinearActivityHessian,
  computeLinearActivitySolution,
  computeLinearEquilibEnergyGrads,
  computeLinearEquilibRescaling,
  computePcActivityGrad,
  computePcParamGrads,
  epcEnergy,
  hpcEnergy,
  imageGridPng,
  initActivitiesFromNormal,
  initActivitiesWithAmort,
  initActivitiesWithFfwd,
  initBpcActivities,
  initEpcErrors,
  initFromDevice,
  linearEquilibEnergy,
  makeHpcStep,
  makeMlp,
  makePcStep,
  matmul,
  mlpFromBuffer,
  mlpFromWeights,
  oneHot,
  pcEnergy,
  sgd,
  solveInference,
  testDiscriminativePc,
  testGenerativePc,
  testHpc,
  updateLinearEquilibEnergyParams,
  updatePcActivities,
  updatePcParams,
  type Model,
  type Runtime,
  type Tensor,
} from '../../src/node.js';
import { epochOrder } from '../../src/data/dataset.js';
import { dawnGpu } from '../../src/runtime/dawn.js';
import { MAX_SOLVE_STEPS } from '../../src/pc/solve/grid.js';
import { useRuntime } from '../support/helpers.js';

const rt = useRuntime();

/** Limits the proxy device reports: 1 MiB per storage binding, 4 MiB per buffer. */
const SMALL = { maxStorageBufferBindingSize: 2 ** 20, maxBufferSize: 2 ** 22 };

/** A runtime on a real device whose `limits` report SMALL (everything else is the device's own). */
async function smallRuntime(): Promise<{ runtime: Runtime; device: GPUDevice }> {
  const gpu = await dawnGpu([]);
  const adapter = (await gpu.requestAdapter())!;
  const device = await adapter.requestDevice({
    requiredFeatures: [...adapter.features].filter((f) => f === 'subgroups') as GPUFeatureName[],
  });
  const limits: Record<string, number> = {};
  for (const key in device.limits) limits[key] = (device.limits as unknown as Record<string, number>)[key]!;
  Object.assign(limits, SMALL);
  const proxy = new Proxy(device, {
    get(target, key) {
      if (key === 'limits') return limits;
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { runtime: initFromDevice({ device: proxy, adapterInfo: adapter.info }), device };
}

/**
 * Runs `attempt` and checks that it is refused with a WpcArgumentError whose message starts with `fn` and
 * matches each of `mentions`, and that nothing was allocated or left behind on `runtime`.
 */
async function refused(
  runtime: Runtime,
  fn: string,
  mentions: (string | RegExp)[],
  attempt: () => unknown,
): Promise<void> {
  const before = runtime.memoryStats();
  const created = runtime.pool.stats.created;
  let error: unknown;
  try {
    await attempt();
  } catch (e) {
    error = e;
  }
  expect(error, `${fn}: no error`).toBeInstanceOf(WpcArgumentError);
  const message = (error as Error).message;
  expect(message.startsWith(`${fn}:`), `${fn}: ${message}`).toBe(true);
  for (const m of mentions) expect(message).toMatch(m);
  expect(runtime.memoryStats(), `${fn}: memoryStats`).toEqual(before);
  expect(runtime.pool.stats.created, `${fn}: buffers created`).toBe(created);
  await runtime.finish(); // throws a WpcGpuError if the GPU reported an error meanwhile
}

describe('sizes past the device limits (a device reporting 1 MiB per storage binding)', () => {
  let small: { runtime: Runtime; device: GPUDevice };
  let model: Model;
  let linear: Model;
  let amortiser: Model;
  let bottomUp: Model;
  /** Rows whose workspace is past 1 MiB, while every [B, d] tensor of the model is well below it. */
  const B = 1000;
  const x = new Float32Array(B * 4);
  const y = new Float32Array(B * 3);
  let acts: Tensor[];
  let hidden: Tensor[];
  /** The amortiser's activities for hybrid PC: [a_L, a_2, a_1, dummy]. */
  let amortActs: Tensor[];
  beforeAll(async () => {
    small = await smallRuntime();
    const r = small.runtime;
    model = makeMlp(r, { seed: 1, inputDim: 4, width: 32, depth: 3, outputDim: 3, actFn: 'tanh' });
    linear = makeMlp(r, { seed: 2, inputDim: 4, width: 32, depth: 3, outputDim: 3, actFn: 'linear' });
    amortiser = makeMlp(r, { seed: 3, inputDim: 3, width: 32, depth: 3, outputDim: 4, actFn: 'tanh' });
    bottomUp = amortiser;
    acts = [r.zeros([B, 32]), r.zeros([B, 32]), r.zeros([B, 3])];
    hidden = acts.slice(0, 2);
    amortActs = [r.zeros([B, 4]), acts[0]!, acts[1]!, r.zeros([B, 3])];
  });
  afterAll(() => {
    small.runtime.dispose();
    small.device.destroy();
  });
  const R = () => small.runtime;

  it('models: the parameters of makeMlp, mlpFromWeights and mlpFromBuffer', async () => {
    await refused(R(), 'makeMlp', ['options.width 100000', /maxStorageBufferBindingSize/, /1\.0 MiB/], () =>
      makeMlp(R(), { seed: 0, inputDim: 4, width: 100_000, depth: 2, outputDim: 3, actFn: 'tanh' }),
    );
    await refused(R(), 'makeMlp', ['options.inputDim 1000000000'], () =>
      makeMlp(R(), { seed: 0, inputDim: 1e9, width: 2, depth: 2, outputDim: 3, actFn: 'tanh' }),
    );
    await refused(R(), 'makeMlp', ['options.outputDim 1000000000'], () =>
      makeMlp(R(), { seed: 0, inputDim: 2, width: 2, depth: 2, outputDim: 1e9, actFn: 'tanh' }),
    );
    await refused(R(), 'makeMlp', ['options.width 600', /\[4, 600 ×2, 3\]/], () =>
      makeMlp(R(), { seed: 0, inputDim: 4, width: 600, depth: 3, outputDim: 3, actFn: 'tanh' }),
    );
    await refused(R(), 'mlpFromWeights', ['options.dims', /\[1000000 ×2\]/], () =>
      mlpFromWeights(R(), { dims: [1e6, 1e6], weights: [[1]], actFn: 'tanh' }),
    );
    await refused(R(), 'mlpFromWeights', ['options.dims.length'], () =>
      mlpFromWeights(R(), { dims: Array<number>(10_002).fill(1), weights: [], actFn: 'tanh' }),
    );
    const buffer = R().device.createBuffer({ size: 16, usage: 0x04 | 0x80 });
    await refused(R(), 'mlpFromBuffer', ['options.dims'], () =>
      mlpFromBuffer(R(), { dims: [1000, 1000], buffer, actFn: 'tanh' }),
    );
    buffer.destroy();
  });

  it('tensors: runtime.zeros, runtime.empty, runtime.tensor and runtime.wrap', async () => {
    await refused(R(), 'runtime.zeros', ['shape [1000, 1000]', /3\.8 MiB/], () => R().zeros([1000, 1000]));
    await refused(R(), 'runtime.empty', ['shape [1099511627776]'], () => R().empty([2 ** 40]));
    await refused(R(), 'runtime.zeros', ['shape must be an array of positive integers'], () => R().zeros([1e300]));
    await refused(R(), 'runtime.tensor', ['shape [300000]'], () => R().tensor(new Float32Array(300_000), [300_000]));
    const buffer = R().device.createBuffer({ size: 16, usage: 0x04 | 0x80 });
    await refused(R(), 'runtime.wrap', ['shape [1000000000]'], () => R().wrap(buffer, [1e9]));
    // Ranges that each fit, together past the 4 MiB a staging buffer may hold.
    const parts = Array.from({ length: 6 }, () => R().zeros([200_000]));
    await refused(R(), 'runtime.read', [/ranges \(6\)/, /maxBufferSize/], () =>
      R().read(parts.map((t) => ({ buffer: t.buffer, byteOffset: 0, byteLength: t.byteLength }))),
    );
    for (const t of parts) t.dispose();
    buffer.destroy();
  });

  it('initialisations: initActivitiesFromNormal, initEpcErrors, initActivitiesWithFfwd, initActivitiesWithAmort, initBpcActivities', async () => {
    await refused(R(), 'initActivitiesFromNormal', ['options.batchSize 100000'], () =>
      initActivitiesFromNormal(model, { seed: 1, batchSize: 100_000 }),
    );
    await refused(R(), 'initEpcErrors', ['options.batchSize 100000'], () =>
      initEpcErrors(model, { batchSize: 100_000 }),
    );
    await refused(R(), 'initActivitiesWithFfwd', [/input \(1000 rows\)/, /at most \d+ rows fit/], () =>
      initActivitiesWithFfwd(model, x),
    );
    await refused(R(), 'initActivitiesWithAmort', [/input \(1000 rows\)/], () =>
      initActivitiesWithAmort(amortiser, model, y),
    );
    await refused(R(), 'initBpcActivities', [/output \(1000 rows\)/], () => initBpcActivities(model, bottomUp, y));
  });

  it('energies, gradients and updates: the workspace of a batch', async () => {
    const optim = sgd({ lr: 0.1 });
    const actState = optim.init(acts);
    const paramState = optim.init(model);
    const rows = /output \(1000 rows\)/;
    await refused(R(), 'pcEnergy', [rows, /working memory/], () => pcEnergy(model, acts, y, { input: x }));
    await refused(R(), 'computePcActivityGrad', [rows], () => computePcActivityGrad(model, acts, y, { input: x }));
    await refused(R(), 'computePcParamGrads', [rows], () => computePcParamGrads(model, acts, y, { input: x }));
    await refused(R(), 'updatePcActivities', [rows], () =>
      updatePcActivities(model, acts, optim, actState, y, { input: x }),
    );
    await refused(R(), 'updatePcParams', [rows], () => updatePcParams(model, acts, optim, paramState, y, { input: x }));
    await refused(R(), 'epcEnergy', [rows], () => epcEnergy(model, hidden, y, { input: x }));
    await refused(R(), 'computeEpcErrorGrad', [rows], () => computeEpcErrorGrad(model, hidden, y, { input: x }));
    await refused(R(), 'computeBpcActivityGrad', [rows], () =>
      computeBpcActivityGrad(model, bottomUp, hidden, y, { input: x }),
    );
    await refused(R(), 'hpcEnergy', [/equilibActivities \(1000 rows\)/], () =>
      hpcEnergy(amortiser, acts, amortActs, { input: y, output: x }),
    );
    await refused(R(), 'computeHpcParamGrads', [/equilibActivities \(1000 rows\)/], () =>
      computeHpcParamGrads(amortiser, acts, amortActs, { input: y, output: x }),
    );
    // A test batch needs less (no solver families): 3000 rows are past 1 MiB.
    await refused(R(), 'testDiscriminativePc', [/output \(3000 rows\)/], () =>
      testDiscriminativePc(model, new Float32Array(3000 * 3), new Float32Array(3000 * 4)),
    );
    // Σ_l d_l² = 600² floats of Gram matrices for the spectral penalty: past 1 MiB, while the model and batch are tiny.
    const wide = makeMlp(R(), { seed: 4, inputDim: 600, width: 2, depth: 2, outputDim: 1, actFn: 'tanh' });
    const wideActs = [R().zeros([1, 2]), R().zeros([1, 1])];
    await refused(R(), 'pcEnergy', ['options.spectralPenalty 0.1', /Gram/], () =>
      pcEnergy(wide, wideActs, new Float32Array(1), { input: new Float32Array(600), spectralPenalty: 0.1 }),
    );
    wide.dispose();
    for (const t of wideActs) t.dispose();
    actState.dispose();
    paramState.dispose();
  });

  it('solves and training steps: the workspace, the recording buffers and the stage records', async () => {
    const optim = adam({ lr: 1e-3 });
    const state = optim.init(model);
    const one = new Float32Array(3);
    const input = new Float32Array(4);
    const small1 = [R().zeros([1, 32]), R().zeros([1, 32]), R().zeros([1, 3])];
    await refused(R(), 'makePcStep', [/output \(1000 rows\)/], () => makePcStep(model, optim, state, y, { input: x }));
    await refused(R(), 'solveInference', [/output \(1000 rows\)/], () => solveInference(model, acts, y, { input: x }));
    await refused(R(), 'solveInference', ['options.maxRecords 100000', /layer energies/], () =>
      solveInference(model, small1, one, { input, recordIters: true, maxRecords: 100_000 }),
    );
    await refused(R(), 'solveInference', ['options.maxRecords 5000', /activities of 5000 recorded states/], () =>
      solveInference(model, small1, one, { input, recordIters: true, recordActivities: true, maxRecords: 5000 }),
    );
    await refused(R(), 'makePcStep', [/options\.steps 20000/, /stage records/, /maxBufferSize/], () =>
      makePcStep(model, optim, state, one, { input, solver: sgd({ lr: 0.1 }), steps: 20_000 }),
    );
    await refused(R(), 'makePcStep', [/options\.maxT1 \/ options\.dt/, /stage records/], () =>
      makePcStep(model, optim, state, one, {
        input,
        solver: 'tsit5',
        stepsizeController: 'constant',
        dt: 0.005,
        maxT1: 20,
      }),
    );
    await refused(R(), 'testGenerativePc', [/output \(1000 rows\)/], () =>
      testGenerativePc(amortiser, x, y, { seed: 1, maxT1: 1 }),
    );
    const plain = sgd({ lr: 0.1 });
    const hpcStates = [plain.init(model), plain.init(amortiser)] as const;
    await refused(R(), 'makeHpcStep', [/output \(1000 rows\)/], () =>
      makeHpcStep(model, amortiser, [plain, plain], hpcStates, y, { input: x }),
    );
    await refused(R(), 'testHpc', [/output \(1000 rows\)/], () =>
      testHpc(model, amortiser, y, x, { seed: 1, maxT1: 1 }),
    );
    state.dispose();
    for (const t of small1) t.dispose();
  });

  it('linear theory and matmul: batch tensors, the chains, the Hessian blocks, the product', async () => {
    const optim = sgd({ lr: 0.1 });
    const state = optim.init(linear);
    const xs = new Float32Array(10_000 * 4);
    const ys = new Float32Array(10_000 * 3);
    await refused(R(), 'linearEquilibEnergy', [/x \(10000 rows\)/], () => linearEquilibEnergy(linear, xs, ys));
    await refused(R(), 'computeLinearEquilibEnergyGrads', [/x \(10000 rows\)/], () =>
      computeLinearEquilibEnergyGrads(linear, xs, ys),
    );
    await refused(R(), 'updateLinearEquilibEnergyParams', [/x \(10000 rows\)/], () =>
      updateLinearEquilibEnergyParams(linear, optim, state, xs, ys),
    );
    await refused(R(), 'computeLinearActivitySolution', [/x \(10000 rows\)/], () =>
      computeLinearActivitySolution(linear, xs, ys),
    );
    // 600 hidden units: a Gram block W_iᵀW_i of 600² floats is past 1 MiB (the model itself is not).
    const wide = makeMlp(R(), { seed: 5, inputDim: 1, width: 600, depth: 2, outputDim: 1, actFn: 'linear' });
    await refused(R(), 'computeLinearActivityHessian', ['model [1, 600, 1]', /Gram block/], () =>
      computeLinearActivityHessian(wide),
    );
    await refused(R(), 'computeLinearActivitySolution', ['model [1, 600, 1]', /Gram block/], () =>
      computeLinearActivitySolution(wide, new Float32Array(1), new Float32Array(1), { method: 'block-cholesky' }),
    );
    wide.dispose();
    // A 600-unit output layer: its chain J_i (d_y × d_y at least) is past 1 MiB.
    const tall = makeMlp(R(), { seed: 6, inputDim: 1, width: 1, depth: 2, outputDim: 600, actFn: 'linear' });
    await refused(R(), 'computeLinearEquilibRescaling', ['model [1 ×2, 600]', /chains/], () =>
      computeLinearEquilibRescaling(tall),
    );
    tall.dispose();
    const a = R().zeros([1000, 1]);
    const b = R().zeros([1, 1000]);
    await refused(R(), 'matmul', [/op\(a\)·op\(b\) \(1000 × 1000\)/], () => matmul(a, b));
    a.dispose();
    b.dispose();
    state.dispose();
  });

  it('optimiser state: the moments of a target must fit one storage binding', async () => {
    const wide = makeMlp(R(), { seed: 7, inputDim: 500, width: 300, depth: 1, outputDim: 300, actFn: 'tanh' }); // 150,000 parameters
    await refused(R(), 'Optimizer.init', ['target (150000 parameters)', /adam's 2 moment/], () =>
      adam({ lr: 1e-3 }).init(wide),
    );
    wide.dispose();
  });
});

describe("sizes past WPC's documented caps (the real device)", () => {
  let model: Model;
  beforeAll(() => {
    model = makeMlp(rt(), { seed: 1, inputDim: 4, width: 8, depth: 2, outputDim: 3, actFn: 'tanh' });
  });
  afterAll(() => model.dispose());
  const one = new Float32Array(3);
  const input = new Float32Array(4);

  it("the issue's examples: width 1e6 and 1e9, steps 1e12 and 1e8, dt 1e-7", async () => {
    await refused(rt(), 'makeMlp', ['options.width 1000000', /maxStorageBufferBindingSize/], () =>
      makeMlp(rt(), { seed: 0, inputDim: 784, width: 1e6, depth: 4, outputDim: 10, actFn: 'tanh' }),
    );
    await refused(rt(), 'makeMlp', ['options.width 1000000000'], () =>
      makeMlp(rt(), { seed: 0, inputDim: 784, width: 1e9, depth: 4, outputDim: 10, actFn: 'tanh' }),
    );
    const optim = adam({ lr: 1e-3 });
    const state = optim.init(model);
    for (const steps of [1e12, 1e8, MAX_SOLVE_STEPS + 1]) {
      await refused(
        rt(),
        'makePcStep',
        ['options.steps', String(MAX_SOLVE_STEPS).replace(/\B(?=(\d{3})+(?!\d))/g, ',')],
        () => makePcStep(model, optim, state, one, { input, solver: sgd({ lr: 0.1 }), steps }),
      );
    }
    await refused(
      rt(),
      'makePcStep',
      ['options.dt 1e-7', /more than 262,144 constant steps/, /options\.maxSteps = 4096/],
      () => makePcStep(model, optim, state, one, { input, solver: 'euler', stepsizeController: 'constant', dt: 1e-7 }),
    );
    expect(state.count).toBe(0);
    state.dispose();
  });

  it('solver options: maxSteps, pollEvery, a grid longer than maxSteps, times beyond float32, fine fixed-step grids', async () => {
    const acts = [rt().zeros([1, 8]), rt().zeros([1, 3])];
    const solve = (o: object) => () => solveInference(model, acts, one, { input, ...o });
    await refused(rt(), 'solveInference', ['options.maxSteps', /262,144/], solve({ maxSteps: 1e12 }));
    await refused(rt(), 'solveInference', ['options.pollEvery', /262,144/], solve({ pollEvery: 1e9 }));
    await refused(
      rt(),
      'solveInference',
      ['options.dt 0.004', /5000 constant steps/, /options\.maxSteps = 4096/],
      solve({ solver: 'euler', stepsizeController: 'constant', dt: 0.004 }),
    );
    await refused(rt(), 'solveInference', ['options.maxT1', /float32/], solve({ maxT1: 1e39 }));
    await refused(rt(), 'solveInference', ['options.dt', /float32/], solve({ dt: 1e39 }));
    await refused(
      rt(),
      'solveInference',
      ['options.dt 1e-300', /more than 262,144/],
      solve({ solver: 'heun', stepsizeController: 'constant', dt: 1e-300 }),
    );
    await refused(
      rt(),
      'solveInference',
      ['options.dt 0.0001', /dopri8/, /stage records/],
      solve({ solver: 'dopri8', stepsizeController: 'constant', dt: 1e-4, maxT1: 20, maxSteps: MAX_SOLVE_STEPS }),
    );
    for (const t of acts) t.dispose();
  });

  it('host arrays: imageGridPng, oneHot, epochOrder and batches', async () => {
    const images = new Float32Array(4 * 784);
    const check = (fn: string, mentions: (string | RegExp)[], attempt: () => unknown) =>
      refused(rt(), fn, mentions, attempt);
    await check('imageGridPng', [/pixels/, /columns/], () => imageGridPng(images, 4, { columns: 4, padding: 100_000 }));
    await check('imageGridPng', ['options.padding'], () => imageGridPng(images, 4, { padding: 1e300 }));
    await check('oneHot', ['numClasses', /1e\+?12|1000000000000/], () => oneHot([1, 2, 3], 1e12));
    await check('epochOrder', ['count'], () => epochOrder(2 ** 32, false));
    await check('batches', ['options.batchSize'], () =>
      batches(
        {
          name: 'd',
          images: new Float32Array(4),
          labels: new Uint8Array(1),
          count: 1,
          inputDim: 4,
          imageShape: [2, 2],
          numClasses: 10,
          normalization: { mean: 0, std: 1 },
        },
        { batchSize: 1e300, shuffle: false },
      ),
    );
  });
});
