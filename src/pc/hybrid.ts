/**
 * Hybrid predictive coding (Tschantz et al. 2023; JPC's `init_activities_with_amort`, `hpc_energy_fn`,
 * `compute_hpc_param_grads`, `make_hpc_step`, `test_hpc`).
 *
 * A generator g (prior/label → observation/image) is trained by PC; an amortiser a, a feedforward network in the
 * opposite direction (image → label), learns to predict the generator's equilibrium activities, so that
 * inference can start from its guess instead of from scratch. With the amortiser's feedforward values
 * a_1..a_L (a_l = A_l(a_{l−1}), a_0 the image), its energy has no ½ factor:
 *
 *   F_amort = (1/B) Σ_{l=1}^{L} Σ_b ‖T_l − A_l(a_{l−1})‖²,   T_l = z*_{L−l} (the generator's equilibrium),
 *   T_L = the label (supervised) or the inferred z*_0 (unsupervised),
 *
 * where the inputs a_{l−1} are the amortised guesses, held fixed: each amortiser layer regresses the generator's
 * activity from its own feedforward input. The generator's activities z_l and the amortiser's a_{L−l} have the
 * same widths (the amortiser's widths are the generator's reversed).
 *
 * Conventions. Every function takes the generator's equilibrium activities in the generator's own order, as
 * `solveInference` returns them (supervised: z_1..z_L, the dummy last; unsupervised: z_0..z_L); JPC's
 * `hpc_energy_fn` takes them reversed and without the dummy (`equilib[::-1][1:]`). The amortised activities
 * are `initActivitiesWithAmort`'s: [a_L, …, a_1, g_L(a_1)] (JPC's order: reversed, with the generator's
 * prediction of the image appended as the dummy).
 */
import { mlpLayers } from './layers/index.js';
import { WpcArgumentError, argError, checkKnownKeys } from '../runtime/errors.js';
import type { Recorder } from '../runtime/recorder.js';
import { type Tensor, checkTensor } from '../runtime/tensor.js';
import {
  type BatchData,
  type ParamGradResult,
  batchSizeOf,
  captureBatch,
  checkModel,
  checkOptions,
  checkSameRuntime,
  checkWorkspaces,
  copyOutScalars,
  copyParamGrads,
  loadBatch,
  onWorkspaces,
  writeNormalActivities,
  type WorkspaceRequest,
} from './batch.js';
import type { Model } from './model.js';
import { type OptState, type Optimizer, checkOptState } from './optim.js';
import {
  SOLVER_OPTION_KEYS,
  checkSolveFits,
  integrate,
  refuseRecording,
  resolveSolverOptions,
  workspaceNeeds,
  writeSolverConfig,
  type SolverOptions,
} from './solve/index.js';
import { copyOutRecording, type Recording } from './infer.js';
import type { Workspace } from './workspace.js';
import { record } from './workspace/handles.js';
import {
  amortForward,
  amortTables,
  amortTargetsFromGenerator,
  copyAmortised,
  metricsOf,
  recordAmortErrors,
  seedGenerator,
  loadAmortCall,
  type AmortCall,
} from './hybrid/tables.js';

/** Checks that `amortiser` runs the other way through the generator's widths. */
function checkPair(fn: string, generator: unknown, amortiser: unknown): { generator: Model; amortiser: Model } {
  const g = checkModel(fn, generator);
  const a = checkModel(fn, amortiser);
  mlpLayers(`${fn}: generator`, g.layers);
  mlpLayers(`${fn}: amortiser`, a.layers);
  checkSameRuntime(fn, [
    { name: 'generator', model: g },
    { name: 'amortiser', model: a },
  ]);
  const reversed = [...g.dims].reverse();
  if (a.dims.length !== reversed.length || a.dims.some((d, i) => d !== reversed[i])) {
    throw new WpcArgumentError(
      `${fn}: the amortiser's widths must be the generator's reversed (${reversed.join('→')}), got ${a.dims.join('→')}`,
    );
  }
  return { generator: g, amortiser: a };
}

// ---------------------------------------------------------------------------------------------------------
// Public API

/**
 * JPC's `init_activities_with_amort`: the amortiser's feedforward pass from `input` (the generator's target,
 * e.g. an image), reversed into the generator's order, plus the generator's prediction of the image from the
 * last of them: L + 1 new tensors [a_L (the label guess), a_{L−1}, …, a_1, g_L(a_1)].
 */
export async function initActivitiesWithAmort(amortiser: Model, generator: Model, input: BatchData): Promise<Tensor[]> {
  const fn = 'initActivitiesWithAmort';
  const { generator: g, amortiser: a } = checkPair(fn, generator, amortiser);
  const B = batchSizeOf(fn, 'input', input, a.inputDim, a);
  const workspaces: WorkspaceRequest[] = [
    { model: g, B },
    { model: a, B },
  ];
  checkWorkspaces(fn, workspaces, 'input');
  const cap = captureBatch(a, B, input, undefined);
  return onWorkspaces(workspaces, cap, ([gws, aws], rec) => {
    writeSolverConfig(gws!, undefined);
    amortForward(aws!, rec, cap.input!, null);
    seedGenerator(gws!, aws!, rec);
    const out = copyAmortised(gws!, aws!, rec);
    rec.submit();
    return out;
  });
}

export interface HpcEnergyOptions {
  /** The amortiser's input: the generator's target (e.g. the images), [B, amortiser.inputDim]. */
  input: BatchData;
  /**
   * The amortiser's target, e.g. the labels (supervised hybrid PC). Without it the equilibrium must be an
   * unsupervised one (z_0..z_L) and z*_0 is the target.
   */
  output?: BatchData;
  /** Return [E_L, E_2, …, E_{L−1}, E_1] (each /B) instead of the total. Default false. */
  recordLayers?: boolean;
}

/** Validates (amortiser, equilibrium, amortised activities, options) and captures them. */
function beginAmortCall(
  fn: string,
  amortiser: unknown,
  equilib: unknown,
  amortActs: unknown,
  options: HpcEnergyOptions,
  keys: readonly string[],
): AmortCall & { a: Model } {
  const a = checkModel(fn, amortiser);
  mlpLayers(`${fn}: amortiser`, a.layers);
  const opts = checkOptions(fn, options, keys);
  const L = a.depth;
  const B = batchSizeOf(fn, 'options.input', opts.input, a.inputDim, a);
  if (opts.output !== undefined) {
    const By = batchSizeOf(fn, 'options.output', opts.output, a.outputDim, a);
    if (By !== B) throw new WpcArgumentError(`${fn}: options.output has ${By} rows but options.input has ${B}`);
  }
  // The generator's widths are the amortiser's reversed.
  const gDims = [...a.dims].reverse();
  if (!Array.isArray(equilib) || (equilib.length !== L && equilib.length !== L + 1)) {
    argError(
      fn,
      'equilibActivities',
      `the generator's ${L} activities z_1..z_L (supervised) or ${L + 1} (z_0..z_L, unsupervised), as solveInference returns them`,
      equilib,
    );
  }
  const unsupervised = equilib.length === L + 1;
  equilib.forEach((t, i) =>
    checkTensor(fn, `equilibActivities[${i}]`, t, a.runtime, [B, gDims[i + (unsupervised ? 0 : 1)]!]),
  );
  if (!unsupervised && opts.output === undefined) {
    throw new WpcArgumentError(
      `${fn}: options.output (the amortiser's target, e.g. the labels) is required with a supervised equilibrium (z_1..z_L); pass z_0..z_L for unsupervised hybrid PC`,
    );
  }
  if (!Array.isArray(amortActs) || amortActs.length !== L + 1) {
    argError(
      fn,
      'amortActivities',
      `the ${L + 1} tensors initActivitiesWithAmort returns ([a_L, …, a_1, dummy])`,
      amortActs,
    );
  }
  amortActs.forEach((t, i) =>
    checkTensor(fn, `amortActivities[${i}]`, t, a.runtime, [B, i < L ? a.dims[L - i]! : a.inputDim]),
  );
  checkWorkspaces(fn, [{ model: a, B }], 'equilibActivities');
  const cap = captureBatch(a, B, opts.input, opts.output, [
    ...(equilib as Tensor[]),
    ...(amortActs as Tensor[]).slice(0, L),
  ]);
  return { a, B, unsupervised, label: opts.output !== undefined, cap };
}

/**
 * JPC's `hpc_energy_fn`: the amortiser's energy (no ½ factor) given the generator's equilibrium and the
 * amortised activities:
 * $$F = \frac{1}{B}\sum_{l=1}^{L} \sum_b \lVert T_l - A_l(a_{l-1}) \rVert^2.$$
 */
export async function hpcEnergy(
  amortiser: Model,
  equilibActivities: readonly Tensor[],
  amortActivities: readonly Tensor[],
  options: HpcEnergyOptions,
): Promise<Tensor> {
  const fn = 'hpcEnergy';
  const call = beginAmortCall(fn, amortiser, equilibActivities, amortActivities, options, [
    'input',
    'output',
    'recordLayers',
  ]);
  const { a, B } = call;
  if (options.recordLayers !== undefined && typeof options.recordLayers !== 'boolean')
    argError(fn, 'options.recordLayers', 'a boolean', options.recordLayers);
  return onWorkspaces([{ model: a, B }], call.cap, ([aws], rec) => {
    amortTables(aws!);
    loadAmortCall(aws!, rec, call);
    recordAmortErrors(aws!, rec);
    const out = options.recordLayers
      ? copyOutScalars(aws!, rec, aws!.scalar.energies, [a.depth])
      : copyOutScalars(aws!, rec, aws!.scalar.total, [1]);
    rec.submit();
    return out;
  });
}

/**
 * JPC's `compute_hpc_param_grads`: ∂F_amort/∂θ_amort = −(2 s_l/B) e_lᵀ φ(a_{l−1}) (the amortised inputs held
 * fixed).
 */
export async function computeHpcParamGrads(
  amortiser: Model,
  equilibActivities: readonly Tensor[],
  amortActivities: readonly Tensor[],
  options: Omit<HpcEnergyOptions, 'recordLayers'>,
): Promise<ParamGradResult> {
  const fn = 'computeHpcParamGrads';
  const call = beginAmortCall(fn, amortiser, equilibActivities, amortActivities, options, ['input', 'output']);
  const { a, B } = call;
  return onWorkspaces([{ model: a, B }], call.cap, ([aws], rec) => {
    const tables = amortTables(aws!);
    loadAmortCall(aws!, rec, call);
    record(rec, tables.errors);
    record(rec, tables.paramGrad);
    const out = copyParamGrads(a, rec);
    rec.submit();
    return out;
  });
}

export interface HpcStepOptions extends SolverOptions {
  /** The generator's input (prior), e.g. the labels; the amortiser's target. Omit for unsupervised hybrid PC. */
  input?: BatchData;
  /** Also return the amortised and the equilibrium activities (new tensors). Default false. */
  returnActivities?: boolean;
}

export interface HpcStepResult {
  generator: Model;
  amortiser: Model;
  optStates: [OptState, OptState];
  losses: {
    /** mean((output − g(input))²) over every element, before the update; null without an input. */
    generator: Tensor | null;
    /** mean((input − a_L)²) (or against z*_0 without an input), the amortiser's guess before the update. */
    amortiser: Tensor;
  };
  energies: {
    /** The generator's layer energies at equilibrium, JPC's record_layers order. */
    generator: Tensor;
    /** The amortiser's layer energies (no ½), JPC's record_layers order. */
    amortiser: Tensor;
  };
  steps: { accepted: number; rejected: number };
  t: number;
  steadyState: boolean;
  recording: Recording | null;
  /** With `returnActivities`: initActivitiesWithAmort's tensors and the generator's equilibrium. */
  activities: { amortised: Tensor[]; equilibrium: Tensor[] } | null;
}

/**
 * JPC's `make_hpc_step`: amortised initialisation, generator inference (default Heun + PID to maxT1 = 300, as
 * JPC), then one update of each model — the generator by its PC parameter gradients at equilibrium, the
 * amortiser by `computeHpcParamGrads`. `output` is the generator's observation (the amortiser's input). The
 * solver options are `solveInference`'s: any ODE solver, or discrete inference with an optimiser and `steps`.
 */
export async function makeHpcStep(
  generator: Model,
  amortiser: Model,
  optims: readonly [Optimizer, Optimizer],
  optStates: readonly [OptState, OptState],
  output: BatchData,
  options: HpcStepOptions = {},
): Promise<HpcStepResult> {
  const fn = 'makeHpcStep';
  const { generator: g, amortiser: a } = checkPair(fn, generator, amortiser);
  const opts = checkOptions(fn, options, ['input', 'returnActivities', ...SOLVER_OPTION_KEYS]);
  if (!Array.isArray(optims) || optims.length !== 2)
    argError(fn, 'optims', '[generatorOptimiser, amortiserOptimiser]', optims);
  if (!Array.isArray(optStates) || optStates.length !== 2)
    argError(fn, 'optStates', '[generatorState, amortiserState]', optStates);
  const B = batchSizeOf(fn, 'output', output, g.outputDim, g);
  if (opts.input !== undefined) {
    const Bx = batchSizeOf(fn, 'options.input', opts.input, g.inputDim, g);
    if (Bx !== B) throw new WpcArgumentError(`${fn}: options.input has ${Bx} rows but output has ${B}`);
  }
  if (opts.returnActivities !== undefined && typeof opts.returnActivities !== 'boolean')
    argError(fn, 'options.returnActivities', 'a boolean', opts.returnActivities);
  const cfg = resolveSolverOptions(fn, opts, 300);
  checkOptState(fn, optStates[0], optims[0], 'params', g.paramCount, g.runtime, {
    optim: 'optims[0]',
    optState: 'optStates[0]',
  });
  checkOptState(fn, optStates[1], optims[1], 'params', a.paramCount, a.runtime, {
    optim: 'optims[1]',
    optState: 'optStates[1]',
  });
  if (optStates[0] === optStates[1])
    throw new WpcArgumentError(`${fn}: optStates must be two different states (one per model)`);
  const supervised = opts.input !== undefined;
  const workspaces: WorkspaceRequest[] = [
    { model: g, B, mode: supervised ? 'supervised' : 'unsupervised', needs: workspaceNeeds(cfg) },
    { model: a, B },
  ];
  checkSolveFits(fn, g, B, supervised ? 'supervised' : 'unsupervised', cfg);
  checkWorkspaces(fn, workspaces);
  const cap = captureBatch(g, B, opts.input, output);
  return onWorkspaces(workspaces, cap, async ([gws, aws], rec) => {
    const [gk, ak] = await Promise.all([optStates[0].kernel(false), optStates[1].kernel(false)]);
    const G = gws!;
    const A = aws!;
    amortTables(A);
    writeSolverConfig(G, cfg);
    loadBatch(G, rec, cap.input, cap.output);
    let genLoss: Tensor | null = null;
    if (supervised) {
      G.recordForward(rec);
      const gm = metricsOf(G);
      gm.genLoss ??= G.rowMetric('hpc.genLoss', {
        pred: G.activityOffset(g.depth),
        target: G.target,
        cols: g.outputDim,
        lossScale: 2 / g.outputDim,
        out: G.scalar.misc,
      });
      G.recordRowMetric(rec, gm.genLoss);
      genLoss = copyOutScalars(G, rec, G.scalar.misc, [1]);
    }
    amortForward(A, rec, cap.output, cap.input);
    seedGenerator(G, A, rec);
    const amortised = opts.returnActivities ? copyAmortised(G, A, rec) : null;
    const stats = await integrate(G, rec, cfg, 'mse');
    const recording = copyOutRecording(G, rec, stats);
    G.recordErrors(rec, 'y', 'mse', false);
    G.recordEnergies(rec, 'mse');
    const genEnergies = copyOutScalars(G, rec, G.scalar.energies, [g.depth]);
    const equilibrium = opts.returnActivities ? copyEquilibrium(G, rec) : null;
    G.recordParamGrads(rec);
    // The amortiser learns the equilibrium (its targets) from its own feedforward inputs.
    amortTargetsFromGenerator(A, G, rec, supervised);
    const am = metricsOf(A);
    am.amortLoss ??= A.rowMetric('hpc.amortLoss', {
      pred: A.activityOffset(a.depth),
      target: A.target,
      cols: a.outputDim,
      lossScale: 2 / a.outputDim,
      out: A.scalar.misc,
    });
    A.recordRowMetric(rec, am.amortLoss);
    const amortLoss = copyOutScalars(A, rec, A.scalar.misc, [1]);
    recordAmortErrors(A, rec);
    const amortEnergies = copyOutScalars(A, rec, A.scalar.energies, [a.depth]);
    record(rec, amortTables(A).paramGrad);
    optStates[0].recordStep(rec, gk, { buffer: g.params, offset: 0 }, { buffer: g.grads(), offset: 0 }, g.paramCount);
    optStates[1].recordStep(rec, ak, { buffer: a.params, offset: 0 }, { buffer: a.grads(), offset: 0 }, a.paramCount);
    rec.submit();
    return {
      generator: g,
      amortiser: a,
      optStates: [optStates[0], optStates[1]],
      losses: { generator: genLoss, amortiser: amortLoss },
      energies: { generator: genEnergies, amortiser: amortEnergies },
      steps: { accepted: stats.accepted, rejected: stats.rejected },
      t: stats.t,
      steadyState: stats.steadyState,
      recording,
      activities: amortised && equilibrium ? { amortised, equilibrium } : null,
    };
  });
}

function copyEquilibrium(ws: Workspace, rec: Recorder): Tensor[] {
  const out: Tensor[] = [];
  for (let l = ws.first; l <= ws.model.depth; l++) {
    const t = ws.runtime.empty([ws.batch, ws.model.dims[l]!]);
    rec.copy(ws.buffer, ws.activityOffset(l) * 4, t.buffer, 0, t.byteLength);
    out.push(t);
  }
  return out;
}

/** The solver options without the recording ones (testHpc returns accuracies, not a recording). */
export interface TestHpcOptions
  extends Omit<SolverOptions, 'recordIters' | 'recordEvery' | 'recordActivities' | 'maxRecords'> {
  /** Seed of the random initialisation of the generator-only inference (required, JPC's `key`). */
  seed: number;
  /** σ of that initialisation. Default 0.05. */
  sigma?: number;
}

export interface TestHpcResult {
  /** Accuracy (%) of the amortiser's feedforward guess a_L. */
  amortAcc: number;
  /** Of the generator's inferred z_0 when inference starts from the amortised guesses (hybrid). */
  hpcAcc: number;
  /** Of the inferred z_0 when inference starts from random draws (the generator alone). */
  genAcc: number;
  /** The generator's feedforward predictions from `input`, [B, outputDim]. */
  outputPreds: Tensor;
}

/**
 * JPC's `test_hpc`: the label accuracies of the amortiser alone, of hybrid inference (the generator's
 * unsupervised inference started from the amortiser's guesses) and of generator-only inference (started from
 * N(0, σ²) draws), with only `output` (the image) clamped — default Heun + PID to maxT1 = 500, or discrete
 * inference with an optimiser and `steps` — and the generator's predictions from `input` (the labels).
 */
export async function testHpc(
  generator: Model,
  amortiser: Model,
  output: BatchData,
  input: BatchData,
  options: TestHpcOptions,
): Promise<TestHpcResult> {
  const fn = 'testHpc';
  const { generator: g, amortiser: a } = checkPair(fn, generator, amortiser);
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object like { seed }', options);
  checkKnownKeys(fn, 'options', options, ['seed', 'sigma', ...SOLVER_OPTION_KEYS]);
  refuseRecording(fn, options);
  if (!Number.isSafeInteger(options.seed)) argError(fn, 'options.seed', 'a safe integer', options.seed);
  const sigma = options.sigma ?? 0.05;
  if (typeof sigma !== 'number' || !Number.isFinite(sigma) || sigma < 0)
    argError(fn, 'options.sigma', 'a finite number ≥ 0', sigma);
  const B = batchSizeOf(fn, 'output', output, g.outputDim, g);
  const Bx = batchSizeOf(fn, 'input', input, g.inputDim, g);
  if (Bx !== B) throw new WpcArgumentError(`${fn}: input has ${Bx} rows but output has ${B}`);
  const cfg = resolveSolverOptions(fn, options, 500);
  const workspaces: WorkspaceRequest[] = [
    { model: g, B, mode: 'unsupervised', needs: workspaceNeeds(cfg) },
    { model: g, B },
    { model: a, B },
  ];
  checkSolveFits(fn, g, B, 'unsupervised', cfg);
  checkWorkspaces(fn, workspaces);
  const cap = captureBatch(g, B, input, output);
  return onWorkspaces(workspaces, cap, async ([free, clamped, aws], rec) => {
    const G = free!;
    const A = aws!;
    const misc = G.scalar.misc;
    amortForward(A, rec, cap.output, cap.input);
    const am = metricsOf(A);
    am.amortAcc ??= A.rowMetric('hpc.amortAcc', {
      pred: A.activityOffset(a.depth),
      target: A.target,
      cols: a.outputDim,
      out: A.scalar.misc,
    });
    A.recordRowMetric(rec, am.amortAcc);
    // Hybrid: inference from the amortised guesses (the label goes to x, unused by the energy: the truth).
    writeSolverConfig(G, cfg);
    loadBatch(G, rec, cap.input, cap.output);
    seedGenerator(G, A, rec);
    await integrate(G, rec, cfg, 'mse');
    const gm = metricsOf(G);
    gm.hpcAcc ??= G.rowMetric('hpc.hpcAcc', { pred: G.activityOffset(0), target: G.x, cols: g.inputDim, out: misc });
    G.recordRowMetric(rec, gm.hpcAcc);
    rec.submit();
    // Generator alone: inference from random draws (written after the hybrid solve's commands are queued).
    writeNormalActivities(G, options.seed, sigma);
    G.recordElementwise(rec, 'activate');
    await integrate(G, rec, cfg, 'mse');
    gm.genAcc ??= G.rowMetric('hpc.genAcc', {
      pred: G.activityOffset(0),
      target: G.x,
      cols: g.inputDim,
      out: misc + 2,
    });
    G.recordRowMetric(rec, gm.genAcc);
    const S = clamped!;
    loadBatch(S, rec, cap.input, undefined);
    S.recordForward(rec);
    const outputPreds = g.runtime.empty([B, g.outputDim]);
    rec.copy(S.buffer, S.activityOffset(g.depth) * 4, outputPreds.buffer, 0, outputPreds.byteLength);
    rec.submit();
    const [amortValues, genValues] = await g.runtime.read([
      { buffer: A.scalars, byteOffset: (A.scalar.misc + 1) * 4, byteLength: 4 },
      { buffer: G.scalars, byteOffset: misc * 4, byteLength: 16 },
    ]);
    return { amortAcc: amortValues![0]!, hpcAcc: genValues![1]!, genAcc: genValues![3]!, outputPreds };
  });
}
