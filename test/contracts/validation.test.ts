// Argument validation of every public PC function, and the rule that bad input never corrupts state: each check
// must fail with a WpcArgumentError whose message names the argument and states what was expected and what was
// given, before anything touches the weights or the optimiser state.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACTIVATIONS,
  type Model,
  type OptState,
  WpcArgumentError,
  WpcGpuError,
  WpcSolverError,
  adam,
  computeAccuracy,
  computePcActivityGrad,
  computePcParamGrads,
  crossEntropyLoss,
  init,
  initActivitiesWithFfwd,
  makeMlp,
  makePcStep,
  mlpFromWeights,
  mseLoss,
  pcEnergy,
  sgd,
  solveInference,
  testDiscriminativePc,
  updatePcActivities,
  updatePcParams,
  bpcEnergy,
  epcEnergy,
  initActivitiesFromNormal,
  initEpcErrors,
  makeHpcStep,
  makeSkipModel,
  testGenerativePc,
  testHpc,
  updateBpcParams,
  updateEpcErrors,
  type BatchData,
  type MakeMlpOptions,
  type PcStepOptions,
  type Runtime,
  type Tensor,
} from '../../src/node.js';
import { Random } from '../../src/util/random.js';
import { useRuntime } from '../support/helpers.js';

const rt = useRuntime();

/** A second runtime (its own device), for "tensor from another runtime" checks. */
let rt2: Runtime | undefined;
beforeAll(async () => {
  rt2 = await init();
});
afterAll(() => rt2?.dispose());
const other = (): Runtime => {
  if (!rt2) throw new Error('second runtime not initialised');
  return rt2;
};

/** Passes a deliberately ill-typed value through the type checker. */
const bad = <T>(value: unknown): T => value as T;

/**
 * Runs `run` (sync throw or async rejection both count) and checks it fails with `type` and a message containing
 * every `part` (strings literally, regexps by match). Returns the message.
 */
async function fails(
  run: () => unknown,
  parts: readonly (string | RegExp)[],
  type: new (...args: never[]) => Error = WpcArgumentError,
): Promise<string> {
  let error: unknown;
  let threw = false;
  try {
    await run();
  } catch (e) {
    threw = true;
    error = e;
  }
  expect(threw, `expected a ${type.name} mentioning ${parts.map(String).join(', ')}, but the call succeeded`).toBe(
    true,
  );
  expect(error, `error was ${String(error)}`).toBeInstanceOf(type);
  const message = (error as Error).message;
  for (const part of parts) {
    if (typeof part === 'string') expect(message).toContain(part);
    else expect(message).toMatch(part);
  }
  return message;
}

// The network every test uses: 6 → 8 → 8 → 3, batches of 4.
const DIMS = [6, 8, 8, 3] as const;
const B = 4;
const MLP: MakeMlpOptions = { seed: 1, inputDim: 6, width: 8, depth: 3, outputDim: 3, actFn: 'tanh', useBias: true };
const PARAMS = 6 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3;
const ACTIVITY_VALUES = B * (8 + 8 + 3);

function batch(seed: number, rows = B): { x: Float32Array; y: Float32Array } {
  const rng = new Random(seed);
  const x = Float32Array.from({ length: rows * DIMS[0] }, () => rng.normal());
  const y = new Float32Array(rows * DIMS[3]);
  for (let r = 0; r < rows; r++) y[r * DIMS[3] + rng.nextInt(DIMS[3])] = 1;
  return { x, y };
}

interface Fixture {
  model: Model;
  x: Float32Array;
  y: Float32Array;
  input: Tensor;
  output: Tensor;
  activities: Tensor[];
}

async function fixture(seed = 1): Promise<Fixture> {
  const model = makeMlp(rt(), { ...MLP, seed });
  const { x, y } = batch(seed);
  const input = rt().tensor(x, [B, DIMS[0]]);
  const output = rt().tensor(y, [B, DIMS[3]]);
  const activities = await initActivitiesWithFfwd(model, input);
  return { model, x, y, input, output, activities };
}

let fx: Fixture;
beforeAll(async () => {
  fx = await fixture();
});

describe('makeMlp', () => {
  it('refuses a missing options object, unknown keys and bad values, naming the option', async () => {
    await fails(() => makeMlp(rt(), bad(undefined)), ['makeMlp', 'options', 'an object', 'got undefined']);
    await fails(() => makeMlp(rt(), bad({ ...MLP, widht: 8 })), ['makeMlp', 'unknown option "widht"', '"width"']);
    await fails(
      () => makeMlp(rt(), bad({ ...MLP, actFn: 'sigmoid' })),
      ['makeMlp', 'options.actFn', ...ACTIVATIONS.map((a) => `"${a}"`), 'got "sigmoid"'],
    );
    await fails(() => makeMlp(rt(), { ...MLP, inputDim: 0 }), ['options.inputDim', 'a positive integer', 'got 0']);
    await fails(() => makeMlp(rt(), { ...MLP, width: 2.5 }), ['options.width', 'a positive integer', 'got 2.5']);
    await fails(() => makeMlp(rt(), { ...MLP, depth: -1 }), ['options.depth', 'an integer in [1, 10000]', 'got -1']);
    await fails(() => makeMlp(rt(), { ...MLP, outputDim: Number.NaN }), ['options.outputDim', 'got NaN']);
    await fails(() => makeMlp(rt(), { ...MLP, seed: 0.5 }), ['options.seed', 'a safe integer', 'got 0.5']);
    await fails(() => makeMlp(rt(), bad({ ...MLP, useBias: 'yes' })), ['options.useBias', 'a boolean', 'got "yes"']);
  });

  it('refuses something that is not a runtime, naming the argument', async () => {
    await fails(() => makeMlp(bad(undefined), MLP), ['makeMlp', 'runtime', 'got undefined']);
    await fails(() => makeMlp(bad({}), MLP), ['makeMlp', 'runtime']);
  });

  it('refuses a disposed runtime', async () => {
    const dead = await init();
    dead.dispose();
    await fails(() => makeMlp(dead, MLP), ['makeMlp', 'disposed'], Error);
  });
});

describe('mlpFromWeights', () => {
  const good = async () => fx.model.toArrays();
  const dims = [...DIMS];

  it('refuses wrong dims, wrong numbers and sizes of weights and biases', async () => {
    const { weights, biases } = await good();
    const b = biases.map((v) => v!);
    await fails(
      () => mlpFromWeights(rt(), { dims: [6], weights: [], actFn: 'tanh' }),
      ['mlpFromWeights', 'options.dims', 'at least two positive integers', 'got an array of length 1'],
    );
    await fails(
      () => mlpFromWeights(rt(), { dims: [6, 0, 3], weights, actFn: 'tanh' }),
      ['options.dims', 'positive integers'],
    );
    await fails(
      () => mlpFromWeights(rt(), { dims, weights: weights.slice(0, 2), actFn: 'tanh' }),
      ['options.weights', 'an array of 3 weight matrices', 'got an array of length 2'],
    );
    await fails(
      () => mlpFromWeights(rt(), { dims, weights: [weights[0]!, weights[1]!.slice(1), weights[2]!], actFn: 'tanh' }),
      ['options.weights[1]', '8×8 = 64 elements', 'got 63'],
    );
    await fails(
      () => mlpFromWeights(rt(), { dims, weights, biases: b.slice(0, 2), actFn: 'tanh' }),
      ['options.biases', 'null or an array of 3 bias vectors', 'got an array of length 2'],
    );
    await fails(
      () => mlpFromWeights(rt(), { dims, weights, biases: [b[0]!, b[1]!.slice(1), b[2]!], actFn: 'tanh' }),
      ['options.biases[1]', 'an array of 8 numbers', 'got a Float32Array of length 7'],
    );
  });

  it('refuses NaN and infinities in weights and biases, giving the index', async () => {
    const { weights, biases } = await good();
    const w0 = weights[0]!.slice();
    w0[5] = Number.NaN;
    await fails(
      () => mlpFromWeights(rt(), { dims, weights: [w0, weights[1]!, weights[2]!], actFn: 'tanh' }),
      ['options.weights[0]', 'finite', 'got NaN at index 5'],
    );
    const w2 = Array.from(weights[2]!);
    w2[7] = -Infinity;
    await fails(
      () => mlpFromWeights(rt(), { dims, weights: [weights[0]!, weights[1]!, w2], actFn: 'tanh' }),
      ['options.weights[2]', 'finite', 'got -Infinity at index 7'],
    );
    const b2 = biases[2]!.slice();
    b2[1] = Infinity;
    await fails(
      () => mlpFromWeights(rt(), { dims, weights, biases: [biases[0]!, biases[1]!, b2], actFn: 'tanh' }),
      ['options.biases[2]', 'finite', 'got Infinity at index 1'],
    );
  });

  it('refuses an unknown activation and unknown option keys', async () => {
    const { weights } = await good();
    await fails(
      () => mlpFromWeights(rt(), { dims, weights, actFn: bad('sigmoid') }),
      ['mlpFromWeights', 'options.actFn', '"tanh"', 'got "sigmoid"'],
    );
    await fails(
      () => mlpFromWeights(rt(), bad({ dims, weights, bias: null, actFn: 'tanh' })),
      ['mlpFromWeights', 'unknown option "bias"', '"biases"'],
    );
    await fails(() => mlpFromWeights(rt(), bad(null)), ['mlpFromWeights', 'options', 'an object', 'got null']);
  });

  it('refuses something that is not a runtime, naming the argument', async () => {
    const { weights } = await good();
    await fails(
      () => mlpFromWeights(bad(undefined), { dims, weights, actFn: 'tanh' }),
      ['mlpFromWeights', 'runtime', 'got undefined'],
    );
  });
});

describe('runtime.tensor and runtime.zeros', () => {
  it('refuse data whose length does not match the shape', async () => {
    await fails(
      () => rt().tensor(new Float32Array(5), [2, 3]),
      ['runtime.tensor', 'data has 5 elements', 'shape [2, 3] needs 6'],
    );
    await fails(() => rt().tensor([1, 2, 3, 4], [3]), ['runtime.tensor', 'data has 4 elements', 'shape [3] needs 3']);
  });

  it('refuse NaN and infinities, giving the index', async () => {
    await fails(() => rt().tensor([1, Number.NaN], [2]), ['runtime.tensor', 'data', 'finite', 'got NaN at index 1']);
    await fails(
      () => rt().tensor(Float32Array.of(0, 1, Infinity, 2), [2, 2]),
      ['runtime.tensor', 'data', 'got Infinity at index 2'],
    );
    await fails(() => rt().tensor(Float32Array.of(-Infinity), [1]), ['runtime.tensor', 'got -Infinity at index 0']);
  });

  it('refuse bad shapes and data of the wrong type', async () => {
    await fails(
      () => rt().tensor(new Float32Array(0), [2, 0]),
      ['runtime.tensor', 'shape', 'positive integers', 'got [2,0]'],
    );
    await fails(() => rt().tensor(new Float32Array(2), [2.5]), ['runtime.tensor', 'shape', 'got [2.5]']);
    await fails(() => rt().tensor(new Float32Array(2), bad('2')), ['runtime.tensor', 'shape', 'got "2"']);
    await fails(
      () => rt().tensor(bad(new Float64Array(3)), [3]),
      ['runtime.tensor', 'data', 'a Float32Array or an array of numbers', 'got a Float64Array of length 3'],
    );
    await fails(() => rt().zeros([3, -1]), ['runtime.zeros', 'shape', 'positive integers', 'got [3,-1]']);
    await fails(() => rt().zeros(bad(undefined)), ['runtime.zeros', 'shape', 'got undefined']);
  });

  it('refuse to allocate on a disposed runtime', async () => {
    const dead = await init();
    dead.dispose();
    await fails(() => dead.tensor([1, 2], [2]), ['runtime.tensor', 'disposed'], WpcGpuError);
    await fails(() => dead.zeros([2]), ['runtime.zeros', 'disposed'], WpcGpuError);
  });
});

// The three energy functions share their checks; each is called with (model, activities, output, options).
const ENERGY_FNS = [
  ['pcEnergy', pcEnergy],
  ['computePcActivityGrad', computePcActivityGrad],
  ['computePcParamGrads', computePcParamGrads],
] as const;

describe.each(ENERGY_FNS)('%s', (name, fn) => {
  const call = (over: { model?: Model; activities?: readonly Tensor[]; output?: BatchData; options?: object } = {}) =>
    fn(
      over.model ?? fx.model,
      over.activities ?? fx.activities,
      over.output ?? fx.output,
      bad(over.options ?? { input: fx.input }),
    );

  it('accepts the fixture (the checks below are not failing for some other reason)', async () => {
    const r = await call();
    expect(r).toBeDefined();
  });

  it('refuses outputs and inputs of the wrong width or batch size', async () => {
    await fails(
      () => call({ output: new Float32Array(B * 4) }),
      [name, 'output', 'B×3 values', 'got a Float32Array of length 16'],
    );
    await fails(() => call({ output: rt().zeros([B, 4]) }), [name, 'output must have shape [B, 3]', 'got [4, 4]']);
    await fails(
      () => call({ options: { input: rt().zeros([B, 5]) } }),
      [name, 'options.input must have shape [B, 6]', 'got [4, 5]'],
    );
    await fails(
      () => call({ options: { input: new Float32Array(B * 6 + 1) } }),
      [name, 'options.input', 'B×6 values', 'got a Float32Array of length 25'],
    );
    await fails(
      () => call({ options: { input: rt().zeros([B + 1, 6]) } }),
      [name, 'options.input has 5 rows but output has 4'],
    );
    await fails(() => call({ output: new Float32Array(0) }), [name, 'output', 'got a Float32Array of length 0']);
    await fails(
      () => call({ output: bad([1, 2, 3]) }),
      [name, 'output', 'a Tensor or Float32Array of shape [B, 3]', 'got an array of length 3'],
    );
  });

  it('refuses NaN and infinities in Float32Array batches', async () => {
    const x = fx.x.slice();
    x[3] = Number.NaN;
    await fails(() => call({ options: { input: x } }), [name, 'options.input', 'finite', 'got NaN at index 3']);
    const y = fx.y.slice();
    y[11] = Infinity;
    await fails(() => call({ output: y }), [name, 'output', 'finite', 'got Infinity at index 11']);
  });

  it('refuses the wrong number of activities and activities of the wrong shape', async () => {
    const a = fx.activities;
    await fails(
      () => call({ activities: a.slice(0, 2) }),
      [name, 'activities', 'an array of 3 tensors', 'got an array of length 2'],
    );
    await fails(() => call({ activities: [...a, a[0]!] }), [name, 'activities', 'got an array of length 4']);
    await fails(() => call({ activities: bad(a[0]) }), [name, 'activities', 'an array of 3 tensors']);
    await fails(
      () => call({ activities: [a[0]!, rt().zeros([B, 7]), a[2]!] }),
      [name, 'activities[1] must have shape [4, 8]', 'got [4, 7]'],
    );
    await fails(
      () => call({ activities: [a[0]!, a[1]!, rt().zeros([B, 8])] }),
      [name, 'activities[2] must have shape [4, 3]', 'got [4, 8]'],
    );
    await fails(
      () => call({ activities: [rt().zeros([B, 8, 1]), a[1]!, a[2]!] }),
      [name, 'activities[0] must have shape [4, 8]', 'got [4, 8, 1]'],
    );
    await fails(
      () => call({ activities: [a[0]!, bad(new Float32Array(B * 8)), a[2]!] }),
      [name, 'activities[1] must be a Tensor', 'Float32Array'],
    );
  });

  it('refuses a missing input, an unknown loss and unknown option keys', async () => {
    await fails(() => call({ options: {} }), [name, 'no options.input', 'pass options.input for supervised PC']);
    await fails(
      () => fn(fx.model, fx.activities, fx.output, bad(undefined)),
      [name, 'options must be an object such as { input }', 'got undefined'],
    );
    await fails(
      () => call({ options: { input: fx.input, loss: 'l1' } }),
      [name, 'options.loss', '"mse", "ce"', 'got "l1"'],
    );
    await fails(
      () => call({ options: { input: fx.input, los: 'ce' } }),
      [name, 'unknown option "los" in options', '"loss"'],
    );
  });

  it('refuses disposed tensors and models, tensors of another runtime and non-models', async () => {
    const gone = rt().zeros([B, 8]);
    gone.dispose();
    await fails(
      () => call({ activities: [gone, fx.activities[1]!, fx.activities[2]!] }),
      [name, 'activities[0] has been disposed'],
    );
    const goneOut = rt().zeros([B, 3]);
    goneOut.dispose();
    await fails(() => call({ output: goneOut }), [name, 'output has been disposed']);
    await fails(
      () => call({ options: { input: other().zeros([B, 6]) } }),
      [name, 'options.input belongs to a different runtime'],
    );
    await fails(
      () => call({ activities: [fx.activities[0]!, other().zeros([B, 8]), fx.activities[2]!] }),
      [name, 'activities[1] belongs to a different runtime'],
    );
    const dead = makeMlp(rt(), MLP);
    dead.dispose();
    await fails(() => call({ model: dead }), [name, 'the model has been disposed']);
    await fails(() => call({ model: bad({ dims: DIMS }) }), [name, 'model must be a Model', 'got an object']);
  });
});

describe('initActivitiesWithFfwd', () => {
  it('refuses bad inputs, naming the argument', async () => {
    await fails(
      () => initActivitiesWithFfwd(fx.model, rt().zeros([B, 5])),
      ['initActivitiesWithFfwd', 'input must have shape [B, 6]', 'got [4, 5]'],
    );
    await fails(
      () => initActivitiesWithFfwd(fx.model, new Float32Array(7)),
      ['initActivitiesWithFfwd', 'input', 'B×6 values', 'got a Float32Array of length 7'],
    );
    const x = fx.x.slice();
    x[0] = -Infinity;
    await fails(
      () => initActivitiesWithFfwd(fx.model, x),
      ['initActivitiesWithFfwd', 'input', 'got -Infinity at index 0'],
    );
    await fails(
      () => initActivitiesWithFfwd(fx.model, bad(undefined)),
      ['initActivitiesWithFfwd', 'input', 'a Tensor or Float32Array of shape [B, 6]', 'got undefined'],
    );
    await fails(
      () => initActivitiesWithFfwd(fx.model, other().zeros([B, 6])),
      ['initActivitiesWithFfwd', 'input belongs to a different runtime'],
    );
    const gone = rt().zeros([B, 6]);
    gone.dispose();
    await fails(() => initActivitiesWithFfwd(fx.model, gone), ['initActivitiesWithFfwd', 'input has been disposed']);
    const dead = makeMlp(rt(), MLP);
    dead.dispose();
    await fails(
      () => initActivitiesWithFfwd(dead, fx.input),
      ['initActivitiesWithFfwd', 'the model has been disposed'],
    );
  });
});

// Solver options are shared by solveInference and makePcStep.
const SOLVER_CASES: { what: string; options: object; parts: (string | RegExp)[] }[] = [
  { what: 'unknown solver', options: { solver: 'rk4' }, parts: ['options.solver', '"euler", "heun"', 'got "rk4"'] },
  {
    what: 'Euler with PID',
    options: { solver: 'euler', stepsizeController: { pid: { rtol: 1e-3, atol: 1e-3 } } },
    parts: ['options.solver', "'euler'", /PID/, "'constant'"],
  },
  {
    what: 'Euler with the default (PID) controller',
    options: { solver: 'euler', dt: 0.1 },
    parts: ['options.solver', "'euler'", /PID/],
  },
  {
    what: 'constant without dt',
    options: { stepsizeController: 'constant', dt: undefined },
    parts: ['options.dt must be given', "'constant'"],
  },
  { what: 'maxT1 0', options: { maxT1: 0 }, parts: ['options.maxT1', 'a finite number > 0', 'got 0'] },
  { what: 'maxT1 negative', options: { maxT1: -2 }, parts: ['options.maxT1', '> 0', 'got -2'] },
  { what: 'maxT1 infinite', options: { maxT1: Infinity }, parts: ['options.maxT1', 'got Infinity'] },
  {
    what: 'dt 0',
    options: { stepsizeController: 'constant', dt: 0 },
    parts: ['options.dt', 'a finite number > 0', 'got 0'],
  },
  { what: 'dt negative', options: { dt: -0.1 }, parts: ['options.dt', '> 0', 'got -0.1'] },
  { what: 'dt NaN', options: { dt: Number.NaN }, parts: ['options.dt', 'got NaN'] },
  { what: 'maxSteps 0', options: { maxSteps: 0 }, parts: ['options.maxSteps', 'a positive integer', 'got 0'] },
  {
    what: 'maxSteps fractional',
    options: { maxSteps: 2.5 },
    parts: ['options.maxSteps', 'a positive integer', 'got 2.5'],
  },
  { what: 'pollEvery 0', options: { pollEvery: 0 }, parts: ['options.pollEvery', 'a positive integer', 'got 0'] },
  { what: 'pollEvery negative', options: { pollEvery: -3 }, parts: ['options.pollEvery', 'got -3'] },
  { what: 'a typo in an option key', options: { maxt1: 2 }, parts: ['unknown option "maxt1" in options', '"maxT1"'] },
  {
    what: 'a typo in a PID key',
    options: { stepsizeController: { pid: { rtol: 1e-3, atoll: 1e-3 } } },
    parts: ['unknown option "atoll"', 'options.stepsizeController.pid'],
  },
  {
    what: 'an unknown controller',
    options: { stepsizeController: 'adaptive' },
    parts: ['options.stepsizeController', "'constant' or { pid", 'got "adaptive"'],
  },
  {
    what: 'rtol and atol both 0',
    options: { stepsizeController: { pid: { rtol: 0, atol: 0 } } },
    parts: ['options.stepsizeController.pid', 'rtol > 0 or atol > 0'],
  },
  {
    what: 'a negative rtol',
    options: { stepsizeController: { pid: { rtol: -1, atol: 1e-3 } } },
    parts: ['options.stepsizeController.pid.rtol', '>= 0', 'got -1'],
  },
  { what: 'an unknown loss', options: { loss: 'hinge' }, parts: ['options.loss', '"mse", "ce"', 'got "hinge"'] },
];

describe('solveInference', () => {
  const solve = (options: object, activities: readonly Tensor[] = fx.activities, output: BatchData = fx.output) =>
    solveInference(fx.model, activities, output, bad({ input: fx.input, maxT1: 1, dt: 0.5, ...options }));

  for (const c of SOLVER_CASES) {
    it(`refuses ${c.what}`, async () => {
      await fails(() => solve(c.options), ['solveInference', ...c.parts]);
    });
  }

  it('refuses shape mismatches, missing input and disposed or foreign tensors', async () => {
    await fails(
      () => solve({}, fx.activities.slice(1)),
      ['solveInference', 'activities', 'an array of 3 tensors', 'got an array of length 2'],
    );
    await fails(
      () => solve({}, [fx.activities[0]!, fx.activities[1]!, rt().zeros([B + 1, 3])]),
      ['solveInference', 'activities[2] must have shape [4, 3]', 'got [5, 3]'],
    );
    await fails(
      () => solve({}, fx.activities, rt().zeros([B, 2])),
      ['solveInference', 'output must have shape [B, 3]', 'got [4, 2]'],
    );
    await fails(
      () => solve({ input: new Float32Array(3 * 6) }),
      ['solveInference', 'options.input has 3 rows but output has 4'],
    );
    await fails(() => solve({ input: undefined }), ['solveInference', 'no options.input', 'must be 4 tensors']);
    await fails(
      () => solve({ input: other().zeros([B, 6]) }),
      ['solveInference', 'options.input belongs to a different runtime'],
    );
  });

  it('refuses a missing options object with an argument error', async () => {
    await fails(
      () => solveInference(fx.model, fx.activities, fx.output, bad(undefined)),
      ['solveInference', 'options'],
    );
  });

  it('accepts the options the failing cases were derived from', async () => {
    const r = await solve({ solver: 'euler', stepsizeController: 'constant' });
    expect(r.steps.accepted).toBe(2);
  });
});

describe('updatePcActivities', () => {
  const optim = sgd({ lr: 0.5 });
  let state: OptState;
  beforeAll(() => {
    state = optim.init(fx.activities);
  });
  const update = (
    over: {
      optim?: unknown;
      state?: unknown;
      activities?: readonly Tensor[];
      output?: BatchData;
      options?: object;
    } = {},
  ) =>
    updatePcActivities(
      fx.model,
      over.activities ?? fx.activities,
      bad(over.optim ?? optim),
      bad(over.state ?? state),
      over.output ?? fx.output,
      bad(over.options ?? { input: fx.input }),
    );

  it('accepts the fixture', async () => {
    const r = await update();
    expect(r.activities.map((a) => a.shape)).toEqual([
      [B, 8],
      [B, 8],
      [B, 3],
    ]);
  });

  it('refuses an optState made by another optimiser, for parameters, or for other activities', async () => {
    await fails(
      () => update({ state: sgd({ lr: 0.5 }).init(fx.activities) }),
      ['updatePcActivities', 'optState was made by a different optimiser'],
    );
    await fails(
      () => update({ state: optim.init(fx.model) }),
      ['updatePcActivities', `optState was made for ${PARAMS} parameters`, `needs ${ACTIVITY_VALUES} activity values`],
    );
    await fails(
      () => update({ state: optim.init(fx.activities.slice(0, 2)) }),
      [
        'updatePcActivities',
        `optState was made for ${B * 16} activity values`,
        `needs ${ACTIVITY_VALUES} activity values`,
      ],
    );
    const disposed = optim.init(fx.activities);
    disposed.dispose();
    await fails(() => update({ state: disposed }), ['updatePcActivities', 'optState has been disposed']);
  });

  it('refuses something that is not an optimiser or an optState', async () => {
    await fails(
      () => update({ optim: { lr: 0.5 } }),
      ['updatePcActivities', 'optim must be an Optimizer', 'got an object'],
    );
    await fails(
      () => updatePcActivities(fx.model, fx.activities, optim, bad(null), fx.output, { input: fx.input }),
      ['updatePcActivities', 'optState', 'got null'],
    );
  });

  it('refuses shape mismatches, NaN data and unknown options', async () => {
    await fails(
      () => update({ activities: [fx.activities[0]!, rt().zeros([B, 9]), fx.activities[2]!] }),
      ['updatePcActivities', 'activities[1] must have shape [4, 8]', 'got [4, 9]'],
    );
    const x = fx.x.slice();
    x[23] = Number.NaN;
    await fails(
      () => update({ options: { input: x } }),
      ['updatePcActivities', 'options.input', 'got NaN at index 23'],
    );
    await fails(
      () => update({ options: { input: fx.input, returnGrad: true } }),
      ['updatePcActivities', 'unknown option "returnGrad"', '"returnGrads"'],
    );
    await fails(
      () => update({ options: { input: fx.input, loss: 'bce' } }),
      ['updatePcActivities', 'options.loss', 'got "bce"'],
    );
  });
});

describe('updatePcParams', () => {
  it('refuses an optState made by another optimiser, for activities, or for another model size', async () => {
    const model = makeMlp(rt(), MLP);
    const optim = adam({ lr: 1e-3 });
    const call = (state: OptState, o = optim) =>
      updatePcParams(model, fx.activities, o, state, fx.output, { input: fx.input });
    await fails(
      () => call(adam({ lr: 1e-3 }).init(model)),
      ['updatePcParams', 'optState was made by a different optimiser'],
    );
    await fails(
      () => call(optim.init(fx.activities)),
      ['updatePcParams', `optState was made for ${ACTIVITY_VALUES} activity values`, `needs ${PARAMS} parameters`],
    );
    const bigger = makeMlp(rt(), { ...MLP, width: 9 });
    await fails(
      () => call(optim.init(bigger)),
      ['updatePcParams', 'optState was made for', `needs ${PARAMS} parameters`],
    );
    await fails(
      () => call(optim.init(model), bad(sgd)),
      ['updatePcParams', 'optim must be an Optimizer', 'got a function'],
    );
    bigger.dispose();
    model.dispose();
  });

  it('refuses shape mismatches and a disposed model', async () => {
    const model = makeMlp(rt(), MLP);
    const optim = sgd({ lr: 0.1 });
    const state = optim.init(model);
    await fails(
      () => updatePcParams(model, fx.activities, optim, state, new Float32Array(B * 2), { input: fx.input }),
      ['updatePcParams', 'output', 'B×3 values', 'length 8'],
    );
    await fails(
      () => updatePcParams(model, fx.activities.slice(0, 1), optim, state, fx.output, { input: fx.input }),
      ['updatePcParams', 'activities', 'an array of 3 tensors'],
    );
    await fails(
      () => updatePcParams(model, fx.activities, optim, state, fx.output, bad({})),
      ['updatePcParams', 'no options.input'],
    );
    model.dispose();
    await fails(
      () => updatePcParams(model, fx.activities, optim, state, fx.output, { input: fx.input }),
      ['updatePcParams', 'the model has been disposed'],
    );
  });
});

describe('updatePcParams and makePcStep refuse an optState that is not an OptState', () => {
  it('naming optState', async () => {
    const model = makeMlp(rt(), MLP);
    const optim = sgd({ lr: 0.1 });
    await fails(
      () => updatePcParams(model, fx.activities, optim, bad(undefined), fx.output, { input: fx.input }),
      ['updatePcParams', 'optState', 'got undefined'],
    );
    await fails(
      () => makePcStep(model, optim, bad({ count: 0 }), fx.y, { input: fx.x, maxT1: 1, dt: 0.5 }),
      ['makePcStep', 'optState', 'got an object'],
    );
    model.dispose();
  });
});

describe('makePcStep', () => {
  const optim = sgd({ lr: 0.05 });
  let model: Model;
  let state: OptState;
  beforeAll(() => {
    model = makeMlp(rt(), MLP);
    state = optim.init(model);
  });
  afterAll(() => model.dispose());
  const step = (options: object, output: BatchData = fx.y, s: OptState = state) =>
    makePcStep(model, optim, s, output, bad<PcStepOptions>({ input: fx.x, maxT1: 1, dt: 0.5, ...options }));

  for (const c of SOLVER_CASES) {
    it(`refuses ${c.what}`, async () => {
      await fails(() => step(c.options), ['makePcStep', ...c.parts]);
    });
  }

  it('refuses shape mismatches, NaN batches and missing input', async () => {
    await fails(() => step({}, new Float32Array(B * 3 + 1)), ['makePcStep', 'output', 'B×3 values', 'length 13']);
    await fails(
      () => step({ input: new Float32Array(5 * 6) }),
      ['makePcStep', 'options.input has 5 rows but output has 4'],
    );
    await fails(
      () => step({ input: rt().zeros([B, 7]) }),
      ['makePcStep', 'options.input must have shape [B, 6]', 'got [4, 7]'],
    );
    await fails(() => step({ input: undefined }), ['makePcStep', 'options.seed is required without options.input']);
    const y = fx.y.slice();
    y[0] = Number.NaN;
    await fails(() => step({}, y), ['makePcStep', 'output', 'got NaN at index 0']);
  });

  it('refuses a missing options object with an argument error', async () => {
    await fails(() => makePcStep(model, optim, state, fx.y, bad<PcStepOptions>(undefined)), ['makePcStep', 'options']);
  });

  it('refuses an optState made for activities', async () => {
    await fails(
      () => step({}, fx.y, optim.init(fx.activities)),
      ['makePcStep', `optState was made for ${ACTIVITY_VALUES} activity values`, `needs ${PARAMS} parameters`],
    );
  });
});

describe('testDiscriminativePc', () => {
  it('refuses shape mismatches, NaN batches, unknown losses and unknown keys', async () => {
    const m = fx.model;
    await fails(
      () => testDiscriminativePc(m, rt().zeros([B, 4]), fx.input),
      ['testDiscriminativePc', 'output must have shape [B, 3]', 'got [4, 4]'],
    );
    await fails(
      () => testDiscriminativePc(m, fx.output, rt().zeros([B - 1, 6])),
      ['testDiscriminativePc', '3 rows but output has 4'],
    );
    const x = fx.x.slice();
    x[1] = Infinity;
    await fails(() => testDiscriminativePc(m, fx.y, x), ['testDiscriminativePc', 'input', 'got Infinity at index 1']);
    await fails(
      () => testDiscriminativePc(m, fx.output, fx.input, bad({ loss: 'l2' })),
      ['testDiscriminativePc', 'options.loss', 'got "l2"'],
    );
    await fails(
      () => testDiscriminativePc(m, fx.output, fx.input, bad({ los: 'ce' })),
      ['testDiscriminativePc', 'unknown option "los"'],
    );
    const r = await testDiscriminativePc(m, fx.output, fx.input);
    expect(Number.isFinite(r.loss)).toBe(true);
  });

  it('names its positional `input` argument as such (it has no options.input)', async () => {
    const message = await fails(
      () => testDiscriminativePc(fx.model, fx.output, bad(undefined)),
      ['testDiscriminativePc', 'input'],
    );
    expect(message).not.toContain('options.input');
    const wrong = await fails(
      () => testDiscriminativePc(fx.model, fx.output, rt().zeros([B, 2])),
      ['testDiscriminativePc', 'input must have shape [B, 6]'],
    );
    expect(wrong).not.toContain('options.input');
  });
});

describe('mseLoss, crossEntropyLoss and computeAccuracy', () => {
  const METRICS = [
    ['mseLoss', mseLoss, 'preds', 'labels'],
    ['crossEntropyLoss', crossEntropyLoss, 'preds', 'labels'],
    ['computeAccuracy', computeAccuracy, 'truths', 'preds'],
  ] as const;

  for (const [name, fn, a, b] of METRICS) {
    it(`${name} refuses mismatched shapes, non-tensors, disposed and foreign tensors`, async () => {
      const p = rt().tensor(batch(3).y, [B, 3]);
      await fails(
        () => fn(p, rt().zeros([B, 2])),
        [name, `${a} and ${b} must both have shape [B, d]`, 'got [4, 3] and [4, 2]'],
      );
      await fails(() => fn(p, rt().zeros([B + 1, 3])), [name, 'got [4, 3] and [5, 3]']);
      await fails(() => fn(p, rt().zeros([B * 3])), [name, 'got [4, 3] and [12]']);
      const gone = rt().zeros([B, 3]);
      gone.dispose();
      await fails(() => fn(p, gone), [name, `${b} has been disposed`]);
      await fails(() => fn(gone, p), [name, `${a} has been disposed`]);
      // Either argument may be blamed: they belong to different runtimes.
      await fails(() => fn(p, other().zeros([B, 3])), [name, new RegExp(`(${a}|${b}) belongs to a different runtime`)]);
      expect(await (await fn(p, p)).item()).toBeTypeOf('number');
    });

    it(`${name} refuses a missing or non-tensor first or second argument, blaming that argument`, async () => {
      const p = rt().tensor(batch(3).y, [B, 3]);
      await fails(() => fn(p, bad(new Float32Array(B * 3))), [name, `${b} must be a Tensor`, 'Float32Array']);
      await fails(() => fn(bad(new Float32Array(B * 3)), p), [name, `${a} must be a Tensor`, 'Float32Array']);
      await fails(() => fn(bad(undefined), p), [name, a, 'got undefined']);
      await fails(() => fn(p, bad(undefined)), [name, b, 'undefined']);
    });
  }
});

describe('sgd, adam and Optimizer.init', () => {
  it('sgd and adam refuse bad hyper-parameters and unknown keys, naming the option', async () => {
    await fails(() => sgd(bad(undefined)), ['sgd', 'options', 'an object', 'got undefined']);
    await fails(() => sgd({ lr: Number.NaN }), ['sgd', 'options.lr', 'a finite number', 'got NaN']);
    await fails(() => sgd(bad({ lr: '0.1' })), ['sgd', 'options.lr', 'got "0.1"']);
    await fails(() => sgd(bad({ lr: 0.1, momentun: 0.9 })), ['sgd', 'unknown option "momentun"', '"momentum"']);
    await fails(() => sgd({ lr: 0.1, momentum: -0.5 }), ['sgd', 'options.momentum', 'in [0, 1)', 'got -0.5']);
    await fails(() => sgd({ lr: 0.1, momentum: 1 }), ['sgd', 'options.momentum', 'in [0, 1)', 'got 1']);
    await fails(() => sgd({ lr: -0.1 }), ['sgd', 'options.lr', '>= 0', 'got -0.1']);
    await fails(() => sgd({ lr: 0.1, nesterov: true }), ['sgd', 'options.nesterov needs options.momentum']);
    await fails(
      () => sgd(bad({ lr: 0.1, momentum: 0.9, nesterov: 1 })),
      ['sgd', 'options.nesterov', 'a boolean', 'got 1'],
    );
    await fails(() => adam(bad(null)), ['adam', 'options', 'got null']);
    await fails(() => adam({ lr: Infinity }), ['adam', 'options.lr', 'got Infinity']);
    await fails(() => adam({ lr: 1e-3, b1: 1.5 }), ['adam', 'options.b1', 'in [0, 1)', 'got 1.5']);
    await fails(() => adam({ lr: 1e-3, b1: 1 }), ['adam', 'options.b1', 'in [0, 1)', 'got 1']);
    await fails(() => adam({ lr: -1e-3 }), ['adam', 'options.lr', '>= 0', 'got -0.001']);
    await fails(() => adam({ lr: 1e-3, eps: 0 }), ['adam', 'options.eps and options.epsRoot cannot both be 0']);
    await fails(() => adam({ lr: 1e-3, b2: -0.1 }), ['adam', 'options.b2', 'got -0.1']);
    await fails(() => adam({ lr: 1e-3, eps: -1 }), ['adam', 'options.eps', '>= 0', 'got -1']);
    await fails(() => adam(bad({ lr: 1e-3, beta1: 0.9 })), ['adam', 'unknown option "beta1"', '"b1"']);
  });

  it('Optimizer.init refuses empty, disposed, foreign and non-tensor targets', async () => {
    const optim = adam({ lr: 1e-3 });
    await fails(
      () => optim.init([]),
      ['Optimizer.init', 'target', 'a Model or a non-empty array of activity tensors', 'got an array of length 0'],
    );
    await fails(() => optim.init(bad(undefined)), ['Optimizer.init', 'target', 'got undefined']);
    await fails(
      () => optim.init(bad(new Float32Array(4))),
      ['Optimizer.init', 'target', 'got a Float32Array of length 4'],
    );
    await fails(
      () => optim.init(bad([new Float32Array(4)])),
      ['Optimizer.init', 'target[0] must be a Tensor', 'Float32Array'],
    );
    const gone = rt().zeros([B, 8]);
    gone.dispose();
    await fails(() => optim.init([fx.activities[0]!, gone]), ['Optimizer.init', 'target[1] has been disposed']);
    await fails(
      () => optim.init([fx.activities[0]!, other().zeros([B, 8])]),
      ['Optimizer.init', 'target[1] belongs to a different runtime'],
    );
    const dead = makeMlp(rt(), MLP);
    dead.dispose();
    await fails(() => optim.init(dead), ['Optimizer.init', 'the model has been disposed']);
    expect(optim.init(fx.activities).size).toBe(ACTIVITY_VALUES);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Bad input never corrupts state.

async function params(model: Model): Promise<Float32Array[]> {
  const { weights, biases } = await model.toArrays();
  return [...weights, ...biases.map((b) => b ?? new Float32Array(0))];
}

/** Exact, bit-level equality of two lists of float arrays (NaN-safe, −0 ≠ +0). */
function expectBitIdentical(actual: Float32Array[], expected: Float32Array[], what: string): void {
  expect(actual.length, `${what}: arrays`).toBe(expected.length);
  actual.forEach((a, i) => {
    const e = expected[i]!;
    expect(a.length, `${what}[${i}]: length`).toBe(e.length);
    const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
    const ue = new Uint32Array(e.buffer, e.byteOffset, e.length);
    const at = ua.findIndex((v, j) => v !== ue[j]);
    expect(at, `${what}[${i}]: first differing element (${a[at]} vs ${e[at]})`).toBe(-1);
  });
}

const STEP = { maxT1: 2, dt: 0.1 } as const;

describe('bad input never corrupts state', () => {
  it('failed makePcStep and updatePcParams calls leave the parameters bit-identical and optState.count unchanged', async () => {
    const model = makeMlp(rt(), { ...MLP, seed: 42 });
    const optim = adam({ lr: 1e-2 });
    const state = optim.init(model);
    const { x, y } = batch(42);
    // One good step first, so the Adam moments and count are non-trivial.
    const first = await makePcStep(model, optim, state, y, { input: x, ...STEP });
    first.loss.dispose();
    first.energies.dispose();
    expect(state.count).toBe(1);
    const before = await params(model);

    const nanX = x.slice();
    nanX[7] = Number.NaN;
    const acts = await initActivitiesWithFfwd(model, x);
    const attempts: [string, () => Promise<unknown>][] = [
      ['NaN in the input batch', () => makePcStep(model, optim, state, y, { input: nanX, ...STEP })],
      [
        'Infinity in the output batch',
        () =>
          makePcStep(
            model,
            optim,
            state,
            Float32Array.from(y, (v, i) => (i === 2 ? Infinity : v)),
            { input: x, ...STEP },
          ),
      ],
      ['wrong output shape', () => makePcStep(model, optim, state, rt().zeros([B, 4]), { input: x, ...STEP })],
      [
        'input and output batch sizes differ',
        () => makePcStep(model, optim, state, y, { input: batch(1, B + 2).x, ...STEP }),
      ],
      [
        'an optState of another optimiser',
        () => makePcStep(model, optim, adam({ lr: 1e-2 }).init(model), y, { input: x, ...STEP }),
      ],
      [
        "the model's optState with another optimiser",
        () => makePcStep(model, adam({ lr: 1e-2 }), state, y, { input: x, ...STEP }),
      ],
      ['an optState for activities', () => makePcStep(model, optim, optim.init(acts), y, { input: x, ...STEP })],
      [
        'a typo in the options',
        () => makePcStep(model, optim, state, y, bad<PcStepOptions>({ input: x, ...STEP, maxt1: 3 })),
      ],
      ['Euler with PID', () => makePcStep(model, optim, state, y, { input: x, ...STEP, solver: 'euler' })],
      [
        'updatePcParams with an activity of the wrong shape',
        () => updatePcParams(model, [acts[0]!, rt().zeros([B, 7]), acts[2]!], optim, state, y, { input: x }),
      ],
      ['updatePcParams with NaN in the input', () => updatePcParams(model, acts, optim, state, y, { input: nanX })],
      [
        'updatePcParams with an optState for activities',
        () => updatePcParams(model, acts, optim, optim.init(acts), y, { input: x }),
      ],
    ];
    for (const [what, attempt] of attempts) {
      await fails(attempt, [], WpcArgumentError).catch((e: unknown) => {
        throw new Error(`${what}: ${(e as Error).message}`);
      });
      expect(state.count, `${what}: optState.count`).toBe(1);
      expectBitIdentical(await params(model), before, `${what}: parameters`);
    }
    model.dispose();
  });

  it('a solve that fails (maxSteps exceeded) leaves the parameters and optState.count unchanged', async () => {
    const model = makeMlp(rt(), { ...MLP, seed: 43 });
    const optim = sgd({ lr: 0.1, momentum: 0.9 });
    const state = optim.init(model);
    const { x, y } = batch(43);
    const before = await params(model);
    await fails(
      () => makePcStep(model, optim, state, y, { input: x, maxT1: 20, dt: 0.01, maxSteps: 3, pollEvery: 1 }),
      ['maxSteps'],
      WpcSolverError,
    );
    // A constant-step grid longer than maxSteps is refused up front, before anything runs (diffrax fails too).
    await fails(
      () =>
        makePcStep(model, optim, state, y, {
          input: x,
          solver: 'euler',
          stepsizeController: 'constant',
          maxT1: 100,
          dt: 0.01,
          maxSteps: 50,
        }),
      ['maxSteps', '10000'],
      WpcArgumentError,
    );
    expect(state.count).toBe(0);
    expectBitIdentical(await params(model), before, 'parameters after failed solves');
    model.dispose();
  });

  it('a successful step after failed ones gives exactly the parameters of a twin model that never failed', async () => {
    const run = async (withFailures: boolean): Promise<{ params: Float32Array[]; count: number; loss: number[] }> => {
      const model = makeMlp(rt(), { ...MLP, seed: 7 });
      const optim = adam({ lr: 1e-2 });
      const state = optim.init(model);
      const losses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const { x, y } = batch(100 + i);
        if (withFailures) {
          const nanX = x.slice();
          nanX[i] = Number.NaN;
          await fails(() => makePcStep(model, optim, state, y, { input: nanX, ...STEP }), ['options.input']);
          await fails(() => makePcStep(model, optim, state, rt().zeros([B, 2]), { input: x, ...STEP }), ['output']);
          await fails(
            () => makePcStep(model, optim, optim.init([rt().zeros([B, 8])]), y, { input: x, ...STEP }),
            ['optState'],
          );
          await fails(
            () => makePcStep(model, optim, state, y, { input: x, ...STEP, maxSteps: 2, pollEvery: 1 }),
            ['maxSteps'],
            WpcSolverError,
          );
        }
        const r = await makePcStep(model, optim, state, y, { input: x, ...STEP });
        losses.push(await r.loss.item());
        r.loss.dispose();
        r.energies.dispose();
      }
      const result = { params: await params(model), count: state.count, loss: losses };
      model.dispose();
      state.dispose();
      return result;
    };
    const twin = await run(false);
    const survivor = await run(true);
    expect(survivor.count).toBe(3);
    expect(twin.count).toBe(3);
    expect(survivor.loss).toEqual(twin.loss);
    expectBitIdentical(survivor.params, twin.params, 'parameters after failures vs twin');
  });

  it('an optState made on another runtime (same size) is refused before anything runs', async () => {
    // Both runtimes are private to this test: if the check is missing the mixed-device bind group is a GPU
    // validation error that would otherwise poison the shared runtime.
    const a = await init();
    const b = await init();
    try {
      const model = makeMlp(a, MLP);
      const twinOnB = makeMlp(b, MLP);
      const optim = sgd({ lr: 0.1 });
      const foreign = optim.init(twinOnB);
      const { x, y } = batch(5);
      const before = await params(model);
      await fails(
        () => makePcStep(model, optim, foreign, y, { input: x, ...STEP }),
        ['makePcStep', 'optState', /runtime|device/],
      );
      expect(foreign.count).toBe(0);
      expectBitIdentical(await params(model), before, 'parameters');
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('a Float32Array batch is taken as it was at the call (mutating it before the promise settles changes nothing)', async () => {
    const run = async (mutate: boolean) => {
      const model = makeMlp(rt(), { ...MLP, seed: 11 });
      const optim = sgd({ lr: 0.1 });
      const state = optim.init(model);
      const { x, y } = batch(11);
      const pending = makePcStep(model, optim, state, y, {
        input: x,
        solver: 'euler',
        stepsizeController: 'constant',
        maxT1: 1,
        dt: 0.25,
      });
      if (mutate) {
        x.fill(Number.NaN);
        y.fill(Number.NaN);
      }
      const r = await pending;
      r.loss.dispose();
      r.energies.dispose();
      const p = await params(model);
      model.dispose();
      return p;
    };
    const clean = await run(false);
    const mutated = await run(true);
    expectBitIdentical(mutated, clean, 'parameters when the caller reuses its batch arrays');
  });
});

describe('variants: parameterisations, generative, hybrid, bidirectional and ePC', () => {
  it('makeMlp and mlpFromWeights refuse bad parameterisations', async () => {
    await fails(
      () => makeMlp(rt(), { ...MLP, paramType: bad('ntk') }),
      ['makeMlp', 'options.paramType', '"sp", "mupc", "ntp"', '"ntk"'],
    );
    await fails(
      () => makeMlp(rt(), { ...MLP, skipModel: [false, true] }),
      ['makeMlp', 'options.skipModel', 'an array of 3 booleans'],
    );
    await fails(
      () => makeMlp(rt(), { ...MLP, skipModel: [true, false, false] }),
      ['options.skipModel[0] must be false', 'hidden-to-hidden'],
    );
    await fails(
      () => makeMlp(rt(), { ...MLP, inputDim: 8, skipModel: [false, false, true] }),
      ['options.skipModel[2] must be false'],
    );
    await fails(() => makeMlp(rt(), { ...MLP, gamma: 0 }), ['options.gamma', '0']);
    await fails(() => makeSkipModel(0), ['makeSkipModel', 'depth']);
  });

  it('energy terms, unsupervised steps and random initialisations are checked before anything runs', async () => {
    const fx = await fixture(3);
    const { model, output, input, activities } = fx;
    await fails(
      () => pcEnergy(model, activities, output, { input, weightDecay: -1 }),
      ['pcEnergy', 'options.weightDecay', '-1'],
    );
    await fails(
      () => pcEnergy(model, activities, output, { input, outputEnergyScaling: Number.NaN }),
      ['options.outputEnergyScaling'],
    );
    await fails(
      () => solveInference(model, activities, output, { input, activityDecay: bad('0.1') }),
      ['options.activityDecay'],
    );
    const optim = sgd({ lr: 0.1 });
    const state = optim.init(model);
    const before = await model.toArrays();
    await fails(
      () => makePcStep(model, optim, state, output, { seed: 1.5 }),
      ['makePcStep', 'options.seed', 'a safe integer'],
    );
    await fails(() => makePcStep(model, optim, state, output, { seed: 1, sigma: -1 }), ['options.sigma']);
    await fails(
      () => makePcStep(model, optim, state, output, { input, seed: 1 }),
      ['options.seed only applies without options.input'],
    );
    await fails(
      () => makePcStep(model, optim, state, output, { seed: 1, calculateAccuracy: true }),
      ['options.calculateAccuracy needs options.input'],
    );
    expect(await model.toArrays(), 'refused steps change nothing').toEqual(before);
    expect(state.count).toBe(0);
    await fails(
      () => initActivitiesFromNormal(model, bad({ seed: 1 })),
      ['initActivitiesFromNormal', 'options.batchSize'],
    );
    await fails(
      () => initActivitiesFromNormal(model, { seed: 1, batchSize: 2, mode: bad('both') }),
      ['options.mode', '"both"'],
    );
    await fails(() => testGenerativePc(model, output, input, bad({})), ['testGenerativePc', 'options.seed']);
    await fails(
      () => testGenerativePc(model, input, output, { seed: 1 }),
      ['testGenerativePc', 'output must have shape [B, 3]'],
    );
    model.dispose();
  });

  it('hybrid, bidirectional and ePC functions name the argument at fault and leave the models as they were', async () => {
    const gen = makeMlp(rt(), { seed: 1, inputDim: 3, width: 8, depth: 3, outputDim: 6, actFn: 'relu' });
    const amort = makeMlp(rt(), { seed: 2, inputDim: 6, width: 8, depth: 3, outputDim: 3, actFn: 'relu' });
    const { x, y } = batch(4);
    const image = rt().tensor(x, [B, 6]);
    const label = rt().tensor(y, [B, 3]);
    const [oa, ob] = [adam({ lr: 1e-3 }), adam({ lr: 1e-3 })];
    const [sa, sb] = [oa.init(gen), ob.init(amort)];
    const before = await Promise.all([gen.toArrays(), amort.toArrays()]);
    await fails(
      () => makeHpcStep(gen, amort, [oa, ob], [sb, sa], image, { input: label }),
      ['makeHpcStep', 'optStates[0] was made by a different optimiser than optims[0]'],
    );
    await fails(
      () => makeHpcStep(gen, amort, [oa, ob], [sa, sb], label, { input: label }),
      ['makeHpcStep', 'output must have shape [B, 6]'],
    );
    await fails(
      () => makeHpcStep(gen, amort, [oa, ob], [sa, sb], image, { input: label, maxT1: -1 }),
      ['options.maxT1'],
    );
    await fails(() => testHpc(gen, amort, image, label, bad({ seed: 'x' })), ['testHpc', 'options.seed']);
    await fails(
      () =>
        updateBpcParams(
          gen,
          amort,
          [rt().zeros([B, 8]), rt().zeros([B, 8]), rt().zeros([B, 8])],
          [oa, ob],
          [sa, sb],
          image,
          { input: label },
        ),
      ['updateBpcParams', 'activities', 'the 2 hidden activities', 'JPC passes H + 1'],
    );
    await fails(
      () =>
        updateBpcParams(gen, amort, [rt().zeros([B, 8]), rt().zeros([B, 8])], [oa, ob], [sa, sa], image, {
          input: label,
        }),
      ['optStates'],
    );
    await fails(
      () => bpcEnergy(gen, amort, [rt().zeros([B, 8])], image, { input: label, backwardEnergyWeight: -2 }),
      ['bpcEnergy'],
    );
    const errors = initEpcErrors(gen, { batchSize: B });
    await fails(
      () => updateEpcErrors(gen, errors, oa, sa, image, { input: label }),
      ['updateEpcErrors', 'optState was made for'],
    );
    await fails(() => epcEnergy(gen, errors, image, { input: label, loss: bad('l1') }), ['epcEnergy', 'options.loss']);
    await fails(() => epcEnergy(gen, errors, image, bad({ input: label, inputs: label })), ['epcEnergy', 'inputs']);
    expect(await Promise.all([gen.toArrays(), amort.toArrays()])).toEqual(before);
    expect([sa.count, sb.count]).toEqual([0, 0]);
    gen.dispose();
    amort.dispose();
  });
});
