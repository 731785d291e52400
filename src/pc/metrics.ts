/**
 * JPC's norm utilities on GPU tensors: `compute_activity_norms` and `compute_param_norms`. Results are small
 * tensors (read them with `toArray()`); nothing is read back here.
 */
import { biasTensor, weightMatrix } from './layers/index.js';
import { outputKernel, rowTable } from '../kernels/output.js';
import { ReduceFlag, reduceKernel } from '../kernels/reduce.js';
import { type SegmentSpec, packSegments } from '../kernels/structs.js';
import { WpcArgumentError, argError } from '../runtime/errors.js';
import { BufferUsage, STORAGE_USAGE } from '../runtime/flags.js';
import { createBindGroup } from '../runtime/kernel.js';
import { Recorder } from '../runtime/recorder.js';
import type { Runtime } from '../runtime/runtime.js';
import { Tensor, checkTensor } from '../runtime/tensor.js';
import type { ParamGradResult } from './batch.js';
import { Model } from './model.js';

/** A pooled segment table (the caller releases it). */
function segmentBuffer(rt: Runtime, segs: readonly SegmentSpec[]): GPUBuffer {
  const data = packSegments(segs);
  const buffer = rt.pool.acquire(data.byteLength, BufferUsage.STORAGE | BufferUsage.COPY_DST, 'wpc.metric.segments');
  rt.device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/**
 * JPC's `compute_activity_norms`: mean over the batch of each activity's row norm, mean_b ‖z_{l,b}‖₂, for every
 * tensor given (shape [B, …]). Returns a tensor of one value per activity.
 */
export async function computeActivityNorms(activities: readonly Tensor[]): Promise<Tensor> {
  const fn = 'computeActivityNorms';
  if (!Array.isArray(activities) || activities.length === 0)
    argError(fn, 'activities', 'a non-empty array of tensors', activities);
  const first = activities[0];
  if (!(first instanceof Tensor)) argError(fn, 'activities[0]', 'a Tensor', first);
  const rt = first.runtime;
  activities.forEach((a, i) => checkTensor(fn, `activities[${i}]`, a, rt));
  const [rowsKernel, reduce] = await Promise.all([
    rt.kernel(outputKernel('row_norms', false)),
    rt.kernel(reduceKernel(rt.adapter.subgroupSize)),
  ]);
  // Scratch: every activity, then 4 partials per row of each.
  let at = 0;
  const layout = activities.map((a) => {
    const rows = a.shape[0]!;
    const entry = { off: at, rows, cols: a.size / rows };
    at += a.size;
    return entry;
  });
  let part = at;
  const parts = layout.map((l) => {
    const p = part;
    part += 4 * l.rows;
    return p;
  });
  const scratch = rt.pool.acquire(part * 4, STORAGE_USAGE, 'wpc.metric');
  const out = rt.empty([activities.length]);
  const rec = new Recorder(rt, `wpc.${fn}`);
  activities.forEach((a, i) => rec.copy(a.buffer, a.byteOffset, scratch, layout[i]!.off * 4, a.byteLength));
  // Every activity's row norms in one dispatch.
  const table = rowTable(layout.map((l, i) => ({ rows: l.rows, cols: l.cols, predOff: l.off, partOff: parts[i]! })));
  const rowsBuffer = rt.pool.acquire(table.data.byteLength, STORAGE_USAGE, 'wpc.metric.rows');
  rt.device.queue.writeBuffer(rowsBuffer, 0, table.data);
  rec.dispatch(
    rowsKernel,
    createBindGroup(rt.device, rowsKernel, { rows: rowsBuffer, work: scratch }),
    table.workgroups,
  );
  const segments = segmentBuffer(
    rt,
    layout.map((l, i) => ({ off: parts[i]!, count: l.rows, stride: 4, out: i, scale: 1 / l.rows, flags: 0 })),
  );
  rec.dispatch(
    reduce,
    createBindGroup(rt.device, reduce, { segments, src: scratch, dst: out.buffer }),
    activities.length,
  );
  rec.submit();
  for (const b of [scratch, segments, rowsBuffer]) rt.pool.release(b);
  return out;
}

/**
 * JPC's `compute_param_norms`: ‖W_l‖₂ and ‖b_l‖₂ (0 without bias) of a model's parameters, or of gradients from
 * `computePcParamGrads`. Returns a tensor [L, 2]. (JPC's list also has zeros for the activation functions.)
 */
export async function computeParamNorms(params: Model | ParamGradResult): Promise<Tensor> {
  const fn = 'computeParamNorms';
  if (params instanceof Model) {
    params.checkAlive(fn);
    const rt = params.runtime;
    const reduce = await rt.kernel(reduceKernel(rt.adapter.subgroupSize));
    const segments = segmentBuffer(
      rt,
      params.layers.flatMap((l, i) => {
        const w = weightMatrix(l);
        const b = biasTensor(l);
        const flags = ReduceFlag.SQUARE | ReduceFlag.SQRT;
        return [
          { off: w.offset, count: w.rows * w.cols, stride: 1, out: 2 * i, scale: 1, flags },
          { off: b ? b.offset : 0, count: b ? b.shape[0]! : 0, stride: 1, out: 2 * i + 1, scale: 1, flags },
        ];
      }),
    );
    const out = rt.empty([params.depth, 2]);
    const rec = new Recorder(rt, `wpc.${fn}`);
    rec.dispatch(
      reduce,
      createBindGroup(rt.device, reduce, { segments, src: params.params, dst: out.buffer }),
      2 * params.depth,
    );
    rec.submit();
    rt.pool.release(segments);
    return out;
  }
  if (
    typeof params !== 'object' ||
    params === null ||
    !Array.isArray(params.weights) ||
    !Array.isArray(params.biases)
  ) {
    return argError(fn, 'params', 'a Model or the result of computePcParamGrads ({ weights, biases })', params);
  }
  const { weights, biases } = params;
  if (weights.length === 0 || biases.length !== weights.length) {
    throw new WpcArgumentError(
      `${fn}: params.weights and params.biases must be non-empty and of the same length, got ${weights.length} and ${biases.length}`,
    );
  }
  const at0 = weights.findIndex((w) => w !== null);
  const first = weights[at0];
  if (!(first instanceof Tensor)) return argError(fn, `params.weights[${Math.max(0, at0)}]`, 'a Tensor', first);
  const rt = first.runtime;
  const tensors: (Tensor | null)[] = weights.flatMap((w, i) => [
    w === null ? null : checkTensor(fn, `params.weights[${i}]`, w, rt),
    biases[i] === null ? null : checkTensor(fn, `params.biases[${i}]`, biases[i], rt),
  ]);
  const reduce = await rt.kernel(reduceKernel(rt.adapter.subgroupSize));
  let at = 0;
  const offsets = tensors.map((t) => {
    const o = at;
    at += t?.size ?? 0;
    return o;
  });
  const scratch = rt.pool.acquire(Math.max(4, at * 4), STORAGE_USAGE, 'wpc.metric');
  const rec = new Recorder(rt, `wpc.${fn}`);
  tensors.forEach((t, i) => {
    if (t) rec.copy(t.buffer, t.byteOffset, scratch, offsets[i]! * 4, t.byteLength);
  });
  const segments = segmentBuffer(
    rt,
    tensors.map((t, i) => ({
      off: offsets[i]!,
      count: t?.size ?? 0,
      stride: 1,
      out: i,
      scale: 1,
      flags: ReduceFlag.SQUARE | ReduceFlag.SQRT,
    })),
  );
  const out = rt.empty([weights.length, 2]);
  rec.dispatch(reduce, createBindGroup(rt.device, reduce, { segments, src: scratch, dst: out.buffer }), tensors.length);
  rec.submit();
  for (const b of [scratch, segments]) rt.pool.release(b);
  return out;
}
