/**
 * The solver config uniform (struct Config in solver.wgsl): the part a solve's configuration fixes (the
 * controller's settings, the tableau's order, the event's tolerances), computed without a workspace, and the
 * part a workspace adds (where its families, stages and partial sums are), joined when the uniform is written.
 */
import type { Workspace } from '../workspace.js';
import { constantStepEnds, t1ClipFloor } from './grid.js';
import type { ResolvedSolver } from './options.js';
import { ConfigFlag, Controller } from '../../kernels/solver.js';
import { type SolverConfig as ConfigStruct, packSolverConfig } from '../../kernels/structs.js';

/** The fields of struct Config a workspace decides. */
type LayoutField =
  | 'count'
  | 'errOff'
  | 'errCount'
  | 'evOff'
  | 'evCount'
  | 'ev0Off'
  | 'ev0Count'
  | 'gridOff'
  | 'y'
  | 'py'
  | 'y1'
  | 'py1'
  | 'k1'
  | 'ks'
  | 't'
  | 'pt'
  | 'n'
  | 'sqOff'
  | 'sqN';

/** The config uniform as a solve's configuration alone fixes it. */
export interface SolverConfig {
  /** Every field of struct Config that does not depend on the workspace. */
  readonly fields: Readonly<Omit<ConfigStruct, LayoutField>>;
  /** The tableau's stages (null without one): which stage's partials carry the error, and the last stage's slot. */
  readonly stages: number | null;
  /** FSAL tableaux test the steady-state event on the last stage's partials. */
  readonly fsal: boolean;
}

/**
 * The config of `solver`, or of none: the kernels that run outside a solve (`activate`) only read the layout,
 * and the controller's fields keep diffrax's defaults.
 */
export function solverConfig(solver: ResolvedSolver | undefined): SolverConfig {
  // Discrete inference has neither a controller nor a tableau: its config is the one of no solve.
  const odeSolver = solver?.kind === 'ode' ? solver : undefined;
  const pid = odeSolver && odeSolver.controller !== 'constant' ? odeSolver.controller : undefined;
  const tableau = odeSolver?.tableau;
  const event = odeSolver?.event ?? null;
  const maxT1 = odeSolver?.maxT1 ?? 0;
  const constant = odeSolver !== undefined && odeSolver.controller === 'constant';
  return {
    fields: {
      t0: 0,
      t1: maxT1,
      t1Floor: t1ClipFloor(maxT1),
      rtol: pid?.rtol ?? 0,
      atol: pid?.atol ?? 0,
      pcoeff: pid?.pcoeff ?? 0,
      icoeff: pid?.icoeff ?? 1,
      dcoeff: pid?.dcoeff ?? 0,
      factormin: pid?.factormin ?? 0.2,
      factormax: pid?.factormax ?? 10,
      safety: pid?.safety ?? 0.9,
      dtmin: pid?.dtmin ?? 0,
      dtmax: pid?.dtmax ?? 0,
      errorOrder: tableau?.order ?? 1,
      maxSteps: odeSolver?.maxSteps ?? 0,
      flags:
        (pid?.dtmin !== undefined ? ConfigFlag.DTMIN : 0) |
        (pid?.dtmax !== undefined ? ConfigFlag.DTMAX : 0) |
        (pid?.forceDtmin ? ConfigFlag.FORCE_DTMIN : 0) |
        (event ? ConfigFlag.EVENT : 0) |
        (tableau?.fsal ? ConfigFlag.FSAL : 0),
      controller: constant ? Controller.CONSTANT : Controller.PID,
      eventRtol: event?.rtol ?? 0,
      eventAtol: event?.atol ?? 0,
      a21: tableau && tableau.stages > 1 ? tableau.a[0]![0]! : 0,
      gridN: constant && event ? constantStepEnds(maxT1, odeSolver.dt!).length : 0,
    },
    stages: tableau?.stages ?? null,
    fsal: tableau?.fsal ?? false,
  };
}

/** A partial-sum region: `count` tiles of 4 floats from `off`. */
interface ConfigRegion {
  off: number;
  count: number;
}

/** Partial-sum regions that replace the controller's usual ones (Hairer's first phase reads d0's and d1's). */
interface ConfigRegions {
  err?: ConfigRegion;
  ev?: ConfigRegion;
}

/** Writes `config` with `ws`'s layout into the workspace's config uniform (queue-ordered). */
export function encodeConfig(ws: Workspace, config: SolverConfig, regions: ConfigRegions = {}): void {
  const { fam } = ws;
  const multiStage = config.stages !== null && config.stages > 1;
  // The error estimate comes from the last stage (at the probe, partials B); steady-state tests read f(y)
  // from the first stage (partials A) or, for FSAL tableaux, from the last stage at the candidate.
  const err = regions.err ?? (multiStage ? ws.partB : ws.partA);
  const ev = regions.ev ?? (config.fsal ? ws.partB : ws.partA);
  ws.writeConfig(
    packSolverConfig({
      ...config.fields,
      count: ws.nAll, // the whole ODE state, the output layer's dummy activity included
      errOff: err.off,
      errCount: err.count,
      evOff: ev.off,
      evCount: ev.count,
      ev0Off: ws.partA.off,
      ev0Count: ws.partA.count,
      gridOff: ws.grid,
      y: fam.y,
      py: fam.py,
      y1: fam.t, // the candidate y1 shares the probe's slot
      py1: fam.pt,
      k1: ws.stageOffset(1),
      ks: config.stages === null ? ws.stageOffset(1) : ws.stageOffset(Math.min(config.stages, ws.stages)),
      t: fam.t,
      pt: fam.pt,
      n: ws.nAll,
      sqOff: fam.y,
      sqN: ws.nAll,
    }),
  );
}

/** Writes the solver config uniform of `solver` on `ws`, or of none (for the kernels that run outside a solve). */
export function writeSolverConfig(ws: Workspace, solver: ResolvedSolver | undefined): void {
  encodeConfig(ws, solverConfig(solver));
}
