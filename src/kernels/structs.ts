/**
 * Every struct the host writes for a WGSL kernel, in one place: its layout (field order and WGSL types, byte
 * offsets and size by WGSL's alignment rules) and its one packer, from a typed record to the bytes the kernel
 * reads. Records that share a uniform buffer sit UNIFORM_STRIDE bytes apart (bound with a dynamic offset).
 * test/structs.test.ts parses each struct from its `.wgsl` file and checks layout and packer against it.
 *
 * Longer than 500 lines: every host-written struct lives here, one short section each.
 */

/** The WGSL types the host-written structs use. */
type FieldType = 'u32' | 'f32' | 'vec2<u32>' | 'array<vec4<f32>, 4>';

const ALIGN_SIZE: Readonly<Record<FieldType, readonly [number, number]>> = {
  u32: [4, 4],
  f32: [4, 4],
  'vec2<u32>': [8, 8],
  'array<vec4<f32>, 4>': [16, 64],
};

/** A WGSL struct as the host sees it: `word[f]` is field f's offset in 4-byte words. */
export interface StructLayout<F extends string> {
  /** The struct's name and the `.wgsl` file that declares it. */
  readonly name: string;
  readonly file: string;
  readonly fields: readonly (readonly [F, FieldType])[];
  readonly offset: Readonly<Record<F, number>>;
  readonly word: Readonly<Record<F, number>>;
  /** The property of a record each field is packed from: its name in camelCase (`a_off` ← `aOff`). */
  readonly key: Readonly<Record<F, string>>;
  readonly bytes: number;
  readonly words: number;
}

function layout<const F extends string>(
  name: string,
  file: string,
  fields: readonly (readonly [F, FieldType])[],
): StructLayout<F> {
  const offset = {} as Record<F, number>;
  const word = {} as Record<F, number>;
  const key = {} as Record<F, string>;
  let at = 0;
  let structAlign = 4;
  for (const [field, type] of fields) {
    const [align, size] = ALIGN_SIZE[type];
    at = Math.ceil(at / align) * align;
    offset[field] = at;
    word[field] = at / 4;
    key[field] = field.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    at += size;
    structAlign = Math.max(structAlign, align);
  }
  const bytes = Math.ceil(at / structAlign) * structAlign;
  return Object.freeze({ name, file, fields, offset, word, key, bytes, words: bytes / 4 });
}

/** A uniform buffer's size for one struct: its size rounded up to 16 bytes (the unit of uniform layouts). */
function uniformBytes(layout: StructLayout<string>): number {
  return Math.ceil(layout.bytes / 16) * 16;
}

const u32 = <N extends string>(name: N) => [name, 'u32'] as const;
const f32 = <N extends string>(name: N) => [name, 'f32'] as const;

/**
 * Bytes between records of a uniform bound with dynamic offsets (≥ every adapter's
 * minUniformBufferOffsetAlignment).
 */
export const UNIFORM_STRIDE = 256;

type Value = number | boolean | readonly number[] | undefined;

/**
 * Packs `records` `strideBytes` apart (at least `minRecords` of them): each field of the struct takes the record's
 * property `layout.key[field]`, as its WGSL type says (u32 or f32; booleans as 1 or 0); a field the record lacks
 * stays 0.
 */
function pack<F extends string>(
  layout: StructLayout<F>,
  records: readonly object[],
  strideBytes = layout.bytes,
  minRecords = 0,
): ArrayBuffer {
  const data = new ArrayBuffer(Math.max(minRecords, records.length) * strideBytes);
  const u = new Uint32Array(data);
  const f = new Float32Array(data);
  records.forEach((record, i) => {
    const o = (i * strideBytes) / 4;
    for (const [field, type] of layout.fields) {
      const value = (record as Record<string, Value>)[layout.key[field]];
      if (value === undefined) continue;
      const target = type.includes('f32') ? f : u;
      if (typeof value === 'object') target.set(value, o + layout.word[field]);
      else target[o + layout.word[field]] = Number(value);
    }
  });
  return data;
}

// ── struct Job (layer-matmul.wgsl): one matmul of a grouped dispatch ──

export const JOB = layout('Job', 'layer-matmul.wgsl', [
  ...(['wg_start', 'tiles_n', 'tiles', 'm', 'n', 'k'] as const).map(u32),
  ...(['a_off', 'b_off', 'c_off', 'd_off', 'e_off', 'f_off', 'bias_off', 'part_off', 'flags'] as const).map(u32),
  f32('coef0'),
  f32('coef1'),
  u32('group0'),
  ...(['geo0', 'geo1', 'geo2', 'geo3'] as const).map(u32),
]);
/** Words per record of a job table. */
export const JOB_WORDS = JOB.words;

/** One layer matmul of a grouped kernel: C (m×n) from A and B (inner dimension k); offsets in f32 elements. */
export interface Job {
  m: number;
  n: number;
  k: number;
  aOff: number;
  bOff: number;
  cOff: number;
  dOff?: number;
  eOff?: number;
  fOff?: number;
  biasOff?: number;
  partOff?: number;
  flags?: number;
  coef0?: number;
  coef1?: number;
  /** A convolution-shaped job's geometry (kernels/conv-gather.wgsl, packed by `packGeometry`); zeros: none. */
  geo0?: number;
  geo1?: number;
  geo2?: number;
  geo3?: number;
}

/** A record of a job table: a run of consecutive workgroups of one job (pc/layer-jobs.ts schedules them). */
interface JobRecord {
  job: Job;
  /** The run's first workgroup in the dispatch. */
  wgStart: number;
  /** Column blocks of the job's output. */
  tilesN: number;
  /** Invocations with outputs (the job's tiles). */
  tiles: number;
  /** The job's workgroup the run starts at. */
  group0: number;
}

/** A job table's bytes (at least one record, so that the storage binding is never empty). */
export function packJobRecords(records: readonly JobRecord[]): ArrayBuffer {
  const withDefaults = records.map(({ job, ...run }) => ({
    ...job,
    coef0: job.coef0 ?? 1,
    coef1: job.coef1 ?? 1,
    ...run,
  }));
  return pack(JOB, withDefaults, JOB.bytes, 1);
}

// ── struct Segment (segment.wgsl): a strided sum of reduce.wgsl and record.wgsl ──

export const SEGMENT = layout('Segment', 'segment.wgsl', [
  ...(['off', 'count', 'stride', 'out'] as const).map(u32),
  f32('scale'),
  ...(['flags', 'off2', 'count2'] as const).map(u32),
  f32('scale2'),
  ...(['pad0', 'pad1', 'pad2'] as const).map(u32),
]);

/** dst[out] = scale·Σ_{i<count} src[off + stride·i] (+ scale2·Σ_{i<count2} src[off2 + stride·i]); ReduceFlag.* */
export interface SegmentSpec {
  off: number;
  count: number;
  stride: number;
  out: number;
  scale: number;
  flags?: number;
  off2?: number;
  count2?: number;
  scale2?: number;
}

/** A segment table's bytes (at least one record). */
export function packSegments(segs: readonly SegmentSpec[]): ArrayBuffer {
  return pack(SEGMENT, segs, SEGMENT.bytes, 1);
}

// ── struct Stage (activity-grad.wgsl): what the activity-gradient epilogue does with a stage ──

export const STAGE = layout('Stage', 'activity-grad.wgsl', [
  ...(['y', 'py', 't', 'pt', 'k', 'k_stride', 'y1', 'py1'] as const).map(u32),
  ...(['dt', 'rtol', 'atol'] as const).map(f32),
  ...(['index', 'mode', 'ncoef', 'nerr', 'opt'] as const).map(u32),
  ['coef', 'array<vec4<f32>, 4>'],
  ['ecoef', 'array<vec4<f32>, 4>'],
  ...(['decay', 'pad0', 'pad1', 'pad2'] as const).map(f32),
]);
/** Bytes of a stage record (its binding's size; records sit UNIFORM_STRIDE apart). */
export const STAGE_BYTES = STAGE.bytes;

/** One record of the stage uniform. */
export interface StageRecord {
  /** StageMode.* (kernels/layer-matmul.ts). */
  mode: number;
  /** i: the dispatch computes k_i (1-based). */
  index: number;
  /** a_{i+1,1..i} (MODE_STAGE) or b_1..b_i (MODE_FINAL); for MODE_OPTIM the optimiser's numbers. */
  coef: readonly number[];
  /** Error weights e_1..e_i; empty when there is no error estimate. */
  ecoef: readonly number[];
  dt: number;
  rtol: number;
  atol: number;
  /** Where MODE_FINAL writes the candidate: the probe's slot (decided later) or y itself (fixed steps). */
  candidate: 'probe' | 'in-place';
  /** MODE_OPTIM: StageOptimizer.*. */
  opt?: number;
}

/** Where the activity families of a workspace start (element offsets), and the activity decay of its energy. */
interface StageFamilies {
  y: number;
  py: number;
  t: number;
  pt: number;
  k: number;
  /** Elements between the stage families k_j (the whole state). */
  kStride: number;
  decay: number;
}

/** The stage uniform's bytes: one record per UNIFORM_STRIDE. */
export function packStages(records: readonly StageRecord[], at: StageFamilies): ArrayBuffer {
  const fields = records.map((r) => {
    const inPlace = r.candidate === 'in-place';
    const [y1, py1] = inPlace ? [at.y, at.py] : [at.t, at.pt];
    return { ...r, ...at, y1, py1, ncoef: r.coef.length, nerr: r.ecoef.length };
  });
  return pack(STAGE, fields, UNIFORM_STRIDE);
}

// ── struct Config (solver.wgsl): the step-size controller and the layout the solver kernels use ──

export const CONFIG = layout('Config', 'solver.wgsl', [
  ...(['t0', 't1', 't1_floor', 'rtol', 'atol', 'pcoeff', 'icoeff', 'dcoeff'] as const).map(f32),
  ...(['factormin', 'factormax', 'safety', 'dtmin', 'dtmax', 'error_order', 'count'] as const).map(f32),
  ...(['max_steps', 'flags', 'err_off', 'err_count', 'ev_off', 'ev_count', 'ev0_off', 'ev0_count'] as const).map(u32),
  u32('controller'),
  ...(['event_rtol', 'event_atol', 'a21'] as const).map(f32),
  ...(['grid_off', 'grid_n', 'y', 'py', 'y1', 'py1', 'k1', 'ks', 't', 'pt', 'n', 'sq_off', 'sq_n'] as const).map(u32),
  ...(['pad5', 'pad6', 'pad0', 'pad1', 'pad2', 'pad3', 'pad4'] as const).map(u32),
]);
/** Words of the solver config uniform (struct Config rounded up to 16 bytes). */
export const CONFIG_WORDS = uniformBytes(CONFIG) / 4;

/** The solver config uniform, field by field (see struct Config in solver.wgsl). */
export interface SolverConfig {
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
  /** ConfigFlag.* (kernels/solver.ts). */
  flags: number;
  errOff: number;
  errCount: number;
  evOff: number;
  evCount: number;
  ev0Off: number;
  ev0Count: number;
  /** Controller.* (kernels/solver.ts). */
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

export function packSolverConfig(c: SolverConfig): ArrayBuffer {
  return pack(CONFIG, [c], CONFIG_WORDS * 4);
}

// ── struct SolverState (solver-state.wgsl): written by the host before a solve, then by the controller ──

export const SOLVER_STATE = layout('SolverState', 'solver-state.wgsl', [
  ...(['tprev', 'tnext', 'prev_inv', 'prev_prev_inv'] as const).map(f32),
  ...(['at_dtmin', 'done', 'failed', 'last_accepted', 'steps', 'accepted', 'rejected'] as const).map(u32),
  ...(['scaled_error', 'h0', 'd1', 'spare'] as const).map(f32),
  u32('event'),
]);
export const STATE_WORDS = SOLVER_STATE.words;

/** Word of each solver-state field, for reading the state back. */
export const STATE = {
  tprev: SOLVER_STATE.word.tprev,
  tnext: SOLVER_STATE.word.tnext,
  prevInv: SOLVER_STATE.word.prev_inv,
  prevPrevInv: SOLVER_STATE.word.prev_prev_inv,
  atDtmin: SOLVER_STATE.word.at_dtmin,
  done: SOLVER_STATE.word.done,
  failed: SOLVER_STATE.word.failed,
  lastAccepted: SOLVER_STATE.word.last_accepted,
  steps: SOLVER_STATE.word.steps,
  accepted: SOLVER_STATE.word.accepted,
  rejected: SOLVER_STATE.word.rejected,
  scaledError: SOLVER_STATE.word.scaled_error,
  h0: SOLVER_STATE.word.h0,
  d1: SOLVER_STATE.word.d1,
  event: SOLVER_STATE.word.event,
} as const;

/** The solver state's fields the host sets before a solve (the others start at 0). */
interface SolverStateStart {
  tnext: number;
  prevInv: number;
  prevPrevInv: number;
  lastAccepted: number;
}

export function packSolverState(s: SolverStateStart): ArrayBuffer {
  return pack(SOLVER_STATE, [s]);
}

// ── struct Reg (regularize.wgsl): one layer of a regulariser dispatch ──

export const REG = layout('Reg', 'regularize.wgsl', [
  ...(['w_off', 'out_dim', 'in_dim', 'd_off'] as const).map(u32),
  f32('coef'),
  ...(['pad0', 'pad1', 'pad2'] as const).map(u32),
]);
export const REG_WORDS = REG.words;

interface RegRecord {
  /** W in the parameters and gradients, [out × in]. */
  wOff: number;
  outDim: number;
  inDim: number;
  /** D = WᵀW − I in the scratch buffer, [in × in]. */
  dOff: number;
  /** wd, or 2·sp. */
  coef: number;
}

/** The regulariser uniform's bytes: one record per UNIFORM_STRIDE. */
export function packRegs(records: readonly RegRecord[]): ArrayBuffer {
  return pack(REG, records, UNIFORM_STRIDE);
}

// ── struct Op (elementwise.wgsl): out = a·u + b·v over n elements ──

export const OP = layout('Op', 'elementwise.wgsl', [
  ...(['n', 'u', 'v', 'out'] as const).map(u32),
  f32('a'),
  f32('b'),
  u32('pad0'),
  u32('pad1'),
]);

/** out = a·u + b·v over n elements of the workspace (φ(u) with the `activate` entry). */
export interface CombineOp {
  n: number;
  u: number;
  v: number;
  out: number;
  a: number;
  b: number;
}

export function packCombineOps(ops: readonly CombineOp[]): ArrayBuffer {
  return pack(OP, ops);
}

// ── struct Fused and struct LayerEntry (fused-solve.wgsl): the single-workgroup solve ──

export const FUSED = layout('Fused', 'fused-solve.wgsl', [
  ...(['layers', 'batch', 'stages', 'steps', 'ce', 'n_all', 'n_hidden'] as const).map(u32),
  ...(['y', 'py', 't', 'pt', 'k', 'e', 'pred1', 'goal', 'a_off', 'b_off', 'dt_off'] as const).map(u32),
  f32('inv_batch'),
]);
/** Words of the fused solve's uniform (struct Fused rounded up to 16 bytes). */
export const FUSED_WORDS = uniformBytes(FUSED) / 4;

interface FusedConfig {
  layers: number;
  batch: number;
  /** Stages evaluated per step. */
  stages: number;
  steps: number;
  ce: boolean;
  nAll: number;
  nHidden: number;
  y: number;
  py: number;
  t: number;
  pt: number;
  k: number;
  e: number;
  pred1: number;
  /** The output layer's target. */
  goal: number;
  /** In the coefficients: a (s×s), b, and the step sizes. */
  aOff: number;
  bOff: number;
  dtOff: number;
  invBatch: number;
}

export function packFused(c: FusedConfig): ArrayBuffer {
  return pack(FUSED, [c], FUSED_WORDS * 4);
}

export const LAYER_ENTRY = layout('LayerEntry', 'fused-solve.wgsl', [
  ...(['in_dim', 'out_dim', 'w_off', 'b_off', 'has_bias'] as const).map(u32),
  f32('scale'),
  u32('lay_off'),
  u32('pad'),
]);

export interface FusedLayer {
  inDim: number;
  outDim: number;
  wOff: number;
  bOff: number;
  hasBias: boolean;
  scale: number;
  /** The layer's offset inside the activity families. */
  layOff: number;
}

export function packFusedLayers(layers: readonly FusedLayer[]): ArrayBuffer {
  return pack(LAYER_ENTRY, layers);
}

// ── struct Health and the control words (health.wgsl): the divergence guard ──

export const HEALTH = layout('Health', 'health.wgsl', [
  ...(['n_energy', 'energy_off', 'n_act', 'act_off', 'act_first_layer', 'n_grad', 'grad_off', 'step'] as const).map(
    u32,
  ),
  f32('clip'),
  ...(['total_off', 'loss_off', 'runaway'] as const).map(u32),
  f32('factor'),
  f32('floor'),
  u32('warmup'),
  u32('pad'),
  ['rollback_params', 'vec2<u32>'],
  ['rollback_state', 'vec2<u32>'],
]);
export const HEALTH_UNIFORM_BYTES = uniformBytes(HEALTH);

/** "None" in the health uniform and the control words (no loss; no bad layer). */
export const NONE = 0xffffffff;

interface HealthRecord {
  nEnergy: number;
  energyOff: number;
  nAct: number;
  actOff: number;
  actFirstLayer: number;
  nGrad: number;
  gradOff: number;
  step: number;
  clip: number;
  totalOff: number;
  /** NONE without a loss. */
  lossOff: number;
  runaway: boolean;
  factor: number;
  floor: number;
  warmup: number;
  /** Workgroups (x, y) of the rollback copies of the parameters and of the optimiser state. */
  rollbackParams: readonly [number, number];
  rollbackState: readonly [number, number];
}

export function packHealth(h: HealthRecord): ArrayBuffer {
  return pack(HEALTH, [h], HEALTH_UNIFORM_BYTES);
}

/**
 * The control words (`control: array<u32>` in health.wgsl, read back by the host), word by word; the rollback's
 * indirect dispatch arguments (x, y, z) start at rollbackParams and rollbackState.
 */
export const CONTROL = {
  flag: 0,
  step: 1,
  energyLayer: 2,
  activityLayer: 3,
  gradLayer: 4,
  gradScale: 5,
  kind: 6,
  afterUpdate: 7,
  value: 8,
  threshold: 9,
  reference: 10,
  referenceSteps: 11,
  energyReference: 12,
  lossReference: 13,
  factor: 14,
  floor: 15,
  rollbackParams: 16,
  rollbackState: 20,
} as const;
export const CONTROL_BYTES = 96;
/** Byte offsets of the rollback's indirect dispatch arguments in the control words. */
export const ROLLBACK_ARGS = { params: 4 * CONTROL.rollbackParams, state: 4 * CONTROL.rollbackState } as const;

/** Words 0–10 of the control words with the flag lowered (the runaway references, 11–15, are not touched). */
export function packHealthyControl(): Uint32Array<ArrayBuffer> {
  const words = new Uint32Array(CONTROL.reference + 1);
  words[CONTROL.energyLayer] = NONE;
  words[CONTROL.activityLayer] = NONE;
  words[CONTROL.gradLayer] = NONE;
  new Float32Array(words.buffer)[CONTROL.gradScale] = 1;
  return words;
}

// ── struct Opt (optimizer.wgsl): one optimiser update ──

export const OPT = layout('Opt', 'optimizer.wgsl', [
  ...(['n', 'p_off', 'g_off', 's_off'] as const).map(u32),
  ...(['lr', 'b1', 'b2', 'eps', 'eps_root', 'bc1', 'bc2'] as const).map(f32),
  u32('nesterov'),
]);
export const OPT_BYTES = uniformBytes(OPT);

interface OptRecord {
  n: number;
  pOff: number;
  gOff: number;
  /** The optimiser state: the trace, or m then v. */
  sOff: number;
  lr: number;
  /** Adam's b1, or the momentum μ. */
  b1: number;
  b2: number;
  eps: number;
  epsRoot: number;
  /** Adam's bias corrections 1 − b1ᵗ and 1 − b2ᵗ. */
  bc1: number;
  bc2: number;
  nesterov: boolean;
}

export function packOpt(r: OptRecord): ArrayBuffer {
  return pack(OPT, [r], OPT_BYTES);
}

// ── struct Rows (output.wgsl): a row-wise region ──

export const ROWS = layout(
  'Rows',
  'output.wgsl',
  (['rows', 'cols', 'pred_off', 'target_off', 'part_off', 'loss_ce', 'groups', 'regions'] as const).map(u32),
);

interface RowsRecord {
  rows: number;
  cols: number;
  predOff: number;
  targetOff?: number;
  /** 4 partials per row. */
  partOff: number;
  /** loss_rows: cross-entropy instead of mse. */
  lossCe?: boolean;
  /** A row_norms table: workgroups per region, and regions (the same in every record). */
  groups?: number;
  regions?: number;
}

export function packRows(records: readonly RowsRecord[]): ArrayBuffer {
  return pack(ROWS, records);
}

// ── struct Recording (record.wgsl): when and what a record kernel records ──

export const RECORDING = layout(
  'Recording',
  'record.wgsl',
  (['when', 'layers', 'capacity', 'traj_n', 'y', 'pad0', 'pad1', 'pad2'] as const).map(u32),
);

interface RecordingRecord {
  /** RecordWhen.* (kernels/record.ts). */
  when: number;
  layers: number;
  capacity: number;
  /** Elements per recorded state (0: energies only). */
  trajN: number;
  /** The activities to record. */
  y: number;
}

/** The recording uniform's bytes: one record per UNIFORM_STRIDE. */
export function packRecordings(records: readonly RecordingRecord[]): ArrayBuffer {
  return pack(RECORDING, records, UNIFORM_STRIDE);
}
