// The divergence guard's runaway check (makePcStep's divergenceThreshold): a finite blow-up of the energy or the
// loss stops training, the update that caused it is rolled back bit for bit, healthy runs are never flagged, and
// the threshold means exactly what the documentation says (max(factor × reference, floor), the reference the
// largest value of the first `warmup` steps, each compared before it is folded in).
import { describe, expect, it } from 'vitest';
import { adam, initActivitiesWithFfwd, makeMlp, makePcStep, sgd, type Model, type Tensor } from '../../src/node.js';
import { WpcArgumentError, WpcDivergenceError, type DivergenceKind } from '../../src/runtime/errors.js';
import { DEFAULT_DIVERGENCE_THRESHOLD } from '../../src/pc/train.js';
import { Random } from '../../src/util/random.js';
import { randomBatch, useRuntime } from '../support/helpers.js';
import {
  checkRunawayCases,
  problem,
  RUNAWAY_CASES,
  RUNAWAY_SAMPLE,
  SOLVERS,
  stateOf,
  train,
} from '../support/runaway-grid.js';

const runtime = useRuntime();

describe('runaway check: large learning rates are caught and rolled back', () => {
  it(`a sample of the grid, one case per activation (${RUNAWAY_SAMPLE.length} of ${RUNAWAY_CASES.length}; test/full/runaway-grid.test.ts runs the rest): stopped at the runaway with the last good state restored`, async () => {
    const evident = await checkRunawayCases(runtime, RUNAWAY_SAMPLE);
    // Not vacuous: nearly every case really runs away.
    expect(evident).toBeGreaterThan((RUNAWAY_SAMPLE.length * 2) / 3);
  });

  it("relu with Adam lr 3 (the CLI's case): the first update is rolled back and the error says why", async () => {
    const run = await train(runtime, 'discriminative', 'relu', () => adam({ lr: 3 }), 'heun', 3, true);
    const d = run.stop!.error as WpcDivergenceError;
    expect(d).toBeInstanceOf(WpcDivergenceError);
    expect(d.step).toBe(1);
    expect(d.what).toBe('loss-runaway');
    expect(d.afterUpdate).toBe(true);
    expect(d.layer).toBe(-1);
    const r = d.runaway!;
    expect(r.reference).toBeCloseTo(run.values[0]!, 5); // the loss of step 1, before its update
    expect(r.referenceSteps).toBe(1);
    expect(r.factor).toBe(DEFAULT_DIVERGENCE_THRESHOLD.factor);
    expect(r.threshold).toBeCloseTo(Math.max(r.factor * r.reference, r.floor), 3);
    expect(r.value).toBeGreaterThan(r.threshold);
    expect(d.message).toMatch(
      /training diverged at step 1: its parameter update raised the loss \(of the updated model's feedforward prediction on the step's batch\) to [\d.e+]+, above the divergence threshold [\d.e+]+ \(100 × the reference [\d.e+-]+, the largest loss of the run's first 1 step\)\. The update of step 1 was rolled back/,
    );
    expect(run.states.at(-1)).toEqual(run.states[0]); // the initial weights and (zero) Adam state, bit for bit
  });

  it('after a rollback makePcStep refuses until cleared; cleared, the kept reference catches the same update again', async () => {
    const p = problem(runtime(), 'discriminative', 3);
    const model = makeMlp(runtime(), { seed: 2, ...p.dims, width: 8, depth: 3, actFn: 'relu' });
    const optim = adam({ lr: 3 });
    const optState = optim.init(model);
    const options = { input: p.input!, ...SOLVERS.euler!(), divergenceThreshold: true };
    const before = await stateOf(model, optState);
    await makePcStep(model, optim, optState, p.output, options);
    // Recorded before the flag was read: not applied either.
    await makePcStep(model, optim, optState, p.output, options);
    const e = (await optState.checkDivergence().catch((x: unknown) => x)) as WpcDivergenceError;
    expect(e).toBeInstanceOf(WpcDivergenceError);
    expect([e.step, e.afterUpdate]).toEqual([1, true]);
    expect(await stateOf(model, optState)).toEqual(before);
    await expect(makePcStep(model, optim, optState, p.output, options)).rejects.toThrow(
      /makePcStep: training diverged at step 1: its parameter update raised the loss/,
    );
    optState.clearDivergence();
    await makePcStep(model, optim, optState, p.output, options);
    const again = (await optState.checkDivergence().catch((x: unknown) => x)) as WpcDivergenceError;
    expect([again.step, again.what, again.afterUpdate]).toEqual([1, 'loss-runaway', true]);
    // The reference survived clearDivergence: not retaken, only joined by the replayed step 1 (the same loss).
    expect(again.runaway!.referenceSteps).toBe(2);
    expect(again.runaway!.reference).toBe(e.runaway!.reference);
    expect(await stateOf(model, optState)).toEqual(before);
    model.dispose();
    optState.dispose();
    p.dispose();
  });
});

describe('runaway check: healthy runs are never flagged and never changed', () => {
  it('a noisy healthy run (tiny random batches) passes the default threshold, with the same bits as without the check', async () => {
    const rng = new Random(21);
    // Batches of 1-4 samples whose inputs are scaled by 0.5-2: a loss that jumps around from step to step.
    const batches = Array.from({ length: 40 }, () => {
      const B = 1 + rng.nextInt(4);
      const scale = rng.uniform(0.5, 2);
      const y = new Float32Array(B * 4);
      for (let b = 0; b < B; b++) y[b * 4 + rng.nextInt(4)] = 1;
      return {
        x: runtime().tensor(
          Float32Array.from({ length: B * 6 }, () => scale * rng.normal()),
          [B, 6],
        ),
        y: runtime().tensor(y, [B, 4]),
      };
    });
    const run = async (threshold: boolean) => {
      const model = makeMlp(runtime(), {
        seed: 8,
        inputDim: 6,
        width: 16,
        depth: 3,
        outputDim: 4,
        actFn: 'tanh',
        useBias: true,
      });
      const optim = adam({ lr: 1e-2 });
      const optState = optim.init(model);
      const losses: number[] = [];
      const accs: number[] = [];
      for (const { x, y } of batches) {
        const r = await makePcStep(model, optim, optState, y, {
          input: x,
          loss: 'ce',
          ...SOLVERS.euler!(),
          calculateAccuracy: true,
          divergenceThreshold: threshold,
        });
        losses.push(await r.loss.item());
        accs.push(await r.acc!.item());
        for (const t of [r.loss, r.energies, r.acc!]) t.dispose();
      }
      await optState.checkDivergence(); // throws if flagged
      const state = await stateOf(model, optState);
      model.dispose();
      optState.dispose();
      return { losses, accs, state };
    };
    const off = await run(false);
    const on = await run(true);
    expect(on.state).toEqual(off.state);
    expect(on.accs).toEqual(off.accs); // the after-update pass supplies calculateAccuracy: the same numbers
    expect(on.losses).toEqual(off.losses);
    // The noise is real (batches of 2-4 samples), and far from the threshold.
    const ref = Math.max(...off.losses.slice(0, DEFAULT_DIVERGENCE_THRESHOLD.warmup));
    expect(Math.max(...off.losses) / Math.min(...off.losses)).toBeGreaterThan(2);
    expect(Math.max(...off.losses) / ref).toBeLessThan(DEFAULT_DIVERGENCE_THRESHOLD.factor / 10);
    for (const { x, y } of batches) [x, y].forEach((t) => t.dispose());
  });
});

describe('runaway check: the threshold, exactly', () => {
  // With lr = 0 the model never changes, so a step's loss and energy are functions of its batch alone. A linear
  // network's targets p + k·(y − p) (p its prediction) scale both by k², so the ratio to step 1 is chosen exactly.
  async function scaledTargets(model: Model, x: Tensor, y: Float32Array, ks: readonly number[]): Promise<Tensor[]> {
    const acts = await initActivitiesWithFfwd(model, x);
    const p = await acts.at(-1)!.toArray();
    acts.forEach((t) => t.dispose());
    return ks.map((k) =>
      runtime().tensor(
        Float32Array.from(y, (v, i) => p[i]! + k * (v - p[i]!)),
        [x.shape[0]!, y.length / x.shape[0]!],
      ),
    );
  }

  async function runRatios(
    ratios: readonly number[],
    threshold: object,
    task: 'supervised' | 'unsupervised' = 'supervised',
  ) {
    const { x, y } = randomBatch(runtime(), 4, 8, 5, 3);
    const model = makeMlp(runtime(), { seed: 6, inputDim: 5, width: 7, depth: 2, outputDim: 3, actFn: 'linear' });
    const optim = sgd({ lr: 0 });
    const optState = optim.init(model);
    const targets = await scaledTargets(model, x, await y.toArray(), ratios.map(Math.sqrt));
    const energies: number[] = [];
    const losses: number[] = [];
    let error: WpcDivergenceError | null = null;
    for (const [i, t] of targets.entries()) {
      const r =
        task === 'supervised'
          ? await makePcStep(model, optim, optState, t, {
              input: x,
              ...SOLVERS.euler!(),
              divergenceThreshold: threshold,
            })
          : await makePcStep(model, optim, optState, t, {
              seed: 1,
              ...SOLVERS.euler!(),
              divergenceThreshold: threshold,
            });
      energies.push((await r.energies.toArray()).reduce((a, b) => a + b, 0));
      if (r.loss) losses.push(await r.loss.item());
      r.loss?.dispose();
      r.energies.dispose();
      error = (await optState.checkDivergence().then(
        () => null,
        (e: unknown) => e,
      )) as WpcDivergenceError | null;
      if (error) {
        expect(error.step).toBe(i + 1);
        break;
      }
    }
    for (const t of [model, optState, x, y, ...targets]) t.dispose();
    return { error, energies, losses };
  }

  it('a step diverges when its energy exceeds factor × the reference: just above stops, just below passes', async () => {
    const above = await runRatios([1, 10.5], { factor: 10, floor: 0 });
    expect(above.error?.what).toBe('energy-runaway');
    expect(above.error?.afterUpdate).toBe(false);
    const r = above.error!.runaway!;
    expect(r.reference).toBeCloseTo(above.energies[0]!, 6);
    expect(r.value).toBeCloseTo(above.energies[1]!, 6);
    expect(r.value / r.reference).toBeCloseTo(10.5, 3);
    expect(r.threshold).toBeCloseTo(10 * r.reference, 5);
    expect([r.factor, r.floor, r.referenceSteps]).toEqual([10, 0, 1]);
    expect(above.error!.message).toMatch(
      /training diverged at step 2: the energy at equilibrium was [\d.e+-]+, above the divergence threshold [\d.e+-]+ \(10 × the reference [\d.e+-]+, the largest energy of the run's first 1 step\)\. The parameter update of step 2 was not applied, so the model keeps its weights from step 1/,
    );
    expect((await runRatios([1, 9.5], { factor: 10, floor: 0 })).error).toBeNull();
  });

  it('the floor: below it nothing diverges, whatever the ratio', async () => {
    const base = await runRatios([1], { floor: 0 });
    const M = Math.max(base.energies[0]!, base.losses[0]!);
    const m = Math.min(base.energies[0]!, base.losses[0]!);
    expect((await runRatios([1, 50], { factor: 10, floor: 100 * M })).error).toBeNull();
    const overFloor = await runRatios([1, 50], { factor: 10, floor: m / 10 });
    expect(overFloor.error?.step).toBe(2);
    expect(overFloor.error?.runaway?.threshold).toBeCloseTo(10 * base.energies[0]!, 5);
    // Step 2 (50×) passes under the floor and raises the reference to 50×; step 3 is over the floor, which is
    // then the threshold (10 × the reference is lower).
    const floorWins = await runRatios([1, 50, 1e7], { factor: 10, floor: 1000 * M });
    expect(floorWins.error?.step).toBe(3);
    expect(floorWins.error?.runaway?.threshold).toBe(Math.fround(1000 * M));
    expect(floorWins.error?.message).toMatch(
      /\(the floor; 10 × the reference [\d.e+-]+ is lower, the largest energy of the run's first 2 steps\)/,
    );
  });

  it('the reference is the largest of the first `warmup` steps, each compared before it is folded in', async () => {
    // warmup 2: step 2 (5×) passes and becomes the reference, so step 3 (30×) is 6× it and passes too.
    expect((await runRatios([1, 5, 30], { factor: 10, warmup: 2, floor: 0 })).error).toBeNull();
    // warmup 1: the reference stays at step 1, so step 3 (30×) diverges.
    const w1 = await runRatios([1, 5, 30], { factor: 10, warmup: 1, floor: 0 });
    expect(w1.error?.step).toBe(3);
    expect(w1.error?.runaway?.referenceSteps).toBe(1);
    // A blow-up inside the warmup is measured against the steps before it, not against itself.
    const inside = await runRatios([1, 20], { factor: 10, warmup: 10, floor: 0 });
    expect(inside.error?.step).toBe(2);
    // After the warmup the reference is frozen: step 4 is compared with the largest of steps 1-2.
    const frozen = await runRatios([1, 2, 0.5, 25], { factor: 10, warmup: 2, floor: 0 });
    expect(frozen.error?.step).toBe(4);
    expect(frozen.error?.runaway?.reference).toBeCloseTo(frozen.energies[1]!, 6);
    expect(frozen.error?.runaway?.referenceSteps).toBe(2);
  });

  it('unsupervised: the energy is watched (there is no loss)', async () => {
    const r = await runRatios([1, 1, 1e6], { factor: 100, floor: 0 }, 'unsupervised');
    // The targets' scale runs the unsupervised energy away too (z_0 cannot absorb it all in 4 Euler steps).
    expect(r.error?.what).toBe('energy-runaway');
    expect(r.error?.step).toBe(3);
  });
});

describe('divergenceThreshold: validation', () => {
  it('refuses bad values naming the option, expected and actual; nothing changes', async () => {
    const p = problem(runtime(), 'discriminative', 1);
    const model = makeMlp(runtime(), { seed: 1, ...p.dims, width: 4, depth: 2, actFn: 'tanh' });
    const optim = adam({ lr: 1e-2 });
    const optState = optim.init(model);
    const before = await stateOf(model, optState);
    const bad: [unknown, RegExp][] = [
      [
        'yes',
        /makePcStep: options\.divergenceThreshold must be a boolean or an object like \{ factor: 100, warmup: 10, floor: 1 \}, got "yes"/,
      ],
      [null, /options\.divergenceThreshold must be a boolean or an object/],
      [[100], /options\.divergenceThreshold must be a boolean or an object/],
      [
        { factor: 0.5 },
        /options\.divergenceThreshold\.factor must be a finite number in \[1, 3\.4028234663852886e\+38\], got 0\.5/,
      ],
      [{ factor: Number.NaN }, /options\.divergenceThreshold\.factor must be a finite number/],
      [{ factor: 1e39 }, /options\.divergenceThreshold\.factor must be a finite number in \[1, /],
      [{ factor: '100' }, /options\.divergenceThreshold\.factor must be a finite number/],
      [{ warmup: 0 }, /options\.divergenceThreshold\.warmup must be an integer in \[1, 4294967294\], got 0/],
      [{ warmup: 2.5 }, /options\.divergenceThreshold\.warmup must be an integer/],
      [{ floor: -1 }, /options\.divergenceThreshold\.floor must be a finite number in \[0, /],
      [{ factr: 10 }, /makePcStep: unknown option "factr" in options\.divergenceThreshold/],
    ];
    for (const [value, message] of bad) {
      const e = await makePcStep(model, optim, optState, p.output, {
        input: p.input!,
        divergenceThreshold: value as never,
      }).catch((x: unknown) => x);
      expect(e, String(value)).toBeInstanceOf(WpcArgumentError);
      expect((e as Error).message).toMatch(message);
    }
    await expect(
      makePcStep(model, optim, optState, p.output, { input: p.input!, divergenceThreshold: true, checkFinite: false }),
    ).rejects.toThrow(/makePcStep: options\.divergenceThreshold needs options\.checkFinite/);
    expect(await stateOf(model, optState)).toEqual(before);
    model.dispose();
    optState.dispose();
    p.dispose();
  });
});

describe('WpcDivergenceError.describe', () => {
  const runaway = { value: 5e17, threshold: 49, reference: 0.49, referenceSteps: 3, factor: 100, floor: 1 };
  const cases: [DivergenceKind, number, boolean, RegExp][] = [
    [
      'energy',
      1,
      false,
      /NaN or Inf in the energy of layer 2 \(its prediction error\)\. The parameter update of step 7 was not applied, so the model keeps its weights from step 6$/,
    ],
    [
      'energy',
      -1,
      true,
      /its parameter update made the energy of the feedforward pass from the inferred z_0 \(its total\) NaN or Inf\. The update of step 7 was rolled back .*weights from step 6$/,
    ],
    ['activity', 2, false, /NaN or Inf in the activities z_2\./],
    ['gradient', -1, false, /NaN or Inf in the gradient norm \(overflow\)\./],
    ['gradient', 0, false, /NaN or Inf in the parameter gradients of layer 1\./],
    [
      'loss',
      -1,
      false,
      /NaN or Inf in the loss \(of the feedforward prediction\)\. The parameter update of step 7 was not applied/,
    ],
    [
      'loss',
      -1,
      true,
      /its parameter update made the loss \(of the updated model's feedforward prediction on the step's batch\) NaN or Inf\. The update of step 7 was rolled back/,
    ],
    [
      'energy-runaway',
      -1,
      false,
      /the energy at equilibrium was 5\.000e\+17, above the divergence threshold 49 \(100 × the reference 0\.49, the largest energy of the run's first 3 steps\)\. The parameter update of step 7 was not applied/,
    ],
    [
      'energy-runaway',
      -1,
      true,
      /its parameter update raised the energy of the feedforward pass from the inferred z_0 to 5\.000e\+17, above the divergence threshold 49 .*rolled back/,
    ],
    [
      'loss-runaway',
      -1,
      false,
      /the loss \(of the feedforward prediction\) was 5\.000e\+17, above the divergence threshold 49 \(100 × the reference 0\.49, the largest loss of the run's first 3 steps\)/,
    ],
    [
      'loss-runaway',
      -1,
      true,
      /its parameter update raised the loss \(of the updated model's feedforward prediction on the step's batch\) to 5\.000e\+17/,
    ],
  ];
  it('says the truth for every kind, before and after the update', () => {
    for (const [what, layer, afterUpdate, message] of cases) {
      const text = WpcDivergenceError.describe(7, what, layer, {
        afterUpdate,
        runaway: what.endsWith('-runaway') ? runaway : null,
      });
      expect(text, `${what} ${afterUpdate}`).toMatch(/^training diverged at step 7: /);
      expect(text, `${what} ${afterUpdate}`).toMatch(message);
    }
  });
});
