/**
 * `wpc sample`: draws images from a saved generator (label → image) as a PNG grid; also the writer of
 * `wpc train --samples`.
 */
import { init } from '../node.js';
import { CIFAR10_NORMALIZATION } from '../data/cifar.js';
import { groupDigits } from '../runtime/limits.js';
import type { Model } from '../pc/model.js';
import { initActivitiesWithFfwd } from '../pc/energy.js';
import { loadModel, writeImageGrid } from '../io/node-files.js';
import { checkWorkspaceFits } from '../pc/workspace.js';
import { MAX_GRID_PIXELS, imageGridShape, type ImageGridOptions } from '../io/image-grid.js';
import { UsageError, checkOutputFile } from './checks.js';
import {
  POSITIVE_INTEGER,
  STANDARD_FLAGS,
  choice,
  flagLines,
  listValue,
  number,
  parseFlags,
  text,
  upTo,
} from './args.js';

const SAMPLE_FLAGS = {
  model: text('--model FILE', 'the checkpoint'),
  out: text('--out FILE', 'the PNG to write'),
  // Read once the model is loaded: the labels it takes are 0..inputDim-1.
  labels: text('--labels LIST', 'labels to draw, e.g. 0,1,2 (default: every label, 0..inputDim-1)'),
  rows: number('--rows N', 'repeat the labels on N rows                           (default 1)', 1, POSITIVE_INTEGER),
  scale: number('--scale S', 'each pixel becomes S x S                               (default 3)', 3, upTo(16)),
  range: choice(
    '--range NAME',
    [
      'mnist: undo the MNIST normalisation (default for greyscale); cifar10: undo',
      "CIFAR-10's, 0.5 per channel (default for colour); per-image: stretch each image",
    ],
    ['mnist', 'cifar10', 'per-image'] as const,
    undefined,
  ),
  ...STANDARD_FLAGS,
};

export const SAMPLE_HELP = `Usage: wpc sample --model FILE --out FILE [options]

Draws images from a generative model saved by 'wpc train --task generative --save FILE' (or saveModel): the
feedforward prediction from each one-hot label, as a PNG grid (JPC's output_preds). A model that predicts
3 x S x S values (CIFAR-10's 3072) draws colour images, channel planes red, green, blue.

${flagLines(SAMPLE_FLAGS, 23)}
`;

/** One-hot rows for `labels` (repeated `rows` times). */
function labelRows(labels: readonly number[], classes: number, rows = 1): Float32Array {
  const out = new Float32Array(labels.length * rows * classes);
  for (let r = 0; r < rows; r++) labels.forEach((label, i) => (out[(r * labels.length + i) * classes + label] = 1));
  return out;
}

/**
 * The image a generator's last layer predicts: [1 or 3, H, W], or a square (or three square colour planes)
 * flattened into a vector; null for anything else (a classifier's scores).
 */
function generatedImage(model: Model): { height: number; width: number; channels: 1 | 3 } | null {
  const out = model.shapes.at(-1)!;
  if (out.length === 3)
    return out[0] === 1 || out[0] === 3 ? { channels: out[0], height: out[1]!, width: out[2]! } : null;
  const isSquare = (n: number) => Number.isInteger(n) && Math.round(Math.sqrt(n)) ** 2 === n;
  const channels = isSquare(model.outputDim) ? 1 : isSquare(model.outputDim / 3) ? 3 : 0;
  if (channels === 0) return null;
  const side = Math.round(Math.sqrt(model.outputDim / channels));
  return { channels, height: side, width: side };
}

/** The generator's feedforward image for each label, as a PNG grid (in colour for 3 channels). */
export async function writeSamples(
  model: Model,
  path: string,
  labels: readonly number[],
  rows: number,
  scale: number,
  range: NonNullable<ImageGridOptions['range']>,
): Promise<void> {
  const image = generatedImage(model);
  if (image === null)
    throw new UsageError(`the model predicts [${model.shapes.at(-1)!.join(', ')}]: not an image of 1 or 3 channels`);
  const x = labelRows(labels, model.inputDim, rows);
  const acts = await initActivitiesWithFfwd(model, x);
  try {
    await writeImageGrid(path, acts.at(-1)!, { columns: labels.length, scale, range, ...image });
  } finally {
    for (const a of acts) a.dispose();
  }
}

/** `wpc sample ARGS`: writes the PNG, or returns 'help'. */
export async function sample(argv: string[]): Promise<undefined | 'help'> {
  const a = parseFlags(argv, SAMPLE_FLAGS);
  if (a === 'help') return 'help';
  const modelFile = a.value('model');
  const out = a.value('out');
  if (modelFile === undefined) throw new UsageError('--model FILE (a checkpoint from wpc train --save) is required');
  if (out === undefined) throw new UsageError('--out FILE (the PNG to write) is required');
  const rows = a.value('rows');
  const scale = a.value('scale');
  const range = a.value('range');
  await checkOutputFile('--out', out);
  const rt = await init();
  try {
    const model = await loadModel(rt, modelFile);
    const image = generatedImage(model);
    const predicted = model.shapes.at(-1)!;
    if (image === null) {
      throw new UsageError(
        `${modelFile} predicts ${predicted.length === 3 ? `[${predicted.join(', ')}]` : `${model.outputDim} values`}, not a square image (nor three square colour planes): sample needs a generator (label -> image), e.g. from 'wpc train --task generative'`,
      );
    }
    if (model.shapes[0]!.length !== 1) {
      throw new UsageError(
        `${modelFile} takes [${model.shapes[0]!.join(', ')}] images, not labels: sample needs a generator (label -> image), e.g. from 'wpc train --task generative'`,
      );
    }
    const channels = image.channels;
    const rawLabels = a.value('labels');
    const labels =
      rawLabels === undefined
        ? Array.from({ length: model.inputDim }, (_, i) => i)
        : listValue(
            'labels',
            rawLabels,
            (s) => (/^\d+$/.test(s) && Number(s) < model.inputDim ? Number(s) : undefined),
            `labels in 0..${model.inputDim - 1}`,
          );
    // The grid (a host image) and the batch of labels × rows (a workspace on the device), before either is made.
    const images = labels.length * rows;
    const grid = imageGridShape(images, image.height, image.width, { columns: labels.length, scale, padding: 2 });
    if (grid.width * grid.height > MAX_GRID_PIXELS) {
      throw new UsageError(
        `--rows ${rows} and --scale ${scale} make a ${grid.width} × ${grid.height} image, more than ${groupDigits(MAX_GRID_PIXELS)} pixels; lower --rows or --scale`,
      );
    }
    checkWorkspaceFits(`--rows ${rows} (${images} images)`, rt, model, images, 'train', 'supervised', {
      stages: 2,
      gridSteps: 1,
    });
    const chosen = range ?? (channels === 3 ? 'cifar10' : 'mnist');
    // CIFAR-10's normalisation is the same for every channel, so a greyscale grid takes the first.
    const { mean, std } = CIFAR10_NORMALIZATION;
    const cifar = channels === 3 ? CIFAR10_NORMALIZATION : { mean: mean.slice(0, 1), std: std.slice(0, 1) };
    await writeSamples(model, out, labels, rows, scale, chosen === 'cifar10' ? cifar : chosen);
    process.stdout.write(`${JSON.stringify({ out, images: labels.length * rows, labels })}\n`);
    model.dispose();
  } finally {
    rt.dispose();
  }
}
