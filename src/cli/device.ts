/**
 * The device side of the commands: the runtime a run opens (with --tiles), how outputs name the adapter, and the
 * size checks against the device's limits that run before anything is allocated.
 */
import type { DatasetName } from '../data/node.js';
import { init, type InitOptions } from '../node.js';
import { WpcArgumentError } from '../runtime/errors.js';
import { initOptionsWithTiles } from '../runtime/options.js';
import type { Runtime } from '../runtime/runtime.js';
import { checkParamsFit } from '../pc/model.js';
import { adam } from '../pc/optim.js';
import { checkSolveFits, type resolveSolverOptions } from '../pc/solve/index.js';
import { UsageError } from './checks.js';

/** The adapter as the outputs name it, e.g. "llvmpipe: Mesa … (software)". */
export function adapterLabel(rt: Runtime): string {
  return `${rt.adapter.description || rt.adapter.device || rt.adapter.vendor || 'unknown'} (${rt.adapter.architecture || 'unknown architecture'})`;
}

/**
 * The datasets' shapes, known before they are loaded (loadDataset refuses files of any other shape; CIFAR-10's
 * files may hold fewer than the official records, so its trainCount is an upper bound).
 */
export const DATASET_SHAPES: Record<
  DatasetName | 'cifar10-synthetic',
  { inputDim: number; numClasses: number; trainCount: number }
> = {
  mnist: { inputDim: 784, numClasses: 10, trainCount: 60_000 },
  'fashion-mnist': { inputDim: 784, numClasses: 10, trainCount: 60_000 },
  cifar10: { inputDim: 3072, numClasses: 10, trainCount: 50_000 },
  'cifar10-synthetic': { inputDim: 3072, numClasses: 10, trainCount: 60_000 },
};

/**
 * Checks a network trained with Adam against the device, naming the flags (`fn` the command): its parameters (one
 * storage buffer), Adam's state (one buffer of two moments per parameter) and the training workspace of a batch
 * with the solver `cfg`.
 */
export function checkNetworkFits(
  fn: string,
  rt: Runtime,
  dims: number[],
  bias: boolean,
  net: string,
  batch: number,
  cfg: ReturnType<typeof resolveSolverOptions>,
): void {
  const params = checkParamsFit(net, dims, bias, rt.limits);
  adam({ lr: 1e-3 }).checkStateFits(net, params, rt.limits);
  checkSolveFits(fn, { runtime: rt, dims }, batch, 'supervised', cfg, `--batch ${batch}`);
}

/** --tiles: init's kernels.tiles. */
export type KernelTiles = NonNullable<NonNullable<InitOptions['kernels']>['tiles']>;

/**
 * The runtime of a training run: default kernels, or --tiles (subgroup-matrix tiles need Dawn's experimental
 * features shown). A layout the device refuses is a usage error naming the flag.
 */
export async function openRuntime(tiles: KernelTiles | undefined): Promise<Runtime> {
  if (tiles === undefined) return init();
  try {
    return await init(initOptionsWithTiles({}, tiles));
  } catch (e) {
    if (e instanceof WpcArgumentError) throw new UsageError(`--tiles: ${e.message.replace(/^init: /, '')}`);
    throw e;
  }
}
