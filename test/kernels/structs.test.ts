// The host-written WGSL structs (src/kernels/structs.ts) against their declarations in the .wgsl files: each struct
// is parsed from the WGSL source and laid out here by WGSL's rules, so that a field added, moved or retyped on either
// side fails; every packer is checked field by field through that parsed layout and word for word against
// hand-written bytes (the layouts the engine wrote before the packers were gathered here).
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { rowTable } from '../../src/kernels/output.js';
import { ConfigFlag, Controller } from '../../src/kernels/solver.js';
import {
  CONFIG,
  CONTROL,
  CONTROL_BYTES,
  FUSED,
  HEALTH,
  JOB,
  LAYER_ENTRY,
  OP,
  OPT,
  RECORDING,
  REG,
  ROLLBACK_ARGS,
  ROWS,
  SEGMENT,
  SOLVER_STATE,
  STAGE,
  STATE,
  type StructLayout,
  UNIFORM_STRIDE,
  packCombineOps,
  packFused,
  packFusedLayers,
  packHealth,
  packHealthyControl,
  packJobRecords,
  packOpt,
  packRecordings,
  packRegs,
  packRows,
  packSegments,
  packSolverConfig,
  packSolverState,
  packStages,
} from '../../src/kernels/structs.js';

const KERNELS = new URL('../../src/kernels/', import.meta.url);
const wgsl = (file: string) => readFileSync(new URL(file, KERNELS), 'utf8');
const ALL_WGSL = readdirSync(KERNELS)
  .filter((f) => f.endsWith('.wgsl'))
  .map((file) => ({ file, source: wgsl(file) }));

interface ParsedField {
  name: string;
  type: string;
  offset: number;
}

/** Size and alignment of a WGSL type (the subset host-written structs use), by the WGSL specification's table. */
function sizeAlign(type: string): { size: number; align: number } {
  if (type === 'u32' || type === 'f32' || type === 'i32') return { size: 4, align: 4 };
  const vec = /^vec([234])<(u32|f32|i32)>$/.exec(type);
  if (vec) {
    const n = Number(vec[1]);
    return { size: 4 * n, align: n === 2 ? 8 : 16 };
  }
  const array = /^array<(.+),\s*(\d+)>$/.exec(type);
  if (array) {
    const element = sizeAlign(array[1]!);
    const stride = Math.ceil(element.size / element.align) * element.align;
    return { size: stride * Number(array[2]), align: element.align };
  }
  throw new Error(`no layout rule for WGSL type ${type}`);
}

/** `struct name { … }` of a WGSL source: its fields with their types and byte offsets, and its size. */
function parseStruct(source: string, name: string): { fields: ParsedField[]; bytes: number } {
  const match = new RegExp(`struct ${name} \\{\\n([\\s\\S]*?)\\n\\}`).exec(source);
  if (!match) throw new Error(`struct ${name} not found`);
  const fields: ParsedField[] = [];
  let at = 0;
  let structAlign = 0;
  for (const line of match[1]!.split('\n')) {
    const decl = line.replace(/\/\/.*$/, '').trim();
    if (decl === '') continue;
    const field = /^(\w+)\s*:\s*(.+?),?$/.exec(decl);
    if (!field) throw new Error(`struct ${name}: cannot read "${decl}"`);
    const type = field[2]!.replace(/\s+/g, ' ').replace(/, /g, ', ');
    const { size, align } = sizeAlign(type);
    at = Math.ceil(at / align) * align;
    fields.push({ name: field[1]!, type, offset: at });
    at += size;
    structAlign = Math.max(structAlign, align);
  }
  return { fields, bytes: Math.ceil(at / structAlign) * structAlign };
}

const LAYOUTS: StructLayout<string>[] = [
  JOB,
  SEGMENT,
  STAGE,
  CONFIG,
  SOLVER_STATE,
  REG,
  OP,
  FUSED,
  LAYER_ENTRY,
  HEALTH,
  OPT,
  ROWS,
  RECORDING,
];

const f32Bits = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0]!;
const words = (data: ArrayBuffer) => [...new Uint32Array(data)];

/**
 * Reads every field of the record at byte `base` of `data` through the layout parsed from the WGSL (u32 fields as
 * integers, f32 fields as floats, vectors and arrays as lists of their components).
 */
function readByWgsl(layout: StructLayout<string>, data: ArrayBuffer, base = 0): Record<string, number | number[]> {
  const { fields } = parseStruct(wgsl(layout.file), layout.name);
  const view = new DataView(data);
  const out: Record<string, number | number[]> = {};
  for (const f of fields) {
    const float = f.type.includes('f32');
    const count = sizeAlign(f.type).size / 4;
    const values = Array.from({ length: count }, (_, i) => {
      const at = base + f.offset + 4 * i;
      return float ? view.getFloat32(at, true) : view.getUint32(at, true);
    });
    out[f.name] = f.type === 'u32' || f.type === 'f32' ? values[0]! : values;
  }
  return out;
}

describe('struct layouts match their WGSL declarations', () => {
  it.each(LAYOUTS.map((l) => [`${l.name} (${l.file})`, l] as const))('%s', (_, layout) => {
    const parsed = parseStruct(wgsl(layout.file), layout.name);
    expect(layout.fields.map(([name, type]) => `${name}: ${type}`)).toEqual(
      parsed.fields.map((f) => `${f.name}: ${f.type}`),
    );
    for (const f of parsed.fields) {
      expect(layout.offset[f.name], f.name).toBe(f.offset);
      expect(layout.word[f.name], f.name).toBe(f.offset / 4);
    }
    expect(layout.bytes).toBe(parsed.bytes);
    expect(layout.words).toBe(parsed.bytes / 4);
  });

  it('declares each host-written struct in exactly one .wgsl file (shared parts, no copies)', () => {
    for (const layout of LAYOUTS) {
      const declaring = ALL_WGSL.filter((w) => new RegExp(`struct ${layout.name} \\{`).test(w.source));
      expect(
        declaring.map((w) => w.file),
        layout.name,
      ).toEqual([layout.file]);
    }
    // No struct of any name is declared twice across the kernel files.
    const names = ALL_WGSL.flatMap((w) => [...w.source.matchAll(/^struct (\w+)/gm)].map((m) => m[1]!));
    expect(names.length).toBe(new Set(names).size);
  });

  it('keeps records of shared uniforms within their stride, and STATE on the solver state', () => {
    for (const layout of [STAGE, REG, RECORDING]) expect(layout.bytes).toBeLessThanOrEqual(UNIFORM_STRIDE);
    expect(STAGE.bytes).toBe(208);
    expect(HEALTH.bytes).toBe(80);
    const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    for (const [key, word] of Object.entries(STATE))
      expect(word, key).toBe((SOLVER_STATE.word as Record<string, number>)[snake(key)]);
  });

  it('matches the flag and controller constants of solver.wgsl', () => {
    const source = wgsl('solver.wgsl');
    const constant = (name: string) => Number(new RegExp(`const ${name}: u32 = (\\d+)u;`).exec(source)?.[1]);
    for (const [key, value] of Object.entries(ConfigFlag)) expect(value, key).toBe(constant(`FLAG_${key}`));
    for (const [key, value] of Object.entries(Controller)) expect(value, key).toBe(constant(`CONTROLLER_${key}`));
  });

  it('places the control words where health.wgsl writes them', () => {
    const source = wgsl('health.wgsl');
    const wordOf = (pattern: string) => {
      const m = new RegExp(`control\\[(\\d+)\\]${pattern}`).exec(source);
      if (!m) throw new Error(`health.wgsl: no control word ${pattern}`);
      return Number(m[1]);
    };
    expect(CONTROL).toEqual({
      flag: wordOf(' = 1u;'),
      step: wordOf(' = health\\.step;'),
      energyLayer: wordOf(' = energy;'),
      activityLayer: wordOf(' = act;'),
      gradLayer: wordOf(' = grad;'),
      gradScale: wordOf(' = bitcast<u32>\\(scale\\);'),
      kind: wordOf(' = kind;'),
      afterUpdate: wordOf(' = after;'),
      value: wordOf(' = bitcast<u32>\\(value\\);'),
      threshold: wordOf(' = bitcast<u32>\\(threshold\\(reference\\)\\);'),
      reference: wordOf(' = bitcast<u32>\\(reference\\);'),
      referenceSteps: wordOf(' = folded \\+ 1u;'),
      energyReference: wordOf(' = bitcast<u32>\\(select\\(max\\(ref_energy'),
      lossReference: wordOf(' = bitcast<u32>\\(select\\(max\\(ref_loss'),
      factor: wordOf(' = bitcast<u32>\\(health\\.factor\\);'),
      floor: wordOf(' = bitcast<u32>\\(health\\.floor\\);'),
      rollbackParams: wordOf(' = params\\.x;'),
      rollbackState: wordOf(' = state\\.x;'),
    });
    // The rollback's dispatch arguments (x, y, z) end inside the control words.
    expect(ROLLBACK_ARGS).toEqual({ params: 4 * CONTROL.rollbackParams, state: 4 * CONTROL.rollbackState });
    expect(CONTROL_BYTES).toBeGreaterThanOrEqual(4 * (CONTROL.rollbackState + 3));
    expect(CONTROL_BYTES % 16).toBe(0);
  });
});

describe('packers write each field where the WGSL reads it, with the same bytes as before', () => {
  it('packJobRecords: one record per run, unset operands 0 and coefficients 1, at least one record', () => {
    const job = { m: 3, n: 4, k: 5, aOff: 6, bOff: 7, cOff: 8, dOff: 9, eOff: 10, fOff: 11, biasOff: 12 };
    const full = { ...job, partOff: 13, flags: 14, coef0: 0.5, coef1: -2 };
    const data = packJobRecords([
      { job: full, wgStart: 21, tilesN: 22, tiles: 23, group0: 24 },
      { job: { m: 1, n: 2, k: 0, aOff: 0, bOff: 0, cOff: 3 }, wgStart: 30, tilesN: 1, tiles: 1, group0: 0 },
    ]);
    expect(readByWgsl(JOB, data)).toEqual({
      wg_start: 21,
      tiles_n: 22,
      tiles: 23,
      m: 3,
      n: 4,
      k: 5,
      a_off: 6,
      b_off: 7,
      c_off: 8,
      d_off: 9,
      e_off: 10,
      f_off: 11,
      bias_off: 12,
      part_off: 13,
      flags: 14,
      coef0: 0.5,
      coef1: -2,
      group0: 24,
      geo0: 0,
      geo1: 0,
      geo2: 0,
      geo3: 0,
    });
    expect(words(data)).toEqual([
      ...[21, 22, 23, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, f32Bits(0.5), f32Bits(-2), 24, 0, 0, 0, 0],
      ...[30, 1, 1, 1, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, f32Bits(1), f32Bits(1), 0, 0, 0, 0, 0],
    ]);
    expect(words(packJobRecords([]))).toEqual(new Array(22).fill(0));
  });

  it('packSegments: the second range optional, at least one record', () => {
    const data = packSegments([
      { off: 1, count: 2, stride: 3, out: 4, scale: 0.25 },
      { off: 5, count: 6, stride: 7, out: 8, scale: 3, flags: 9, off2: 10, count2: 11, scale2: -0.5 },
    ]);
    expect(readByWgsl(SEGMENT, data, SEGMENT.bytes)).toEqual({
      off: 5,
      count: 6,
      stride: 7,
      out: 8,
      scale: 3,
      flags: 9,
      off2: 10,
      count2: 11,
      scale2: -0.5,
      pad0: 0,
      pad1: 0,
      pad2: 0,
    });
    expect(words(data)).toEqual([
      ...[1, 2, 3, 4, f32Bits(0.25), 0, 0, 0, 0, 0, 0, 0],
      ...[5, 6, 7, 8, f32Bits(3), 9, 10, 11, f32Bits(-0.5), 0, 0, 0],
    ]);
    expect(words(packSegments([]))).toEqual(new Array(12).fill(0));
  });

  it('packStages: one record per uniform stride, the candidate in the probe slot or in place', () => {
    const at = { y: 100, py: 200, t: 300, pt: 400, k: 500, kStride: 60, decay: 0.125 };
    const data = packStages(
      [
        { mode: 1, index: 2, coef: [0.5, 0.25], ecoef: [], dt: 0.1, rtol: 1e-3, atol: 1e-6, candidate: 'probe' },
        {
          mode: 2,
          index: 3,
          coef: [1, 2, 3],
          ecoef: [4, 5, 6],
          dt: 2,
          rtol: 0,
          atol: 0,
          candidate: 'in-place',
          opt: 7,
        },
      ],
      at,
    );
    expect(data.byteLength).toBe(2 * UNIFORM_STRIDE);
    const second = readByWgsl(STAGE, data, UNIFORM_STRIDE);
    expect(second).toEqual({
      y: 100,
      py: 200,
      t: 300,
      pt: 400,
      k: 500,
      k_stride: 60,
      y1: 100,
      py1: 200,
      dt: 2,
      rtol: 0,
      atol: 0,
      index: 3,
      mode: 2,
      ncoef: 3,
      nerr: 3,
      opt: 7,
      coef: [1, 2, 3, ...new Array(13).fill(0)],
      ecoef: [4, 5, 6, ...new Array(13).fill(0)],
      decay: 0.125,
      pad0: 0,
      pad1: 0,
      pad2: 0,
    });
    const first = words(data).slice(0, UNIFORM_STRIDE / 4);
    const expected = new Array(UNIFORM_STRIDE / 4).fill(0);
    expected.splice(
      0,
      16,
      100,
      200,
      300,
      400,
      500,
      60,
      300,
      400,
      f32Bits(0.1),
      f32Bits(1e-3),
      f32Bits(1e-6),
      2,
      1,
      2,
      0,
      0,
    );
    expected.splice(16, 2, f32Bits(0.5), f32Bits(0.25));
    expected[48] = f32Bits(0.125);
    expect(first).toEqual(expected);
  });

  it('packSolverConfig: every field at the word writeSolverConfig used', () => {
    const keys = [
      ...['t0', 't1', 't1Floor', 'rtol', 'atol', 'pcoeff', 'icoeff', 'dcoeff', 'factormin', 'factormax', 'safety'],
      ...['dtmin', 'dtmax', 'errorOrder', 'count', 'maxSteps', 'flags', 'errOff', 'errCount', 'evOff', 'evCount'],
      ...['ev0Off', 'ev0Count', 'controller', 'eventRtol', 'eventAtol', 'a21', 'gridOff', 'gridN', 'y', 'py', 'y1'],
      ...['py1', 'k1', 'ks', 't', 'pt', 'n', 'sqOff', 'sqN'],
    ] as const;
    // Words 0–14 and 24–26 are f32, the rest u32 (the indices writeSolverConfig wrote).
    const isFloat = (i: number) => i <= 14 || (i >= 24 && i <= 26);
    const config = Object.fromEntries(keys.map((key, i) => [key, isFloat(i) ? i + 0.5 : i + 1000]));
    const data = packSolverConfig(config as Record<(typeof keys)[number], number>);
    const expected = keys.map((_, i) => (isFloat(i) ? f32Bits(i + 0.5) : i + 1000));
    expect(words(data)).toEqual([...expected, ...new Array(8).fill(0)]);
    const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    const read = readByWgsl(CONFIG, data);
    keys.forEach((key, i) => expect(read[snake(key)], key).toBe(isFloat(i) ? i + 0.5 : i + 1000));
  });

  it('packSolverState: the start of a solve, the other fields 0', () => {
    const data = packSolverState({ tnext: 0.25, prevInv: 1, prevPrevInv: 1, lastAccepted: 1 });
    const read = readByWgsl(SOLVER_STATE, data);
    expect(read).toMatchObject({ tprev: 0, tnext: 0.25, prev_inv: 1, prev_prev_inv: 1, last_accepted: 1, done: 0 });
    const expected = new Array(16).fill(0);
    expected.splice(STATE.tnext, 4, f32Bits(0.25), f32Bits(1), f32Bits(1), 0);
    expected[STATE.lastAccepted] = 1;
    expect(words(data)).toEqual(expected);
  });

  it('packRegs: one record per uniform stride', () => {
    const data = packRegs([
      { wOff: 1, outDim: 2, inDim: 3, dOff: 4, coef: 0.5 },
      { wOff: 5, outDim: 6, inDim: 7, dOff: 8, coef: 2 },
    ]);
    expect(data.byteLength).toBe(2 * UNIFORM_STRIDE);
    expect(readByWgsl(REG, data, UNIFORM_STRIDE)).toEqual({
      w_off: 5,
      out_dim: 6,
      in_dim: 7,
      d_off: 8,
      coef: 2,
      pad0: 0,
      pad1: 0,
      pad2: 0,
    });
    expect(words(data).slice(0, 8)).toEqual([1, 2, 3, 4, f32Bits(0.5), 0, 0, 0]);
  });

  it('packCombineOps: one op after the other', () => {
    const data = packCombineOps([
      { n: 1, u: 2, v: 3, out: 4, a: 0.5, b: -1 },
      { n: 5, u: 6, v: 0, out: 7, a: 0, b: 0 },
    ]);
    expect(readByWgsl(OP, data)).toEqual({ n: 1, u: 2, v: 3, out: 4, a: 0.5, b: -1, pad0: 0, pad1: 0 });
    expect(words(data)).toEqual([1, 2, 3, 4, f32Bits(0.5), f32Bits(-1), 0, 0, 5, 6, 0, 7, 0, 0, 0, 0]);
  });

  it('packFused and packFusedLayers', () => {
    const cfg = packFused({
      layers: 3,
      batch: 4,
      stages: 2,
      steps: 20,
      ce: true,
      nAll: 100,
      nHidden: 60,
      y: 1,
      py: 2,
      t: 3,
      pt: 4,
      k: 5,
      e: 6,
      pred1: 7,
      goal: 8,
      aOff: 0,
      bOff: 4,
      dtOff: 6,
      invBatch: 0.25,
    });
    expect(readByWgsl(FUSED, cfg)).toMatchObject({ ce: 1, n_all: 100, goal: 8, dt_off: 6, inv_batch: 0.25 });
    expect(words(cfg)).toEqual([3, 4, 2, 20, 1, 100, 60, 1, 2, 3, 4, 5, 6, 7, 8, 0, 4, 6, f32Bits(0.25), 0]);
    const layers = packFusedLayers([
      { inDim: 10, outDim: 20, wOff: 30, bOff: 40, hasBias: true, scale: 0.5, layOff: 50 },
      { inDim: 20, outDim: 5, wOff: 60, bOff: 0, hasBias: false, scale: 1, layOff: 70 },
    ]);
    expect(readByWgsl(LAYER_ENTRY, layers, LAYER_ENTRY.bytes)).toEqual({
      in_dim: 20,
      out_dim: 5,
      w_off: 60,
      b_off: 0,
      has_bias: 0,
      scale: 1,
      lay_off: 70,
      pad: 0,
    });
    expect(words(layers)).toEqual([10, 20, 30, 40, 1, f32Bits(0.5), 50, 0, 20, 5, 60, 0, 0, f32Bits(1), 70, 0]);
  });

  it('packHealth, and the control words of a healthy step', () => {
    const data = packHealth({
      nEnergy: 1,
      energyOff: 2,
      nAct: 3,
      actOff: 4,
      actFirstLayer: 1,
      nGrad: 6,
      gradOff: 7,
      step: 8,
      clip: 0.5,
      totalOff: 10,
      lossOff: 0xffffffff,
      runaway: true,
      factor: 4,
      floor: 2,
      warmup: 15,
      rollbackParams: [16, 17],
      rollbackState: [18, 19],
    });
    expect(readByWgsl(HEALTH, data)).toMatchObject({
      clip: 0.5,
      loss_off: 0xffffffff,
      runaway: 1,
      rollback_params: [16, 17],
      rollback_state: [18, 19],
    });
    expect(words(data)).toEqual([
      ...[1, 2, 3, 4, 1, 6, 7, 8, f32Bits(0.5), 10, 0xffffffff, 1, f32Bits(4), f32Bits(2), 15, 0],
      ...[16, 17, 18, 19],
    ]);
    expect([...packHealthyControl()]).toEqual([0, 0, 0xffffffff, 0xffffffff, 0xffffffff, f32Bits(1), 0, 0, 0, 0, 0]);
  });

  it('packOpt', () => {
    const data = packOpt({
      n: 1,
      pOff: 2,
      gOff: 3,
      sOff: 0,
      lr: 0.5,
      b1: 0.9,
      b2: 0.999,
      eps: 1e-8,
      epsRoot: 0,
      bc1: 0.1,
      bc2: 0.001,
      nesterov: true,
    });
    expect(readByWgsl(OPT, data)).toMatchObject({ n: 1, p_off: 2, g_off: 3, lr: 0.5, nesterov: 1 });
    expect(words(data)).toEqual([
      ...[1, 2, 3, 0, f32Bits(0.5), f32Bits(0.9), f32Bits(0.999), f32Bits(1e-8), 0, f32Bits(0.1), f32Bits(0.001)],
      1,
    ]);
  });

  it('packRows, and rowTable built on it', () => {
    const data = packRows([{ rows: 64, cols: 10, predOff: 5, targetOff: 6, partOff: 7, lossCe: true }]);
    expect(readByWgsl(ROWS, data)).toEqual({
      rows: 64,
      cols: 10,
      pred_off: 5,
      target_off: 6,
      part_off: 7,
      loss_ce: 1,
      groups: 0,
      regions: 0,
    });
    expect(words(data)).toEqual([64, 10, 5, 6, 7, 1, 0, 0]);
    const table = rowTable([
      { rows: 100, cols: 3, predOff: 1, partOff: 2 },
      { rows: 10, cols: 4, predOff: 5, partOff: 6 },
    ]);
    expect(table.workgroups).toBe(4);
    expect([...table.data]).toEqual([100, 3, 1, 0, 2, 0, 2, 2, 10, 4, 5, 0, 6, 0, 2, 2]);
  });

  it('packRecordings: one record per uniform stride', () => {
    const data = packRecordings([0, 1, 2, 3].map((when) => ({ when, layers: 4, capacity: 50, trajN: 7, y: 8 })));
    expect(data.byteLength).toBe(4 * UNIFORM_STRIDE);
    expect(readByWgsl(RECORDING, data, 3 * UNIFORM_STRIDE)).toEqual({
      when: 3,
      layers: 4,
      capacity: 50,
      traj_n: 7,
      y: 8,
      pad0: 0,
      pad1: 0,
      pad2: 0,
    });
    const expected = new Array(UNIFORM_STRIDE).fill(0); // 4 records of UNIFORM_STRIDE / 4 words
    for (let when = 0; when < 4; when++) expected.splice((when * UNIFORM_STRIDE) / 4, 5, when, 4, 50, 7, 8);
    expect(words(data)).toEqual(expected);
  });
});
