/**
 * Checkpoints of models made from a list of layers (makeModel: convolutions, residual blocks, pooling, dense
 * layers): bit-exact round trips through both formats, training that goes on identically after a restore, and
 * refusals of damaged definitions, parameters and tensor shapes that leave nothing allocated.
 */
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  adam,
  avgPool,
  conv,
  dense,
  flatten,
  loadCheckpoint,
  loadModel,
  makeModel,
  makePcStep,
  modelFromCheckpoint,
  modelToCheckpoint,
  residual,
  saveCheckpoint,
  saveModel,
  type Model,
} from '../../src/node.js';
import { checkpointText, modelFromCheckpointFile } from '../../src/io/checkpoint.js';
import { crc32c, crc32cHex } from '../../src/io/crc32c.js';
import { canonicalJson } from '../../src/io/json-values.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { restoreTrainingCheckpoint, trainingCheckpoint } from '../../src/io/training-checkpoint.js';
import { allocated as allocatedOn, bits, randomBatch, refusal, useRuntime } from '../support/helpers.js';

const rt = useRuntime();
const dir = mkdtempSync(join(tmpdir(), 'wpc-io-layers-'));
const allocated = () => allocatedOn(rt());

/** conv → residual → avgPool → flatten → dense on 2×6×6 inputs: every kind with parameters and one without. */
function cnn(seed: number, useBias: boolean): Model {
  return makeModel(rt(), {
    seed,
    inputShape: [2, 6, 6],
    actFn: 'relu',
    useBias,
    // The first convolution keeps its own bias setting whatever the default, the residual block follows it.
    layers: [conv(3, 3, { padding: 1, useBias: !useBias }), residual(3), avgPool(2), flatten(), dense(4)],
  });
}

async function paramBits(model: Model): Promise<number[][]> {
  const { weights, biases } = await model.toArrays();
  return [...weights, ...biases.filter((b) => b !== null)].map(bits);
}

/** The checksum `modelToCheckpoint` stores for this content (a test may change a field and re-seal it). */
function seal(c: Record<string, unknown>): Record<string, unknown> {
  const { crc32c: _, ...content } = c;
  return { ...c, crc32c: crc32cHex(crc32c(new TextEncoder().encode(canonicalJson(content)))) };
}

describe('JSON checkpoints of layer lists', () => {
  it.each([false, true])('round trip with useBias %s: the definition and every parameter bit', async (useBias) => {
    const model = cnn(7, useBias);
    const checkpoint = await modelToCheckpoint(model, { note: 'cnn' });
    expect(Object.keys(checkpoint)).toEqual(['format', 'version', 'crc32c', 'definition', 'params', 'meta']);
    expect(checkpoint.version).toBe(2);
    expect(checkpoint.definition).toEqual(JSON.parse(JSON.stringify(model.definition)));
    const copy = modelFromCheckpoint(rt(), JSON.parse(JSON.stringify(checkpoint)));
    expect(copy.definition).toEqual(model.definition);
    expect(copy.shapes).toEqual(model.shapes);
    expect(copy.layers).toEqual(model.layers);
    expect(await paramBits(copy)).toEqual(await paramBits(model));
    const file = join(dir, `cnn-${useBias}.json`);
    await saveModel(model, file, { note: 'cnn' });
    const loaded = await loadModel(rt(), file);
    expect(await paramBits(loaded)).toEqual(await paramBits(model));
    // Saved again, the loaded model gives the same file, byte for byte.
    expect(checkpointText(await modelToCheckpoint(loaded, { note: 'cnn' }))).toBe(await readFile(file, 'utf8'));
    for (const m of [model, copy, loaded]) m.dispose();
  });

  it('refuses damaged definitions and parameters with the field at fault, allocating nothing', async () => {
    const model = cnn(8, true);
    const good = (await modelToCheckpoint(model)) as unknown as Record<string, unknown>;
    const definition = good.definition as { layers: Record<string, unknown>[] };
    const layers = (change: (l: Record<string, unknown>[]) => void) => {
      const copy = structuredClone(definition);
      change(copy.layers);
      return seal({ ...good, definition: copy });
    };
    const before = allocated();
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...good, definition: { ...definition, useBias: false } }, /^modelFromCheckpoint: corrupt: checkpoint\.crc32c/],
      [seal({ ...good, definition: [1] }), /checkpoint\.definition must be a plain JSON object, got an array/],
      [
        layers((l) => (l[0]!.kernel = 0)),
        /^modelFromCheckpoint: checkpoint\.definition\.layers\[0\]\.kernel must be an integer in \[1, \d+\], got 0/,
      ],
      [layers((l) => (l[2]!.type = 'maxPooling')), /checkpoint\.definition\.layers\[2\] must be a layer/],
      [layers((l) => (l[4]!.units = 5)), /checkpoint\.definition holds \d+ parameters, but its layers have \d+/],
      [layers((l) => (l[1]!.size = 3)), /unknown option "size" in checkpoint\.definition\.layers\[1\]/],
      [layers((l) => l.splice(2, 1)), /checkpoint\.definition holds \d+ parameters, but its layers have \d+/],
      [seal({ ...good, definition: { ...definition, actFn: 'swish' } }), /checkpoint\.definition\.actFn must be one/],
      [seal({ ...good, dims: [72, 10] }), /checkpoint\.dims is not a field of checkpoint/],
      [seal({ ...good, params: 'AAAA' }), /checkpoint\.params must be the base64 of float32 values.*got 3 bytes/],
      [seal({ ...good, params: 'AAAAAA==' }), /checkpoint\.definition holds 1 parameters, but its layers have/],
      [seal({ ...good, params: 'AADAfw==' }), /the parameters must be finite, got NaN at index 0/],
      [seal({ ...good, params: 7 }), /checkpoint\.params must be base64 text, got 7/],
    ];
    for (const [checkpoint, message] of cases)
      expect(refusal(() => modelFromCheckpoint(rt(), checkpoint), message.source)).toMatch(message);
    // Version 1 (no checksum) never had definitions.
    const { crc32c: _, ...unsealed } = good;
    expect(refusal(() => modelFromCheckpoint(rt(), { ...unsealed, version: 1 }, { allowUnverified: true }))).toMatch(
      /checkpoint\.definition is not a field of checkpoint/,
    );
    expect(allocated()).toEqual(before);
    // Through a file's contents, the messages name the file.
    const text = checkpointText(layers((l) => (l[0]!.stride = 0)) as never);
    expect(refusal(() => modelFromCheckpointFile(rt(), text, 'f.json'))).toMatch(
      /^f\.json: checkpoint\.definition\.layers\[0\]\.stride must be an integer in \[1, \d+\], got 0/,
    );
    expect(allocated()).toEqual(before);
    model.dispose();
  });
});

describe('training checkpoints of layer lists', () => {
  it('save → load is bit-exact (parameters, Adam moments, step), and training goes on identically', async () => {
    for (const useBias of [false, true]) {
      const model = cnn(3, useBias);
      const optim = adam({ lr: 1e-2 });
      const optState = optim.init(model);
      const { x, y } = randomBatch(rt(), 2, 3, 72, 4);
      const options = {
        input: x,
        solver: 'euler' as const,
        stepsizeController: 'constant' as const,
        maxT1: 1,
        dt: 0.25,
      };
      await makePcStep(model, optim, optState, y, options);
      const path = join(dir, `cnn-${useBias}.safetensors`);
      await saveCheckpoint(path, model, { optim, optState, extra: { note: 'cnn' } });
      const file = decodeSafetensors(new Uint8Array(await readFile(path)));
      // Each layer's tensors in their own shapes; the pooling (layer 2) has none.
      const shapes = Object.fromEntries(
        Object.entries(file.tensors).map(([name, t]) => [name, t.shape] as [string, number[]]),
      );
      expect(shapes).toEqual({
        'layers.0.weight': [3, 2, 3, 3],
        ...(useBias ? {} : { 'layers.0.bias': [3] }),
        'layers.1.weight': [3, 3, 3, 3],
        ...(useBias ? { 'layers.1.bias': [3] } : {}),
        'layers.3.weight': [4, 27],
        ...(useBias ? { 'layers.3.bias': [4] } : {}),
        'optimizer.state': [2, model.paramCount],
      });
      expect(JSON.parse(file.metadata.model!)).toEqual({ definition: JSON.parse(JSON.stringify(model.definition)) });
      const r = await loadCheckpoint(rt(), path);
      expect(r.model.definition).toEqual(model.definition);
      expect(r.step).toBe(1);
      expect(await paramBits(r.model)).toEqual(await paramBits(model));
      expect(bits((await r.optState!.stateToArray())!)).toEqual(bits((await optState.stateToArray())!));
      await makePcStep(model, optim, optState, y, options);
      await makePcStep(r.model, r.optim!, r.optState!, y, options);
      expect(await paramBits(r.model)).toEqual(await paramBits(model));
      for (const t of [model, optState, r.model, r.optState!, x, y]) t.dispose();
    }
  });

  it('refuses tensors that do not fit the definition, and damaged definitions, leaving nothing allocated', async () => {
    const model = cnn(4, true);
    const good = decodeSafetensors(await trainingCheckpoint(model, { extra: {} }));
    const { weights } = await model.toArrays();
    /** The file with its tensors and metadata changed, sealed with a valid checksum. */
    const variant = (
      change: (t: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>) => void,
      model?: unknown,
    ) => {
      const tensors = Object.fromEntries(
        Object.entries(good.tensors).map(([k, t]) => [
          k,
          { dtype: 'F32' as const, shape: [...t.shape], data: t.data as Float32Array },
        ]),
      );
      change(tensors);
      const metadata = model === undefined ? good.metadata : { ...good.metadata, model: JSON.stringify(model) };
      return encodeSafetensors(tensors, metadata);
    };
    const definition = JSON.parse(good.metadata.model!).definition;
    const before = allocated();
    const cases: [Uint8Array, RegExp][] = [
      // Same count, another shape: found once the model is rebuilt, which is disposed again.
      [
        variant((t) => (t['layers.0.weight']!.shape = [3, 18])),
        /^f: tensor layers\.0\.weight must be F32 \[3, 2, 3, 3\] for the model's definition, got F32 \[3, 18\]/,
      ],
      // A tensor under another layer's name (the pooling's), the total unchanged.
      [
        variant((t) => {
          t['layers.2.bias'] = t['layers.1.bias']!;
          delete t['layers.1.bias'];
        }),
        /^f: tensor layers\.1\.bias is missing \(the model's definition needs it\)/,
      ],
      [
        variant((t) => delete t['layers.3.bias']),
        /^f: metadata\.model\.definition holds \d+ parameters, but its layers have \d+/,
      ],
      [
        variant((t) => (t['layers.4.weight'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) })),
        /metadata\.model\.definition holds \d+ parameters, but its layers have \d+/,
      ],
      [
        variant((t) => (t['layers.03.weight'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) })),
        /^f: unexpected tensor layers\.03\.weight/,
      ],
      [
        variant((t) => (t['layers.0.weight']!.data = Float32Array.from(weights[0]!, (v, i) => (i === 5 ? NaN : v)))),
        /^f: tensor layers\.0\.weight must be finite, got NaN at index 5/,
      ],
      [
        variant(() => {}, { definition: { ...definition, layers: definition.layers.slice(1) } }),
        /^f: metadata\.model\.definition\.layers\[0\]: a residual block cannot be the first layer/,
      ],
      [variant(() => {}, { definition, dims: [72, 4] }), /^f: metadata\.model\.dims is not a field of metadata\.model/],
      [variant(() => {}, { definition: 'conv' }), /metadata\.model\.definition must be a plain JSON object/],
      [
        variant(() => {}, { definition: { ...definition, inputShape: [2, 6] } }),
        /^f: metadata\.model\.definition\.inputShape must be \[C, H, W\] or \[N\]/,
      ],
    ];
    for (const [bytes, message] of cases)
      expect(refusal(() => restoreTrainingCheckpoint(rt(), bytes, 'f'), message.source)).toMatch(message);
    expect(allocated()).toEqual(before);
    model.dispose();
  });
});
