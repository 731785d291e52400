/**
 * JPC's activations (activations.wgsl): their names, the ids the kernels select them by (the constant ACT),
 * and the WGSL part that defines `act` and its derivative.
 */
import type { SourcePart } from '../runtime/kernel.js';
import activationsWgsl from './activations.wgsl';
import { part } from './parts.js';

/** JPC's activations, in the order of their ids in activations.wgsl. */
export const ACTIVATIONS = ['linear', 'tanh', 'hard_tanh', 'relu', 'leaky_relu', 'gelu', 'selu', 'silu'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export function activationId(act: Activation): number {
  return ACTIVATIONS.indexOf(act);
}

export const ACTIVATIONS_PART: SourcePart = part('activations.wgsl', activationsWgsl);
