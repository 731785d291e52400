/**
 * `wpc sample`: draws images from a saved generator (label → image) as a PNG grid; also the writer of
 * `wpc train --samples`.
 */
import { parseArgs } from 'node:util';
import { init } from '../node.js';
import { groupDigits } from '../runtime/limits.js';
import type { Model } from '../pc/model.js';
import { initActivitiesWithFfwd } from '../pc/energy.js';
import { loadModel, writeImageGrid } from '../io/node-files.js';
import { checkWorkspaceFits } from '../pc/workspace.js';
import { MAX_GRID_PIXELS, imageGridShape } from '../io/image-grid.js';
import { UsageError, checkOutputFile } from './checks.js';
import { parseNumber, positiveInt, oneOf, parseList } from './args.js';

export const SAMPLE_HELP = `Usage: wpc sample --model FILE --out FILE [options]

Draws images from a generative model saved by 'wpc train --task generative --save FILE' (or saveModel): the
feedforward prediction from each one-hot label, as a PNG grid (JPC's output_preds).

  --model FILE         the checkpoint
  --out FILE           the PNG to write
  --labels LIST        labels to draw, e.g. 0,1,2 (default: every label, 0..inputDim-1)
  --rows N             repeat the labels on N rows                           (default 1)
  --scale S            each pixel becomes S x S                               (default 3)
  --range NAME         mnist: undo the MNIST normalisation (default); per-image: stretch each image
  --debug              print the stack trace of an error
  -h, --help           this help
`;

/** One-hot rows for `labels` (repeated `rows` times). */
function labelRows(labels: readonly number[], classes: number, rows = 1): Float32Array {
  const out = new Float32Array(labels.length * rows * classes);
  for (let r = 0; r < rows; r++) labels.forEach((label, i) => (out[(r * labels.length + i) * classes + label] = 1));
  return out;
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
  const x = labelRows(labels, model.inputDim, rows);
  const acts = await initActivitiesWithFfwd(model, x);
  await writeImageGrid(path, acts.at(-1)!, { columns: labels.length, scale, range });
  for (const a of acts) a.dispose();
}

export async function sample(argv: string[]): Promise<undefined | 'help'> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      out: { type: 'string' },
      labels: { type: 'string' },
      rows: { type: 'string' },
      scale: { type: 'string' },
      range: { type: 'string' },
      debug: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  if (values.model === undefined) throw new UsageError('--model FILE (a checkpoint from wpc train --save) is required');
  if (values.out === undefined) throw new UsageError('--out FILE (the PNG to write) is required');
  const rows = parseNumber('rows', values.rows, 1, positiveInt, 'a positive integer');
  const scale = parseNumber('scale', values.scale, 3, (v) => positiveInt(v) && v <= 16, 'an integer in 1..16');
  const range = oneOf('range', values.range, 'mnist', ['mnist', 'per-image'] as const);
  await checkOutputFile('--out', values.out);
  const rt = await init();
  try {
    const model = await loadModel(rt, values.model);
    const pixels = model.outputDim;
    if (Math.round(Math.sqrt(pixels)) ** 2 !== pixels) {
      throw new UsageError(
        `${values.model} predicts ${pixels} values, not a square image: sample needs a generator (label -> image), e.g. from 'wpc train --task generative'`,
      );
    }
    const labels = parseList(
      'labels',
      values.labels,
      Array.from({ length: model.inputDim }, (_, i) => i),
      (s) => (/^\d+$/.test(s) && Number(s) < model.inputDim ? Number(s) : undefined),
      `labels in 0..${model.inputDim - 1}`,
    );
    // The grid (a host image) and the batch of labels × rows (a workspace on the device), before either is made.
    const images = labels.length * rows;
    const side = Math.round(Math.sqrt(pixels));
    const grid = imageGridShape(images, side, side, { columns: labels.length, scale, padding: 2 });
    if (grid.width * grid.height > MAX_GRID_PIXELS) {
      throw new UsageError(
        `--rows ${rows} and --scale ${scale} make a ${grid.width} × ${grid.height} image, more than ${groupDigits(MAX_GRID_PIXELS)} pixels; lower --rows or --scale`,
      );
    }
    checkWorkspaceFits(`--rows ${rows} (${images} images)`, rt, model.dims, images, 'train', 'supervised', {
      stages: 2,
      gridSteps: 1,
    });
    await writeSamples(model, values.out, labels, rows, scale, range);
    process.stdout.write(`${JSON.stringify({ out: values.out, images: labels.length * rows, labels })}\n`);
    model.dispose();
  } finally {
    rt.dispose();
  }
}
