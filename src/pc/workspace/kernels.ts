/**
 * The kernels a workspace compiles: the evaluation ones every workspace needs, and the training ones (errors,
 * activity and parameter gradients, the output kinds' finishing kernels, reductions, the solver's and the
 * recording's entry points). Compiled in parallel; the runtime's pipeline cache shares them between workspaces.
 */
import type { Activation } from '../../kernels/activations.js';
import { combineKernel } from '../../kernels/elementwise.js';
import { activityGradKernel, forwardKernel, paramGradKernel } from '../../kernels/layer-matmul.js';
import { outputKernel } from '../../kernels/output.js';
import { RECORD_ENTRIES, type RecordEntry, recordKernel } from '../../kernels/record.js';
import { accumulateKernel, reduceKernel } from '../../kernels/reduce.js';
import { SOLVER_ENTRIES, type SolverEntry, solverKernel } from '../../kernels/solver.js';
import type { TileConfig } from '../../kernels/tiles.js';
import type { CompiledKernel } from '../../runtime/kernel.js';
import type { Runtime } from '../../runtime/runtime.js';
import { FINISH_ENTRIES } from '../layers/output.js';
import type { ActKernels } from './act-table.js';
import type { Gated } from './handles.js';
import type { Purpose } from './layout.js';

/** The kernels a training workspace compiles besides the evaluation ones. */
export interface TrainKernels {
  errors: Gated<CompiledKernel>;
  finish: Record<(typeof FINISH_ENTRIES)[number], Gated<CompiledKernel>>;
  rowNorms: CompiledKernel;
  paramGrad: CompiledKernel;
  act: ActKernels;
  accumulate: CompiledKernel;
  combine: CompiledKernel;
  solver: Record<SolverEntry, CompiledKernel>;
  record: Record<RecordEntry, CompiledKernel>;
}

/** Every workspace's kernels; `train` only in training workspaces. */
export interface WorkspaceKernels {
  forward: CompiledKernel;
  lossRows: CompiledKernel;
  reduce: CompiledKernel;
  train?: TrainKernels;
}

/**
 * Compiles a workspace's kernels for activation `act` and register tile `tiles`; `vec4` adds the activity-gradient
 * kernels with only the vec4 epilogue; `conv` compiles the layer kernels with convolution-shaped jobs
 * (conv-gather.wgsl), for models with such layers.
 */
export async function compileKernels(
  rt: Runtime,
  act: Activation,
  tiles: TileConfig,
  purpose: Purpose,
  vec4: boolean,
  conv = false,
): Promise<WorkspaceKernels> {
  const sub = rt.adapter.subgroupSize;
  const gated = (spec: (g: boolean) => Parameters<Runtime['kernel']>[0]) =>
    Promise.all([rt.kernel(spec(false)), rt.kernel(spec(true))]).then(([plain, g]) => ({ plain, gated: g }));
  const byName = async <K extends string>(names: readonly K[], spec: (name: K) => Parameters<Runtime['kernel']>[0]) =>
    Object.fromEntries(await Promise.all(names.map(async (n) => [n, await rt.kernel(spec(n))] as const))) as Record<
      K,
      CompiledKernel
    >;
  const [forward, lossRows, reduce] = await Promise.all([
    rt.kernel(forwardKernel(act, tiles, 'forward', false, conv)),
    rt.kernel(outputKernel('loss_rows', false)),
    rt.kernel(reduceKernel(sub)),
  ]);
  if (purpose !== 'train') return { forward, lossRows, reduce };
  // The variant with only the vec4 epilogue where the workspace's own tables can use it (`vec4`; the general one
  // stays: Hairer's initial step, discrete inference and other networks' tables may need it). Adapters that
  // compile at pipeline creation would otherwise compile a kernel no dispatch uses.
  const [errors, finishList, rowNorms, paramGrad, actPlain, actVec4, accumulate, combine, solver, recordK] =
    await Promise.all([
      gated((g) => forwardKernel(act, tiles, 'errors', g, conv)),
      Promise.all(FINISH_ENTRIES.map((f) => gated((g) => outputKernel(f, g)))),
      rt.kernel(outputKernel('row_norms', false)),
      rt.kernel(paramGradKernel(tiles, conv)),
      gated((g) => activityGradKernel(act, tiles, g, 'any', conv)),
      vec4 && !conv ? gated((g) => activityGradKernel(act, tiles, g, 'vec4')) : undefined,
      rt.kernel(accumulateKernel(sub)),
      rt.kernel(combineKernel()),
      byName(SOLVER_ENTRIES, (e) => solverKernel(e, act, sub)),
      byName(RECORD_ENTRIES, (e) => recordKernel(e, sub)),
    ]);
  const finish = Object.fromEntries(FINISH_ENTRIES.map((f, i) => [f, finishList[i]!])) as TrainKernels['finish'];
  return {
    forward,
    lossRows,
    reduce,
    train: {
      errors,
      finish,
      rowNorms,
      paramGrad,
      act: { ...actPlain, ...(actVec4 ? { vec4: actVec4 } : {}) },
      accumulate,
      combine,
      solver,
      record: recordK,
    },
  };
}
