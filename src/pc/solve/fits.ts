/**
 * What a solve needs of the device, checked before anything is allocated: the workspace's stage families and
 * constant-step grid, the stage records it uploads, and the recording buffers.
 */
import { bufferLimit, checkFits, storageLimit } from '../../runtime/limits.js';
import type { Model } from '../model.js';
import { UNIFORM_STRIDE } from '../../kernels/structs.js';
import { type Mode, type WorkspaceNeeds, checkWorkspaceFits } from '../workspace.js';
import { constantStepCount, gridSteps } from './grid.js';
import { type ResolvedSolver, stagesPerStep } from './options.js';

/**
 * Stage records a solve uploads (record 0, the plain gradient, included; a fixed-step grid counted at its
 * nominal ⌈t1/dt⌉ steps).
 */
function stageRecordCount(solver: ResolvedSolver): number {
  if (solver.kind === 'discrete') return 1 + solver.steps;
  if (solver.controller === 'constant' && !solver.event)
    return 1 + gridSteps(solver.maxT1, solver.dt!) * stagesPerStep(solver.tableau);
  return 1 + solver.tableau.stages + 2;
}

/**
 * Refuses, before anything is allocated, a solve the device cannot hold: the workspace for batches of `B` rows
 * with the solver's stage families and grid, the stage records, and the recording buffers (maxRecords states of
 * the layer energies, and of every activity with recordActivities). `batchSubject` names what sets B.
 */
export function checkSolveFits(
  fn: string,
  model: Pick<Model, 'runtime' | 'dims'> & { layers?: Model['layers'] },
  B: number,
  mode: Mode,
  solver: ResolvedSolver,
  batchSubject = `${fn}: output (${B} rows)`,
): void {
  const rt = model.runtime;
  checkWorkspaceFits(
    batchSubject,
    rt,
    model.layers ? { dims: model.dims, layers: model.layers } : model.dims,
    B,
    'train',
    mode,
    workspaceNeeds(solver),
  );
  const records = stageRecordCount(solver);
  const what =
    solver.kind === 'discrete'
      ? `options.steps ${solver.steps}`
      : `options.maxT1 / options.dt (${solver.maxT1} / ${solver.dt})`;
  checkFits(
    `${fn}: ${what}`,
    `${records} stage records of ${UNIFORM_STRIDE} bytes`,
    records * UNIFORM_STRIDE,
    bufferLimit(rt.limits),
  );
  const recording = solver.record;
  if (recording) {
    const L = model.dims.length - 1;
    const subject = `${fn}: options.maxRecords ${recording.capacity}`;
    checkFits(
      subject,
      `the layer energies of ${recording.capacity} recorded states`,
      (4 + recording.capacity * L) * 4,
      storageLimit(rt.limits),
      'lower maxRecords',
    );
    if (recording.activities) {
      const first = mode === 'unsupervised' ? 0 : 1;
      const perState = model.dims.slice(first).reduce((s, d) => s + B * d, 0);
      checkFits(
        subject,
        `the activities of ${recording.capacity} recorded states (${perState} floats each)`,
        recording.capacity * perState * 4,
        storageLimit(rt.limits),
        'lower maxRecords or the batch',
      );
    }
  }
}

/** Stage families and grid points a solve needs in its workspace. */
export function workspaceNeeds(solver: ResolvedSolver): WorkspaceNeeds {
  if (solver.kind === 'discrete') return { stages: 2, gridSteps: 1 };
  const gridSteps = solver.controller === 'constant' && solver.event ? constantStepCount(solver.maxT1, solver.dt!) : 1;
  return { stages: solver.tableau.stages, gridSteps };
}
