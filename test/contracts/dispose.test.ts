// runtime.dispose() frees everything WPC allocated (memoryStats() reports 0 in every count, whatever ran before:
// training steps, solves, checkpoint loads, the theory functions), and every later call on the runtime, its
// tensors, models and optimiser states fails with a clear WpcError instead of a raw Dawn error.
import { describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  WpcError,
  adam,
  computeLinearActivitySolution,
  computeLinearEquilibRescaling,
  init,
  initActivitiesFromNormal,
  initActivitiesWithFfwd,
  linearEquilibEnergy,
  loadCheckpoint,
  loadModel,
  makeMlp,
  makePcStep,
  matmul,
  mlpFromWeights,
  pcEnergy,
  saveCheckpoint,
  saveModel,
  sgd,
  solveInference,
  testDiscriminativePc,
  type Runtime,
} from '../../src/node.js';

const ZERO = { persistentBytes: 0, inUseBytes: 0, pooledBytes: 0, totalBytes: 0 };
const MLP = { seed: 1, inputDim: 4, width: 8, depth: 2, outputDim: 3, actFn: 'tanh' as const };
const x = new Float32Array([0.1, -0.2, 0.3, 0.4, 0.5, 0.6, -0.7, 0.8]);
const y = new Float32Array([1, 0, 0, 0, 1, 0]);

/** Expects `attempt` to fail (sync or async) with a WpcError whose message starts with a function's name. */
async function failsClearly(what: string, attempt: () => unknown): Promise<void> {
  let error: unknown;
  try {
    await attempt();
  } catch (e) {
    error = e;
  }
  expect(error, `${what}: no error`).toBeDefined();
  expect(error instanceof WpcError, `${what}: ${String(error)}`).toBe(true);
  expect((error as Error).message, what).toMatch(/^[\w.]+( [\w.]+)?: /);
  expect((error as Error).message, what).toMatch(/disposed|lost/);
}

describe('runtime.dispose()', () => {
  it('leaves memoryStats() at 0 after a training step, a solve, a checkpoint load and the theory functions, and every later call fails with a WpcError', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wpc-dispose-'));
    let rt: Runtime | undefined;
    try {
      rt = await init();
      const model = makeMlp(rt, MLP);
      const optim = adam({ lr: 1e-3 });
      const state = optim.init(model);
      // A training step (workspace, gradients, moments), a solve with recording, an evaluation.
      const step = await makePcStep(model, optim, state, y, { input: x });
      await step.loss.item();
      const acts = await initActivitiesWithFfwd(model, x);
      const solved = await solveInference(model, acts, y, {
        input: x,
        recordIters: true,
        recordActivities: true,
        maxT1: 1,
        dt: 0.1,
        stepsizeController: 'constant',
        solver: 'euler',
      });
      await testDiscriminativePc(model, y, x);
      // A checkpoint written and loaded back (a second model and optimiser state on the runtime).
      const file = join(dir, 'checkpoint.safetensors');
      await saveCheckpoint(file, model, { optim, optState: state, step: 1 });
      const restored = await loadCheckpoint(rt, file);
      const modelFile = join(dir, 'model.json');
      await saveModel(model, modelFile);
      await loadModel(rt, modelFile);
      // The theory functions on a deep linear network.
      const linear = makeMlp(rt, { ...MLP, actFn: 'linear' });
      await computeLinearEquilibRescaling(linear);
      await linearEquilibEnergy(linear, x, y);
      const z = await computeLinearActivitySolution(linear, x, y, { method: 'block-cholesky' });
      await z[0]!.toArray();
      expect(rt.memoryStats().totalBytes).toBeGreaterThan(0);

      rt.dispose();
      expect(rt.memoryStats()).toEqual(ZERO);
      await new Promise((resolve) => setTimeout(resolve, 50)); // workspaces freed later must not count twice
      expect(rt.memoryStats()).toEqual(ZERO);

      const r = rt;
      const t = step.loss;
      const attempts: [string, () => unknown][] = [
        ['runtime.tensor', () => r.tensor([1], [1])],
        ['runtime.zeros', () => r.zeros([1])],
        ['runtime.wrap', () => r.wrap(t.buffer, [1])],
        ['runtime.read', () => r.read([{ buffer: t.buffer, byteOffset: 0, byteLength: 4 }])],
        ['runtime.finish', () => r.finish()],
        ['runtime.startProfile', () => r.startProfile()],
        ['Tensor.toArray', () => t.toArray()],
        ['Tensor.item', () => t.item()],
        ['a recorded energy', () => solved.recording!.energies.toArray()],
        ['Model.toArrays', () => model.toArrays()],
        ['makeMlp', () => makeMlp(r, MLP)],
        ['mlpFromWeights', () => mlpFromWeights(r, { dims: [1, 1], weights: [[1]], actFn: 'tanh' })],
        ['makePcStep', () => makePcStep(model, optim, state, y, { input: x })],
        [
          'makePcStep (restored)',
          () => makePcStep(restored.model, restored.optim!, restored.optState!, y, { input: x }),
        ],
        ['solveInference', () => solveInference(model, acts, y, { input: x })],
        ['pcEnergy', () => pcEnergy(model, acts, y, { input: x })],
        ['initActivitiesWithFfwd', () => initActivitiesWithFfwd(model, x)],
        ['initActivitiesFromNormal', () => initActivitiesFromNormal(model, { seed: 1, batchSize: 2 })],
        ['testDiscriminativePc', () => testDiscriminativePc(model, y, x)],
        ['Optimizer.init (model)', () => sgd({ lr: 0.1, momentum: 0.9 }).init(model)],
        ['Optimizer.init (activities)', () => sgd({ lr: 0.1, momentum: 0.9 }).init(acts)],
        ['OptState.stateToArray', () => state.stateToArray()],
        ['matmul', () => matmul(acts[0]!, acts[0]!, { transB: true })],
        ['computeLinearEquilibRescaling', () => computeLinearEquilibRescaling(linear)],
        ['linearEquilibEnergy', () => linearEquilibEnergy(linear, x, y)],
        ['saveModel', () => saveModel(model, join(dir, 'after.json'))],
        ['loadModel', () => loadModel(r, modelFile)],
        ['loadCheckpoint', () => loadCheckpoint(r, file)],
      ];
      for (const [what, attempt] of attempts) await failsClearly(what, attempt);
      expect(rt.memoryStats()).toEqual(ZERO);
    } finally {
      rt?.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('is idempotent, and a runtime disposed while a workspace is still being built ends at 0 too', async () => {
    const rt = await init();
    const model = makeMlp(rt, MLP);
    const pending = initActivitiesWithFfwd(model, x); // builds a workspace asynchronously
    rt.dispose();
    rt.dispose();
    await pending.then(
      () => undefined,
      (e: unknown) => expect(e instanceof WpcError, String(e)).toBe(true),
    );
    expect(rt.memoryStats()).toEqual(ZERO);
  });
});
