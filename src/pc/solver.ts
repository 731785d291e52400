/**
 * The inference ODE dz/dt = −∂F/∂z, integrated on the GPU with diffrax's semantics, or discrete inference
 * (optimiser steps on the activities).
 *
 * Three ways to run, all without a readback per step:
 * - **Free-running** (constant step size, no steady-state event): the step grid is known in advance, so it is
 *   computed here with diffrax's float32 arithmetic (first step [0, dt0], then t_n = t1·n/N with
 *   N = ⌈t1/nextafter(dt0)⌉, diffrax ≥ 0.7.1) and every step is encoded up front: no readback at all.
 * - **Controlled** (the PID controller, or a constant step size with the steady-state event): accept/reject, the
 *   next step size and the event are decided on the GPU (solver.wgsl). The host submits steps in chunks and reads
 *   the 64-byte solver state only between chunks (at most once every `pollEvery` steps); steps submitted after
 *   the solve has finished are no-ops.
 * - **Discrete**: `steps` optimiser updates of the activities (optax semantics), fused with the gradient.
 *
 * Every explicit Runge–Kutta tableau of diffrax is supported (tableaux.ts); each stage is two dispatches for the
 * whole network (prediction errors, then activity gradient fused with the stage's update), whatever the depth.
 */
import { RecordWhen, StageMode, StageOptimizer } from '../kernels/index.js';
import { ConfigFlag, Controller } from '../kernels/solver.js';
import {
  STATE,
  STATE_WORDS,
  type StageRecord,
  UNIFORM_STRIDE,
  packSolverConfig,
  packSolverState,
} from '../kernels/structs.js';
import {
  WpcArgumentError,
  WpcSolverError,
  argError,
  checkFinite,
  checkKnownKeys,
  checkPositiveInt,
} from '../runtime/errors.js';
import { F32_MAX, bufferLimit, checkCap, checkFits, groupDigits, storageLimit } from '../runtime/limits.js';
import type { Recorder } from '../runtime/recorder.js';
import type { Model } from './model.js';
import { Optimizer } from './optim.js';
import { SOLVER_NAMES, TABLEAUX, type SolverName, type Tableau } from './tableaux.js';
import {
  checkWorkspaceFits,
  type EvalPoint,
  type Loss,
  type Mode,
  type Workspace,
  type WorkspaceNeeds,
} from './workspace.js';

export { SOLVER_NAMES, type SolverName };

/** diffrax's PIDController knobs; defaults are diffrax's (JPC uses rtol = atol = 1e-3). */
export interface PidOptions {
  rtol: number;
  atol: number;
  /** Default 0. */
  pcoeff?: number;
  /** Default 1. */
  icoeff?: number;
  /** Default 0. */
  dcoeff?: number;
  /** Smallest factor a rejected step shrinks by. Default 0.2. */
  factormin?: number;
  /** Largest factor an accepted step grows by. Default 10. */
  factormax?: number;
  /** Default 0.9. */
  safety?: number;
  /** Optional bounds on the step size. */
  dtmin?: number;
  dtmax?: number;
  /** With `dtmin`: clamp to it (true, default) or fail when the controller wants a smaller step. */
  forceDtmin?: boolean;
}

/** `'constant'` (dt fixed), or diffrax's PID controller. */
export type StepsizeController = 'constant' | { pid: PidOptions };

/** diffrax's steady-state event: stop once rms(dz/dt) < atol + rtol·rms(z). */
export interface SteadyStateOptions {
  /** Default: the PID controller's rtol (required with a constant step size). */
  rtol?: number;
  /** Default: the PID controller's atol (required with a constant step size). */
  atol?: number;
}

export interface SolverOptions {
  /**
   * An explicit Runge–Kutta method (`'euler' | 'heun' | 'midpoint' | 'ralston' | 'bosh3' | 'tsit5' | 'dopri5' |
   * 'dopri8'`, diffrax's tableaux), or an optimiser (`sgd(...)`, `adam(...)`) for discrete inference: `steps`
   * updates of the activities. Default `'heun'`.
   */
  solver?: SolverName | Optimizer;
  /** Default `{ pid: { rtol: 1e-3, atol: 1e-3 } }` (JPC's). Euler has no error estimate and needs `'constant'`. */
  stepsizeController?: StepsizeController;
  /** End time t1 of the integration. Default 20. */
  maxT1?: number;
  /** The (initial, for PID) step size dt0. Default: Hairer's initial-step algorithm with PID; required when constant. */
  dt?: number;
  /** Most attempted steps (accepted + rejected); exceeding it is an error, as in diffrax. Default 4096. */
  maxSteps?: number;
  /** Adaptive solves: the host reads the solver state at most every this many steps. Default 8. */
  pollEvery?: number;
  /**
   * Stop at a steady state: `true` (tolerances of the PID controller) or `{ rtol, atol }`. Default false: integrate
   * to `maxT1`, as JPC does in practice (its own event tests the activities, not their derivative, and never fires).
   */
  steadyState?: boolean | SteadyStateOptions;
  /** Discrete inference: how many optimiser updates. */
  steps?: number;
  /** Record the layer energies of every state the solve accepts (the initial one included). Default false. */
  recordIters?: boolean;
  /**
   * Record every `recordEvery` time units (t = 0, Δ, 2Δ, … and the final state), like JPC's `record_every`.
   * Needs a constant step size dividing it (adaptive steps would need dense interpolation; use `recordIters`).
   */
  recordEvery?: number;
  /** With `recordIters`/`recordEvery`: also record the activities (memory: states × B × Σd floats). Default false. */
  recordActivities?: boolean;
  /** Most states recorded; later ones are dropped and reported. Default 500 (JPC caps at 500 too). */
  maxRecords?: number;
}

/**
 * Most steps one solve may take or encode: `maxSteps`, discrete `steps` and `pollEvery` are refused above it
 * (diffrax's default max_steps is 4096; this is 64 times that). Encoding a step costs the host a few dispatches.
 */
export const MAX_SOLVE_STEPS = 262_144;

/**
 * Most stage records one solve may upload (256 bytes each, so at most 256 MiB): a fixed-step solve without the
 * steady-state event has one per stage of every step (the whole grid is encoded up front), discrete inference
 * one per step.
 */
export const MAX_STAGE_RECORDS = 1_048_576;

export const SOLVER_OPTION_KEYS = [
  'solver',
  'stepsizeController',
  'maxT1',
  'dt',
  'maxSteps',
  'pollEvery',
  'steadyState',
  'steps',
  'recordIters',
  'recordEvery',
  'recordActivities',
  'maxRecords',
] as const;

/** The options that record along a solve; only functions that return a `Recording` take them. */
export const RECORDING_OPTION_KEYS = ['recordIters', 'recordEvery', 'recordActivities', 'maxRecords'] as const;

/**
 * Refuses the recording options for a function that returns no recording (they would be accepted and dropped):
 * the error says where recording is available.
 */
export function refuseRecording(fn: string, options: SolverOptions): void {
  for (const key of RECORDING_OPTION_KEYS) {
    const v = options[key];
    if (v !== undefined && v !== false) {
      throw new WpcArgumentError(
        `${fn}: options.${key} is not available here: ${fn} returns no recording (record with solveInference, makePcStep or makeHpcStep); got ${JSON.stringify(v)}`,
      );
    }
  }
}

export type ResolvedPid = Required<Omit<PidOptions, 'dtmin' | 'dtmax'>> & { dtmin?: number; dtmax?: number };

export interface ResolvedRecording {
  /** Record every this many steps (1: every accepted state). */
  everySteps: number;
  activities: boolean;
  capacity: number;
}

export type ResolvedSolver =
  | {
      kind: 'ode';
      tableau: Tableau;
      controller: 'constant' | ResolvedPid;
      maxT1: number;
      dt: number | undefined;
      maxSteps: number;
      pollEvery: number;
      event: { rtol: number; atol: number } | null;
      record: ResolvedRecording | null;
    }
  | {
      kind: 'discrete';
      optimizer: Optimizer;
      steps: number;
      record: ResolvedRecording | null;
    };

const PID_KEYS = [
  'rtol',
  'atol',
  'pcoeff',
  'icoeff',
  'dcoeff',
  'factormin',
  'factormax',
  'safety',
  'dtmin',
  'dtmax',
  'forceDtmin',
] as const;

function resolvePid(fn: string, sc: unknown): ResolvedPid {
  if (
    typeof sc !== 'object' ||
    sc === null ||
    typeof (sc as { pid?: unknown }).pid !== 'object' ||
    (sc as { pid?: unknown }).pid === null
  ) {
    argError(fn, 'options.stepsizeController', "'constant' or { pid: { rtol, atol, ... } }", sc);
  }
  checkKnownKeys(fn, 'options.stepsizeController', sc, ['pid']);
  const p = (sc as { pid: PidOptions }).pid;
  checkKnownKeys(fn, 'options.stepsizeController.pid', p, PID_KEYS);
  const at = (k: string) => `options.stepsizeController.pid.${k}`;
  const c: ResolvedPid = {
    rtol: checkFinite(fn, at('rtol'), p.rtol, { min: 0 }),
    atol: checkFinite(fn, at('atol'), p.atol, { min: 0 }),
    pcoeff: checkFinite(fn, at('pcoeff'), p.pcoeff ?? 0),
    icoeff: checkFinite(fn, at('icoeff'), p.icoeff ?? 1),
    dcoeff: checkFinite(fn, at('dcoeff'), p.dcoeff ?? 0),
    factormin: checkFinite(fn, at('factormin'), p.factormin ?? 0.2, { min: 0, max: 1 }),
    factormax: checkFinite(fn, at('factormax'), p.factormax ?? 10, { min: 1 }),
    safety: checkFinite(fn, at('safety'), p.safety ?? 0.9, { min: 0, max: 1, open: true }),
    forceDtmin: p.forceDtmin ?? true,
    ...(p.dtmin === undefined ? {} : { dtmin: checkFinite(fn, at('dtmin'), p.dtmin, { min: 0, open: true }) }),
    ...(p.dtmax === undefined ? {} : { dtmax: checkFinite(fn, at('dtmax'), p.dtmax, { min: 0, open: true }) }),
  };
  if (c.rtol === 0 && c.atol === 0)
    throw new WpcArgumentError(`${fn}: options.stepsizeController.pid needs rtol > 0 or atol > 0, got both 0`);
  if (typeof c.forceDtmin !== 'boolean') argError(fn, at('forceDtmin'), 'a boolean', c.forceDtmin);
  return c;
}

function resolveRecording(
  fn: string,
  options: SolverOptions,
  dt: number | undefined,
  constant: boolean,
): ResolvedRecording | null {
  const iters = options.recordIters ?? false;
  if (typeof iters !== 'boolean') argError(fn, 'options.recordIters', 'a boolean', iters);
  const activities = options.recordActivities ?? false;
  if (typeof activities !== 'boolean') argError(fn, 'options.recordActivities', 'a boolean', activities);
  const capacity = checkPositiveInt(fn, 'options.maxRecords', options.maxRecords ?? 500);
  if (options.recordEvery !== undefined) {
    if (iters) throw new WpcArgumentError(`${fn}: options.recordIters and options.recordEvery exclude each other`);
    const every = checkFinite(fn, 'options.recordEvery', options.recordEvery, { min: 0, open: true });
    if (!constant || dt === undefined) {
      throw new WpcArgumentError(
        `${fn}: options.recordEvery needs a constant step size (adaptive steps do not land on fixed times; use recordIters)`,
      );
    }
    const ratio = every / dt;
    if (Math.abs(ratio - Math.round(ratio)) > 1e-6 * ratio || Math.round(ratio) < 1) {
      throw new WpcArgumentError(`${fn}: options.recordEvery must be a multiple of options.dt (${dt}), got ${every}`);
    }
    return { everySteps: Math.round(ratio), activities, capacity };
  }
  if (iters) return { everySteps: 1, activities, capacity };
  if (activities)
    throw new WpcArgumentError(`${fn}: options.recordActivities needs options.recordIters or options.recordEvery`);
  return null;
}

/**
 * Validates and fills in solver options (every error names the option). `defaultMaxT1` is the caller's default
 * end time for ODE solvers (JPC's: 20 for solve_inference, 300 for make_hpc_step, 500 for the tests); discrete
 * inference has none, so a default never conflicts with an optimiser as the solver.
 */
export function resolveSolverOptions(fn: string, options: SolverOptions, defaultMaxT1 = 20): ResolvedSolver {
  const solver = options.solver ?? 'heun';
  if (solver instanceof Optimizer) {
    for (const key of ['stepsizeController', 'maxT1', 'dt', 'maxSteps', 'pollEvery', 'steadyState'] as const) {
      if (options[key] !== undefined) {
        throw new WpcArgumentError(
          `${fn}: options.${key} does not apply to discrete inference (options.solver is an optimiser)`,
        );
      }
    }
    if (options.steps === undefined)
      throw new WpcArgumentError(
        `${fn}: options.steps (the number of activity updates) is required when options.solver is an optimiser`,
      );
    const steps = checkSteps(fn, 'options.steps', options.steps);
    if (options.recordEvery !== undefined)
      throw new WpcArgumentError(`${fn}: options.recordEvery needs an ODE solver; use recordIters with an optimiser`);
    return { kind: 'discrete', optimizer: solver, steps, record: resolveRecording(fn, options, 1, true) };
  }
  if (typeof solver !== 'string' || !(SOLVER_NAMES as readonly string[]).includes(solver)) {
    argError(
      fn,
      'options.solver',
      `one of ${SOLVER_NAMES.map((s) => JSON.stringify(s)).join(', ')}, or an optimiser (sgd/adam)`,
      solver,
    );
  }
  if (options.steps !== undefined)
    throw new WpcArgumentError(
      `${fn}: options.steps applies to discrete inference only; ODE solvers integrate to options.maxT1`,
    );
  const tableau = TABLEAUX[solver];
  const maxT1 = checkTime(fn, 'options.maxT1', options.maxT1 ?? defaultMaxT1);
  const dt = options.dt === undefined ? undefined : checkTime(fn, 'options.dt', options.dt);
  const maxSteps = checkSteps(fn, 'options.maxSteps', options.maxSteps ?? 4096);
  const pollEvery = checkSteps(fn, 'options.pollEvery', options.pollEvery ?? 8);
  const sc = options.stepsizeController ?? { pid: { rtol: 1e-3, atol: 1e-3 } };
  let controller: 'constant' | ResolvedPid;
  if (sc === 'constant') {
    if (dt === undefined) {
      throw new WpcArgumentError(
        `${fn}: options.dt must be given with stepsizeController 'constant' (diffrax cannot choose a constant step)`,
      );
    }
    checkConstantGrid(fn, maxT1, dt, maxSteps);
    controller = 'constant';
  } else {
    controller = resolvePid(fn, sc);
    if (!tableau.e) {
      throw new WpcArgumentError(
        `${fn}: options.solver '${solver}' has no error estimate, so it cannot be used with a PID step-size controller; use stepsizeController: 'constant' or an adaptive solver such as 'heun'`,
      );
    }
  }
  let event: { rtol: number; atol: number } | null = null;
  const ss = options.steadyState ?? false;
  if (ss !== false) {
    const given = ss === true ? {} : ss;
    if (typeof given !== 'object' || given === null)
      argError(fn, 'options.steadyState', 'a boolean or { rtol, atol }', ss);
    checkKnownKeys(fn, 'options.steadyState', given, ['rtol', 'atol']);
    const pick = (k: 'rtol' | 'atol') => {
      const v = given[k] ?? (controller === 'constant' ? undefined : controller[k]);
      if (v === undefined) {
        throw new WpcArgumentError(
          `${fn}: options.steadyState.${k} must be given with a constant step size (it defaults to the PID controller's)`,
        );
      }
      return checkFinite(fn, `options.steadyState.${k}`, v, { min: 0 });
    };
    event = { rtol: pick('rtol'), atol: pick('atol') };
  }
  const record = resolveRecording(fn, options, dt, controller === 'constant');
  const resolved: ResolvedSolver = { kind: 'ode', tableau, controller, maxT1, dt, maxSteps, pollEvery, event, record };
  if (controller === 'constant' && !event) {
    const perStep = tableau.fsal ? tableau.stages - 1 : tableau.stages;
    if (gridLongerThan(maxT1, dt!, Math.floor((MAX_STAGE_RECORDS - 1) / perStep))) {
      const steps = gridSteps(maxT1, dt!);
      throw new WpcArgumentError(
        `${fn}: options.dt ${dt} is too small for a fixed-step ${solver} solve to options.maxT1 = ${maxT1}: about ${steps} steps of ${perStep} stage(s) need ` +
          `${groupDigits(1 + steps * perStep)} stage records, more than ${groupDigits(MAX_STAGE_RECORDS)} (256 bytes each, all uploaded before the solve); raise options.dt, lower options.maxT1, or use the steady-state event`,
      );
    }
  }
  return resolved;
}

/** A positive step count, at most MAX_SOLVE_STEPS. */
function checkSteps(fn: string, arg: string, value: unknown): number {
  const n = checkPositiveInt(fn, arg, value);
  checkCap(fn, arg, n, MAX_SOLVE_STEPS, "WPC's cap on the steps of one solve");
  return n;
}

/** A positive time, at most the largest float32 (the GPU computes times in float32). */
function checkTime(fn: string, arg: string, value: unknown): number {
  const t = checkFinite(fn, arg, value, { min: 0, open: true });
  checkCap(fn, arg, t, F32_MAX, 'the largest float32; times are float32 on the GPU');
  return t;
}

/**
 * Refuses, with the numbers, a constant step dt that needs more than `maxSteps` steps to reach maxT1 (diffrax
 * fails at max_steps too), before any grid is built.
 */
function checkConstantGrid(fn: string, maxT1: number, dt: number, maxSteps: number): void {
  if (!gridLongerThan(maxT1, dt, maxSteps)) return;
  const steps = gridSteps(maxT1, dt);
  throw new WpcArgumentError(
    `${fn}: options.dt ${dt} needs ${steps > MAX_SOLVE_STEPS ? `more than ${groupDigits(MAX_SOLVE_STEPS)}` : steps} constant steps to reach options.maxT1 = ${maxT1}, ` +
      `more than options.maxSteps = ${maxSteps} (diffrax fails here too); raise options.dt, or options.maxSteps (at most ${groupDigits(MAX_SOLVE_STEPS)})`,
  );
}

/** Stage records a solve uploads (record 0, the plain gradient, included; a fixed-step grid counted at its nominal ⌈t1/dt⌉ steps). */
export function stageRecordCount(cfg: ResolvedSolver): number {
  if (cfg.kind === 'discrete') return 1 + cfg.steps;
  const tab = cfg.tableau;
  if (cfg.controller === 'constant' && !cfg.event)
    return 1 + gridSteps(cfg.maxT1, cfg.dt!) * (tab.fsal ? tab.stages - 1 : tab.stages);
  return 1 + tab.stages + 2;
}

/**
 * Refuses, before anything is allocated, a solve the device cannot hold: the workspace for batches of `B` rows
 * with the solver's stage families and grid, the stage records, and the recording buffers (maxRecords states of
 * the layer energies, and of every activity with recordActivities). `batchSubject` names what sets B.
 */
export function checkSolveFits(
  fn: string,
  model: Pick<Model, 'runtime' | 'dims'>,
  B: number,
  mode: Mode,
  cfg: ResolvedSolver,
  batchSubject = `${fn}: output (${B} rows)`,
): void {
  const rt = model.runtime;
  checkWorkspaceFits(batchSubject, rt, model.dims, B, 'train', mode, workspaceNeeds(cfg));
  const records = stageRecordCount(cfg);
  const what =
    cfg.kind === 'discrete' ? `options.steps ${cfg.steps}` : `options.maxT1 / options.dt (${cfg.maxT1} / ${cfg.dt})`;
  checkFits(
    `${fn}: ${what}`,
    `${records} stage records of ${UNIFORM_STRIDE} bytes`,
    records * UNIFORM_STRIDE,
    bufferLimit(rt.limits),
  );
  const rec = cfg.record;
  if (rec) {
    const L = model.dims.length - 1;
    const subject = `${fn}: options.maxRecords ${rec.capacity}`;
    checkFits(
      subject,
      `the layer energies of ${rec.capacity} recorded states`,
      (4 + rec.capacity * L) * 4,
      storageLimit(rt.limits),
      'lower maxRecords',
    );
    if (rec.activities) {
      const first = mode === 'unsupervised' ? 0 : 1;
      const perState = model.dims.slice(first).reduce((s, d) => s + B * d, 0);
      checkFits(
        subject,
        `the activities of ${rec.capacity} recorded states (${perState} floats each)`,
        rec.capacity * perState * 4,
        storageLimit(rt.limits),
        'lower maxRecords or the batch',
      );
    }
  }
}

/** Stage families and grid points a solve needs in its workspace. */
export function workspaceNeeds(cfg: ResolvedSolver): WorkspaceNeeds {
  if (cfg.kind === 'discrete') return { stages: 2, gridSteps: 1 };
  const gridSteps = cfg.controller === 'constant' && cfg.event ? constantStepCount(cfg.maxT1, cfg.dt!) : 1;
  return { stages: cfg.tableau.stages, gridSteps };
}

// ---------------------------------------------------------------------------------------------------------
// float32 time arithmetic (JAX computes times in float32)

const f32 = Math.fround;
const scratch = new DataView(new ArrayBuffer(4));

function stepF32(x: number, up: boolean): number {
  const v = f32(x);
  if (v === 0) return up ? 1.4e-45 : -1.4e-45;
  scratch.setFloat32(0, v);
  const bits = scratch.getUint32(0);
  scratch.setUint32(0, v > 0 === up ? bits + 1 : bits - 1);
  return scratch.getFloat32(0);
}

/** t1 minus 100 float32 ulps: diffrax rounds a step ending past it to t1. */
export function t1ClipFloor(t1: number): number {
  let t = f32(t1);
  for (let i = 0; i < 100; i++) t = stepF32(t, false);
  return t;
}

/** The last grids built (every solve of a training run asks for the same one, twice: state and records). */
const gridCache = new Map<string, { ends: readonly number[]; sizes: readonly number[] }>();

function constantStepGrid(t1: number, dt0: number): { ends: readonly number[]; sizes: readonly number[] } {
  const key = `${t1}:${dt0}`;
  let grid = gridCache.get(key);
  if (!grid) {
    const ends = Object.freeze(buildConstantStepEnds(t1, dt0));
    grid = { ends, sizes: Object.freeze(ends.map((t, i) => f32(t - (i === 0 ? 0 : ends[i - 1]!)))) };
    if (ends.length <= 1 << 16) {
      if (gridCache.size >= 8) gridCache.delete(gridCache.keys().next().value!);
      gridCache.set(key, grid);
    }
  }
  return grid;
}

/** N = ⌈t1/nextafter(dt0)⌉ in float32: the grid's step count (up to the rounding of the last steps); Infinity when dt0 rounds to 0. */
function gridSteps(t1: number, dt0: number): number {
  const n = Math.ceil(f32(f32(t1) / stepF32(f32(dt0), true)));
  return Number.isFinite(n) ? Math.max(1, n) : Infinity;
}

/**
 * Steps of diffrax's ConstantStepSize on [0, t1] with dt0: exact up to MAX_SOLVE_STEPS, and beyond it a number
 * above MAX_SOLVE_STEPS (or Infinity), found without building the grid.
 */
export function constantStepCount(t1: number, dt0: number): number {
  const n = gridSteps(t1, dt0);
  return n > MAX_SOLVE_STEPS + 1 ? n : constantStepGrid(t1, dt0).ends.length;
}

/**
 * Whether the grid of (t1, dt0) has more than `limit` steps. It has at most N steps, and fewer only by the steps
 * the float32 clip at t1 drops (those within 100 ulps of t1: below N/2¹⁶ in a random sample of grids), so it is
 * built only when `limit` falls in a band of N/2¹² below N.
 */
function gridLongerThan(t1: number, dt0: number, limit: number): boolean {
  const n = gridSteps(t1, dt0);
  if (n <= limit) return false;
  if (n - Math.ceil(n / 2 ** 12) - 2 > limit) return true;
  return constantStepCount(t1, dt0) > limit;
}

function buildConstantStepEnds(t1: number, dt0: number): number[] {
  const T1 = f32(t1);
  const dt = f32(dt0);
  const n = gridSteps(t1, dt0);
  if (n > MAX_SOLVE_STEPS + 1) {
    throw new WpcArgumentError(
      `constantStepEnds: a constant step of ${dt0} needs ${n} steps to reach ${t1}, more than ${groupDigits(MAX_SOLVE_STEPS)} (MAX_SOLVE_STEPS)`,
    );
  }
  const floor = t1ClipFloor(T1);
  const ends: number[] = [];
  let tprev = 0;
  let tnext = Math.min(dt, T1);
  let completed = 1;
  while (tprev < T1) {
    ends.push(tnext);
    completed++;
    const t1Next = completed === n ? T1 : f32(f32(T1) * f32(completed / n));
    tprev = Math.min(tnext, T1);
    tnext = t1Next > floor ? T1 : t1Next;
    if (ends.length > n + 1) throw new Error('constantStepEnds: the grid has more steps than t1/dt allows');
  }
  return ends;
}

/** Ends of the steps of diffrax's ConstantStepSize on [0, t1] with dt0, in float32. */
export function constantStepEnds(t1: number, dt0: number): readonly number[] {
  return constantStepGrid(t1, dt0).ends;
}

/** Step sizes of diffrax's ConstantStepSize on [0, t1] with dt0, in float32, as the GPU takes them. */
export function constantStepSizes(t1: number, dt0: number): readonly number[] {
  return constantStepGrid(t1, dt0).sizes;
}

// ---------------------------------------------------------------------------------------------------------
// Stage records

/** Where stage i of a step is evaluated: the first at y, the others at the probe t. */
const pointOf = (i: number): EvalPoint => (i === 1 ? 'y' : 't');

/** Records of one fixed-size step (free-running): stages up to the last that matters, the last updating y in place. */
function freeRunningRecords(tab: Tableau, dt: number): StageRecord[] {
  // FSAL tableaux have b_s = 0: their last stage only feeds the next step, which recomputes it as its first.
  const s = tab.fsal ? tab.stages - 1 : tab.stages;
  const base = { dt, rtol: 0, atol: 0, ecoef: [] as number[] };
  return Array.from({ length: s }, (_, j) => {
    const i = j + 1;
    return i < s
      ? { ...base, mode: StageMode.STAGE, index: i, coef: tab.a[i - 1]!, candidate: 'probe' as const }
      : { ...base, mode: StageMode.FINAL, index: i, coef: tab.b.slice(0, s), candidate: 'in-place' as const };
  });
}

/** Records of a controlled step: stages 1..s, then Hairer's two probes. The candidate goes to the probe's slot. */
function controlledRecords(tab: Tableau, rtol: number, atol: number, withError: boolean): StageRecord[] {
  const base = { dt: 0, rtol, atol, candidate: 'probe' as const };
  const s = tab.stages;
  const e = withError && tab.e ? tab.e : [];
  const records: StageRecord[] = [];
  for (let i = 1; i <= s; i++) {
    if (i < s) records.push({ ...base, mode: StageMode.STAGE, index: i, coef: tab.a[i - 1]!, ecoef: [] });
    else if (tab.fsal) records.push({ ...base, mode: StageMode.FINAL_FSAL, index: i, coef: [], ecoef: e });
    else records.push({ ...base, mode: StageMode.FINAL, index: i, coef: tab.b, ecoef: e });
  }
  records.push({ ...base, mode: StageMode.HAIRER1, index: 1, coef: [], ecoef: [] });
  records.push({ ...base, mode: StageMode.HAIRER2, index: 2, coef: [], ecoef: [] });
  return records;
}

function discreteRecords(opt: Optimizer, steps: number): StageRecord[] {
  const c = opt.config;
  return Array.from({ length: steps }, (_, n) => {
    const count = n + 1;
    const coef =
      c.kind === 'adam'
        ? [c.lr, c.b1, c.b2, c.eps, c.epsRoot, 1 - c.b1 ** count, 1 - c.b2 ** count, 0]
        : [c.lr, c.momentum ?? 0, 0, 0, 0, 1, 1, c.nesterov ? 1 : 0];
    const kind =
      c.kind === 'adam' ? StageOptimizer.ADAM : c.momentum === undefined ? StageOptimizer.SGD : StageOptimizer.MOMENTUM;
    return {
      mode: StageMode.OPTIM,
      index: 1,
      coef,
      ecoef: [],
      dt: 0,
      rtol: 0,
      atol: 0,
      candidate: 'in-place',
      opt: kind,
    };
  });
}

// ---------------------------------------------------------------------------------------------------------

export interface SolveStats {
  /** Time reached (maxT1 unless the steady-state event stopped the solve first; the step count for discrete). */
  t: number;
  accepted: number;
  rejected: number;
  /** The steady-state event ended the solve. */
  steadyState: boolean;
  /** Dispatches encoded for the steps (no-op steps after a controlled solve finished included). */
  dispatches: number;
  /** Steps encoded (controlled solves: including no-op steps after the end). */
  stepsEncoded: number;
  /** States recorded (0 without recording), and whether more were dropped for lack of room. */
  recorded: number;
  recordOverflow: boolean;
}

/** Steps encoded per submit when the whole grid is known (bounds command-buffer size; browsers stay responsive). */
const FREE_RUNNING_CHUNK = 64;

/**
 * Whether to submit after step n (0-based) of a solve whose whole grid is known: after steps 4, 12, 28, 60 (each
 * chunk twice the last), then every FREE_RUNNING_CHUNK. Encoding costs the host a few µs per dispatch, as much
 * as a fast GPU takes to run one, so the GPU starts on the first steps while the host encodes the rest instead
 * of waiting for all of them. Adaptive solves use the same points inside their first chunk.
 */
export function submitAfterStep(n: number): boolean {
  const done = n + 1;
  const lastRamp = RAMP_SUBMITS[RAMP_SUBMITS.length - 1]!;
  return done <= lastRamp ? RAMP_SUBMITS.includes(done) : (done - lastRamp) % FREE_RUNNING_CHUNK === 0;
}

/** Steps done at the ramp's submits (chunks of 4, 8, 16, 32). */
const RAMP_SUBMITS: readonly number[] = [4, 12, 28, 60];

/**
 * Integrates from the activities in the workspace's y (with φ(y), pred1, x and the target in place; work to
 * produce them may still be recorded in `rec`). Leaves the solution in y and φ(y). `observe` sees the solver
 * state at every poll (tests use it to follow accept/reject decisions).
 */
export async function integrate(
  ws: Workspace,
  rec: Recorder,
  cfg: ResolvedSolver,
  loss: Loss,
  observe?: (state: SolverStateView) => void,
): Promise<SolveStats> {
  const before = rec.dispatches + ws.runtime.stats.dispatches;
  const recording = cfg.record;
  if (recording) ws.prepareRecording(rec, recording.capacity, recording.activities);
  resetState(ws, cfg);
  if (cfg.kind === 'discrete') return runDiscrete(ws, rec, cfg, loss, before);
  if (cfg.controller === 'constant' && !cfg.event) return await runFreeRunning(ws, rec, cfg, loss, before);
  return runControlled(ws, rec, cfg, loss, before, observe);
}

/** The solver state at the start of a solve (queue-ordered before the solve's commands). */
function resetState(ws: Workspace, cfg: ResolvedSolver): void {
  let tnext = 0;
  if (cfg.kind === 'ode') {
    if (cfg.controller === 'constant') {
      tnext = constantStepEnds(cfg.maxT1, cfg.dt!)[0]!;
    } else if (cfg.dt !== undefined) {
      let dt0 = cfg.dt;
      if (cfg.controller.dtmax !== undefined) dt0 = Math.min(dt0, cfg.controller.dtmax);
      if (cfg.controller.dtmin !== undefined) dt0 = Math.max(dt0, cfg.controller.dtmin);
      tnext = Math.min(f32(dt0), f32(cfg.maxT1));
    }
  }
  // The initial state counts as accepted (recording).
  const state = packSolverState({ tnext, prevInv: 1, prevPrevInv: 1, lastAccepted: 1 });
  ws.runtime.device.queue.writeBuffer(ws.state, 0, state);
}

function recordingWhen(rec: Recorder, ws: Workspace, loss: Loss, cfg: ResolvedSolver, when: number): void {
  ws.recordState(rec, loss, when, cfg.record!.activities);
}

/** The final state's energies (and activities) into the recording, after the loop. */
function recordFinal(ws: Workspace, rec: Recorder, cfg: ResolvedSolver, loss: Loss, when: number): void {
  ws.recordErrors(rec, 'y', loss, false);
  recordingWhen(rec, ws, loss, cfg, when);
}

/**
 * Whether a fixed-step solve runs as one single-workgroup dispatch (fused-solve.wgsl) instead of two dispatches
 * per stage: where the network is so small that dispatch overhead dominates (see FUSED_MAX_WORK), unless the
 * runtime's `kernels.fused` forces the choice. Recording, and energies beyond JPC's plain supervised one (λ,
 * activity decay, skips, a free z_0), need the per-stage kernels.
 */
export function useFusedSolve(ws: Workspace, cfg: Extract<ResolvedSolver, { kind: 'ode' }>): boolean {
  const choice = ws.runtime.kernels.fused ?? 'auto';
  if (choice === 'never' || cfg.record !== null || !ws.plain) return false;
  if (choice === 'always') return true;
  return fusedSolvePays(fusedWork(ws), ws.batch, ws.runtime.adapter.isSoftware);
}

/** Multiply-adds of one stage's errors and gradients: B × (weights of layers 2..L, twice). */
function fusedWork(ws: Workspace): number {
  return 2 * ws.batch * ws.model.layers.slice(1).reduce((s, l) => s + l.inDim * l.outDim, 0);
}

/** Largest stage work (multiply-adds) for which the fused solve is used; measured on lavapipe (BENCHMARKS.md). */
export const FUSED_MAX_WORK = 20_000;

/**
 * The same for a batch of one on a CPU adapter, where the per-stage kernels' subgroup tiles compute one row
 * group (one row per lane) for a single row, while the fused solve's cost grows with the batch. On lavapipe
 * (tenth session, five runs) the fused solve won at batch 1 up to 38,784 multiply-adds (Euler 1.2–1.4×, Tsit5
 * 1.3–1.6×); at 68,096 it was about even (Euler 0.90–0.91× in four runs and 1.28× in one, Tsit5 0.94–1.49×);
 * from 105,600 Euler lost (0.68–0.73×, two runs) and at 267,264 both did (0.52–0.82×). The per-stage times at batch 1 vary more between
 * runs (a dispatch's fixed cost dominates them), which favours the fused solve where they are close. Before the
 * tiles skipped unused row groups (computing 64 rows for one) the fused solve won up to 267,264. A GPU runs the
 * per-stage kernels on many cores and the fused one on one, so it keeps FUSED_MAX_WORK.
 */
export const FUSED_MAX_WORK_ONE_ROW = 80_000;

/** Whether `kernels.fused: 'auto'` runs a fixed-step solve fused, for a stage of `work` multiply-adds. */
export function fusedSolvePays(work: number, batch: number, softwareAdapter: boolean): boolean {
  return work <= FUSED_MAX_WORK || (batch === 1 && softwareAdapter && work <= FUSED_MAX_WORK_ONE_ROW);
}

async function runFreeRunning(
  ws: Workspace,
  rec: Recorder,
  cfg: Extract<ResolvedSolver, { kind: 'ode' }>,
  loss: Loss,
  before: number,
): Promise<SolveStats> {
  const sizes = constantStepSizes(cfg.maxT1, cfg.dt!);
  if (sizes.length > cfg.maxSteps) {
    throw new WpcSolverError(
      `solveInference: a constant step of ${cfg.dt} needs ${sizes.length} steps to reach maxT1 = ${cfg.maxT1}, more than maxSteps = ${cfg.maxSteps} (diffrax fails here too); raise maxSteps or dt`,
    );
  }
  const tab = cfg.tableau;
  const perStep = tab.fsal ? tab.stages - 1 : tab.stages;
  if (useFusedSolve(ws, cfg)) {
    await ws.recordFusedSolve(
      rec,
      tab.a.slice(0, perStep - 1),
      tab.b.slice(0, perStep),
      sizes,
      loss,
      `${tab.name}:${cfg.maxT1}:${cfg.dt}`,
    );
    rec.submit();
    return finishStats(
      ws,
      before,
      { t: f32(cfg.maxT1), accepted: sizes.length, rejected: 0, steadyState: false, stepsEncoded: sizes.length },
      cfg,
      0,
    );
  }
  ws.writeStageRecords(`free:${tab.name}:${cfg.maxT1}:${cfg.dt}`, () =>
    sizes.flatMap((dt) => freeRunningRecords(tab, dt)),
  );
  writeSolverConfig(ws, cfg);
  const every = cfg.record?.everySteps ?? 0;
  sizes.forEach((_, n) => {
    for (let i = 1; i <= perStep; i++) {
      ws.recordErrors(rec, pointOf(i), loss, false);
      if (i === 1 && every > 0 && n % every === 0) recordingWhen(rec, ws, loss, cfg, RecordWhen.ALWAYS);
      ws.recordActivityGrad(rec, pointOf(i), false, 1 + n * perStep + (i - 1));
    }
    if (submitAfterStep(n)) rec.submit();
  });
  if (every > 0) recordFinal(ws, rec, cfg, loss, RecordWhen.ALWAYS);
  rec.submit();
  const recorded = every > 0 ? Math.floor((sizes.length - 1) / every) + 2 : 0;
  return finishStats(
    ws,
    before,
    { t: f32(cfg.maxT1), accepted: sizes.length, rejected: 0, steadyState: false, stepsEncoded: sizes.length },
    cfg,
    recorded,
  );
}

function runDiscrete(
  ws: Workspace,
  rec: Recorder,
  cfg: Extract<ResolvedSolver, { kind: 'discrete' }>,
  loss: Loss,
  before: number,
): SolveStats {
  ws.writeStageRecords(`discrete:${JSON.stringify(cfg.optimizer.config)}:${cfg.steps}`, () =>
    discreteRecords(cfg.optimizer, cfg.steps),
  );
  writeSolverConfig(ws, cfg);
  // Fresh optimiser state for every solve (JPC initialises it per batch).
  rec.clear(ws.buffer, ws.stageOffset(1) * 4, 2 * ws.nAll * 4);
  const recording = cfg.record !== null;
  for (let n = 0; n < cfg.steps; n++) {
    ws.recordErrors(rec, 'y', loss, false);
    if (recording) recordingWhen(rec, ws, loss, cfg, RecordWhen.ALWAYS);
    ws.recordActivityGrad(rec, 'y', false, 1 + n);
    if (submitAfterStep(n)) rec.submit();
  }
  if (recording) recordFinal(ws, rec, cfg, loss, RecordWhen.ALWAYS);
  rec.submit();
  return finishStats(
    ws,
    before,
    { t: cfg.steps, accepted: cfg.steps, rejected: 0, steadyState: false, stepsEncoded: cfg.steps },
    cfg,
    recording ? cfg.steps + 1 : 0,
  );
}

function finishStats(
  ws: Workspace,
  before: number,
  s: { t: number; accepted: number; rejected: number; steadyState: boolean; stepsEncoded: number },
  cfg: ResolvedSolver,
  recorded: number,
): SolveStats {
  const capacity = cfg.record?.capacity ?? 0;
  return {
    ...s,
    dispatches: ws.runtime.stats.dispatches - before,
    recorded: Math.min(recorded, capacity),
    recordOverflow: recorded > capacity,
  };
}

/**
 * Writes the solver config uniform (struct Config in solver.wgsl): the controller's settings and the layout
 * the elementwise solver kernels use. `err`/`ev` select the partials the controller reads; Hairer's first
 * phase points them at d0's and d1's partials instead.
 */
export function writeSolverConfig(
  ws: Workspace,
  cfg: ResolvedSolver | undefined,
  regions: { err?: { off: number; count: number }; ev?: { off: number; count: number } } = {},
): void {
  const ode = cfg?.kind === 'ode' ? cfg : undefined;
  const c = ode && ode.controller !== 'constant' ? ode.controller : undefined;
  const tab = ode?.tableau;
  const fsal = tab?.fsal ?? false;
  const maxT1 = ode?.maxT1 ?? 0;
  // The error estimate comes from the last stage (at the probe, partials B); steady-state tests read f(y) from
  // the first stage (partials A) or, for FSAL tableaux, from the last stage at the candidate.
  const last = tab && tab.stages > 1 ? ws.partB : ws.partA;
  const err = regions.err ?? last;
  const ev = regions.ev ?? (fsal ? ws.partB : ws.partA);
  const data = packSolverConfig({
    t0: 0,
    t1: maxT1,
    t1Floor: t1ClipFloor(maxT1),
    rtol: c?.rtol ?? 0,
    atol: c?.atol ?? 0,
    pcoeff: c?.pcoeff ?? 0,
    icoeff: c?.icoeff ?? 1,
    dcoeff: c?.dcoeff ?? 0,
    factormin: c?.factormin ?? 0.2,
    factormax: c?.factormax ?? 10,
    safety: c?.safety ?? 0.9,
    dtmin: c?.dtmin ?? 0,
    dtmax: c?.dtmax ?? 0,
    errorOrder: tab?.order ?? 1,
    count: ws.nAll, // the whole ODE state, the output layer's dummy activity included
    maxSteps: ode?.maxSteps ?? 0,
    flags:
      (c?.dtmin !== undefined ? ConfigFlag.DTMIN : 0) |
      (c?.dtmax !== undefined ? ConfigFlag.DTMAX : 0) |
      (c?.forceDtmin ? ConfigFlag.FORCE_DTMIN : 0) |
      (ode?.event ? ConfigFlag.EVENT : 0) |
      (fsal ? ConfigFlag.FSAL : 0),
    errOff: err.off,
    errCount: err.count,
    evOff: ev.off,
    evCount: ev.count,
    ev0Off: ws.partA.off,
    ev0Count: ws.partA.count,
    controller: ode && ode.controller === 'constant' ? Controller.CONSTANT : Controller.PID,
    eventRtol: ode?.event?.rtol ?? 0,
    eventAtol: ode?.event?.atol ?? 0,
    a21: tab && tab.stages > 1 ? tab.a[0]![0]! : 0,
    gridOff: ws.grid,
    gridN: ode && ode.controller === 'constant' && ode.event ? constantStepEnds(ode.maxT1, ode.dt!).length : 0,
    y: ws.fam.y,
    py: ws.fam.py,
    y1: ws.fam.t, // the candidate y1 shares the probe's slot
    py1: ws.fam.pt,
    k1: ws.stageOffset(1),
    ks: tab ? ws.stageOffset(Math.min(tab.stages, ws.stages)) : ws.stageOffset(1),
    t: ws.fam.t,
    pt: ws.fam.pt,
    n: ws.nAll,
    sqOff: ws.fam.y,
    sqN: ws.nAll,
  });
  ws.writeConfig(data);
}

/** The solver state as the host sees it at a poll. */
export interface SolverStateView {
  tprev: number;
  tnext: number;
  steps: number;
  accepted: number;
  rejected: number;
  lastAccepted: boolean;
  /** Of the last attempted step; -1 when it was not finite. */
  scaledError: number;
  done: boolean;
  steadyState: boolean;
}

function view(words: Float32Array): SolverStateView {
  const u = new Uint32Array(words.buffer, words.byteOffset, STATE_WORDS);
  return {
    tprev: words[STATE.tprev]!,
    tnext: words[STATE.tnext]!,
    steps: u[STATE.steps]!,
    accepted: u[STATE.accepted]!,
    rejected: u[STATE.rejected]!,
    lastAccepted: u[STATE.lastAccepted] !== 0,
    scaledError: words[STATE.scaledError]!,
    done: u[STATE.done] !== 0,
    steadyState: u[STATE.event] !== 0,
  };
}

async function runControlled(
  ws: Workspace,
  rec: Recorder,
  cfg: Extract<ResolvedSolver, { kind: 'ode' }>,
  loss: Loss,
  before: number,
  observe: ((state: SolverStateView) => void) | undefined,
): Promise<SolveStats> {
  const rt = ws.runtime;
  const tab = cfg.tableau;
  const s = tab.stages;
  const pid = cfg.controller === 'constant' ? undefined : cfg.controller;
  const recording = cfg.record !== null;
  if (cfg.controller === 'constant') {
    const ends = constantStepEnds(cfg.maxT1, cfg.dt!);
    if (ends.length > cfg.maxSteps) {
      throw new WpcSolverError(
        `solveInference: a constant step of ${cfg.dt} needs ${ends.length} steps to reach maxT1 = ${cfg.maxT1}, more than maxSteps = ${cfg.maxSteps} (diffrax fails here too); raise maxSteps or dt`,
      );
    }
    ws.writeGrid(ends);
  }
  // Records 1..s: the stages; s+1, s+2: Hairer's probes.
  ws.writeStageRecords(`controlled:${tab.name}:${pid?.rtol}:${pid?.atol}`, () =>
    controlledRecords(tab, pid?.rtol ?? 0, pid?.atol ?? 0, pid !== undefined),
  );
  const stageRecord = (i: number) => i;
  if (pid && cfg.dt === undefined) {
    // Hairer's initial step: d0 from y, d1 from f0 = f(y), then d2 from f(y + h0·f0).
    writeSolverConfig(ws, cfg, { err: ws.partD0, ev: ws.partA });
    ws.recordErrors(rec, 'y', loss, false);
    ws.recordActivityGrad(rec, 'y', false, s + 1);
    ws.recordElementwise(rec, 'scaled_square');
    ws.recordSolver(rec, 'hairer_h0');
    ws.recordElementwise(rec, 'hairer_probe');
    ws.recordErrors(rec, 't', loss, false);
    ws.recordActivityGrad(rec, 't', false, s + 2);
    rec.submit();
    // Queue-ordered after the submit above: hairer_dt0 and the steps see the controller's config.
    writeSolverConfig(ws, cfg);
    ws.recordSolver(rec, 'hairer_dt0');
  } else {
    writeSolverConfig(ws, cfg);
  }
  if (tab.fsal) {
    // The first step's first stage; later steps take it from the previous step's last.
    ws.recordErrors(rec, 'y', loss, true);
    if (recording) recordingWhen(rec, ws, loss, cfg, RecordWhen.NEXT_START);
    ws.recordActivityGrad(rec, 'y', true, stageRecord(1));
  }

  const history = ws.pidHistory;
  let encoded = 0; // steps submitted so far
  let confirmed = 0; // steps the last poll saw completed
  const encodeSteps = (count: number) => {
    for (let n = 0; n < count; n++) {
      for (let i = tab.fsal ? 2 : 1; i <= s; i++) {
        ws.recordErrors(rec, pointOf(i), loss, true);
        if (i === 1 && recording) recordingWhen(rec, ws, loss, cfg, RecordWhen.NEXT_START);
        ws.recordActivityGrad(rec, pointOf(i), true, stageRecord(i));
      }
      ws.recordSolver(rec, 'step_control');
      ws.recordElementwise(rec, 'accept');
      if (tab.fsal && recording) recordingWhen(rec, ws, loss, cfg, RecordWhen.ACCEPTED);
      // The first chunk's first steps go to the GPU while the host encodes the rest (later chunks are queued while
      // the GPU is busy with the one before).
      if (encoded === 0 && n + 1 < count && submitAfterStep(n)) rec.submit();
    }
    rec.submit();
    encoded += count;
    return rt.readLater([{ buffer: ws.state, byteOffset: 0, byteLength: STATE_WORDS * 4 }]);
  };
  const chunk = () => Math.min(cfg.pollEvery, cfg.maxSteps - encoded);
  let started = performance.now();
  // The first chunk is as long as the last solve on this workspace (usually enough: one poll per solve). Once
  // a poll shows the solve still running, the next chunk is always queued before waiting, so the GPU never
  // idles; steps queued past the end are no-ops.
  let pending = encodeSteps(Math.min(cfg.maxSteps, Math.max(cfg.pollEvery, history.lastSteps)));
  let speculate = history.lastSteps === 0;
  let words: Float32Array;
  for (;;) {
    // Real (not no-op) steps the awaited read is expected to wait for: those queued before it, capped by how many
    // the last solve needed while this one has not passed that, less those the last poll already saw. They size
    // the sleep; the estimator then learns from the steps the poll shows were really taken (a guess there would
    // inflate it whenever a solve runs longer than the last, and every later sleep with it).
    const expectedDone = history.lastSteps > confirmed ? Math.min(encoded, history.lastSteps) : encoded;
    const units = Math.max(1, expectedDone - confirmed);
    const next = speculate && encoded < cfg.maxSteps ? encodeSteps(chunk()) : undefined;
    [words] = (await pending.wait({ expectedMs: history.sleep.sleepFor(units, performance.now() - started) })) as [
      Float32Array,
    ];
    const v = view(words);
    history.sleep.update(v.steps - confirmed, performance.now() - started, pending.mapMs);
    started = performance.now();
    observe?.(v);
    confirmed = v.steps;
    if (v.done || (!next && encoded >= cfg.maxSteps)) {
      if (next) void next.wait().catch(() => undefined); // only to give its staging buffer back
      break;
    }
    speculate = true;
    pending = next ?? encodeSteps(chunk());
  }
  const u = new Uint32Array(words.buffer, words.byteOffset, STATE_WORDS);
  history.lastSteps = u[STATE.steps]!;
  const t = words[STATE.tprev]!;
  const failed = u[STATE.failed]!;
  if (failed !== 0 || u[STATE.done] === 0) {
    const where = `after ${u[STATE.accepted]} accepted and ${u[STATE.rejected]} rejected steps at t = ${t}`;
    if (failed === 2)
      throw new WpcSolverError(`solveInference: the step size fell below dtmin (forceDtmin is off) ${where}`);
    if (failed === 3)
      throw new WpcSolverError(
        'solveInference: the activities or their gradients are not finite at the start of inference',
      );
    if (words[STATE.scaledError] === -1) {
      throw new WpcSolverError(
        `solveInference: the activities became non-finite (NaN or infinity) during inference, so every step was rejected until maxSteps (${cfg.maxSteps}) ${where}; check the data and weights for NaN, or lower the learning rate`,
      );
    }
    throw new WpcSolverError(
      `solveInference: maxSteps (${cfg.maxSteps}) steps were taken without reaching maxT1 = ${cfg.maxT1} (${where}); diffrax fails here too. Raise maxSteps, loosen rtol/atol, or lower maxT1`,
    );
  }
  const accepted = u[STATE.accepted]!;
  if (recording && !tab.fsal) {
    recordFinal(ws, rec, cfg, loss, RecordWhen.FINAL);
    rec.submit();
  }
  return finishStats(
    ws,
    before,
    { t, accepted, rejected: u[STATE.rejected]!, steadyState: u[STATE.event] !== 0, stepsEncoded: encoded },
    cfg,
    recording ? accepted + 1 : 0,
  );
}

/** A description of the solver options for messages. */
export function describeSolver(cfg: ResolvedSolver): string {
  return cfg.kind === 'discrete'
    ? `${cfg.optimizer.config.kind} × ${cfg.steps}`
    : `${cfg.tableau.name}/${cfg.controller === 'constant' ? 'constant' : 'pid'}`;
}
