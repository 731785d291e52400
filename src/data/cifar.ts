/**
 * CIFAR-10's binary format ("CIFAR-10 binary version"), browser-safe: checking a file's bytes and building a
 * `Dataset` from a split's files. Reading them from disk is `./cifar-node.ts`'s job, fetching them
 * `./download.ts`'s.
 *
 * A file is a sequence of 3073-byte records: one label byte (0..9), then a 32×32 colour image as 1024 red, 1024
 * green and 1024 blue bytes, each plane row-major. The official files hold 10000 records each: data_batch_1.bin
 * … data_batch_5.bin the 50000 training images, test_batch.bin the 10000 test images. Examples keep the files'
 * order, record by record, and each image keeps its channel planes (NCHW), so pixel byte k of a record becomes
 * value k of its example.
 */
import { argError, checkFinite, checkKnownKeys, printable } from '../runtime/errors.js';
import { NUM_CLASSES, normalizationTable, type ChannelNormalization, type Dataset } from './dataset.js';
import { IdxError } from './idx.js';

/** Bytes of one record: the label byte and 3 × 32 × 32 pixel bytes. */
export const CIFAR10_RECORD_BYTES = 3073;
/** Records in each official file. */
export const CIFAR10_FILE_RECORDS = 10000;

const CHANNELS = 3;
const SIDE = 32;
const PIXELS = CHANNELS * SIDE * SIDE;

/**
 * The normalisation JPC's experiments use for CIFAR-10 (experiments/datasets.py, class CIFAR10:
 * `transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))` after `ToTensor()`), mapping every channel to [−1, 1].
 */
export const CIFAR10_NORMALIZATION: ChannelNormalization = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };

/** What a record is, for messages about files that are not whole records. */
const RECORD_LAYOUT =
  'a CIFAR-10 binary file is a sequence of 3073-byte records: 1 label byte (0..9), then a 32×32 image as 1024 red, ' +
  '1024 green and 1024 blue bytes';

/** One CIFAR-10 binary file's name (for messages) and bytes. */
export interface CifarFile {
  readonly file: string;
  readonly bytes: Uint8Array;
}

/** Options of `makeCifarDataset`: one number for every channel, or one per channel (red, green, blue). */
export interface ChannelNormalizeOptions {
  /** Subtracted from p/255; default 0.5 for every channel (JPC's). */
  mean?: number | readonly number[] | undefined;
  /** Divides after subtracting the mean; finite and > 0; default 0.5 for every channel (JPC's). */
  std?: number | readonly number[] | undefined;
}

/**
 * Refuses a file of `bytes` bytes that is not a positive whole number of records, naming the file.
 * @throws IdxError
 */
export function checkCifarSize(file: string, bytes: number): number {
  const name = printable(file);
  if (bytes === 0) throw new IdxError(`${name}: is empty (0 bytes); ${RECORD_LAYOUT}`, file);
  const rest = bytes % CIFAR10_RECORD_BYTES;
  if (rest !== 0) {
    const whole = Math.floor(bytes / CIFAR10_RECORD_BYTES);
    throw new IdxError(
      `${name}: is ${bytes} bytes, not a positive multiple of ${CIFAR10_RECORD_BYTES} (${whole} whole record(s) and ` +
        `${rest} byte(s) more: truncated, or not a CIFAR-10 binary file); ${RECORD_LAYOUT}`,
      file,
    );
  }
  return bytes / CIFAR10_RECORD_BYTES;
}

/**
 * Checks a CIFAR-10 binary file as its bytes go past, in chunks of any size: its length (a positive multiple of
 * 3073) and every record's label (0..9). Holds nothing but counters.
 */
export class CifarRecordCheck {
  private seen = 0;
  private bad = 0;
  private firstBad = -1;
  private firstBadLabel = 0;

  /** @param file the file's name, for messages. */
  constructor(readonly file: string) {}

  /** The next bytes of the file. */
  update(chunk: Uint8Array): void {
    const R = CIFAR10_RECORD_BYTES;
    for (let i = (R - (this.seen % R)) % R; i < chunk.length; i += R) {
      const label = chunk[i]!;
      if (label < NUM_CLASSES) continue;
      if (this.firstBad < 0) {
        this.firstBad = (this.seen + i) / R;
        this.firstBadLabel = label;
      }
      this.bad++;
    }
    this.seen += chunk.length;
  }

  /**
   * The number of records, once the whole file went past.
   * @throws IdxError naming the file: its size is not a positive multiple of 3073, or a label is not 0..9 (the
   *   first such record's index, counted from 0, and how many there are).
   */
  finish(): number {
    const records = checkCifarSize(this.file, this.seen);
    if (this.firstBad >= 0) {
      throw new IdxError(
        `${printable(this.file)}: record ${this.firstBad} (at byte ${this.firstBad * CIFAR10_RECORD_BYTES}) has label ` +
          `${this.firstBadLabel}; CIFAR-10's labels are 0..${NUM_CLASSES - 1} (${this.bad} of ${records} records are ` +
          `out of range: not a CIFAR-10 binary file, or a corrupt one)`,
        this.file,
      );
    }
    return records;
  }
}

/**
 * Checks `mean` and `std` (a number for every channel, or one per channel) and fills in the defaults; exported
 * so that loaders can fail before any I/O.
 * @param fn the public function to name in errors.
 * @param options `mean`, `std`; extra keys are rejected.
 * @param defaults used for what `options` leaves out; its length is the number of channels.
 */
export function resolveChannelNormalization(
  fn: string,
  options: ChannelNormalizeOptions,
  defaults: ChannelNormalization,
): ChannelNormalization {
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object', options);
  checkKnownKeys(fn, 'options', options, ['mean', 'std']);
  const channels = defaults.mean.length;
  const each = (key: 'mean' | 'std', open: boolean): number[] => {
    const value = options[key] ?? defaults[key];
    const bound = open ? { min: 0, open: true } : {};
    if (typeof value === 'number')
      return new Array<number>(channels).fill(checkFinite(fn, `options.${key}`, value, bound));
    if (!Array.isArray(value) || value.length !== channels)
      argError(fn, `options.${key}`, `a number or an array of ${channels} numbers (one per channel)`, value);
    return value.map((v: unknown, c) => checkFinite(fn, `options.${key}[${c}]`, v, bound));
  };
  return { mean: each('mean', false), std: each('std', true) };
}

/** The scalar `Dataset.normalization`: the channels' common one, or NaNs when they differ. */
function commonNormalization({ mean, std }: ChannelNormalization): { mean: number; std: number } {
  const same = mean.every((m) => m === mean[0]) && std.every((s) => s === std[0]);
  return same ? { mean: mean[0]!, std: std[0]! } : { mean: Number.NaN, std: Number.NaN };
}

/**
 * Builds a dataset from CIFAR-10 binary files, e.g. a split's (`data_batch_1.bin` … `data_batch_5.bin`, or
 * `test_batch.bin`): their records in order, each image `[3, 32, 32]` in the files' channel-plane order, each
 * channel c normalised as x = (p/255 − mean[c])/std[c] with float32 rounding at each step, as torchvision's
 * `ToTensor()` then `Normalize(mean, std)` compute it.
 * @param name label for messages and the dataset, e.g. `"cifar10-train"`.
 * @param files each `{ file, bytes }`: its name for messages and its whole contents; at least one.
 * @param options `mean`, `std`: a number for every channel or three; default 0.5 each (JPC's normalisation).
 * @throws IdxError naming the file when a size is not a positive multiple of 3073 or a label is not 0..9.
 */
export function makeCifarDataset(
  name: string,
  files: readonly CifarFile[],
  options: ChannelNormalizeOptions = {},
): Dataset {
  const fn = 'makeCifarDataset';
  if (typeof name !== 'string' || name === '') argError(fn, 'name', 'a non-empty string', name);
  if (!Array.isArray(files) || files.length === 0) argError(fn, 'files', 'a non-empty array of { file, bytes }', files);
  files.forEach((f: unknown, i) => {
    const v = f as Partial<CifarFile> | null;
    if (typeof v !== 'object' || v === null || typeof v.file !== 'string' || !(v.bytes instanceof Uint8Array))
      argError(fn, `files[${i}]`, '{ file: string, bytes: Uint8Array }', f);
  });
  const norm = resolveChannelNormalization(fn, options, CIFAR10_NORMALIZATION);
  const counts = files.map(({ file, bytes }) => {
    const check = new CifarRecordCheck(file);
    check.update(bytes);
    return check.finish();
  });
  const count = counts.reduce((a, b) => a + b, 0);
  let images: Float32Array;
  try {
    images = new Float32Array(count * PIXELS);
  } catch {
    throw new IdxError(
      `${fn}: ${count} images need ${4 * count * PIXELS} bytes as float32, more than this platform could allocate`,
      files[0]!.file,
    );
  }
  const labels = new Uint8Array(count);
  const tables = norm.mean.map((m, c) => normalizationTable(m, norm.std[c]!));
  const plane = SIDE * SIDE;
  let example = 0;
  for (const { bytes } of files) {
    for (let at = 0; at < bytes.length; at += CIFAR10_RECORD_BYTES, example++) {
      labels[example] = bytes[at]!;
      const out = example * PIXELS;
      for (let c = 0; c < CHANNELS; c++) {
        const lut = tables[c]!;
        const from = at + 1 + c * plane;
        const to = out + c * plane;
        for (let p = 0; p < plane; p++) images[to + p] = lut[bytes[from + p]!]!;
      }
    }
  }
  return {
    name,
    images,
    labels,
    count,
    inputDim: PIXELS,
    imageShape: [SIDE, SIDE],
    shape: [CHANNELS, SIDE, SIDE],
    numClasses: NUM_CLASSES,
    normalization: commonNormalization(norm),
    channelNormalization: norm,
  };
}
