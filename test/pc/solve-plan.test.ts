/**
 * The solve plan (src/pc/solve/plan.ts) is built from the resolved configuration alone: no runtime, no
 * workspace. Equal configurations give equal plans, and each loop's plan holds the step grid, the config
 * settings and the stage records that configuration asks for.
 */
import { describe, expect, it } from 'vitest';
import { StageMode, StageOptimizer } from '../../src/kernels/index.js';
import { adam, sgd } from '../../src/pc/optim.js';
import { ConfigFlag, Controller } from '../../src/kernels/solver.js';
import { constantStepEnds } from '../../src/pc/solve/grid.js';
import { type SolverOptions, resolveSolverOptions } from '../../src/pc/solve/options.js';
import { planSolve } from '../../src/pc/solve/plan.js';
import { stageRecords } from '../../src/pc/solve/records.js';

const plan = (options: SolverOptions) => planSolve(resolveSolverOptions('test', options));

describe('solve plan', () => {
  it('equal configurations give equal plans (and records); a different step gives a different plan', () => {
    const options: SolverOptions = { solver: 'tsit5', stepsizeController: 'constant', dt: 0.3, maxT1: 6 };
    const a = plan(options);
    const b = plan({ ...options });
    expect(a).toEqual(b);
    expect(stageRecords(a)).toEqual(stageRecords(b));
    const c = plan({ ...options, dt: 0.25 });
    expect(c).not.toEqual(a);
    expect(c.recordsKey).not.toBe(a.recordsKey);
    const pid = { solver: 'heun' as const, stepsizeController: { pid: { rtol: 1e-3, atol: 1e-4 } } };
    expect(plan(pid)).toEqual(plan({ ...pid }));
    expect(plan({ ...pid, stepsizeController: { pid: { rtol: 1e-3, atol: 1e-3 } } })).not.toEqual(plan(pid));
    expect(plan({ solver: adam({ lr: 0.1 }), steps: 3 })).toEqual(plan({ solver: adam({ lr: 0.1 }), steps: 3 }));
  });

  it("Heun + PID (JPC's default) is controlled, starts with Hairer's step, and has 2 stage and 2 probe records", () => {
    const p = plan({});
    if (p.loop !== 'controlled') throw new Error(`expected a controlled plan, got ${p.loop}`);
    expect(p.hairer).toBe(true);
    expect(p.firstStepEnd).toBe(0);
    expect(p.grid).toBeNull();
    expect([p.maxT1, p.maxSteps, p.pollEvery]).toEqual([20, 4096, 8]);
    expect(p.config.stages).toBe(2);
    expect(p.config.fields).toMatchObject({
      t1: 20,
      rtol: 1e-3,
      atol: 1e-3,
      errorOrder: 2,
      controller: Controller.PID,
      flags: ConfigFlag.FORCE_DTMIN,
      a21: 1,
      gridN: 0,
    });
    const probe = { dt: 0, rtol: 1e-3, atol: 1e-3, candidate: 'probe' };
    expect(stageRecords(p)).toEqual([
      { ...probe, mode: StageMode.STAGE, index: 1, coef: [1], ecoef: [] },
      { ...probe, mode: StageMode.FINAL, index: 2, coef: [0.5, 0.5], ecoef: [0.5, -0.5] },
      { ...probe, mode: StageMode.HAIRER1, index: 1, coef: [], ecoef: [] },
      { ...probe, mode: StageMode.HAIRER2, index: 2, coef: [], ecoef: [] },
    ]);
  });

  it('a PID step with dt starts from dt clamped to [dtmin, dtmax]; steady state adds the event flag', () => {
    const p = plan({ dt: 5, steadyState: true, stepsizeController: { pid: { rtol: 1e-2, atol: 1e-3, dtmax: 2 } } });
    if (p.loop !== 'controlled') throw new Error(`expected a controlled plan, got ${p.loop}`);
    expect(p.hairer).toBe(false);
    expect(p.firstStepEnd).toBe(2);
    expect(p.config.fields.flags).toBe(ConfigFlag.DTMAX | ConfigFlag.FORCE_DTMIN | ConfigFlag.EVENT);
    // The event's tolerances default to the controller's.
    expect([p.config.fields.eventRtol, p.config.fields.eventAtol]).toEqual([1e-2, 1e-3]);
  });

  it('a constant Heun step without the event runs free: every stage of every step has its record', () => {
    const p = plan({ stepsizeController: 'constant', dt: 0.5, maxT1: 2 });
    if (p.loop !== 'free-running') throw new Error(`expected a free-running plan, got ${p.loop}`);
    expect(p.sizes).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect(p.firstStepEnd).toBe(0.5);
    expect(p.stagesPerStep).toBe(2);
    expect(p.config.fields).toMatchObject({ controller: Controller.CONSTANT, flags: 0, gridN: 0 });
    const step = (dt: number) => [
      { dt, rtol: 0, atol: 0, ecoef: [], mode: StageMode.STAGE, index: 1, coef: [1], candidate: 'probe' },
      { dt, rtol: 0, atol: 0, ecoef: [], mode: StageMode.FINAL, index: 2, coef: [0.5, 0.5], candidate: 'in-place' },
    ];
    expect(stageRecords(p)).toEqual([...step(0.5), ...step(0.5), ...step(0.5), ...step(0.5)]);
  });

  it('a constant FSAL step with the steady-state event is controlled on the uploaded grid', () => {
    const p = plan({
      solver: 'tsit5',
      stepsizeController: 'constant',
      dt: 0.3,
      maxT1: 2,
      steadyState: { rtol: 0, atol: 1 },
    });
    if (p.loop !== 'controlled') throw new Error(`expected a controlled plan, got ${p.loop}`);
    expect(p.grid).toEqual(constantStepEnds(2, 0.3));
    expect(p.firstStepEnd).toBe(p.grid![0]);
    expect(p.config.fields).toMatchObject({
      controller: Controller.CONSTANT,
      flags: ConfigFlag.EVENT | ConfigFlag.FSAL,
      gridN: p.grid!.length,
    });
    const records = stageRecords(p);
    expect(records.map((r) => r.mode)).toEqual([
      ...Array(6).fill(StageMode.STAGE),
      StageMode.FINAL_FSAL,
      StageMode.HAIRER1,
      StageMode.HAIRER2,
    ]);
    expect(records.every((r) => r.ecoef.length === 0)).toBe(true); // no error estimate without the PID controller
  });

  it("discrete inference has one optimiser record per step, Adam's with its bias corrections", () => {
    const p = plan({ solver: adam({ lr: 0.1, b1: 0.5, b2: 0.75 }), steps: 2 });
    if (p.loop !== 'discrete') throw new Error(`expected a discrete plan, got ${p.loop}`);
    expect(p.firstStepEnd).toBe(0);
    const base = { mode: StageMode.OPTIM, index: 1, ecoef: [], dt: 0, rtol: 0, atol: 0, candidate: 'in-place' };
    expect(stageRecords(p)).toEqual([
      { ...base, opt: StageOptimizer.ADAM, coef: [0.1, 0.5, 0.75, 1e-8, 0, 0.5, 0.25, 0] },
      { ...base, opt: StageOptimizer.ADAM, coef: [0.1, 0.5, 0.75, 1e-8, 0, 0.75, 1 - 0.75 ** 2, 0] },
    ]);
    const nesterov = plan({ solver: sgd({ lr: 0.2, momentum: 0.9, nesterov: true }), steps: 1 });
    expect(stageRecords(nesterov)).toEqual([
      { ...base, opt: StageOptimizer.MOMENTUM, coef: [0.2, 0.9, 0, 0, 0, 1, 1, 1] },
    ]);
  });
});
