/**
 * How both checkpoint formats store a model made from a list of layers (`makeModel`): its definition (inputShape,
 * layers, actFn, useBias: plain JSON data, exactly `model.definition`) and its parameters in the model's buffer
 * order, each layer's tensors (weight, then bias) named `layers.<l>.<role>` with their own shapes. A stored
 * definition goes through makeModel's own checks when the model is rebuilt (`modelFromDefinition`), which refuses
 * a definition or a parameter count that does not fit before it allocates anything. MLPs keep the architecture
 * fields of checkpoint.ts.
 */
import { modelFromDefinition } from '../pc/architecture.js';
import { biasTensor, paramTensors, weightMatrix } from '../pc/layers/index.js';
import type { Model } from '../pc/model.js';
import { WpcArgumentError, firstNonFinite } from '../runtime/errors.js';
import type { Runtime } from '../runtime/runtime.js';
import { asStoredJson, checkJsonObject } from './json-values.js';

/** One stored parameter tensor of a model: its name, shape and place in the flat parameter array. */
interface StoredTensor {
  name: string;
  shape: readonly number[];
  offset: number;
  length: number;
}

/** Whether a stored model description is a layer list's (it has a `definition`) rather than an MLP's fields. */
export function isStoredDefinition(stored: unknown): stored is Record<string, unknown> & { definition: unknown } {
  return typeof stored === 'object' && stored !== null && !Array.isArray(stored) && Object.hasOwn(stored, 'definition');
}

/** `model.definition` as JSON reads it back (the exact object both formats store). */
export function storedDefinition(fn: string, model: Model): Record<string, unknown> {
  return checkJsonObject(fn, 'model.definition', asStoredJson(fn, 'model.definition', model.definition));
}

/** Every parameter of `model` in its buffer's order (one readback). */
export async function readParams(model: Model): Promise<Float32Array> {
  const { weights, biases } = await model.toArrays();
  const all = new Float32Array(model.paramCount);
  model.layers.forEach((layer, i) => {
    all.set(weights[i]!, weightMatrix(layer).offset);
    const bias = biasTensor(layer);
    if (bias) all.set(biases[i]!, bias.offset);
  });
  return all;
}

/** The stored tensors of `model`: per layer its weight then its bias (none for a pooling), in buffer order. */
export function storedTensors(model: Model): StoredTensor[] {
  return model.layers.flatMap((layer, l) =>
    paramTensors(layer).map((t) => ({
      name: `layers.${l}.${t.role}`,
      shape: t.shape,
      offset: t.offset,
      length: t.shape.reduce((a, b) => a * b, 1),
    })),
  );
}

/**
 * A model rebuilt from a stored definition and its flat parameters (`where` names the definition's field in
 * messages, `what` the file). The parameters must be finite; makeModel's checks run on the definition and the
 * parameter count before anything is allocated.
 */
export function modelFromStoredDefinition(
  what: string,
  runtime: Runtime,
  where: string,
  definition: unknown,
  params: Float32Array,
): Model {
  checkJsonObject(what, where, definition);
  const bad = firstNonFinite(params);
  if (bad >= 0)
    throw new WpcArgumentError(`${what}: the parameters must be finite, got ${params[bad]} at index ${bad}`);
  return modelFromDefinition(
    runtime,
    what,
    where,
    definition as unknown as Parameters<typeof modelFromDefinition>[3],
    params,
  );
}
