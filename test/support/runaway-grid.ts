// Shared by the runaway-check tests (quick tier: test/pc/train-runaway.test.ts; full tier:
// test/full/runaway-grid.test.ts): tiny training runs that record every step's state, and the grid of learning rates
// far too large.
import { expect } from 'vitest';
import {
  adam,
  makeMlp,
  makePcStep,
  sgd,
  type Model,
  type OptState,
  type Optimizer,
  type Runtime,
  type SolverOptions,
} from '../../src/node.js';
import { WpcDivergenceError } from '../../src/runtime/errors.js';
import { DEFAULT_DIVERGENCE_THRESHOLD } from '../../src/pc/train.js';
import { ACTIVATIONS, type Activation } from '../../src/kernels/activations.js';
import { bits, randomBatch } from './helpers.js';

export type Task = 'discriminative' | 'generative' | 'unsupervised';

/** Everything a step changes: the parameters' and the optimiser state's bits, and the step count. */
export async function stateOf(
  model: Model,
  optState: OptState,
): Promise<{ params: number[]; moments: number[]; count: number }> {
  const { weights, biases } = await model.toArrays();
  const params = [...weights, ...biases.filter((b): b is Float32Array => b !== null)].flatMap((a) => bits(a));
  const moments = await optState.stateToArray();
  return { params, moments: moments ? bits(moments) : [], count: optState.count };
}

/** A tiny fixed problem for a task: the same batch every step (so a step's after-update loss is the next step's loss). */
export function problem(rt: Runtime, task: Task, seed: number) {
  const B = 8;
  const data = randomBatch(rt, seed, B, 6, 4); // x ~ N(0, 1) [8, 6], one-hot labels [8, 4]
  const dims =
    task === 'discriminative'
      ? { inputDim: 6, outputDim: 4 }
      : task === 'generative'
        ? { inputDim: 4, outputDim: 6 }
        : { inputDim: 3, outputDim: 6 };
  const output = task === 'discriminative' ? data.y : data.x;
  const input = task === 'discriminative' ? data.x : task === 'generative' ? data.y : undefined;
  return { dims, output, input, dispose: () => [data.x, data.y].forEach((t) => t.dispose()) };
}

export const SOLVERS: Record<string, () => SolverOptions> = {
  euler: () => ({ solver: 'euler', stepsizeController: 'constant', maxT1: 1, dt: 0.25 }),
  heun: () => ({ maxT1: 2, dt: 0.1 }),
  discrete: () => ({ solver: sgd({ lr: 0.2 }), steps: 3 }),
};

export interface Run {
  /** State before step 1 and after every step that ran. */
  states: Awaited<ReturnType<typeof stateOf>>[];
  /** Loss (energy without an input) of each step, before its update. */
  values: number[];
  stop: { step: number; error: Error } | null;
}

/** Up to `steps` training steps; stops at the first error (a divergence read after each step, or any throw). */
export async function train(
  runtime: () => Runtime,
  task: Task,
  act: Activation,
  optim: () => Optimizer,
  solver: string,
  steps: number,
  threshold: boolean | object | undefined,
): Promise<Run> {
  const p = problem(runtime(), task, 11);
  const model = makeMlp(runtime(), { seed: 5, ...p.dims, width: 8, depth: 3, actFn: act });
  const opt = optim();
  const optState = opt.init(model);
  const run: Run = { states: [await stateOf(model, optState)], values: [], stop: null };
  try {
    for (let k = 1; k <= steps; k++) {
      try {
        const options = {
          ...SOLVERS[solver]!(),
          ...(threshold === undefined ? {} : { divergenceThreshold: threshold }),
        };
        const r = p.input
          ? await makePcStep(model, opt, optState, p.output, { input: p.input, ...options })
          : await makePcStep(model, opt, optState, p.output, { seed: k, ...options });
        run.values.push(r.loss ? await r.loss.item() : (await r.energies.toArray()).reduce((a, b) => a + b, 0));
        r.loss?.dispose();
        r.energies.dispose();
        await optState.checkDivergence();
        run.states.push(await stateOf(model, optState));
      } catch (error) {
        run.stop = { step: k, error: error as Error };
        run.states.push(await stateOf(model, optState));
        break;
      }
    }
  } finally {
    model.dispose();
    optState.dispose();
    p.dispose();
  }
  return run;
}

/**
 * The class: every activation, with a learning rate far too large for Adam or SGD, on a discriminative, a
 * supervised generative and an unsupervised task, each solver family in turn (72 cases). The unguarded run (NaN
 * guard only) shows the runaway; the guarded one must stop at or before it, holding bit for bit the parameters and
 * optimiser state of the last step it let through — never a state a later step built on.
 */
export const RUNAWAY_CASES = (() => {
  const optims: [string, () => Optimizer][] = [
    ['adam 3', () => adam({ lr: 3 })],
    ['adam 30', () => adam({ lr: 30 })],
    ['sgd 1000', () => sgd({ lr: 1000 })],
  ];
  return (['discriminative', 'generative', 'unsupervised'] as const).flatMap((task, t) =>
    ACTIVATIONS.flatMap((act, a) =>
      optims.map(([name, optim], o) => ({
        task,
        act,
        name,
        optim,
        solver: Object.keys(SOLVERS)[(t + a + o) % 3]!,
        sample: t === a % 3 && o === a % 3,
      })),
    ),
  );
})();

/** The quick tier's share of the grid: one case per activation, every task, optimiser and solver among them. */
export const RUNAWAY_SAMPLE = RUNAWAY_CASES.filter((c) => c.sample);

/** Runs each case with and without the check and asserts the rules above; returns how many ran away unguarded. */
export async function checkRunawayCases(
  runtime: () => Runtime,
  cases: readonly (typeof RUNAWAY_CASES)[number][],
): Promise<number> {
  const { factor, floor } = DEFAULT_DIVERGENCE_THRESHOLD;
  let evident = 0;
  const uncaught: string[] = [];
  for (const c of cases) {
    const label = `${c.task} ${c.act} ${c.name} ${c.solver}`;
    const plain = await train(runtime, c.task, c.act, c.optim, c.solver, 5, undefined);
    // Evidence of a runaway without the check, by the documented rule applied to the unguarded run's values:
    // value j past max(factor × the largest value before it, floor), or NaN/Inf (the NaN guard stopped it).
    const over = (j: number) => !(plain.values[j]! <= Math.max(factor * Math.max(...plain.values.slice(0, j)), floor));
    const runaway = plain.values.findIndex((_, j) => j > 0 && over(j));
    const nonFinite = plain.stop?.error instanceof WpcDivergenceError ? plain.stop.step : Infinity;
    const evidence = runaway > 0 || nonFinite < Infinity;
    const guarded = await train(runtime, c.task, c.act, c.optim, c.solver, 5, true);
    if (guarded.stop && !(guarded.stop.error instanceof WpcDivergenceError)) {
      // The check watches energies and losses, not the solver: an update that leaves both under the threshold
      // but the inference too stiff for the adaptive solver fails as it does without the check (documented).
      expect(evidence, `${label}: ${guarded.stop.error.message}`).toBe(false);
      expect(guarded.stop.error.constructor, label).toBe(plain.stop?.error.constructor);
      expect(guarded.stop.step, label).toBe(plain.stop?.step);
      continue;
    }
    if (evidence) evident++;
    else if (!guarded.stop) continue; // no runaway, and the check let it run: nothing more to see
    // (Without evidence the check may still roll back an update whose feedforward pass ran away: exactly, below.)
    if (!guarded.stop) {
      uncaught.push(label);
      continue;
    }
    const { step, error } = guarded.stop;
    const d = error as WpcDivergenceError;
    expect(d.step, label).toBe(step);
    if (evidence) {
      // No later than the evidence: value j (1-based step j + 1) was measured with the weights step j's
      // update made, which the after-update check sees on the same batch (supervised; unsupervised, the
      // energy at equilibrium is seen by step j + 1's own check). A NaN at step t is caught by step t at last.
      const seen = runaway > 0 ? runaway + (c.task === 'unsupervised' ? 1 : 0) : Infinity;
      expect(step, label).toBeLessThanOrEqual(Math.min(seen, nonFinite));
    }
    // The state is the one before step `step`, bit for bit — the same as the unguarded run's then.
    const after = guarded.states.at(-1)!;
    expect(after.count, label).toBe(step - 1);
    expect(after.params, label).toEqual(guarded.states[step - 1]!.params);
    expect(after.moments, label).toEqual(guarded.states[step - 1]!.moments);
    expect(after.params, label).toEqual(plain.states[step - 1]!.params);
    expect(after.moments, label).toEqual(plain.states[step - 1]!.moments);
    // And that state was not ruined: the value measured with it (the unguarded run's step `step`) was finite.
    if (step <= plain.values.length) expect(Number.isFinite(plain.values[step - 1]), label).toBe(true);
  }
  expect(uncaught).toEqual([]);
  return evident;
}
