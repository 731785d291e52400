/**
 * The solver options of every inference and training function: their types, their defaults, and their
 * resolution into a `ResolvedSolver` value, refusing (with the option's name) anything that is not a valid
 * diffrax/JPC configuration or that WPC cannot run, before anything is allocated.
 */
import { WpcArgumentError, argError, checkFinite, checkKnownKeys, checkPositiveInt } from '../../runtime/errors.js';
import { F32_MAX, checkCap, groupDigits } from '../../runtime/limits.js';
import { Optimizer } from '../optim.js';
import { SOLVER_NAMES, TABLEAUX, type SolverName, type Tableau } from '../tableaux.js';
import { MAX_SOLVE_STEPS, gridLongerThan, gridSteps } from './grid.js';

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
  /**
   * The (initial, for PID) step size dt0. Default: Hairer's initial-step algorithm with PID; required when
   * constant.
   */
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
 * Most stage records one solve may upload (256 bytes each, so at most 256 MiB): a fixed-step solve without the
 * steady-state event has one per stage of every step (the whole grid is encoded up front), discrete inference
 * one per step.
 */
const MAX_STAGE_RECORDS = 1_048_576;

/** Every key of `SolverOptions`: the functions that solve accept them among their options. */
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
const RECORDING_OPTION_KEYS = ['recordIters', 'recordEvery', 'recordActivities', 'maxRecords'] as const;

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

/** diffrax's PID controller with every default filled in. */
export type ResolvedPid = Required<Omit<PidOptions, 'dtmin' | 'dtmax'>> & { dtmin?: number; dtmax?: number };

/** What a solve records, and how often. */
export interface ResolvedRecording {
  /** Record every this many steps (1: every accepted state). */
  everySteps: number;
  activities: boolean;
  capacity: number;
}

/** The steady-state event's tolerances: stop once rms(dz/dt) < atol + rtol·rms(z). */
interface SteadyStateEvent {
  rtol: number;
  atol: number;
}

/** An ODE solve by a Runge–Kutta tableau, to `maxT1`. */
export interface OdeSolver {
  kind: 'ode';
  tableau: Tableau;
  controller: 'constant' | ResolvedPid;
  maxT1: number;
  /** The constant step, or the PID controller's first one (undefined: Hairer's algorithm chooses it). */
  dt: number | undefined;
  maxSteps: number;
  pollEvery: number;
  event: SteadyStateEvent | null;
  record: ResolvedRecording | null;
}

/** Discrete inference: `steps` optimiser updates of the activities. */
export interface DiscreteSolver {
  kind: 'discrete';
  optimizer: Optimizer;
  steps: number;
  record: ResolvedRecording | null;
}

/** Solver options validated and completed: what a solve runs, decided before anything is allocated. */
export type ResolvedSolver = OdeSolver | DiscreteSolver;

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
  const given = (sc as { pid: PidOptions }).pid;
  checkKnownKeys(fn, 'options.stepsizeController.pid', given, PID_KEYS);
  const at = (k: string) => `options.stepsizeController.pid.${k}`;
  const pid: ResolvedPid = {
    rtol: checkFinite(fn, at('rtol'), given.rtol, { min: 0 }),
    atol: checkFinite(fn, at('atol'), given.atol, { min: 0 }),
    pcoeff: checkFinite(fn, at('pcoeff'), given.pcoeff ?? 0),
    icoeff: checkFinite(fn, at('icoeff'), given.icoeff ?? 1),
    dcoeff: checkFinite(fn, at('dcoeff'), given.dcoeff ?? 0),
    factormin: checkFinite(fn, at('factormin'), given.factormin ?? 0.2, { min: 0, max: 1 }),
    factormax: checkFinite(fn, at('factormax'), given.factormax ?? 10, { min: 1 }),
    safety: checkFinite(fn, at('safety'), given.safety ?? 0.9, { min: 0, max: 1, open: true }),
    forceDtmin: given.forceDtmin ?? true,
    ...(given.dtmin === undefined ? {} : { dtmin: checkFinite(fn, at('dtmin'), given.dtmin, { min: 0, open: true }) }),
    ...(given.dtmax === undefined ? {} : { dtmax: checkFinite(fn, at('dtmax'), given.dtmax, { min: 0, open: true }) }),
  };
  if (pid.rtol === 0 && pid.atol === 0)
    throw new WpcArgumentError(`${fn}: options.stepsizeController.pid needs rtol > 0 or atol > 0, got both 0`);
  if (typeof pid.forceDtmin !== 'boolean') argError(fn, at('forceDtmin'), 'a boolean', pid.forceDtmin);
  return pid;
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
  const method = options.solver ?? 'heun';
  if (method instanceof Optimizer) {
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
    return { kind: 'discrete', optimizer: method, steps, record: resolveRecording(fn, options, 1, true) };
  }
  if (typeof method !== 'string' || !(SOLVER_NAMES as readonly string[]).includes(method)) {
    argError(
      fn,
      'options.solver',
      `one of ${SOLVER_NAMES.map((s) => JSON.stringify(s)).join(', ')}, or an optimiser (sgd/adam)`,
      method,
    );
  }
  if (options.steps !== undefined)
    throw new WpcArgumentError(
      `${fn}: options.steps applies to discrete inference only; ODE solvers integrate to options.maxT1`,
    );
  const tableau = TABLEAUX[method];
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
        `${fn}: options.solver '${method}' has no error estimate, so it cannot be used with a PID step-size controller; use stepsizeController: 'constant' or an adaptive solver such as 'heun'`,
      );
    }
  }
  let event: SteadyStateEvent | null = null;
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
  const solver: ResolvedSolver = { kind: 'ode', tableau, controller, maxT1, dt, maxSteps, pollEvery, event, record };
  if (controller === 'constant' && !event) {
    const perStep = stagesPerStep(tableau);
    if (gridLongerThan(maxT1, dt!, Math.floor((MAX_STAGE_RECORDS - 1) / perStep))) {
      const steps = gridSteps(maxT1, dt!);
      throw new WpcArgumentError(
        `${fn}: options.dt ${dt} is too small for a fixed-step ${method} solve to options.maxT1 = ${maxT1}: about ${steps} steps of ${perStep} stage(s) need ` +
          `${groupDigits(1 + steps * perStep)} stage records, more than ${groupDigits(MAX_STAGE_RECORDS)} (256 bytes each, all uploaded before the solve); raise options.dt, lower options.maxT1, or use the steady-state event`,
      );
    }
  }
  return solver;
}

/**
 * Stages a fixed-size step evaluates: all of them, less the last for FSAL tableaux (b_s = 0: their last stage
 * only feeds the next step, which recomputes it as its first).
 */
export function stagesPerStep(tableau: Tableau): number {
  return tableau.fsal ? tableau.stages - 1 : tableau.stages;
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
