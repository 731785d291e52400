/**
 * Job tables for the grouped layer kernels (struct Job in kernels/layer-matmul.wgsl): 88-byte records of one layer
 * matmul each, with the offsets each kernel file documents, packed in a workgroup order that balances the load.
 * Tables are built once per workspace. A layer's own jobs come from its kind (pc/layers); the one job built here
 * is an activity's gradient, which joins its own error with the term its next layer's kind carries down.
 */
import { GradFlag } from '../kernels/layer-matmul.js';
import { type TileConfig, workgroupSharesTile, workgroupTile } from '../kernels/tiles.js';
import { type Job, packJobRecords } from '../kernels/structs.js';

/**
 * How a layer's convolution-shaped jobs split: one job per example over `channels` rows of `plane` positions
 * (NCHW planes), so that a whole batch is `rows` such jobs (kernels/conv-gather.wgsl).
 */
export interface Planes {
  channels: number;
  plane: number;
}

export interface JobTable {
  /** The packed table (uploaded once). */
  data: ArrayBuffer;
  /** Workgroups to dispatch. */
  workgroups: number;
  /** Tiles per job, i.e. partial-sum quads each job writes. */
  tiles: number[];
}

/** Invocations ("tiles", each with one partial-sum quad) the grouped matmul spends on an m×n output. */
export function tilesOf(m: number, n: number, tiles: TileConfig): number {
  const { rows, cols } = workgroupTile(tiles);
  const blocks = Math.ceil(m / rows) * Math.ceil(n / cols);
  return workgroupSharesTile(tiles) ? blocks * tiles.wg : blocks;
}

/**
 * Cost of one workgroup of a job in the schedule below, in units of one step of its k loop: the loop, plus the
 * epilogue, a few loads and stores per output (DEVELOPERS.md, "Reading lavapipe's machine code", has its weight).
 */
const EPILOGUE_COST = 16;

/**
 * The order in which a grouped dispatch's workgroups take the jobs' tiles: cost classes interleaved so that the
 * running cost grows as evenly as possible with the workgroup index. lavapipe (lp_cs_tpool.c) hands each of its
 * T threads one contiguous chunk of ⌊N/T⌋ workgroups and never rebalances, so with the jobs laid out one after
 * the other a dispatch whose first half is cheap (the fixed first-layer errors, k = 0; an output layer's
 * 10-wide activity gradient) left one thread with all the matmuls, no faster than one thread (DEVELOPERS.md has
 * the figures). Interleaved, any contiguous chunking is
 * balanced to within one workgroup. GPUs run the workgroups concurrently, where the order is immaterial; the
 * results do not depend on it (every tile computes and stores the same values wherever it runs).
 * Returns the job index of each workgroup.
 */
export function scheduleWorkgroups(groups: readonly number[], cost: readonly number[]): number[] {
  const classes = [...new Set(cost.filter((_, j) => groups[j]! > 0))].sort((a, b) => b - a);
  // Per class, the workgroups still to place, in job order (a class's jobs keep their relative order).
  const queues = new Map<number, number[]>(classes.map((c) => [c, []]));
  groups.forEach((g, j) => {
    for (let i = 0; i < g; i++) queues.get(cost[j]!)!.push(j);
  });
  const count = groups.reduce((s, g) => s + g, 0);
  const total = groups.reduce((s, g, j) => s + g * cost[j]!, 0);
  const heads = new Map<number, number>(classes.map((c) => [c, 0]));
  const order: number[] = [];
  let sum = 0;
  for (let p = 0; p < count; p++) {
    // The class that keeps the running cost nearest its even share (ties: the costlier class).
    const target = ((p + 1) * total) / count;
    let best = -1;
    let bestGap = Infinity;
    for (const c of classes) {
      if (heads.get(c)! >= queues.get(c)!.length) continue;
      const gap = Math.abs(sum + c - target);
      if (gap < bestGap) {
        best = c;
        bestGap = gap;
      }
    }
    const head = heads.get(best)!;
    order.push(queues.get(best)![head]!);
    heads.set(best, head + 1);
    sum += best;
  }
  return order;
}

/**
 * Packs `jobs` into a grouped kernel's table: one record per run of consecutive workgroups of one job, in the
 * order scheduleWorkgroups gives (record.group0 is the job's workgroup the run starts at).
 */
export function packJobs(jobs: readonly Job[], tiles: TileConfig): JobTable {
  const counts = jobs.map((job) => tilesOf(job.m, job.n, tiles));
  const groups = counts.map((count) => Math.ceil(count / tiles.wg));
  const order = scheduleWorkgroups(
    groups,
    jobs.map((job) => job.k + EPILOGUE_COST),
  );
  const runs: { job: number; wgStart: number; group0: number }[] = [];
  const next = jobs.map(() => 0);
  order.forEach((j, wg) => {
    if (runs.at(-1)?.job !== j) runs.push({ job: j, wgStart: wg, group0: next[j]! });
    next[j]!++;
  });
  const data = packJobRecords(
    runs.map((run) => {
      const job = jobs[run.job]!;
      const tilesN = Math.ceil(job.n / workgroupTile(tiles).cols);
      return { job, wgStart: run.wgStart, tilesN, tiles: counts[run.job]!, group0: run.group0 };
    }),
  );
  return { data, workgroups: order.length, tiles: counts };
}

/**
 * A layer's term in the activity gradient of its input, as the activity-gradient job takes it (from the layer
 * kind's `carry`): a product of `k` columns of the error at `aOff` with the parameters at `bOff`, times `coef`;
 * `skip` adds w·e itself (an identity residual's derivative).
 */
export interface CarryTerm {
  k: number;
  aOff: number;
  bOff: number;
  coef: number;
  skip: boolean;
  /**
   * A convolution-shaped carry (conv-gather.wgsl): the geo words of its gather, and the error's size per example.
   * The activity-gradient job then runs per example over the input's planes (the kind's `inputPlanes`).
   */
  geometry?: { geo0: number; geo1: number; geo2: number; geo3: number };
  errorStride?: number;
  /** bOff is per-example data laid out like the error (a max pooling's stored maxima), not parameters. */
  shiftB?: boolean;
}

/**
 * The energy gradient of one activity z (activity-grad.wgsl):
 *   scale · (own − s_next·w·φ'(z) ⊙ (e_next W_next) [− w·e_next] + decay·z)  [+ what is already at grad]
 */
interface GradJobSpec {
  rows: number;
  /** Width of z. */
  width: number;
  /** z at the evaluation point. */
  z: number;
  /** z's offset inside the activity families (where the solver stages and candidates of this z live). */
  family: number;
  /** Where ∂F/∂z goes in MODE_GRAD. */
  grad: number;
  part: number;
  /** z's own prediction error; none for a free input z_0 or an unused output activity. */
  own?: number;
  /** The term of the layer z feeds (its kind's `carry`): the transposed product of that layer's error. */
  carry?: CarryTerm;
  /** φ' = 1: z enters the next layer without an activation (a free z_0). */
  identity?: boolean;
  /** Add the value already at `grad` (a first pass's part). */
  accumulate?: boolean;
  /** Overall factor (1/B for JPC's normalisation). */
  scale: number;
  /** How a convolution-shaped carry splits z per example (the carrying kind's `inputPlanes`). */
  planes?: { channels: number; plane: number };
}

/**
 * The activity-gradient jobs of one activity: one batch job, or with a convolution-shaped carry one job per
 * example over z's planes (its partial-sum slots are assigned by `assignParts`).
 */
export function gradJobs(s: GradJobSpec): Job[] {
  const carry = s.carry;
  if (!carry?.geometry || !s.planes) return [gradJob(s)];
  const { channels, plane } = s.planes;
  const first = gradJob({ ...s, rows: channels, width: plane });
  const out: Job[] = [];
  for (let b = 0; b < s.rows; b++) {
    const shift = b * s.width;
    out.push({
      ...first,
      ...carry.geometry,
      aOff: carry.aOff + b * carry.errorStride!,
      bOff: carry.shiftB ? carry.bOff + b * carry.errorStride! : carry.bOff,
      cOff: first.cOff + shift,
      dOff: (first.dOff ?? 0) + (s.own !== undefined ? shift : 0),
      eOff: (first.eOff ?? 0) + shift,
      fOff: (first.fOff ?? 0) + shift,
    });
  }
  return out;
}

/** Gives `jobs` consecutive partial-sum slots from `part` (4 floats per tile), in order. */
export function assignParts(jobs: readonly Job[], part: number, tiles: TileConfig): Job[] {
  let at = part;
  return jobs.map((job) => {
    const placed = { ...job, partOff: at };
    at += 4 * tilesOf(job.m, job.n, tiles);
    return placed;
  });
}

/** Tiles (partial-sum quads) of a layer's jobs over `rows` examples: per example over `planes`, or one batch job. */
export function jobTiles(rows: number, width: number, planes: Planes | undefined, tiles: TileConfig): number {
  return planes ? rows * tilesOf(planes.channels, planes.plane, tiles) : tilesOf(rows, width, tiles);
}

export function gradJob(s: GradJobSpec): Job {
  const carry = s.carry;
  return {
    m: s.rows,
    n: s.width,
    k: carry ? carry.k : 0,
    aOff: carry ? carry.aOff : 0,
    bOff: carry ? carry.bOff : 0,
    cOff: s.grad,
    dOff: s.own ?? 0,
    eOff: s.z,
    fOff: s.family,
    partOff: s.part,
    flags:
      (s.own === undefined ? GradFlag.NO_OWN : 0) |
      (s.identity ? GradFlag.IDENTITY : 0) |
      (carry?.skip ? GradFlag.SKIP : 0) |
      (s.accumulate ? GradFlag.ACCUMULATE : 0),
    coef0: carry ? carry.coef : 0,
    coef1: s.scale,
  };
}

/**
 * Whether every activity-gradient job of a table takes the vec4 epilogue: the job part of vec_ok in
 * activity-grad.wgsl (width and every offset the epilogue uses ≡ 0 mod 4; with SKIP also the next layer's error
 * and width). A dispatch whose jobs and stage record all pass may use the kernel compiled with only that path.
 */
export function epilogue4Ready(jobs: readonly Job[]): boolean {
  return jobs.every((j) => {
    if ((j.geo0 ?? 0) !== 0) return false;
    const used = [j.n, j.cOff, j.dOff ?? 0, j.eOff ?? 0, j.fOff ?? 0];
    if (((j.flags ?? 0) & GradFlag.SKIP) !== 0) used.push(j.aOff, j.k);
    return used.every((v) => v % 4 === 0);
  });
}

/**
 * An element-wise job (k = 0: no product; its epilogue addresses only base + row·n + col) re-shaped to m′×n′ with
 * n′ ≡ 0 mod 4 and the same number of tiles, so that it takes the vec4 epilogue and leaves its partial-sum quads
 * where the layout expects them: the 10-wide output of a classifier, 64×10, becomes 10×64. Returned unchanged
 * when it already has such a width or no such shape exists (e.g. 1×10).
 */
export function vec4Shaped(job: Job, tiles: TileConfig): Job {
  if (job.k !== 0 || job.n % 4 === 0 || (job.geo0 ?? 0) !== 0) return job;
  const size = job.m * job.n;
  const want = tilesOf(job.m, job.n, tiles);
  for (let n = 4 * Math.floor(size / 4); n >= 4; n -= 4) {
    if (size % n === 0 && tilesOf(size / n, n, tiles) === want) return { ...job, m: size / n, n };
  }
  return job;
}
