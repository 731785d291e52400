// The default tiles at their edges (products narrower and batches shorter than a tile), the workgroup schedule
// of grouped dispatches, the vec4 epilogue rules and tile option validation. The kernel variants the default
// adapter does not pick (blocked, subgroup, split-k and workgroup-memory tiles) are test/full/tile-layouts.test.ts.
import { describe, expect, it } from 'vitest';
import { init } from '../../src/node.js';
import { WpcArgumentError } from '../../src/runtime/errors.js';
import { Random } from '../../src/util/random.js';
import { GradFlag, rowGroupVariants } from '../../src/kernels/layer-matmul.js';
import { JOB_WORDS } from '../../src/kernels/structs.js';
import { defaultTiles } from '../../src/kernels/tiles.js';
import { epilogue4Ready, packJobs, scheduleWorkgroups, tilesOf, vec4Shaped } from '../../src/pc/layer-jobs.js';
import { perturbedActivities, randomMat, randomRefModel } from '../support/helpers.js';
import { expectLayerKernels, expectMatmul } from '../support/tile-checks.js';

const probe = await init();
const subgroupSize = probe.adapter.subgroupSize;
const lavapipe = probe.adapter.description.includes('llvmpipe');
const workgroupStorage = probe.device.limits.maxComputeWorkgroupStorageSize;
probe.dispose();

describe('lone products narrower than a tile (default tiles: skipped column groups)', () => {
  it('match a float64 product', async () => {
    const rt = await init();
    try {
      const rng = new Random(31);
      // One workgroup each; 10, 5, 9 and 3 columns use one column group of the tile, the rest are skipped.
      for (const [m, k, n] of [
        [64, 300, 10],
        [40, 17, 5],
        [64, 31, 9],
        [9, 12, 3],
      ] as const) {
        for (const [ta, tb] of [
          [false, false],
          [true, true],
        ] as const) {
          // float32 sums of up to 300 unit normals: a few 1e-5 of rounding.
          await expectMatmul(rt, rng, [m, k, n], ta, tb, 1e-4);
        }
      }
    } finally {
      rt.dispose();
    }
  });
});

describe('batches shorter than a tile (default tiles: skipped row groups)', () => {
  // With subgroup tiles a workgroup covers TM groups of one row per lane; a tile at the job's last rows runs the
  // k loop compiled for the smallest power of two of groups that covers them. These batch sizes sit at each
  // boundary: one row, one group, one row past it, past two and three groups, and past four and eight (a whole
  // tile's TM groups at 16 and at 8 lanes: then a second tile of one row).
  const lanes = subgroupSize ?? 8;
  const rowCounts = [1, lanes, lanes + 1, 2 * lanes + 1, 3 * lanes + 1, 4 * lanes + 1, 8 * lanes + 1];

  it('lone products match a float64 product', async () => {
    const rt = await init();
    try {
      const rng = new Random(41);
      // float32 sums of 37 products of unit normals: ~1e-5 of rounding.
      for (const m of rowCounts) {
        for (const [ta, tb] of [
          [false, false],
          [true, true],
        ] as const)
          await expectMatmul(rt, rng, [m, 37, 70], ta, tb, 1e-4);
      }
    } finally {
      rt.dispose();
    }
  });

  it('energies and gradients of the layer kernels match the reference', async () => {
    const rt = await init();
    try {
      const rng = new Random(43);
      for (const B of rowCounts) {
        const ref = randomRefModel(950 + B, [12, 20, 20, 6], 'tanh', true);
        const x = randomMat(rng, B, 12);
        const y = randomMat(rng, B, 6);
        const { model } = await expectLayerKernels(rt, {
          ref,
          x,
          y,
          acts: perturbedActivities(rng, ref, x),
          loss: 'mse',
          what: `batch ${B}`,
        });
        model.dispose();
      }
    } finally {
      rt.dispose();
    }
  });
});

describe('default tiles', () => {
  it('compile the subgroup inner product for each power of two of row groups below TM, and TM', () => {
    expect([1, 2, 3, 4, 8].map(rowGroupVariants)).toEqual([[1], [1, 2], [1, 2, 3], [1, 2, 4], [1, 2, 4, 8]]);
  });

  it('run with the lane count this test project asked lavapipe for (8 or 16: both are tested, see vitest.config.ts)', () => {
    const width = Number(process.env.LP_NATIVE_VECTOR_WIDTH ?? 256);
    if (lavapipe) expect(subgroupSize).toBe(width / 32);
    else expect(subgroupSize === null || subgroupSize >= 1).toBe(true);
  });

  it('follow the adapter: subgroup tiles on an 8- or 16-wide CPU subgroup, blocked otherwise', () => {
    const cpu = {
      vendor: '',
      architecture: 'software',
      device: '',
      description: 'llvmpipe',
      isSoftware: true,
      subgroupMatrixConfigs: [],
      shaderF16: false,
    };
    expect(defaultTiles({ ...cpu, subgroupSize: 8 })).toEqual({ wg: 8, tm: 8, tn: 64, subgroup: true });
    expect(defaultTiles({ ...cpu, subgroupSize: 8 }, 'gemm')).toEqual({ wg: 8, tm: 8, tn: 32, subgroup: true });
    // lavapipe compiling for 512-bit vectors (softwareVectorBits): 16 lanes, 4 rows each, one tile for both uses.
    expect(defaultTiles({ ...cpu, subgroupSize: 16 })).toEqual({ wg: 16, tm: 4, tn: 64, subgroup: true });
    expect(defaultTiles({ ...cpu, subgroupSize: 16 }, 'gemm')).toEqual({ wg: 16, tm: 4, tn: 64, subgroup: true });
    expect(defaultTiles({ ...cpu, subgroupSize: 4 })).toEqual({ wg: 8, tm: 16, tn: 8 });
    expect(defaultTiles({ ...cpu, subgroupSize: null })).toEqual({ wg: 8, tm: 16, tn: 8 });
    expect(defaultTiles({ ...cpu, isSoftware: false, subgroupSize: 32 })).toEqual({ wg: 64, tm: 4, tn: 4 });
    // Subgroup matrices round operands to f16 on most GPUs: opt-in only, never a default.
    const f16Matrices = [{ componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 }];
    expect(
      defaultTiles({
        ...cpu,
        isSoftware: false,
        subgroupSize: 32,
        subgroupMatrixConfigs: f16Matrices,
        shaderF16: true,
      }),
    ).toEqual({ wg: 64, tm: 4, tn: 4 });
  });
});

/** Longest thread time when T threads each take one contiguous chunk of ⌊N/T⌋ workgroups and the remainder
 * goes one workgroup at a time to the least loaded thread, as lavapipe's lp_cs_tpool.c does. */
function lavapipeMakespan(costs: number[], threads: number): number {
  const per = Math.floor(costs.length / threads);
  const load = Array.from({ length: threads }, (_, t) =>
    costs.slice(t * per, (t + 1) * per).reduce((s, c) => s + c, 0),
  );
  for (let i = threads * per; i < costs.length; i++) {
    const least = load.indexOf(Math.min(...load));
    load[least] = load[least]! + costs[i]!;
  }
  return Math.max(...load);
}

describe('workgroup schedule of grouped dispatches', () => {
  // The H = 3 paper network's errors dispatch (fixed first-layer errors: no matmul; two matmul layers) and its
  // activity-gradient dispatch (a 300-deep and a 10-deep job), 5 + 5 + 1 and 5 + 5 workgroups.
  const CASES: [string, number[], number[]][] = [
    ['errors', [5, 5, 1], [16, 316, 316]],
    ['activity gradients', [5, 5], [316, 26]],
    ['ten equal layers and a cheap one', [...Array<number>(10).fill(7), 3], [...Array<number>(10).fill(316), 26]],
  ];
  for (const [name, groups, cost] of CASES) {
    it(`covers every workgroup once and balances contiguous chunks (${name})`, () => {
      const order = scheduleWorkgroups(groups, cost);
      expect(order.length).toBe(groups.reduce((s, g) => s + g, 0));
      groups.forEach((g, j) => expect(order.filter((x) => x === j).length).toBe(g));
      // A job's workgroups keep their order relative to its cost class, and the schedule is deterministic.
      expect(scheduleWorkgroups(groups, cost)).toEqual(order);
      const costs = order.map((j) => cost[j]!);
      const total = costs.reduce((s, c) => s + c, 0);
      for (const threads of [2, 3]) {
        // Within one costliest workgroup of the even share.
        expect(lavapipeMakespan(costs, threads)).toBeLessThanOrEqual(total / threads + Math.max(...cost));
      }
    });
  }

  it('laid out job after job, the H = 3 dispatches left one of two threads with nearly all the matmuls', () => {
    const [, groups, cost] = CASES[0]!;
    const sequential = groups.flatMap((g, j) => Array<number>(g).fill(cost[j]!));
    const interleaved = scheduleWorkgroups(groups, cost).map((j) => cost[j]!);
    expect(lavapipeMakespan(sequential, 2) / lavapipeMakespan(interleaved, 2)).toBeGreaterThan(1.5);
  });

  it('packs one record per run of a job, with the run’s first workgroup of that job', () => {
    const tiles = { wg: 8, tm: 8, tn: 64, subgroup: true };
    const job = (k: number, cOff: number) => ({ m: 64, n: 300, k, aOff: 0, bOff: 0, cOff });
    const table = packJobs([job(0, 1000), job(300, 2000)], tiles);
    expect(table.workgroups).toBe(10);
    expect(table.tiles).toEqual([40, 40]);
    const u32 = new Uint32Array(table.data);
    const records = u32.length / JOB_WORDS;
    const seen = [0, 0];
    let wg = 0;
    for (let r = 0; r < records; r++) {
      const o = r * JOB_WORDS;
      expect(u32[o]).toBe(wg); // runs are contiguous and sorted by first workgroup
      const j = u32[o + 8] === 1000 ? 0 : 1;
      expect(u32[o + 17]).toBe(seen[j]); // group0: the job's next workgroup
      const next = r + 1 < records ? u32[o + JOB_WORDS]! : table.workgroups;
      seen[j]! += next - wg;
      wg = next;
    }
    expect(seen).toEqual([5, 5]);
    expect(records).toBeGreaterThan(2); // the cheap and costly jobs alternate
  });
});

describe('vec4 epilogue rules (host side of vec_ok in activity-grad.wgsl)', () => {
  const CONFIGS = [
    { wg: 16, tm: 4, tn: 64, subgroup: true },
    { wg: 8, tm: 8, tn: 64, subgroup: true },
    { wg: 64, tm: 4, tn: 4 },
  ];
  it('re-shapes element-wise jobs to a width ≡ 0 mod 4 with the same tile count, and leaves the rest alone', () => {
    for (const tiles of CONFIGS) {
      for (const [m, n] of [
        [64, 10],
        [8, 10],
        [4, 10],
        [64, 3],
        [5, 6],
        [128, 10],
        [1000, 10],
      ] as const) {
        const job = { m, n, k: 0, aOff: 0, bOff: 0, cOff: 0 };
        const shaped = vec4Shaped(job, tiles);
        const what = `${m}×${n} with ${JSON.stringify(tiles)}`;
        expect(shaped.m * shaped.n, what).toBe(m * n);
        expect(tilesOf(shaped.m, shaped.n, tiles), what).toBe(tilesOf(m, n, tiles));
        if (shaped !== job) expect(shaped.n % 4, what).toBe(0);
      }
      // The classifier's output at batch 64: one 64-row tile either way.
      if (tiles.subgroup && tiles.wg * tiles.tm === 64)
        expect(vec4Shaped({ m: 64, n: 10, k: 0, aOff: 0, bOff: 0, cOff: 0 }, tiles)).toMatchObject({ m: 10, n: 64 });
      // No width ≡ 0 mod 4 divides 10: unchanged. A product (k > 0) is never re-shaped.
      const one = { m: 1, n: 10, k: 0, aOff: 0, bOff: 0, cOff: 0 };
      expect(vec4Shaped(one, tiles)).toBe(one);
      const product = { m: 64, n: 10, k: 300, aOff: 0, bOff: 0, cOff: 0 };
      expect(vec4Shaped(product, tiles)).toBe(product);
    }
  });

  it('a table takes the vec4-only kernel when every width and offset its epilogue uses is ≡ 0 mod 4', () => {
    const job = { m: 64, n: 300, k: 300, aOff: 8, bOff: 3, cOff: 4, dOff: 8, eOff: 12, fOff: 16 };
    expect(epilogue4Ready([job, { ...job, n: 64, k: 0 }])).toBe(true);
    for (const field of ['n', 'cOff', 'dOff', 'eOff', 'fOff'] as const) {
      expect(epilogue4Ready([job, { ...job, [field]: job[field] + 2 }]), field).toBe(false);
    }
    // The next layer's error and width count only when the job adds it (an identity residual).
    const skipping = { ...job, aOff: 6, k: 10 };
    expect(epilogue4Ready([skipping])).toBe(true);
    expect(epilogue4Ready([{ ...skipping, flags: GradFlag.SKIP }])).toBe(false);
    expect(epilogue4Ready([{ ...skipping, aOff: 8, k: 12, flags: GradFlag.SKIP }])).toBe(true);
  });
});

describe('tile option validation', () => {
  it('refuses tiles outside the limits, naming the field', async () => {
    await expect(init({ kernels: { tiles: { wg: 0, tm: 4, tn: 4 } } })).rejects.toThrow(WpcArgumentError);
    await expect(init({ kernels: { tiles: { wg: 8, tm: 64, tn: 4 } } })).rejects.toThrow(
      /options\.kernels\.tiles\.tm must be an integer in \[1, 32\], got 64/,
    );
    await expect(init({ kernels: { tiles: { wg: 8, tm: 4, tn: 4, extra: 1 } as never } })).rejects.toThrow(
      /unknown option "extra"/,
    );
    await expect(init({ kernels: { tiles: { wg: 8, tm: 4, tn: 4, subgroup: 1 } as never } })).rejects.toThrow(
      /options\.kernels\.tiles\.subgroup must be a boolean, got 1/,
    );
    if (subgroupSize !== null) {
      await expect(
        init({ kernels: { tiles: { wg: subgroupSize * 2, tm: 4, tn: 32, subgroup: true } } }),
      ).rejects.toThrow(
        new RegExp(
          `options\\.kernels\\.tiles\\.wg must equal the subgroup size ${subgroupSize} when subgroup is true, got ${subgroupSize * 2}`,
        ),
      );
      await expect(
        init({ kernels: { tiles: { wg: subgroupSize, tm: 4, tn: subgroupSize + 1, subgroup: true } } }),
      ).rejects.toThrow(/options\.kernels\.tiles\.tn must be a multiple of wg/);
      await expect(init({ kernels: { tiles: { wg: subgroupSize, tm: 32, tn: 128, subgroup: true } } })).rejects.toThrow(
        /at most 512 accumulators per lane, got 32 × 128 = 4096/,
      );
      await expect(
        init({ kernels: { tiles: { wg: subgroupSize, tm: 4, tn: 4, splitK: 'yes' } as never } }),
      ).rejects.toThrow(/options\.kernels\.tiles\.splitK must be a boolean, got "yes"/);
      await expect(
        init({ kernels: { tiles: { wg: subgroupSize, tm: 4, tn: subgroupSize, subgroup: true, splitK: true } } }),
      ).rejects.toThrow(/one of subgroup, splitK, shared and matrix, got subgroup and splitK/);
      await expect(init({ kernels: { tiles: { wg: subgroupSize * 2, tm: 4, tn: 4, splitK: true } } })).rejects.toThrow(
        new RegExp(
          `options\\.kernels\\.tiles\\.wg must equal the subgroup size ${subgroupSize} when splitK is true, got ${subgroupSize * 2}`,
        ),
      );
      await expect(init({ kernels: { tiles: { wg: subgroupSize, tm: 8, tn: 16, splitK: true } } })).rejects.toThrow(
        /at most 64 accumulators when splitK is true, got 8 × 16 = 128/,
      );
    } else {
      await expect(init({ kernels: { tiles: { wg: 8, tm: 4, tn: 4, splitK: true } } })).rejects.toThrow(
        /splitK needs the "subgroups" feature/,
      );
    }
    await expect(init({ kernels: { tiles: { wg: 8, tm: 4, tn: 4, shared: 1 } as never } })).rejects.toThrow(
      /options\.kernels\.tiles\.shared must be a boolean, got 1/,
    );
    // Dawn shows subgroup matrices only with allow_unsafe_apis (test/kernels/subgroup-matrix.test.ts has them).
    await expect(init({ kernels: { tiles: { wg: 8, tm: 1, tn: 1, matrix: 'f16' } } })).rejects.toThrow(
      /options\.kernels\.tiles\.matrix needs the "chromium-experimental-subgroup-matrix" feature/,
    );
    await expect(init({ kernels: { tiles: { wg: 32, tm: 4, tn: 4, shared: true } } })).rejects.toThrow(
      /options\.kernels\.tiles\.wg must be 4, 16, 64 or 256 \(a square grid\) when shared is true, got 32/,
    );
    await expect(init({ kernels: { tiles: { wg: 16, tm: 16, tn: 8, shared: true } } })).rejects.toThrow(
      /at most 64 accumulators when shared is true, got 16 × 8 = 128/,
    );
    await expect(init({ kernels: { tiles: { wg: 16, tm: 4, tn: 4, shared: true, splitK: true } } })).rejects.toThrow(
      /one of subgroup, splitK, shared and matrix, got splitK and shared/,
    );
    // 256 invocations × 2×32 stage (2 + 32)·16·16·4 = 34816 bytes of panels: more than lavapipe's 32 KiB.
    const big = { wg: 256, tm: 2, tn: 32, shared: true };
    if (34816 > workgroupStorage) {
      await expect(init({ kernels: { tiles: big } })).rejects.toThrow(
        new RegExp(
          `need \\(tm \\+ tn\\)·16·16·4 = 34816 bytes of workgroup memory, more than this device's ${workgroupStorage}`,
        ),
      );
    } else {
      (await init({ kernels: { tiles: big } })).dispose();
    }
  });
});
