/**
 * The solver's host-written WGSL structs and their packers: `struct Config` (solver.wgsl), the uniform every
 * solver kernel reads, and the `struct SolverState` (solver-state.wgsl) a solve starts from. Field names are the
 * WGSL's; each packer writes the words in declaration order and nothing else, so it can move next to the
 * structs' other packers unchanged.
 */
import { CONFIG_WORDS, STATE, STATE_WORDS } from '../workspace.js';

/** `flags` of struct Config (FLAG_* in solver.wgsl). */
export const ConfigFlag = {
  DTMIN: 1,
  DTMAX: 2,
  FORCE_DTMIN: 4,
  EVENT: 8,
  FSAL: 16,
} as const;

/** `controller` of struct Config (CONTROLLER_* in solver.wgsl). */
export const Controller = {
  PID: 0,
  CONSTANT: 1,
} as const;

/** A partial-sum region of struct Config: `count` tiles of 4 floats from `off`. */
export interface ConfigRegion {
  off: number;
  count: number;
}

/** struct Config, field by field (regions stand for their `_off`/`_count` pairs; the padding is zero). */
export interface SolverConfigStruct {
  t0: number;
  t1: number;
  t1Floor: number;
  rtol: number;
  atol: number;
  pcoeff: number;
  icoeff: number;
  dcoeff: number;
  factormin: number;
  factormax: number;
  safety: number;
  dtmin: number;
  dtmax: number;
  errorOrder: number;
  count: number;
  maxSteps: number;
  flags: number;
  err: ConfigRegion;
  ev: ConfigRegion;
  ev0: ConfigRegion;
  controller: number;
  eventRtol: number;
  eventAtol: number;
  a21: number;
  gridOff: number;
  gridN: number;
  y: number;
  py: number;
  y1: number;
  py1: number;
  k1: number;
  ks: number;
  t: number;
  pt: number;
  n: number;
  sqOff: number;
  sqN: number;
}

/** The words of struct Config. */
export function packSolverConfig(c: SolverConfigStruct): ArrayBuffer {
  const data = new ArrayBuffer(CONFIG_WORDS * 4);
  const f = new Float32Array(data);
  const u = new Uint32Array(data);
  f[0] = c.t0;
  f[1] = c.t1;
  f[2] = c.t1Floor;
  f[3] = c.rtol;
  f[4] = c.atol;
  f[5] = c.pcoeff;
  f[6] = c.icoeff;
  f[7] = c.dcoeff;
  f[8] = c.factormin;
  f[9] = c.factormax;
  f[10] = c.safety;
  f[11] = c.dtmin;
  f[12] = c.dtmax;
  f[13] = c.errorOrder;
  f[14] = c.count;
  u[15] = c.maxSteps;
  u[16] = c.flags;
  u[17] = c.err.off;
  u[18] = c.err.count;
  u[19] = c.ev.off;
  u[20] = c.ev.count;
  u[21] = c.ev0.off;
  u[22] = c.ev0.count;
  u[23] = c.controller;
  f[24] = c.eventRtol;
  f[25] = c.eventAtol;
  f[26] = c.a21;
  u[27] = c.gridOff;
  u[28] = c.gridN;
  u[29] = c.y;
  u[30] = c.py;
  u[31] = c.y1;
  u[32] = c.py1;
  u[33] = c.k1;
  u[34] = c.ks;
  u[35] = c.t;
  u[36] = c.pt;
  u[37] = c.n;
  u[38] = c.sqOff;
  u[39] = c.sqN;
  return data;
}

/**
 * The words of struct SolverState at the start of a solve: no PID memory yet (1/error = 1), the initial state
 * counting as accepted (recording), and the end of the first step (0 where the GPU chooses it).
 */
export function packInitialState(tnext: number): ArrayBuffer {
  const state = new ArrayBuffer(STATE_WORDS * 4);
  const f = new Float32Array(state);
  const u = new Uint32Array(state);
  f[STATE.prevInv] = 1;
  f[STATE.prevPrevInv] = 1;
  u[STATE.lastAccepted] = 1;
  f[STATE.tnext] = tnext;
  return state;
}
