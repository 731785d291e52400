/**
 * A solve's plan: everything a solve does that its configuration alone decides — which loop runs it, the
 * tableau, the float32 step grid, the config uniform's settings, the initial solver state, the stage records
 * (named by a key, built by records.ts), how the steps are chunked into submits, and what is recorded. It is a
 * plain value computed without a workspace, so equal configurations give equal plans; the loops
 * (free-running.ts, controlled.ts, discrete.ts) encode it on a workspace.
 */
import type { OptimizerConfig } from '../optim.js';
import type { Tableau } from '../tableaux.js';
import { type SolverConfig, solverConfig } from './config.js';
import { constantStepGrid } from './grid.js';
import {
  type DiscreteSolver,
  type OdeSolver,
  type ResolvedPid,
  type ResolvedRecording,
  type ResolvedSolver,
  stagesPerStep,
} from './options.js';

interface PlanBase {
  /** The config uniform's settings (the workspace adds its layout when it is written). */
  readonly config: SolverConfig;
  /** tnext of the initial solver state: the end of the first step, 0 where the GPU chooses it. */
  readonly firstStepEnd: number;
  /** The workspace keeps the stage records under this key: equal keys, equal records. */
  readonly recordsKey: string;
  readonly recording: ResolvedRecording | null;
}

/**
 * A constant step without the steady-state event: the whole grid is known, so every step is encoded up front
 * and nothing is read back.
 */
export interface FreeRunningPlan extends PlanBase {
  readonly loop: 'free-running';
  readonly tableau: Tableau;
  /** Stages each step evaluates (FSAL tableaux skip the last). */
  readonly stagesPerStep: number;
  /** The float32 step sizes, one per step. */
  readonly sizes: readonly number[];
  /** The single-workgroup solve's coefficients (a and b of the stages evaluated) and their upload key. */
  readonly fused: { readonly a: readonly (readonly number[])[]; readonly b: readonly number[]; readonly key: string };
  readonly maxT1: number;
  readonly dt: number;
  readonly maxSteps: number;
}

/**
 * The PID controller, or a constant step with the steady-state event: the GPU decides each step, and the host
 * submits steps in chunks of `pollEvery`, reading the solver state between chunks.
 */
export interface ControlledPlan extends PlanBase {
  readonly loop: 'controlled';
  readonly tableau: Tableau;
  readonly pid: ResolvedPid | null;
  /** Constant steps: the float32 ends of the steps, uploaded for the controller. */
  readonly grid: readonly number[] | null;
  /** Hairer's algorithm chooses the first step (the PID controller without `dt`). */
  readonly hairer: boolean;
  readonly maxT1: number;
  readonly dt: number | undefined;
  readonly maxSteps: number;
  readonly pollEvery: number;
}

/** Discrete inference: `steps` optimiser updates, each fused with the gradient. */
export interface DiscretePlan extends PlanBase {
  readonly loop: 'discrete';
  readonly optimizer: Readonly<OptimizerConfig>;
  readonly steps: number;
}

export type SolvePlan = FreeRunningPlan | ControlledPlan | DiscretePlan;

/** The plan of a resolved solver configuration. */
export function planSolve(solver: ResolvedSolver): SolvePlan {
  if (solver.kind === 'discrete') return discretePlan(solver);
  return solver.controller === 'constant' && !solver.event ? freeRunningPlan(solver) : controlledPlan(solver);
}

function discretePlan(solver: DiscreteSolver): DiscretePlan {
  const optimizer = solver.optimizer.config;
  return {
    loop: 'discrete',
    config: solverConfig(solver),
    firstStepEnd: 0,
    recordsKey: `discrete:${JSON.stringify(optimizer)}:${solver.steps}`,
    recording: solver.record,
    optimizer,
    steps: solver.steps,
  };
}

function freeRunningPlan(solver: OdeSolver): FreeRunningPlan {
  const { tableau, maxT1 } = solver;
  const dt = solver.dt!;
  const grid = constantStepGrid(maxT1, dt);
  const perStep = stagesPerStep(tableau);
  return {
    loop: 'free-running',
    config: solverConfig(solver),
    firstStepEnd: grid.ends[0]!,
    recordsKey: `free:${tableau.name}:${maxT1}:${dt}`,
    recording: solver.record,
    tableau,
    stagesPerStep: perStep,
    sizes: grid.sizes,
    fused: {
      a: tableau.a.slice(0, perStep - 1),
      b: tableau.b.slice(0, perStep),
      key: `${tableau.name}:${maxT1}:${dt}`,
    },
    maxT1,
    dt,
    maxSteps: solver.maxSteps,
  };
}

function controlledPlan(solver: OdeSolver): ControlledPlan {
  const { tableau, maxT1, dt } = solver;
  const pid = solver.controller === 'constant' ? null : solver.controller;
  const grid = pid ? null : constantStepGrid(maxT1, dt!).ends;
  return {
    loop: 'controlled',
    config: solverConfig(solver),
    firstStepEnd: grid ? grid[0]! : pid && dt !== undefined ? firstPidStep(pid, dt, maxT1) : 0,
    recordsKey: `controlled:${tableau.name}:${pid?.rtol}:${pid?.atol}`,
    recording: solver.record,
    tableau,
    pid,
    grid,
    hairer: pid !== null && dt === undefined,
    maxT1,
    dt,
    maxSteps: solver.maxSteps,
    pollEvery: solver.pollEvery,
  };
}

/** The PID controller's first step: dt0 within [dtmin, dtmax], ending at t1 at the latest (float32). */
function firstPidStep(pid: ResolvedPid, dt: number, maxT1: number): number {
  let dt0 = dt;
  if (pid.dtmax !== undefined) dt0 = Math.min(dt0, pid.dtmax);
  if (pid.dtmin !== undefined) dt0 = Math.max(dt0, pid.dtmin);
  return Math.min(Math.fround(dt0), Math.fround(maxT1));
}

/** Steps encoded per submit when the whole grid is known (bounds command-buffer size; browsers stay responsive). */
const FREE_RUNNING_CHUNK = 64;

/** Steps done at the ramp's submits (chunks of 4, 8, 16, 32). */
const RAMP_SUBMITS: readonly number[] = [4, 12, 28, 60];

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
