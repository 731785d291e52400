/**
 * Hybrid PC on the two networks' workspaces: the amortiser's tables (errors against the generator's equilibrium,
 * its parameter gradients and energies), the row metrics, loading a caller's activities, and the copies between
 * the two workspaces.
 */
import type { Job, SegmentSpec } from '../../kernels/structs.js';
import type { Recorder } from '../../runtime/recorder.js';
import type { Tensor } from '../../runtime/tensor.js';
import { type Captured, loadBatch } from '../batch.js';
import { packJobs } from '../layer-jobs.js';
import { errorJobs, paramGradJobs } from '../layers/index.js';
import type { RowMetric, Workspace } from '../workspace.js';
import { type Dispatch, cachedPer, record } from '../workspace/handles.js';
import { writeSolverConfig } from '../solve/index.js';

/** The amortiser's feedforward pass from the image (in x): a_1..a_L in y, φ(a) in py, A_1(x) in pred1. */
export function amortForward(aws: Workspace, rec: Recorder, image: Tensor, label: Tensor | null): void {
  loadBatch(aws, rec, image, label ?? undefined);
  aws.recordForward(rec);
}

/**
 * Starts the generator from the amortiser's guesses: z_l ← a_{L−l} (z_0 too when it is free), then φ, the
 * first layer's prediction and the dummy z_L = g_L(z_{L−1}).
 */
export function seedGenerator(gws: Workspace, aws: Workspace, rec: Recorder): void {
  const L = gws.model.depth;
  const B = gws.batch;
  for (let l = gws.first; l < L; l++) {
    rec.copy(
      aws.buffer,
      aws.activityOffset(L - l) * 4,
      gws.buffer,
      gws.activityOffset(l) * 4,
      B * gws.model.dims[l]! * 4,
    );
  }
  gws.recordElementwise(rec, 'activate');
  gws.recordFirstPrediction(rec);
  gws.recordForwardLayer(rec, L);
}

/** Copies the amortised activities out in JPC's order: [a_L, …, a_1, g_L(a_1)]. */
export function copyAmortised(gws: Workspace, aws: Workspace, rec: Recorder): Tensor[] {
  const L = aws.model.depth;
  const B = aws.batch;
  const out: Tensor[] = [];
  for (let l = L; l >= 1; l--) {
    const t = aws.runtime.empty([B, aws.model.dims[l]!]);
    rec.copy(aws.buffer, aws.activityOffset(l) * 4, t.buffer, 0, t.byteLength);
    out.push(t);
  }
  const dummy = gws.runtime.empty([B, gws.model.outputDim]);
  rec.copy(gws.buffer, gws.activityOffset(L) * 4, dummy.buffer, 0, dummy.byteLength);
  out.push(dummy);
  return out;
}

/** The amortiser's hybrid tables on a workspace: errors against the targets in t, gradients, energies. */
interface AmortTables {
  errors: Dispatch;
  paramGrad: Dispatch;
  energies: Dispatch;
  total: Dispatch;
}

/** Builds (once per workspace) the amortiser's hybrid tables. */
export const amortTables = cachedPer((aws: Workspace): AmortTables => {
  const { model, batch: B, fam } = aws;
  const L = model.depth;
  const errors: Job[] = [];
  const params: Job[] = [];
  for (let l = 1; l <= L; l++) {
    const layer = model.layers[l - 1]!;
    const input = l === 1 ? aws.x : fam.py + aws.layer[l - 1]!;
    errors.push(
      ...errorJobs(layer, {
        rows: B,
        input,
        ...(l === 1 ? { fixedPrediction: aws.pred1 } : {}),
        target: l === L ? aws.target : fam.t + aws.layer[l]!,
        error: fam.e + aws.layer[l]!,
        part: aws.errorPart(l),
        output: l === L,
        ...(layer.skip ? { residualFrom: fam.y + aws.layer[l - 1]! } : {}),
      }),
    );
    params.push(
      ...paramGradJobs(layer, { rows: B, error: fam.e + aws.layer[l]!, input, coef: (-2 * layer.scale) / B }),
    );
  }
  const errTable = packJobs(errors, aws.tiles);
  const errJobs = aws.jobTable('hpc.errors', errTable);
  const errorsDispatch = aws.bind(
    aws.trainKernels.errors.plain,
    { jobs: errJobs, params: model.params, work: aws.buffer },
    errTable.workgroups,
  );
  const paramTable = packJobs(params, aws.tiles);
  const paramJobs = aws.jobTable('hpc.paramGrad', paramTable);
  const paramGrad = aws.bind(
    aws.trainKernels.paramGrad,
    { jobs: paramJobs, work: aws.buffer, grads: model.grads() },
    paramTable.workgroups,
  );
  // JPC's hpc record_layers order: [E_L, E_2, …, E_{L−1}, E_1], each Σe²/B (no ½).
  const order = L === 1 ? [1] : [L, ...Array.from({ length: L - 2 }, (_, i) => i + 2), 1];
  const layers: SegmentSpec[] = order.map((l, position) => ({
    off: aws.errorPart(l),
    count: aws.errorTiles[l - 1]!,
    stride: 4,
    out: aws.scalar.energies + position,
    scale: 1 / B,
  }));
  const energies = aws.reduce('hpc.energies', layers, aws.buffer, aws.scalars);
  const tiles = aws.errorTiles.reduce((a, b) => a + b, 0);
  const total = aws.reduce(
    'hpc.total',
    [{ off: aws.partE, count: tiles, stride: 4, out: aws.scalar.total, scale: 1 / B }],
    aws.buffer,
    aws.scalars,
  );
  return { errors: errorsDispatch, paramGrad, energies, total };
});

/** The row metrics hybrid PC reports, per workspace (built on first use). */
interface HpcMetrics {
  genLoss?: RowMetric;
  amortLoss?: RowMetric;
  amortAcc?: RowMetric;
  hpcAcc?: RowMetric;
  genAcc?: RowMetric;
}

export const metricsOf = cachedPer((_ws: Workspace): HpcMetrics => ({}));

/**
 * Puts the amortiser's targets in place: T_l = z*_{L−l} from the generator's state (in the generator's
 * workspace, or from caller tensors), and T_L = the label already in the target slot or z*_0.
 */
export function amortTargetsFromGenerator(aws: Workspace, gws: Workspace, rec: Recorder, label: boolean): void {
  const L = aws.model.depth;
  const B = aws.batch;
  for (let l = 1; l < L; l++) {
    rec.copy(
      gws.buffer,
      gws.activityOffset(L - l) * 4,
      aws.buffer,
      (aws.fam.t + aws.layer[l]!) * 4,
      B * aws.model.dims[l]! * 4,
    );
  }
  if (!label) rec.copy(gws.buffer, gws.activityOffset(0) * 4, aws.buffer, aws.target * 4, B * aws.model.outputDim * 4);
}

/** The amortiser's errors, then its layer energies and total (JPC's hpc_energy_fn, record_layers order). */
export function recordAmortErrors(aws: Workspace, rec: Recorder): void {
  const tables = amortTables(aws);
  record(rec, tables.errors);
  record(rec, tables.energies);
  record(rec, tables.total);
}

export interface AmortCall {
  B: number;
  /** The equilibrium has z_0 (L + 1 activities). */
  unsupervised: boolean;
  /** A label was given (the output layer's target); otherwise z*_0 is. */
  label: boolean;
  cap: Captured;
}

/** Loads a caller's amortised activities and equilibrium into the amortiser's workspace. */
export function loadAmortCall(aws: Workspace, rec: Recorder, call: AmortCall): void {
  const L = aws.model.depth;
  const { cap, unsupervised } = call;
  writeSolverConfig(aws, undefined);
  loadBatch(aws, rec, cap.input, call.label ? cap.output : undefined);
  const equilib = cap.activities.slice(0, cap.activities.length - L);
  const amort = cap.activities.slice(cap.activities.length - L);
  // a_l = amortActs[L − l]; its φ and the first layer's prediction from the image.
  for (let l = 1; l <= L; l++) {
    const t = amort[L - l]!;
    rec.copy(t.buffer, t.byteOffset, aws.buffer, aws.activityOffset(l) * 4, t.byteLength);
  }
  aws.recordElementwise(rec, 'activate');
  aws.recordFirstPrediction(rec);
  // T_l = z*_{L−l}.
  const at = (k: number) => equilib[unsupervised ? k : k - 1]!;
  for (let l = 1; l < L; l++) {
    const t = at(L - l);
    rec.copy(t.buffer, t.byteOffset, aws.buffer, (aws.fam.t + aws.layer[l]!) * 4, t.byteLength);
  }
  if (call.label) return;
  const z0 = at(0);
  rec.copy(z0.buffer, z0.byteOffset, aws.buffer, aws.target * 4, z0.byteLength);
}
