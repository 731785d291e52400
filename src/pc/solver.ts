/**
 * The inference ODE dz/dt = −∂F/∂z, integrated on the GPU with diffrax's semantics.
 *
 * - Constant step sizes (Euler, Heun): the step grid is known in advance, so it is computed here with diffrax's
 *   float32 arithmetic (first step [t0, t0+dt0], then t_n = t0 + (t1−t0)·n/N with N = ⌈(t1−t0)/nextafter(dt0)⌉,
 *   diffrax ≥ 0.7.1) and every step is encoded up front: no readback at all.
 * - Heun + PID controller: the accept/reject decision and the next step size are made on the GPU
 *   (solver.wgsl). The host submits the steps in chunks and reads the 64-byte solver state only between chunks
 *   (at most once every `pollEvery` steps); steps submitted after the solve has finished are no-ops.
 */
import { WpcArgumentError, WpcSolverError, argError, checkFinite, checkKnownKeys, checkOneOf, checkPositiveInt } from '../runtime/errors.js';
import { Recorder } from '../runtime/recorder.js';
import { CONFIG_WORDS, STATE, STATE_WORDS, type Loss, type StageRecord, type Workspace } from './workspace.js';

export type SolverName = 'euler' | 'heun';
export const SOLVERS: readonly SolverName[] = ['euler', 'heun'];

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

export interface SolverOptions {
  /** Default `'heun'`. */
  solver?: SolverName;
  /** Default `{ pid: { rtol: 1e-3, atol: 1e-3 } }` (JPC's). Euler has no error estimate and needs `'constant'`. */
  stepsizeController?: StepsizeController;
  /** End time t1 of the integration. Default 20. */
  maxT1?: number;
  /** The (initial, for PID) step size dt0. Default: Hairer's initial-step algorithm with PID; required when constant. */
  dt?: number;
  /** Most attempted steps (accepted + rejected); exceeding it is an error, as in diffrax. Default 4096. */
  maxSteps?: number;
  /** PID only: the host reads the solver state at most every this many steps. Default 8. */
  pollEvery?: number;
}

export const SOLVER_OPTION_KEYS = ['solver', 'stepsizeController', 'maxT1', 'dt', 'maxSteps', 'pollEvery'] as const;

export interface ResolvedSolver {
  solver: SolverName;
  controller: 'constant' | Required<Omit<PidOptions, 'dtmin' | 'dtmax'>> & { dtmin?: number; dtmax?: number };
  maxT1: number;
  dt: number | undefined;
  maxSteps: number;
  pollEvery: number;
}

const PID_KEYS = ['rtol', 'atol', 'pcoeff', 'icoeff', 'dcoeff', 'factormin', 'factormax', 'safety', 'dtmin', 'dtmax', 'forceDtmin'] as const;

/** Validates and fills in solver options (every error names the option). */
export function resolveSolverOptions(fn: string, options: SolverOptions): ResolvedSolver {
  const solver = checkOneOf(fn, 'options.solver', options.solver ?? 'heun', SOLVERS);
  const maxT1 = checkFinite(fn, 'options.maxT1', options.maxT1 ?? 20, { min: 0, open: true });
  const dt = options.dt === undefined ? undefined : checkFinite(fn, 'options.dt', options.dt, { min: 0, open: true });
  const maxSteps = checkPositiveInt(fn, 'options.maxSteps', options.maxSteps ?? 4096);
  const pollEvery = checkPositiveInt(fn, 'options.pollEvery', options.pollEvery ?? 8);
  const sc = options.stepsizeController ?? { pid: { rtol: 1e-3, atol: 1e-3 } };
  if (sc === 'constant') {
    if (dt === undefined) {
      throw new WpcArgumentError(`${fn}: options.dt must be given with stepsizeController 'constant' (diffrax cannot choose a constant step)`);
    }
    return { solver, controller: 'constant', maxT1, dt, maxSteps, pollEvery };
  }
  if (typeof sc !== 'object' || sc === null || typeof sc.pid !== 'object' || sc.pid === null) {
    argError(fn, 'options.stepsizeController', "'constant' or { pid: { rtol, atol, ... } }", sc);
  }
  checkKnownKeys(fn, 'options.stepsizeController', sc, ['pid']);
  const p = sc.pid;
  checkKnownKeys(fn, 'options.stepsizeController.pid', p, PID_KEYS);
  if (solver === 'euler') {
    throw new WpcArgumentError(
      `${fn}: options.solver 'euler' has no error estimate, so it cannot be used with a PID step-size controller; use stepsizeController: 'constant' or solver: 'heun'`,
    );
  }
  const at = (k: string) => `options.stepsizeController.pid.${k}`;
  const controller = {
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
  if (controller.rtol === 0 && controller.atol === 0) {
    throw new WpcArgumentError(`${fn}: options.stepsizeController.pid needs rtol > 0 or atol > 0, got both 0`);
  }
  if (typeof controller.forceDtmin !== 'boolean') argError(fn, at('forceDtmin'), 'a boolean', controller.forceDtmin);
  return { solver, controller, maxT1, dt, maxSteps, pollEvery };
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
  scratch.setUint32(0, (v > 0) === up ? bits + 1 : bits - 1);
  return scratch.getFloat32(0);
}

/** t1 minus 100 float32 ulps: diffrax rounds a step ending past it to t1. */
export function t1ClipFloor(t1: number): number {
  let t = f32(t1);
  for (let i = 0; i < 100; i++) t = stepF32(t, false);
  return t;
}

/** Step sizes of diffrax's ConstantStepSize on [0, t1] with dt0, in float32, as the GPU will take them. */
export function constantStepSizes(t1: number, dt0: number): number[] {
  const T1 = f32(t1);
  const dt = f32(dt0);
  const n = Math.ceil(f32(T1 / stepF32(dt, true)));
  const floor = t1ClipFloor(T1);
  const sizes: number[] = [];
  let tprev = 0;
  let tnext = Math.min(dt, T1);
  let completed = 1;
  while (tprev < T1) {
    sizes.push(f32(tnext - tprev));
    completed++;
    const t1Next = completed === n ? T1 : f32(f32(T1) * f32(completed / n));
    tprev = Math.min(tnext, T1);
    tnext = t1Next > floor ? T1 : t1Next;
    if (sizes.length > 1e7) throw new Error('constantStepSizes: runaway grid');
  }
  return sizes;
}

// ---------------------------------------------------------------------------------------------------------

export interface SolveStats {
  /** Time reached (maxT1 once finished). */
  t: number;
  accepted: number;
  rejected: number;
  /** Dispatches encoded for the steps (no-op steps after a PID solve finished included). */
  dispatches: number;
  /** Steps encoded (for PID: including no-op steps after the end). */
  stepsEncoded: number;
}

/** Steps encoded per submit for constant step sizes (bounds command-buffer size; browsers stay responsive). */
const CONSTANT_CHUNK = 64;

/**
 * Integrates from the activities in the workspace's y (with φ(y), pred1, x and the target in place; work to
 * produce them may still be recorded in `rec`). Leaves the solution in y and φ(y).
 */
export async function integrate(
  ws: Workspace,
  rec: Recorder,
  cfg: ResolvedSolver,
  loss: Loss,
  observe?: (state: SolverStateView) => void,
): Promise<SolveStats> {
  const before = rec.dispatches + ws.runtime.stats.dispatches;
  if (cfg.controller === 'constant') {
    const sizes = constantStepSizes(cfg.maxT1, cfg.dt!);
    if (sizes.length > cfg.maxSteps) {
      throw new WpcSolverError(
        `solveInference: a constant step of ${cfg.dt} needs ${sizes.length} steps to reach maxT1 = ${cfg.maxT1}, more than maxSteps = ${cfg.maxSteps} (diffrax fails here too); raise maxSteps or dt`,
      );
    }
    const inPlace = cfg.solver === 'heun';
    ws.writeStageRecords([
      { dt: 0, rtol: 0, atol: 0, candidate: 'in-place' },
      ...sizes.map((dt): StageRecord => ({ dt, rtol: 0, atol: 0, candidate: inPlace ? 'in-place' : 'probe' })),
    ]);
    sizes.forEach((_, i) => {
      ws.recordErrors(rec, 'y', loss, false);
      if (cfg.solver === 'euler') {
        ws.recordActivityGrad(rec, 'euler', false, i + 1);
      } else {
        ws.recordActivityGrad(rec, 'heun1', false, i + 1);
        ws.recordErrors(rec, 't', loss, false);
        ws.recordActivityGrad(rec, 'heun2', false, i + 1);
      }
      if ((i + 1) % CONSTANT_CHUNK === 0) rec.submit();
    });
    rec.submit();
    const dispatches = ws.runtime.stats.dispatches - before;
    return { t: f32(cfg.maxT1), accepted: sizes.length, rejected: 0, dispatches, stepsEncoded: sizes.length };
  }
  return integratePid(ws, rec, cfg, loss, before, observe);
}

/**
 * Writes the solver config uniform: the PID controller's settings (when adaptive) and the layout the
 * elementwise solver kernels use. `part` is what pid_control / hairer_dt0 / scaled_square use, `part2` the
 * second set of hairer_h0.
 */
export function writeSolverConfig(
  ws: Workspace,
  cfg: ResolvedSolver | undefined,
  part = ws.stagePartials,
  part2 = ws.stagePartials,
): void {
  const c = cfg && cfg.controller !== 'constant' ? cfg.controller : undefined;
  const data = new ArrayBuffer(CONFIG_WORDS * 4);
  const f = new Float32Array(data);
  const u = new Uint32Array(data);
  const maxT1 = cfg?.maxT1 ?? 0;
  f[0] = 0; // t0
  f[1] = maxT1;
  f[2] = t1ClipFloor(maxT1);
  f[3] = c?.rtol ?? 0;
  f[4] = c?.atol ?? 0;
  f[5] = c?.pcoeff ?? 0;
  f[6] = c?.icoeff ?? 1;
  f[7] = c?.dcoeff ?? 0;
  f[8] = c?.factormin ?? 0.2;
  f[9] = c?.factormax ?? 10;
  f[10] = c?.safety ?? 0.9;
  f[11] = c?.dtmin ?? 0;
  f[12] = c?.dtmax ?? 0;
  f[13] = 2; // Heun's error order
  f[14] = ws.nAll; // the whole ODE state, the output layer's dummy activity included
  u[15] = cfg?.maxSteps ?? 0;
  u[16] = c ? (c.dtmin !== undefined ? 1 : 0) | (c.dtmax !== undefined ? 2 : 0) | (c.forceDtmin ? 4 : 0) : 0;
  u[17] = part.off;
  u[18] = part.count;
  u[19] = part2.off;
  u[20] = part2.count;
  u[21] = ws.fam.y;
  u[22] = ws.fam.py;
  u[23] = ws.fam.t; // the Heun candidate y1 shares the probe's slot
  u[24] = ws.fam.pt;
  u[25] = ws.fam.k1;
  u[26] = ws.fam.t;
  u[27] = ws.fam.pt;
  u[28] = ws.nHidden;
  u[29] = ws.fam.y;
  u[30] = ws.nAll;
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
  };
}

async function integratePid(
  ws: Workspace,
  rec: Recorder,
  cfg: ResolvedSolver,
  loss: Loss,
  before: number,
  observe: ((state: SolverStateView) => void) | undefined,
): Promise<SolveStats> {
  const c = cfg.controller as Exclude<ResolvedSolver['controller'], 'constant'>;
  const rt = ws.runtime;
  const state = new ArrayBuffer(STATE_WORDS * 4);
  const sf = new Float32Array(state);
  sf[STATE.tprev] = 0;
  sf[STATE.prevInv] = 1;
  sf[STATE.prevPrevInv] = 1;
  if (cfg.dt !== undefined) {
    let dt0 = cfg.dt;
    if (c.dtmax !== undefined) dt0 = Math.min(dt0, c.dtmax);
    if (c.dtmin !== undefined) dt0 = Math.max(dt0, c.dtmin);
    sf[STATE.tnext] = Math.min(f32(dt0), f32(cfg.maxT1));
  }
  rt.device.queue.writeBuffer(ws.state, 0, state);
  ws.writeStageRecords([{ dt: 0, rtol: c.rtol, atol: c.atol, candidate: 'probe' }]);

  if (cfg.dt === undefined) {
    // Hairer's initial step: d0 from y, d1 from f0 = f(y), then d2 from f(y + h0·f0).
    writeSolverConfig(ws, cfg, ws.squarePartials, ws.stagePartials);
    ws.recordErrors(rec, 'y', loss, false);
    ws.recordActivityGrad(rec, 'hairer1', false);
    ws.recordElementwise(rec, 'scaled_square');
    ws.recordSolver(rec, 'hairer_h0');
    ws.recordElementwise(rec, 'hairer_probe');
    ws.recordErrors(rec, 't', loss, false);
    ws.recordActivityGrad(rec, 'hairer2', false);
    rec.submit();
  }
  // Queue-ordered after the submit above: hairer_dt0 and the steps see the controller's config.
  writeSolverConfig(ws, cfg);
  if (cfg.dt === undefined) ws.recordSolver(rec, 'hairer_dt0');

  const history = ws.pidHistory;
  let encoded = 0; // steps submitted so far
  let confirmed = 0; // steps the last poll saw completed
  const encodeSteps = (count: number) => {
    for (let i = 0; i < count; i++) {
      ws.recordErrors(rec, 'y', loss, true);
      ws.recordActivityGrad(rec, 'heun1', true);
      ws.recordErrors(rec, 't', loss, true);
      ws.recordActivityGrad(rec, 'heun2', true);
      ws.recordSolver(rec, 'pid_control');
      ws.recordElementwise(rec, 'accept');
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
    // Real (not no-op) steps the awaited read waits for: those queued before it, capped by how many the last
    // solve needed, less those the last poll already saw. They size the sleep before the wait.
    const expectedDone = history.lastSteps > 0 ? Math.min(encoded, Math.max(history.lastSteps, confirmed + 1)) : encoded;
    const units = expectedDone - confirmed;
    const next = speculate && encoded < cfg.maxSteps ? encodeSteps(chunk()) : undefined;
    [words] = (await pending.wait({ expectedMs: history.sleep.sleepFor(units, performance.now() - started) })) as [Float32Array];
    history.sleep.update(units, performance.now() - started, pending.mapMs);
    started = performance.now();
    observe?.(view(words));
    confirmed = new Uint32Array(words.buffer, words.byteOffset, STATE_WORDS)[STATE.steps]!;
    const done = new Uint32Array(words.buffer, words.byteOffset, STATE_WORDS)[STATE.done] !== 0;
    if (done || (!next && encoded >= cfg.maxSteps)) {
      if (next) void next.wait().catch(() => undefined); // only to give its staging buffer back
      break;
    }
    speculate = true;
    pending = next ?? encodeSteps(chunk());
  }
  const u = new Uint32Array(words.buffer, words.byteOffset, STATE_WORDS);
  const steps = u[STATE.steps]!;
  history.lastSteps = steps;
  const t = words[STATE.tprev]!;
  const failed = u[STATE.failed]!;
  if (failed !== 0 || u[STATE.done] === 0) {
    const where = `after ${u[STATE.accepted]} accepted and ${u[STATE.rejected]} rejected steps at t = ${t}`;
    if (failed === 2) throw new WpcSolverError(`solveInference: the step size fell below dtmin (forceDtmin is off) ${where}`);
    if (failed === 3) throw new WpcSolverError('solveInference: the activities or their gradients are not finite at the start of inference');
    if (words[STATE.scaledError] === -1) {
      throw new WpcSolverError(
        `solveInference: the activities became non-finite (NaN or infinity) during inference, so every step was rejected until maxSteps (${cfg.maxSteps}) ${where}; check the data and weights for NaN, or lower the learning rate`,
      );
    }
    throw new WpcSolverError(
      `solveInference: maxSteps (${cfg.maxSteps}) steps were taken without reaching maxT1 = ${cfg.maxT1} (${where}); diffrax fails here too. Raise maxSteps, loosen rtol/atol, or lower maxT1`,
    );
  }
  return {
    t,
    accepted: u[STATE.accepted]!,
    rejected: u[STATE.rejected]!,
    dispatches: rt.stats.dispatches - before,
    stepsEncoded: encoded,
  };
}
