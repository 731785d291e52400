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
import { WpcArgumentError, argError, checkKnownKeys } from '../runtime/errors.js';
import type { Job, SegmentSpec } from '../kernels/structs.js';
import { createBindGroup } from '../runtime/kernel.js';
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
import { errorJob, packJobs, paramJob } from './layer-jobs.js';
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
} from './solver.js';
import { copyOutRecording, type Recording } from './infer.js';
import type { Workspace } from './workspace.js';

/** Checks that `amortiser` runs the other way through the generator's widths. */
function checkPair(fn: string, generator: unknown, amortiser: unknown): { generator: Model; amortiser: Model } {
  const g = checkModel(fn, generator);
  const a = checkModel(fn, amortiser);
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
// Workspace plumbing

/** The amortiser's feedforward pass from the image (in x): a_1..a_L in y, φ(a) in py, A_1(x) in pred1. */
function amortForward(aws: Workspace, rec: Recorder, image: Tensor, label: Tensor | null): void {
  loadBatch(aws, rec, image, label ?? undefined);
  aws.recordForward(rec);
}

/**
 * Starts the generator from the amortiser's guesses: z_l ← a_{L−l} (z_0 too when it is free), then φ, the
 * first layer's prediction and the dummy z_L = g_L(z_{L−1}).
 */
function seedGenerator(gws: Workspace, aws: Workspace, rec: Recorder): void {
  const L = gws.model.depth;
  const B = gws.batch;
  for (let l = gws.first; l < L; l++) {
    rec.copy(
      aws.buffer,
      aws.activityOffset(L - l) * 4,
      gws.buffer,
      gws.activityOffset(l) * 4,
      B * gws.model.dims[l]! * 4,
    );
  }
  gws.recordElementwise(rec, 'activate');
  gws.recordFirstPrediction(rec);
  gws.recordForwardLayer(rec, L);
}

/** Copies the amortised activities out in JPC's order: [a_L, …, a_1, g_L(a_1)]. */
function copyAmortised(gws: Workspace, aws: Workspace, rec: Recorder): Tensor[] {
  const L = aws.model.depth;
  const B = aws.batch;
  const out: Tensor[] = [];
  for (let l = L; l >= 1; l--) {
    const t = aws.runtime.empty([B, aws.model.dims[l]!]);
    rec.copy(aws.buffer, aws.activityOffset(l) * 4, t.buffer, 0, t.byteLength);
    out.push(t);
  }
  const dummy = gws.runtime.empty([B, gws.model.outputDim]);
  rec.copy(gws.buffer, gws.activityOffset(L) * 4, dummy.buffer, 0, dummy.byteLength);
  out.push(dummy);
  return out;
}

/** Builds (once per workspace) the amortiser's hybrid tables: errors against the targets in t, gradients, energies. */
function prepareAmortiser(aws: Workspace): void {
  if (aws.has('hpc.errors')) return;
  const { model, batch: B, fam } = aws;
  const L = model.depth;
  const errors: Job[] = [];
  const params: Job[] = [];
  for (let l = 1; l <= L; l++) {
    const layer = model.layers[l - 1]!;
    const input = l === 1 ? aws.x : fam.py + aws.layer[l - 1]!;
    errors.push(
      errorJob({
        layer,
        rows: B,
        input,
        ...(l === 1 ? { fixedPrediction: aws.pred1 } : {}),
        target: l === L ? aws.target : fam.t + aws.layer[l]!,
        error: fam.e + aws.layer[l]!,
        part: aws.errorPart(l),
        output: l === L,
        ...(layer.skip ? { residualFrom: fam.y + aws.layer[l - 1]! } : {}),
      }),
    );
    params.push(paramJob({ layer, rows: B, error: fam.e + aws.layer[l]!, input, coef: (-2 * layer.scale) / B }));
  }
  const device = aws.runtime.device;
  const errTable = packJobs(errors, aws.tiles);
  const errJobs = aws.addTable('hpc.errors', errTable);
  aws.setGroup(
    'hpc.errors',
    createBindGroup(device, aws.k('errors'), { jobs: errJobs, params: model.params, work: aws.buffer }),
    errTable.workgroups,
  );
  const paramTable = packJobs(params, aws.tiles);
  const paramJobs = aws.addTable('hpc.paramGrad', paramTable);
  aws.setGroup(
    'hpc.paramGrad',
    createBindGroup(device, aws.k('paramGrad'), { jobs: paramJobs, work: aws.buffer, grads: model.grads() }),
    paramTable.workgroups,
  );
  // JPC's hpc record_layers order: [E_L, E_2, …, E_{L−1}, E_1], each Σe²/B (no ½).
  const order = L === 1 ? [1] : [L, ...Array.from({ length: L - 2 }, (_, i) => i + 2), 1];
  const layers: SegmentSpec[] = order.map((l, position) => ({
    off: aws.errorPart(l),
    count: aws.errorTiles[l - 1]!,
    stride: 4,
    out: aws.scalar.energies + position,
    scale: 1 / B,
  }));
  aws.reduceGroup('hpc.energies', layers, aws.buffer, aws.scalars);
  const tiles = aws.errorTiles.reduce((a, b) => a + b, 0);
  aws.reduceGroup(
    'hpc.total',
    [{ off: aws.partE, count: tiles, stride: 4, out: aws.scalar.total, scale: 1 / B }],
    aws.buffer,
    aws.scalars,
  );
}

/**
 * Puts the amortiser's targets in place: T_l = z*_{L−l} from the generator's state (in the generator's
 * workspace, or from caller tensors), and T_L = the label already in the target slot or z*_0.
 */
function amortTargetsFromGenerator(aws: Workspace, gws: Workspace, rec: Recorder, label: boolean): void {
  const L = aws.model.depth;
  const B = aws.batch;
  for (let l = 1; l < L; l++) {
    rec.copy(
      gws.buffer,
      gws.activityOffset(L - l) * 4,
      aws.buffer,
      (aws.fam.t + aws.layer[l]!) * 4,
      B * aws.model.dims[l]! * 4,
    );
  }
  if (!label) rec.copy(gws.buffer, gws.activityOffset(0) * 4, aws.buffer, aws.target * 4, B * aws.model.outputDim * 4);
}

/** The amortiser's errors, then its layer energies and total (JPC's hpc_energy_fn, record_layers order). */
function recordAmortErrors(aws: Workspace, rec: Recorder): void {
  aws.dispatchGroup(rec, 'errors', 'hpc.errors');
  aws.recordReduce(rec, 'hpc.energies');
  aws.recordReduce(rec, 'hpc.total');
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

interface AmortCall {
  B: number;
  /** The equilibrium has z_0 (L + 1 activities). */
  unsupervised: boolean;
  /** A label was given (the output layer's target); otherwise z*_0 is. */
  label: boolean;
  cap: ReturnType<typeof captureBatch>;
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

/** Loads a caller's amortised activities and equilibrium into the amortiser's workspace. */
function loadAmortCall(aws: Workspace, rec: Recorder, call: AmortCall): void {
  const L = aws.model.depth;
  const { cap, unsupervised } = call;
  writeSolverConfig(aws, undefined);
  loadBatch(aws, rec, cap.input, call.label ? cap.output : undefined);
  const equilib = cap.activities.slice(0, cap.activities.length - L);
  const amort = cap.activities.slice(cap.activities.length - L);
  // a_l = amortActs[L − l]; its φ and the first layer's prediction from the image.
  for (let l = 1; l <= L; l++) {
    const t = amort[L - l]!;
    rec.copy(t.buffer, t.byteOffset, aws.buffer, aws.activityOffset(l) * 4, t.byteLength);
  }
  aws.recordElementwise(rec, 'activate');
  aws.recordFirstPrediction(rec);
  // T_l = z*_{L−l}.
  const at = (k: number) => equilib[unsupervised ? k : k - 1]!;
  for (let l = 1; l < L; l++) {
    const t = at(L - l);
    rec.copy(t.buffer, t.byteOffset, aws.buffer, (aws.fam.t + aws.layer[l]!) * 4, t.byteLength);
  }
  if (call.label) return;
  const z0 = at(0);
  rec.copy(z0.buffer, z0.byteOffset, aws.buffer, aws.target * 4, z0.byteLength);
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
    prepareAmortiser(aws!);
    loadAmortCall(aws!, rec, call);
    recordAmortErrors(aws!, rec);
    const out = options.recordLayers
      ? copyOutScalars(aws!, rec, aws!.scalar.energies, [a.depth])
      : copyOutScalars(aws!, rec, aws!.scalar.total, [1]);
    rec.submit();
    return out;
  });
}

/** JPC's `compute_hpc_param_grads`: ∂F_amort/∂θ_amort = −(2 s_l/B) e_lᵀ φ(a_{l−1}) (the amortised inputs held fixed). */
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
    prepareAmortiser(aws!);
    loadAmortCall(aws!, rec, call);
    aws!.dispatchGroup(rec, 'errors', 'hpc.errors');
    aws!.dispatchGroup(rec, 'paramGrad', 'hpc.paramGrad');
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
    prepareAmortiser(A);
    writeSolverConfig(G, cfg);
    loadBatch(G, rec, cap.input, cap.output);
    let genLoss: Tensor | null = null;
    if (supervised) {
      G.recordForward(rec);
      G.recordRowMetric(rec, 'hpc.genLoss', {
        pred: G.activityOffset(g.depth),
        target: G.target,
        cols: g.outputDim,
        lossScale: 2 / g.outputDim,
        out: G.scalar.misc,
      });
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
    A.recordRowMetric(rec, 'hpc.amortLoss', {
      pred: A.activityOffset(a.depth),
      target: A.target,
      cols: a.outputDim,
      lossScale: 2 / a.outputDim,
      out: A.scalar.misc,
    });
    const amortLoss = copyOutScalars(A, rec, A.scalar.misc, [1]);
    recordAmortErrors(A, rec);
    const amortEnergies = copyOutScalars(A, rec, A.scalar.energies, [a.depth]);
    A.dispatchGroup(rec, 'paramGrad', 'hpc.paramGrad');
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
    A.recordRowMetric(rec, 'hpc.amortAcc', {
      pred: A.activityOffset(a.depth),
      target: A.target,
      cols: a.outputDim,
      out: A.scalar.misc,
    });
    // Hybrid: inference from the amortised guesses (the label goes to x, unused by the energy: the truth).
    writeSolverConfig(G, cfg);
    loadBatch(G, rec, cap.input, cap.output);
    seedGenerator(G, A, rec);
    await integrate(G, rec, cfg, 'mse');
    G.recordRowMetric(rec, 'hpc.hpcAcc', { pred: G.activityOffset(0), target: G.x, cols: g.inputDim, out: misc });
    rec.submit();
    // Generator alone: inference from random draws (written after the hybrid solve's commands are queued).
    writeNormalActivities(G, options.seed, sigma);
    G.recordElementwise(rec, 'activate');
    await integrate(G, rec, cfg, 'mse');
    G.recordRowMetric(rec, 'hpc.genAcc', { pred: G.activityOffset(0), target: G.x, cols: g.inputDim, out: misc + 2 });
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
