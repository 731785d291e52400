/**
 * `wpc sample`: draws images from a saved generator (label → image) as a PNG grid; also the writer of
 * `wpc train --samples`.
 */
import { init } from '../node.js';
import { groupDigits } from '../runtime/limits.js';
import type { Model } from '../pc/model.js';
import { initActivitiesWithFfwd } from '../pc/energy.js';
import { loadModel, writeImageGrid } from '../io/node-files.js';
import { checkWorkspaceFits } from '../pc/workspace.js';
import { MAX_GRID_PIXELS, imageGridShape } from '../io/image-grid.js';
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
    'mnist: undo the MNIST normalisation (default); per-image: stretch each image',
    ['mnist', 'per-image'] as const,
    'mnist',
  ),
  ...STANDARD_FLAGS,
};

export const SAMPLE_HELP = `Usage: wpc sample --model FILE --out FILE [options]

Draws images from a generative model saved by 'wpc train --task generative --save FILE' (or saveModel): the
feedforward prediction from each one-hot label, as a PNG grid (JPC's output_preds).

${flagLines(SAMPLE_FLAGS, 23)}
`;

/** One-hot rows for `labels` (repeated `rows` times). */
function labelRows(labels: readonly number[], classes: number, rows = 1): Float32Array {
  const out = new Float32Array(labels.length * rows * classes);
  for (let r = 0; r < rows; r++) labels.forEach((label, i) => (out[(r * labels.length + i) * classes + label] = 1));
  return out;
}

/**
 * The grey image a generator's last layer predicts: [1, H, W], or a square flattened into [H·W]; null for anything
 * else (a classifier's scores, colour images).
 */
function generatedImage(model: Model): { height: number; width: number } | null {
  const out = model.shapes.at(-1)!;
  if (out.length === 3) return out[0] === 1 ? { height: out[1]!, width: out[2]! } : null;
  const side = Math.round(Math.sqrt(model.outputDim));
  return side * side === model.outputDim ? { height: side, width: side } : null;
}

/** The generator's feedforward image for each label, as a PNG grid. */
export async function writeSamples(
  model: Model,
  path: string,
  labels: readonly number[],
  rows: number,
  scale: number,
  range: 'mnist' | 'per-image',
): Promise<void> {
  const image = generatedImage(model);
  if (image === null)
    throw new UsageError(`the model predicts [${model.shapes.at(-1)!.join(', ')}]: only grey images can be drawn`);
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
        `${modelFile} predicts ${predicted.length === 3 ? `[${predicted.join(', ')}] (colour images are not drawn)` : `${model.outputDim} values, not a square image`}: sample needs a generator (label -> image), e.g. from 'wpc train --task generative'`,
      );
    }
    if (model.shapes[0]!.length !== 1) {
      throw new UsageError(
        `${modelFile} takes [${model.shapes[0]!.join(', ')}] images, not labels: sample needs a generator (label -> image), e.g. from 'wpc train --task generative'`,
      );
    }
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
    await writeSamples(model, out, labels, rows, scale, range);
    process.stdout.write(`${JSON.stringify({ out, images: labels.length * rows, labels })}\n`);
    model.dispose();
  } finally {
    rt.dispose();
  }
}
