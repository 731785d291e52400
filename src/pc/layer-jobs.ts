/**
 * Job tables for the grouped layer kernels (struct Job in kernels/layer-matmul.wgsl): one 80-byte record per
 * layer matmul, with the offsets each kernel file documents. Tables are built once per workspace.
 */
import { JOB_WORDS, type TileConfig } from '../kernels/index.js';

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
}

export interface JobTable {
  /** The packed table (uploaded once). */
  data: ArrayBuffer;
  /** Workgroups to dispatch. */
  workgroups: number;
  /** Tiles per job, i.e. partial-sum pairs each job writes. */
  tiles: number[];
}

export function tilesOf(m: number, n: number, tiles: TileConfig): number {
  return Math.ceil(m / tiles.tm) * Math.ceil(n / tiles.tn);
}

export function packJobs(jobs: readonly Job[], tiles: TileConfig): JobTable {
  const data = new ArrayBuffer(jobs.length * JOB_WORDS * 4);
  const u32 = new Uint32Array(data);
  const f32 = new Float32Array(data);
  let wg = 0;
  const counts: number[] = [];
  jobs.forEach((job, i) => {
    const tilesN = Math.ceil(job.n / tiles.tn);
    const count = tilesOf(job.m, job.n, tiles);
    const o = i * JOB_WORDS;
    u32[o + 0] = wg;
    u32[o + 1] = tilesN;
    u32[o + 2] = count;
    u32[o + 3] = job.m;
    u32[o + 4] = job.n;
    u32[o + 5] = job.k;
    u32[o + 6] = job.aOff;
    u32[o + 7] = job.bOff;
    u32[o + 8] = job.cOff;
    u32[o + 9] = job.dOff ?? 0;
    u32[o + 10] = job.eOff ?? 0;
    u32[o + 11] = job.fOff ?? 0;
    u32[o + 12] = job.biasOff ?? 0;
    u32[o + 13] = job.partOff ?? 0;
    u32[o + 14] = job.flags ?? 0;
    f32[o + 15] = job.coef0 ?? 1;
    f32[o + 16] = job.coef1 ?? 1;
    wg += Math.ceil(count / tiles.wg);
    counts.push(count);
  });
  return { data, workgroups: wg, tiles: counts };
}
