/**
 * The stage records of a plan (struct Stage in activity-grad.wgsl, packed by the workspace): one per dispatch
 * of the activity-gradient kernel that computes a stage, saying which stage it is, its coefficients, and where
 * the result goes. Record 0, the plain gradient, is the workspace's own; these go at 1, 2, ….
 */
import { StageMode, StageOptimizer } from '../../kernels/layer-matmul.js';
import type { OptimizerConfig } from '../optim.js';
import type { Tableau } from '../tableaux.js';
import type { StageRecord } from '../../kernels/structs.js';
import { stagesPerStep } from './options.js';
import type { SolvePlan } from './plan.js';

/**
 * The records a plan's loop indexes: free-running, every stage of every step; controlled, stages 1..s and
 * Hairer's two probes; discrete, one optimiser update per step.
 */
export function stageRecords(plan: SolvePlan): StageRecord[] {
  switch (plan.loop) {
    case 'free-running':
      return plan.sizes.flatMap((dt) => freeRunningStep(plan.tableau, dt));
    case 'controlled':
      return controlledStep(plan.tableau, plan.pid?.rtol ?? 0, plan.pid?.atol ?? 0, plan.pid !== null);
    case 'discrete':
      return discreteSteps(plan.optimizer, plan.steps);
  }
}

/** Records of one fixed-size step: stages up to the last that matters, the last updating y in place. */
function freeRunningStep(tableau: Tableau, dt: number): StageRecord[] {
  const stages = stagesPerStep(tableau);
  const base = { dt, rtol: 0, atol: 0, ecoef: [] as number[] };
  return Array.from({ length: stages }, (_, j) => {
    const i = j + 1;
    return i < stages
      ? { ...base, mode: StageMode.STAGE, index: i, coef: tableau.a[i - 1]!, candidate: 'probe' as const }
      : { ...base, mode: StageMode.FINAL, index: i, coef: tableau.b.slice(0, stages), candidate: 'in-place' as const };
  });
}

/** Records of a controlled step: every stage, then Hairer's two probes. The candidate goes to the probe's slot. */
function controlledStep(tableau: Tableau, rtol: number, atol: number, withError: boolean): StageRecord[] {
  const base = { dt: 0, rtol, atol, candidate: 'probe' as const };
  const { stages } = tableau;
  const e = withError && tableau.e ? tableau.e : [];
  const records: StageRecord[] = [];
  for (let i = 1; i <= stages; i++) {
    if (i < stages) records.push({ ...base, mode: StageMode.STAGE, index: i, coef: tableau.a[i - 1]!, ecoef: [] });
    else if (tableau.fsal) records.push({ ...base, mode: StageMode.FINAL_FSAL, index: i, coef: [], ecoef: e });
    else records.push({ ...base, mode: StageMode.FINAL, index: i, coef: tableau.b, ecoef: e });
  }
  records.push({ ...base, mode: StageMode.HAIRER1, index: 1, coef: [], ecoef: [] });
  records.push({ ...base, mode: StageMode.HAIRER2, index: 2, coef: [], ecoef: [] });
  return records;
}

/** Records of `steps` optimiser updates (optax semantics: Adam's bias corrections use the update count). */
function discreteSteps(optimizer: Readonly<OptimizerConfig>, steps: number): StageRecord[] {
  const kind =
    optimizer.kind === 'adam'
      ? StageOptimizer.ADAM
      : optimizer.momentum === undefined
        ? StageOptimizer.SGD
        : StageOptimizer.MOMENTUM;
  return Array.from({ length: steps }, (_, n) => {
    const count = n + 1;
    const coef =
      optimizer.kind === 'adam'
        ? [
            optimizer.lr,
            optimizer.b1,
            optimizer.b2,
            optimizer.eps,
            optimizer.epsRoot,
            1 - optimizer.b1 ** count,
            1 - optimizer.b2 ** count,
            0,
          ]
        : [optimizer.lr, optimizer.momentum ?? 0, 0, 0, 0, 1, 1, optimizer.nesterov ? 1 : 0];
    return {
      mode: StageMode.OPTIM,
      index: 1,
      coef,
      ecoef: [],
      dt: 0,
      rtol: 0,
      atol: 0,
      candidate: 'in-place',
      opt: kind,
    };
  });
}
