/**
 * Where everything of a workspace lives, computed from the sizes alone (nothing allocated): element offsets in
 * its one storage buffer, and the slots of its scalars buffer. Size checks call it before anything is allocated.
 *
 * The activities of the ODE state are stored back to back: z_1..z_L in supervised PC (the input x is clamped;
 * z_L, the output layer's, is a dummy the energy never reads), z_0..z_L in unsupervised PC (z_0 free). z_l takes
 * B·d_l elements at `layer(l)`, and every *family* below repeats that layout from its own base, so layer l of
 * family F is at F + layer(l) and elementwise work over the whole state is one flat range:
 *
 *   y    activities                          py   φ(y)
 *   t    a Runge–Kutta stage's evaluation point (the probe) or the candidate y1 (*)   pt   φ(t)
 *   k_j  stage j of a Runge–Kutta step (one family per stage); k_1 also holds ∂F/∂z for discrete updates and
 *        the optimiser state of discrete inference (k_1, k_2)
 *   e    prediction errors e_l (e_L: y − pred, or ce's y − softmax·Σy)
 *   aux  extra families some variants ask for (bidirectional PC's second errors, ePC's back-propagated signal)
 *
 * (*) The last stage reads its evaluation point t and writes the candidate over it: each element is read and
 * written by the same invocation. Besides: x (input), pred1 (the first layer's prediction, fixed during inference
 * because x is clamped), target, the constant-step grid, and partial-sum regions.
 */
import { SCALED_SQUARE_CHUNK } from '../../kernels/solver.js';
import { type TileConfig, defaultTiles } from '../../kernels/tiles.js';
import { checkFits, storageLimit } from '../../runtime/limits.js';
import type { Runtime } from '../../runtime/runtime.js';
import { jobTiles } from '../layer-jobs.js';
import { type LayerSpec, inputPlanes, outputPlanes, scratchPerExample } from '../layers/index.js';
import { formatDims } from '../model.js';

export type EvalPoint = 'y' | 't';
/** `eval` workspaces only hold what a feedforward pass and its loss need (test batches can be large). */
export type Purpose = 'train' | 'eval';
/** Supervised PC clamps the input x; unsupervised PC has a free activity z_0 in its place. */
export type Mode = 'supervised' | 'unsupervised';

/** What a solve or a variant needs beyond the defaults. */
export interface WorkspaceNeeds {
  /** Runge–Kutta stage families. */
  stages: number;
  /** Constant-step grid points. */
  gridSteps: number;
  /** Extra activity-shaped families (aux). Default 0. */
  aux?: number;
  /** Extra floats of scratch, for a second network's partial sums. Default 0. */
  extra?: number;
}

const ALIGN = 64; // elements: region starts on 256-byte boundaries

export interface Families {
  y: number;
  py: number;
  t: number;
  pt: number;
  k: number;
  e: number;
}

/** A partial-sum region: `count` tiles of 4 floats from `off`. */
export interface Partials {
  off: number;
  count: number;
}

/**
 * What a layout is computed from: a model's activity widths and layers, or widths alone (dense layers, for
 * checks made before a model exists).
 */
type Network = readonly number[] | { readonly dims: readonly number[]; readonly layers: readonly LayerSpec[] };

function networkOf(network: Network): { dims: readonly number[]; layers: readonly LayerSpec[] | undefined } {
  return Array.isArray(network)
    ? { dims: network as readonly number[], layers: undefined }
    : {
        dims: (network as { dims: readonly number[] }).dims,
        layers: (network as { layers: readonly LayerSpec[] }).layers,
      };
}

/** The register tile a runtime's layer kernels use. */
export function tilesFor(rt: Runtime, use: 'layers' | 'gemm' = 'layers'): TileConfig {
  return rt.kernels.tiles ?? defaultTiles(rt.adapter, use);
}

/** Where everything of a workspace lives: element offsets in its one buffer (see the file comment). */
export interface WorkspaceLayout {
  first: 0 | 1;
  layer: number[];
  nAll: number;
  nHidden: number;
  stages: number;
  gridSteps: number;
  errorTiles: number[];
  gradPart: number[];
  fam: Families;
  aux: number[];
  x: number;
  pred1: number;
  target: number;
  grid: number;
  partE: number;
  partCe: number;
  partA: Partials;
  partB: Partials;
  partD0: Partials;
  partRows: number;
  /** Each layer's scratch (index l − 1; −1 for none): a max pooling's argmax, written by its errors pass. */
  scratch: number[];
  extra: { off: number; size: number };
  /** Floats of the whole buffer. */
  floats: number;
}

/**
 * The layout of a workspace for activity widths `dims` and batches of `batch` rows, computed from the sizes
 * alone (nothing allocated): the constructor uses it, and size checks call it before anything is allocated.
 */
export function workspaceLayout(
  network: Network,
  batch: number,
  purpose: Purpose,
  mode: Mode,
  needs: WorkspaceNeeds,
  tiles: TileConfig,
): WorkspaceLayout {
  const { dims, layers } = networkOf(network);
  const first = mode === 'unsupervised' ? 0 : 1;
  const L = dims.length - 1;
  const B = batch;
  const layer = Array<number>(L + 1).fill(0);
  let n = 0;
  for (let l = first; l <= L; l++) {
    layer[l] = n;
    n += B * dims[l]!;
  }
  const nAll = n;
  const train = purpose === 'train';
  const stages = train ? Math.max(2, needs.stages) : 0;
  const gridSteps = train ? Math.max(1, needs.gridSteps) : 0;
  const errorTiles: number[] = [];
  for (let l = 1; l <= L; l++) errorTiles.push(jobTiles(B, dims[l]!, layers && outputPlanes(layers[l - 1]!), tiles));
  const gradPart = Array<number>(L + 1).fill(0);
  let gradTiles = 0;
  for (let l = first; l <= L; l++) {
    gradPart[l] = 4 * gradTiles;
    // z_l's gradient jobs split the way its consumer (layer l + 1) carries into it.
    gradTiles += jobTiles(B, dims[l]!, l < L && layers ? inputPlanes(layers[l]!) : undefined, tiles);
  }

  let at = 0;
  const take = (size: number, needed = true): number => {
    if (!needed) return 0;
    const start = at;
    at += Math.ceil(Math.max(size, 1) / ALIGN) * ALIGN;
    return start;
  };
  const fam = {
    y: take(n),
    py: take(n),
    t: take(n, train),
    pt: take(n, train),
    e: take(n, train),
    k: take(n * stages, train),
  };
  const aux = Array.from({ length: train ? (needs.aux ?? 0) : 0 }, () => take(n));
  const x = take(B * dims[0]!);
  const pred1 = take(B * dims[1]!, mode === 'supervised');
  const target = take(B * dims[L]!);
  const grid = take(gridSteps, train);
  const partE = take(4 * errorTiles.reduce((a, b) => a + b, 0), train);
  const partCe = take(4 * B, train);
  const partA = { off: take(4 * gradTiles, train), count: gradTiles };
  const partB = { off: take(4 * gradTiles, train), count: gradTiles };
  const partD0 = {
    off: take(4 * Math.ceil(n / SCALED_SQUARE_CHUNK), train),
    count: Math.ceil(n / SCALED_SQUARE_CHUNK),
  };
  const partRows = take(4 * B * (L + 1));
  const scratch = Array.from({ length: L }, (_, i) => {
    const size = layers ? scratchPerExample(layers[i]!) * B : 0;
    return size > 0 && train ? take(size) : -1;
  });
  const extraSize = train ? (needs.extra ?? 0) : 0;
  const extra = { off: take(extraSize, extraSize > 0), size: extraSize };
  return {
    first,
    layer,
    nAll,
    nHidden: layer[L]!,
    stages,
    gridSteps,
    errorTiles,
    gradPart,
    fam,
    aux,
    x,
    pred1,
    target,
    grid,
    partE,
    partCe,
    partA,
    partB,
    partD0,
    partRows,
    scratch,
    extra,
    floats: at,
  };
}

/**
 * Refuses, before anything is allocated, a workspace the device cannot hold in its one storage buffer: `subject`
 * names the argument that sets the batch and its value (e.g. "makePcStep: output (100000 rows)"); the message
 * says how many rows would fit.
 */
export function checkWorkspaceFits(
  subject: string,
  rt: Runtime,
  network: Network,
  batch: number,
  purpose: Purpose,
  mode: Mode,
  needs: WorkspaceNeeds,
): void {
  const tiles = tilesFor(rt);
  const limit = storageLimit(rt.limits);
  const floats = workspaceLayout(network, batch, purpose, mode, needs, tiles).floats;
  if (floats * 4 <= limit.bytes) return;
  const most = maxWorkspaceRows(rt, network, purpose, mode, needs);
  const { dims } = networkOf(network);
  const what = `the ${purpose === 'eval' ? 'evaluation' : 'working'} memory of a model ${formatDims(dims)} at ${batch} rows`;
  checkFits(
    subject,
    what,
    floats * 4,
    limit,
    most > 0 ? `at most ${most} rows fit` : 'no batch fits: use a smaller network',
  );
}

/** The largest batch whose workspace fits one storage binding of `rt`'s device (0 if none does). */
export function maxWorkspaceRows(
  rt: Runtime,
  network: Network,
  purpose: Purpose,
  mode: Mode,
  needs: WorkspaceNeeds = { stages: 2, gridSteps: 1 },
): number {
  const tiles = tilesFor(rt);
  const limitFloats = storageLimit(rt.limits).bytes / 4;
  const fits = (B: number) => workspaceLayout(network, B, purpose, mode, needs, tiles).floats <= limitFloats;
  if (!fits(1)) return 0;
  let lo = 1;
  let hi = 2;
  while (fits(hi)) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Slots of the scalars buffer (small results written by reductions), for a network of L layers. */
export interface ScalarSlots {
  /** Layer energies (room for bidirectional PC's 2L pairs). */
  energies: number;
  total: number;
  loss: number;
  accuracy: number;
  /** One per activity (L + 1 in unsupervised mode). */
  activityNorms: number;
  paramNorms: number;
  gradNorms: number;
  /** Regulariser energies: weight decay per layer, then the spectral penalty, then activity decay. */
  regs: number;
  /** Free slots for variants (e.g. hybrid PC's losses). */
  misc: number;
  size: number;
}

export function scalarSlots(L: number): ScalarSlots {
  const total = 2 * L + 2;
  const loss = total + 1;
  const activityNorms = loss + 2;
  const paramNorms = activityNorms + L + 1;
  const gradNorms = paramNorms + 2 * L;
  const regs = gradNorms + 2 * L;
  const misc = regs + L + 2;
  return {
    energies: 0,
    total,
    loss,
    accuracy: loss + 1,
    activityNorms,
    paramNorms,
    gradNorms,
    regs,
    misc,
    size: misc + 8,
  };
}
