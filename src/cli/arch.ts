/**
 * `wpc train --arch SPEC`: a network as a list of layers, written compactly or read from a JSON file, turned into
 * makeModel's layer list (pc/layer-defs.ts). One table describes every layer type the string form knows: its
 * name, its values (positional, also accepted as key=value) and its options; it parses, prints the canonical form
 * and writes the help. A layer type is one entry. Semantic checks (a kernel that does not fit, an output of the
 * wrong size) are makeModel's and train.ts's; their messages point back to the token or the file's entry.
 *
 *   conv(32,3,pad=1) avgpool(2) conv(64,3,pad=1) avgpool(2) flatten dense(128) dense(10)
 */
import { ACTIVATIONS } from '../kernels/activations.js';
import type { LayerDef } from '../pc/layer-defs.js';
import { FileAccessError, openRegularFile } from '../util/regular-file.js';
import { jsonSyntaxProblem } from '../io/json-values.js';
import { UsageError } from './checks.js';

/** How one value is written and read: `read` gives the value, or undefined for text it does not accept. */
interface ValueKind {
  readonly what: string;
  readonly read: (text: string) => number | boolean | string | readonly number[] | undefined;
}

/** Sizes up to 9 digits: beyond any layer makeModel accepts, short of float64's exact integers. */
const NATURAL = '[1-9]\\d{0,8}';

const POSITIVE: ValueKind = {
  what: 'a positive integer',
  read: (t) => (new RegExp(`^${NATURAL}$`).test(t) ? Number(t) : undefined),
};

const NON_NEGATIVE: ValueKind = {
  what: 'an integer >= 0',
  read: (t) => (new RegExp(`^(0|${NATURAL})$`).test(t) ? Number(t) : undefined),
};

/**
 * Sizes joined by 'x' (3, 3x5, 8x7x7), of one of the `counts` lengths; one size reads as a number unless `list`
 * (a shape such as reshape's, always a list).
 */
function sizes(what: string, counts: readonly number[], list = false): ValueKind {
  return {
    what,
    read: (t) => {
      const parts = t.split('x');
      if (!counts.includes(parts.length) || !parts.every((p) => new RegExp(`^${NATURAL}$`).test(p))) return undefined;
      return parts.length === 1 && !list ? Number(parts[0]) : parts.map(Number);
    },
  };
}

const KERNEL = sizes('a side K or KHxKW (3, 3x5)', [1, 2]);

const BOOLEAN: ValueKind = {
  what: 'true or false',
  read: (t) => (t === 'true' ? true : t === 'false' ? false : undefined),
};

const ACT: ValueKind = {
  what: `linear or one of ${ACTIVATIONS.join(', ')}`,
  read: (t) => (t === 'linear' || (ACTIVATIONS as readonly string[]).includes(t) ? t : undefined),
};

/** A value of a layer: written `key` (or by position), stored in the layer's `field`. */
interface Param {
  readonly key: string;
  readonly field: string;
  readonly kind: ValueKind;
}

const param = (key: string, kind: ValueKind, field = key): Param => ({ key, field, kind });
const BIAS = param('bias', BOOLEAN, 'useBias');
const ACT_OPTION = param('act', ACT);

/** One layer type of the string form. */
interface LayerSyntax {
  /** How SPEC writes it (lower case; the type's own name in any case is accepted too). */
  readonly name: string;
  readonly type: LayerDef['type'];
  /** Required values, by position or as key=value. */
  readonly args: readonly Param[];
  /** Optional key=value settings. */
  readonly options: readonly Param[];
  /** A reshape only: no activity of its own, so no PC layer (not counted in the depth). */
  readonly reshape?: true;
  readonly help: string;
}

const LAYERS: readonly LayerSyntax[] = [
  {
    name: 'conv',
    type: 'conv',
    args: [param('channels', POSITIVE), param('kernel', KERNEL)],
    options: [param('stride', POSITIVE), param('pad', NON_NEGATIVE, 'padding'), BIAS, ACT_OPTION],
    help: 'convolution (Equinox Conv2d), pad zeros on each side',
  },
  {
    name: 'residual',
    type: 'residual',
    args: [param('kernel', POSITIVE)],
    options: [BIAS, ACT_OPTION],
    help: "JPC's residual block: act -> conv (odd kernel) + skip",
  },
  {
    name: 'avgpool',
    type: 'avgPool',
    args: [param('kernel', KERNEL)],
    options: [param('stride', POSITIVE), ACT_OPTION],
    help: 'average pooling (a PC layer); stride default kernel',
  },
  {
    name: 'flatten',
    type: 'flatten',
    args: [],
    options: [],
    reshape: true,
    help: '[C, H, W] -> [C*H*W] (dense ravels by itself too)',
  },
  {
    name: 'dense',
    type: 'dense',
    args: [param('units', POSITIVE)],
    options: [BIAS, ACT_OPTION],
    help: 'a fully connected layer',
  },
];

const BY_NAME = new Map(LAYERS.flatMap((l) => [[l.name, l] as const, [l.type.toLowerCase(), l] as const]));
const BY_TYPE = new Map(LAYERS.map((l) => [l.type as string, l]));

/** A network given by --arch: its layers, and where each came from (for messages). */
export interface ArchSpec {
  readonly layers: readonly LayerDef[];
  /** Each layer as messages name it: `layer 2 "avgpool(2)" (character 18)` or `layers[1] of net.json`. */
  readonly labels: readonly string[];
  /** What was given: the string, or the file's path. */
  readonly source: string;
  /** Whether `source` is the string form (whose keys may differ from the layer objects' fields: pad, bias). */
  readonly written: boolean;
  /** From a JSON file: its actFn, useBias and inputShape where it gives them. */
  readonly actFn?: string;
  readonly useBias?: boolean;
  readonly inputShape?: readonly number[];
}

/** A layer type's help line: `conv(channels, kernel, stride=, pad=, bias=, act=)  what it is`. */
function helpLine(l: LayerSyntax): string {
  const args = [...l.args.map((p) => p.key), ...l.options.map((p) => `${p.key}=`)];
  const call = args.length > 0 ? `${l.name}(${args.join(', ')})` : l.name;
  return `    ${call.padEnd(52)}${l.help}`;
}

/** The --arch section of `wpc train --help`. */
export const ARCH_HELP = `Architectures (--arch)
  SPEC lists the layers from the input on, separated by spaces: NAME or NAME(values), values by position first,
  then key=value options; a kernel is K or KHxKW. Each layer's input goes through --act except the first layer's
  (act=linear turns it off for a layer); bias=true|false overrides --bias. The input is the dataset's image
  ([1, 28, 28] for MNIST and Fashion-MNIST; the labels [10] for --task generative), and the last layer must give
  10 values (discriminative) or the image (generative): checked before training.
${LAYERS.map(helpLine).join('\n')}
  A SPEC ending in .json names a file with a list of makeModel's layer objects ([{"type": "conv", "channels": 8,
  "kernel": 3, "padding": 1}, ...]) or an object {"layers": [...], "actFn": ..., "useBias": ...} such as a
  saved model's "definition" (its actFn and useBias must agree with --act and --bias where both are given).`;

/** The number of PC layers (activities past the input) of `layers`: every entry but the reshapes. */
export function archDepth(layers: readonly LayerDef[]): number {
  return layers.filter((l) => BY_TYPE.get(l.type)?.reshape !== true).length;
}

/** `layers` in the string form (the canonical spelling: values by position, options in the table's order). */
export function formatArch(layers: readonly LayerDef[]): string {
  const text = (v: unknown) => (Array.isArray(v) ? v.join('x') : String(v));
  return layers
    .map((def) => {
      const syntax = BY_TYPE.get(def.type);
      if (!syntax) return def.type;
      const d = def as unknown as Record<string, unknown>;
      const values = [
        ...syntax.args.map((p) => text(d[p.field])),
        ...syntax.options.filter((p) => d[p.field] !== undefined).map((p) => `${p.key}=${text(d[p.field])}`),
      ];
      return values.length > 0 ? `${syntax.name}(${values.join(',')})` : syntax.name;
    })
    .join(' ');
}

/** A layer of the string as written, and where: the text of its token and its first character (1-based). */
interface Token {
  readonly text: string;
  readonly at: number;
}

/** Splits SPEC into layer tokens: NAME or NAME(...), separated by white space. */
function tokens(spec: string): Token[] {
  const out: Token[] = [];
  // A file name without the .json that marks one reads as a layer string: say so where it fails.
  const hint = /^[^(]*[./\\]/.test(spec) ? ' (the path of an architecture file ends in .json)' : '';
  let i = 0;
  while (i < spec.length) {
    if (/\s/.test(spec[i]!)) {
      i++;
      continue;
    }
    const start = i;
    while (i < spec.length && /[A-Za-z0-9_]/.test(spec[i]!)) i++;
    if (i === start)
      throw new UsageError(
        `--arch: expected a layer name at character ${start + 1}, got ${JSON.stringify(spec[start])}${hint}`,
      );
    if (spec[i] === '(') {
      const close = spec.indexOf(')', i);
      const open = spec.indexOf('(', i + 1);
      if (close < 0 || (open >= 0 && open < close))
        throw new UsageError(
          `--arch: ${JSON.stringify(spec.slice(start, close < 0 ? undefined : close + 1))} at character ${start + 1}: ${close < 0 ? 'its "(" is not closed by ")"' : `a "(" inside its values (character ${open + 1})`}`,
        );
      i = close + 1;
    }
    if (i < spec.length && !/\s/.test(spec[i]!))
      throw new UsageError(
        `--arch: ${JSON.stringify(spec.slice(start, i + 1))} at character ${start + 1}: layers are separated by spaces, got ${JSON.stringify(spec[i])} after ${JSON.stringify(spec.slice(start, i))}${hint}`,
      );
    out.push({ text: spec.slice(start, i), at: start + 1 });
  }
  return out;
}

/** One token as a layer, or a UsageError naming it. */
function layerOf(token: Token, label: string): LayerDef {
  const fail = (problem: string): never => {
    throw new UsageError(`--arch: ${label}: ${problem}`);
  };
  const paren = token.text.indexOf('(');
  const name = paren < 0 ? token.text : token.text.slice(0, paren);
  const syntax = BY_NAME.get(name.toLowerCase());
  if (!syntax)
    return fail(`unknown layer ${JSON.stringify(name)}; the layers are ${LAYERS.map((l) => l.name).join(', ')}`);
  const usage = `${syntax.name}(${[...syntax.args.map((p) => p.key), ...syntax.options.map((p) => `${p.key}=…`)].join(', ')})`;
  const inner = paren < 0 ? '' : token.text.slice(paren + 1, -1).trim();
  const parts = inner === '' ? [] : inner.split(',').map((s) => s.trim());
  const def: Record<string, unknown> = { type: syntax.type };
  const given = new Set<string>();
  let named = false;
  parts.forEach((part, i) => {
    if (part === '') fail(`value ${i + 1} is empty (write ${usage})`);
    const eq = part.indexOf('=');
    let p: Param | undefined;
    let text: string;
    if (eq < 0) {
      if (named) fail(`the value ${JSON.stringify(part)} comes after a key=value; values by position come first`);
      p = syntax.args[i];
      if (!p)
        fail(
          `${syntax.name} takes ${syntax.args.length === 0 ? 'no values' : `${syntax.args.length} value${syntax.args.length > 1 ? 's' : ''} by position (${syntax.args.map((a) => a.key).join(', ')})`}, got ${JSON.stringify(part)} as value ${i + 1}; write ${usage}`,
        );
      text = part;
    } else {
      named = true;
      const key = part.slice(0, eq).trim();
      p = [...syntax.args, ...syntax.options].find((q) => q.key === key);
      if (!p)
        fail(
          `${syntax.name} has no ${JSON.stringify(key)}; it takes ${[...syntax.args, ...syntax.options].map((q) => q.key).join(', ') || 'nothing'}`,
        );
      text = part.slice(eq + 1).trim();
    }
    if (given.has(p!.key)) fail(`${p!.key} is given twice`);
    given.add(p!.key);
    const value = p!.kind.read(text);
    if (value === undefined) fail(`${p!.key} must be ${p!.kind.what}, got ${JSON.stringify(text)}`);
    def[p!.field] = value;
  });
  const missing = syntax.args.filter((p) => !given.has(p.key));
  if (missing.length > 0) fail(`${syntax.name} needs ${missing.map((p) => p.key).join(' and ')} (write ${usage})`);
  return def as unknown as LayerDef;
}

/** Parses the string form of --arch; a UsageError names the token and its position. */
export function parseArch(spec: string): ArchSpec {
  const list = tokens(spec);
  if (list.length === 0)
    throw new UsageError('--arch: no layers given (e.g. --arch "conv(8,3,pad=1) avgpool(2) dense(10)")');
  const labels = list.map((t, i) => `layer ${i + 1} ${JSON.stringify(t.text)} (character ${t.at})`);
  return { layers: list.map((t, i) => layerOf(t, labels[i]!)), labels, source: spec, written: true };
}

/** Largest --arch JSON file read: a definition of a few hundred layers is a few kilobytes. */
const MAX_ARCH_FILE_BYTES = 1 << 20;

/**
 * The --arch JSON file `path`: a list of layers (makeModel's objects, e.g. {"type": "conv", "channels": 8,
 * "kernel": 3}) or an object { layers, actFn?, useBias?, inputShape? } such as a model's `definition`. Each
 * entry's type is checked here, the rest by makeModel when the model is made.
 */
export async function readArchFile(path: string): Promise<ArchSpec> {
  const fail = (problem: string): never => {
    throw new UsageError(`--arch ${path}: ${problem}`);
  };
  let text = '';
  try {
    const { handle, size } = await openRegularFile(path);
    try {
      if (size > MAX_ARCH_FILE_BYTES) fail(`${size} bytes is more than an architecture file may hold (1 MiB)`);
      text = await handle.readFile('utf8');
    } finally {
      await handle.close().catch(() => undefined);
    }
  } catch (e) {
    if (!(e instanceof FileAccessError)) throw e;
    fail(e.reason === 'missing' ? 'does not exist' : e.reason === 'not-regular' ? `is ${e.detail}` : e.detail);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`not JSON (${jsonSyntaxProblem(e)})`);
  }
  const top = Array.isArray(json) ? { layers: json } : json;
  if (typeof top !== 'object' || top === null)
    return fail('must hold a list of layers or an object { layers, actFn?, useBias?, inputShape? }');
  const o = top as Record<string, unknown>;
  const unknown = Object.keys(o).find((k) => !['layers', 'actFn', 'useBias', 'inputShape'].includes(k));
  if (unknown !== undefined)
    fail(`${JSON.stringify(unknown)} is not a field (known: layers, actFn, useBias, inputShape)`);
  if (!Array.isArray(o.layers) || o.layers.length === 0) return fail('layers must be a non-empty list of layers');
  const layers = o.layers as unknown[];
  layers.forEach((l, i) => {
    const type = (l as { type?: unknown } | null)?.type;
    if (typeof l !== 'object' || l === null || Array.isArray(l) || typeof type !== 'string' || !BY_TYPE.has(type))
      fail(`layers[${i}] must be a layer object whose type is one of ${LAYERS.map((s) => s.type).join(', ')}`);
  });
  if (o.actFn !== undefined && (typeof o.actFn !== 'string' || !(ACTIVATIONS as readonly string[]).includes(o.actFn)))
    fail(`actFn must be one of ${ACTIVATIONS.join(', ')}, got ${JSON.stringify(o.actFn)}`);
  if (o.useBias !== undefined && typeof o.useBias !== 'boolean') fail(`useBias must be true or false`);
  if (
    o.inputShape !== undefined &&
    (!Array.isArray(o.inputShape) || o.inputShape.some((d) => !Number.isSafeInteger(d)))
  )
    fail('inputShape must be a list of integers such as [1, 28, 28]');
  return {
    layers: layers as LayerDef[],
    labels: layers.map((_, i) => `layers[${i}] of ${path}`),
    source: path,
    written: false,
    ...(o.actFn === undefined ? {} : { actFn: o.actFn as string }),
    ...(o.useBias === undefined ? {} : { useBias: o.useBias as boolean }),
    ...(o.inputShape === undefined ? {} : { inputShape: o.inputShape as number[] }),
  };
}

/**
 * A message of makeModel about `arch`'s layers, in --arch's words: "makeModel: options.layers[2].padding …"
 * becomes "layer 3 "conv(8,9,pad=9)" (character 12): pad …" (the field as the string form names it).
 */
export function archMessage(message: string, arch: ArchSpec): string {
  return message
    .replace(/^makeModel: /, '')
    .replace(/options\.layers\[(\d+)\](?:\.(\w+))?/g, (whole, i: string, field: string | undefined) => {
      const label = arch.labels[Number(i)];
      if (label === undefined) return whole;
      if (field === undefined) return label;
      const syntax = BY_TYPE.get(arch.layers[Number(i)]!.type);
      const key = arch.written
        ? [...(syntax?.args ?? []), ...(syntax?.options ?? [])].find((p) => p.field === field)?.key
        : undefined;
      return `${label}: ${key ?? field}`;
    })
    .replace(/options\.layers/g, 'the network')
    .replace(/options\.actFn/g, '--act');
}
