/**
 * The network `wpc train` trains when --arch gives its layers: made by makeModel on the dataset's example shape,
 * refused (a usage error naming the token or the file's entry) when a layer does not fit or the last layer does
 * not give the task's output, and checked against the device like the MLP of --hidden/--width.
 */
import type { Dataset } from '../data/dataset.js';
import { makeModel } from '../pc/architecture.js';
import type { Model } from '../pc/model.js';
import { adam } from '../pc/optim.js';
import { checkSolveFits, resolveSolverOptions } from '../pc/solve/index.js';
import { checkWorkspaceFits } from '../pc/workspace.js';
import { WpcArgumentError } from '../runtime/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import { type ArchSpec, archMessage } from './arch.js';
import { UsageError } from './checks.js';
import { type TrainConfig, trainSolver } from './train-options.js';

/** One example's shape: the dataset's [C, H, W] where it gives one, else [1, rows, cols] (a grey image). */
function exampleShape(dataset: Dataset): readonly number[] {
  const shape = (dataset as { shape?: unknown }).shape;
  if (Array.isArray(shape) && shape.length === 3) return shape as number[];
  return [1, ...dataset.imageShape];
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * The model of `arch` for `config`'s task on `dataset` (seeded by --seed): a classifier from the image to the
 * classes, or a generator from the labels to the image. Everything is checked before the run allocates more.
 */
export function makeArchModel(rt: Runtime, config: TrainConfig, arch: ArchSpec, dataset: Dataset): Model {
  const generative = config.task === 'generative';
  const image = exampleShape(dataset);
  const inputShape = generative ? [dataset.numClasses] : image;
  if (arch.inputShape !== undefined && shapeText(arch.inputShape) !== shapeText(inputShape))
    throw new UsageError(
      `--arch ${arch.source}: inputShape ${shapeText(arch.inputShape)} is not the input of this run, ${shapeText(inputShape)} (${generative ? 'the labels' : `a ${config.dataset} image`})`,
    );
  let model: Model;
  try {
    model = makeModel(rt, {
      seed: config.seed,
      inputShape,
      layers: arch.layers,
      actFn: config.act,
      useBias: config.bias,
    });
  } catch (e) {
    if (!(e instanceof WpcArgumentError)) throw e;
    const message = `--arch: ${archMessage(e.message, arch)}`;
    // A network too large for the device is a device limit (exit 1), like --width; anything else a usage error.
    throw / is too large: it needs /.test(e.message) ? new WpcArgumentError(message) : new UsageError(message);
  }
  try {
    checkOutput(model, config, arch, image, dataset.numClasses);
    checkArchFits(rt, config, model, dataset.numClasses);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** The last layer must give the classes (discriminative) or the image (generative, as [C, H, W] or flat). */
function checkOutput(model: Model, config: TrainConfig, arch: ArchSpec, image: readonly number[], classes: number) {
  const out = model.shapes.at(-1)!;
  const last = arch.labels.at(-1)!;
  const pixels = image.reduce((a, b) => a * b, 1);
  if (config.task === 'discriminative') {
    if (model.outputDim !== classes)
      throw new UsageError(
        `--arch: the last layer (${last}) gives ${shapeText(out)}, ${model.outputDim} values; a classifier of ${config.dataset} must end with ${classes} (one per class), e.g. dense(${classes})`,
      );
    return;
  }
  if (model.outputDim !== pixels || (out.length > 1 && shapeText(out) !== shapeText(image)))
    throw new UsageError(
      `--arch: the last layer (${last}) gives ${shapeText(out)}; a generator of ${config.dataset} images must end with the image, ${shapeText(image)} or ${pixels} values, e.g. dense(${pixels})`,
    );
}

/**
 * Adam's moments and the workspaces of a training step at --batch (and, for a generator, of the test solve and
 * of --samples), against the device, naming the flags; the parameters themselves makeModel has checked.
 */
export function checkArchFits(rt: Runtime, config: TrainConfig, model: Model, classes: number): void {
  const net = `--arch (${model.paramCount} parameters)`;
  adam({ lr: 1e-3 }).checkStateFits(net, model.paramCount, rt.limits);
  const batch = `--batch ${config.batch}`;
  checkSolveFits(
    'wpc train',
    model,
    config.batch,
    'supervised',
    resolveSolverOptions('wpc train', trainSolver(config)),
    batch,
  );
  if (config.task !== 'generative') return;
  checkSolveFits(
    'wpc train',
    model,
    config.batch,
    'unsupervised',
    resolveSolverOptions('wpc train', { maxT1: config.testMaxT1 }),
    batch,
  );
  if (config.samples !== undefined)
    checkWorkspaceFits(`--samples (${classes} images)`, rt, model, classes, 'train', 'supervised', {
      stages: 2,
      gridSteps: 1,
    });
}
