// `wpc train --arch`: the layer string (what it builds, its canonical spelling, the token and position each mistake
// names), the JSON file form, and makeModel's messages told in the string's words. No device needed.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archDepth, archMessage, formatArch, parseArch, readArchFile } from '../../src/cli/arch.js';
import { UsageError } from '../../src/cli/checks.js';
import { avgPool, conv, dense, flatten, residual } from '../../src/pc/layer-defs.js';

/** The message of the UsageError `f` throws. */
async function usage(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error('expected a UsageError');
}

describe('the --arch string', () => {
  it('builds the layers of each type, values by position or by name, and prints them back canonically', () => {
    const spec = 'conv(32,3,pad=1) avgpool(2) conv(64,3,pad=1) avgpool(2) flatten dense(128) dense(10)';
    const arch = parseArch(spec);
    expect(arch.layers).toEqual([
      conv(32, 3, { padding: 1 }),
      avgPool(2),
      conv(64, 3, { padding: 1 }),
      avgPool(2),
      flatten(),
      dense(128),
      dense(10),
    ]);
    expect(formatArch(arch.layers)).toBe(spec);
    expect(archDepth(arch.layers)).toBe(6); // flatten is no PC layer
    expect(arch.labels[4]).toBe('layer 5 "flatten" (character 57)');

    const loose = parseArch(
      '  CONV( 8 , 3x5 , stride=2 , bias=true , act=linear )\tAvgPool(2, stride=1)\n residual(3, bias=false) dense(units=10)',
    );
    expect(loose.layers).toEqual([
      conv(8, [3, 5], { stride: 2, useBias: true, act: 'linear' }),
      avgPool(2, { stride: 1 }),
      residual(3, { useBias: false }),
      dense(10),
    ]);
    expect(loose.labels.map((l) => l.replace(/^layer \d+ ".*" /, ''))).toEqual([
      '(character 3)',
      '(character 55)',
      '(character 77)',
      '(character 101)',
    ]);
    expect(formatArch(loose.layers)).toBe(
      'conv(8,3x5,stride=2,bias=true,act=linear) avgpool(2,stride=1) residual(3,bias=false) dense(10)',
    );
    expect(parseArch(formatArch(loose.layers)).layers).toEqual(loose.layers);
    expect(parseArch('conv(kernel=3, channels=4, act=relu) dense(10, act=tanh)').layers).toEqual([
      conv(4, 3, { act: 'relu' }),
      dense(10, { act: 'tanh' }),
    ]);
  });

  it('reads a decoder: reshape, transposed convolutions and max pooling', () => {
    const arch = parseArch(
      'dense(98) reshape(2x7x7) convt(4,4,stride=2,pad=1,outpad=0) maxpool(2,stride=1) convt(1,3,pad=1)',
    );
    expect(arch.layers).toEqual([
      { type: 'dense', units: 98 },
      { type: 'reshape', shape: [2, 7, 7] },
      { type: 'convTranspose', channels: 4, kernel: 4, stride: 2, padding: 1, outputPadding: 0 },
      { type: 'maxPool', kernel: 2, stride: 1 },
      { type: 'convTranspose', channels: 1, kernel: 3, padding: 1 },
    ]);
    expect(archDepth(arch.layers)).toBe(4);
    expect(parseArch('dense(10) reshape(10)').layers[1]).toEqual({ type: 'reshape', shape: [10] });
    expect(parseArch(formatArch(arch.layers)).layers).toEqual(arch.layers);
  });

  it('names the token, its position and what is wrong', async () => {
    const cases: [string, string][] = [
      ['', '--arch: no layers given (e.g. --arch "conv(8,3,pad=1) avgpool(2) dense(10)")'],
      [
        'dense(10) pool(3)',
        '--arch: layer 2 "pool(3)" (character 11): unknown layer "pool"; the layers are conv, residual, avgpool, convt, maxpool, reshape, flatten, dense',
      ],
      [
        'conv(8,3)dense(10)',
        '--arch: "conv(8,3)d" at character 1: layers are separated by spaces, got "d" after "conv(8,3)"',
      ],
      ['dense(10) conv(8,3', '--arch: "conv(8,3" at character 11: its "(" is not closed by ")"'],
      ['conv(8,(3))', '--arch: "conv(8,(3)" at character 1: a "(" inside its values (character 8)'],
      [',dense(10)', '--arch: expected a layer name at character 1, got ","'],
      [
        'nets/cnn.txt',
        '--arch: "nets/" at character 1: layers are separated by spaces, got "/" after "nets" (the path of an architecture file ends in .json)',
      ],
      [
        'dense(10,,)',
        '--arch: layer 1 "dense(10,,)" (character 1): value 2 is empty (write dense(units, bias=…, act=…))',
      ],
      ['dense()', '--arch: layer 1 "dense()" (character 1): dense needs units (write dense(units, bias=…, act=…))'],
      [
        'conv(4)',
        '--arch: layer 1 "conv(4)" (character 1): conv needs kernel (write conv(channels, kernel, stride=…, pad=…, bias=…, act=…))',
      ],
      [
        'flatten(1)',
        '--arch: layer 1 "flatten(1)" (character 1): flatten takes no values, got "1" as value 1; write flatten()',
      ],
      [
        'dense(10,3)',
        '--arch: layer 1 "dense(10,3)" (character 1): dense takes 1 value by position (units), got "3" as value 2; write dense(units, bias=…, act=…)',
      ],
      [
        'conv(4,3,padding=1)',
        '--arch: layer 1 "conv(4,3,padding=1)" (character 1): conv has no "padding"; it takes channels, kernel, stride, pad, bias, act',
      ],
      [
        'dense(10,bias=yes)',
        '--arch: layer 1 "dense(10,bias=yes)" (character 1): bias must be true or false, got "yes"',
      ],
      [
        'dense(10,bias=true,bias=false)',
        '--arch: layer 1 "dense(10,bias=true,bias=false)" (character 1): bias is given twice',
      ],
      [
        'dense(units=10,3)',
        '--arch: layer 1 "dense(units=10,3)" (character 1): the value "3" comes after a key=value; values by position come first',
      ],
      [
        'conv(8,3x3x3)',
        '--arch: layer 1 "conv(8,3x3x3)" (character 1): kernel must be a side K or KHxKW (3, 3x5), got "3x3x3"',
      ],
      ['dense(0)', '--arch: layer 1 "dense(0)" (character 1): units must be a positive integer, got "0"'],
      ['dense(1e3)', '--arch: layer 1 "dense(1e3)" (character 1): units must be a positive integer, got "1e3"'],
      ['conv(8,3,pad=-1)', '--arch: layer 1 "conv(8,3,pad=-1)" (character 1): pad must be an integer >= 0, got "-1"'],
      [
        'dense(10,act=swish)',
        '--arch: layer 1 "dense(10,act=swish)" (character 1): act must be linear or one of linear, tanh, hard_tanh, relu, leaky_relu, gelu, selu, silu, got "swish"',
      ],
    ];
    for (const [spec, message] of cases) expect(await usage(() => parseArch(spec)), spec).toBe(message);
  });

  it("tells makeModel's messages in the string's words: the token, and the key as written", () => {
    const arch = parseArch('conv(4,3) conv(4,3,pad=9) avgpool(2) dense(10)');
    expect(archMessage('makeModel: options.layers[1].padding must be an integer in [0, 16], got 9', arch)).toBe(
      'layer 2 "conv(4,3,pad=9)" (character 11): pad must be an integer in [0, 16], got 9',
    );
    expect(archMessage('makeModel: options.layers[2]: a 2×2 window does not fit a 1×1 input', arch)).toBe(
      'layer 3 "avgpool(2)" (character 27): a 2×2 window does not fit a 1×1 input',
    );
    expect(archMessage('makeModel: options.layers is too large: it needs 1 GiB', arch)).toBe(
      'the network is too large: it needs 1 GiB',
    );
  });
});

describe('the --arch JSON file', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wpc-arch-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const file = async (name: string, text: string) => {
    await writeFile(join(dir, name), text);
    return join(dir, name);
  };

  it("reads a list of layers, or an object such as a model's definition", async () => {
    const layers = [conv(4, 3, { padding: 1 }), avgPool(2), dense(10, { useBias: true })];
    const list = await readArchFile(await file('list.json', JSON.stringify(layers)));
    expect(list).toMatchObject({ layers, written: false });
    expect(list.labels[1]).toBe(`layers[1] of ${join(dir, 'list.json')}`);
    const definition = { inputShape: [1, 28, 28], layers, actFn: 'relu', useBias: false };
    const object = await readArchFile(await file('def.json', JSON.stringify(definition)));
    expect(object).toMatchObject({ layers, actFn: 'relu', useBias: false, inputShape: [1, 28, 28] });
    // makeModel's messages name the file's entry and its own field.
    expect(archMessage('makeModel: options.layers[0].padding must be …', list)).toBe(
      `layers[0] of ${join(dir, 'list.json')}: padding must be …`,
    );
  });

  it('refuses what is not an architecture, naming the file', async () => {
    const cases: [string, string, string][] = [
      ['syntax.json', '[{"type": "conv",', 'not JSON (a syntax error at character 17)'],
      ['number.json', '7', 'must hold a list of layers or an object { layers, actFn?, useBias?, inputShape? }'],
      ['empty.json', '[]', 'layers must be a non-empty list of layers'],
      [
        'extra.json',
        '{"layers": [{"type": "dense", "units": 10}], "seed": 1}',
        '"seed" is not a field (known: layers, actFn, useBias, inputShape)',
      ],
      [
        'type.json',
        '[{"type": "dense", "units": 10}, {"type": "maxout"}]',
        'layers[1] must be a layer object whose type is one of conv, residual, avgPool, convTranspose, maxPool, reshape, flatten, dense',
      ],
      [
        'act.json',
        '{"layers": [{"type": "dense", "units": 10}], "actFn": "swish"}',
        'actFn must be one of linear, tanh, hard_tanh, relu, leaky_relu, gelu, selu, silu, got "swish"',
      ],
    ];
    for (const [name, text, problem] of cases) {
      const path = await file(name, text);
      expect(await usage(() => readArchFile(path)), name).toBe(`--arch ${path}: ${problem}`);
    }
    expect(await usage(() => readArchFile(join(dir, 'none.json')))).toBe(
      `--arch ${join(dir, 'none.json')}: does not exist`,
    );
    await mkdir(join(dir, 'folder.json'));
    expect(await usage(() => readArchFile(join(dir, 'folder.json')))).toBe(
      `--arch ${join(dir, 'folder.json')}: is a directory`,
    );
  });
});
