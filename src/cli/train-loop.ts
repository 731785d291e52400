/**
 * `wpc train`'s step loop: the epochs and batches from the step a run starts at (a resumed run replays each
 * epoch's shuffle and skips the batches already trained on), the losses read back in groups with the divergence
 * guard's flag, the test points, the checkpoints, and what a divergence leaves behind.
 */
import { access } from 'node:fs/promises';
import { type Batch, batches, type Dataset } from '../data/dataset.js';
import { WpcDivergenceError } from '../runtime/errors.js';
import { SleepEstimator } from '../runtime/polling.js';
import type { Runtime } from '../runtime/runtime.js';
import type { Tensor } from '../runtime/tensor.js';
import type { Model } from '../pc/model.js';
import type { OptState, Optimizer } from '../pc/optim.js';
import { makePcStep } from '../pc/train.js';
import type { SolverOptions } from '../pc/solve/index.js';
import { saveCheckpoint } from '../io/node-files.js';
import type { Progress } from './progress.js';
import { type TrainConfig, trainSolver } from './train-options.js';

/** One training step's entry in the loss curve. */
export interface CurvePoint {
  step: number;
  loss: number;
  inferenceSteps: number;
  rejected: number;
}

/** A test of the model after `step` training steps. */
export interface TestPoint {
  step: number;
  loss: number;
  accuracy: number;
}

/** A training run's model and optimiser, where it starts, and what it has recorded (restored on --resume). */
export interface TrainingRun {
  readonly model: Model;
  readonly optim: Optimizer;
  readonly optState: OptState;
  /** 0, or the step of the checkpoint a resumed run continues. */
  readonly startStep: number;
  readonly curve: CurvePoint[];
  readonly tests: TestPoint[];
}

/** What the loop works with besides the run. */
interface LoopSetup {
  readonly config: TrainConfig;
  readonly trainSet: Dataset;
  /** Training steps per epoch, and in the whole run. */
  readonly perEpoch: number;
  readonly total: number;
  /** DIR/checkpoint.safetensors of --checkpoint DIR. */
  readonly checkpointFile: string | undefined;
  /** The settings a checkpoint records, which a resumed run must share. */
  readonly settings: Readonly<Record<string, unknown>>;
  readonly progress: Progress;
  /** The model's test-set accuracy (and loss) now. */
  readonly test: () => Promise<{ loss: number; accuracy: number }>;
}

/** Steps whose losses are read back together. */
const LOSS_READ_EVERY = 10;

/**
 * The step losses, read in groups (one readback per LOSS_READ_EVERY steps) together with the divergence guard's
 * flag, sleeping first for the estimated GPU time: a map pending in Dawn busy-polls the JS thread, which would
 * take a core from a software adapter.
 */
class LossReader {
  private readonly unread: { step: number; loss: Tensor; inferenceSteps: number; rejected: number }[] = [];
  private readonly estimator = new SleepEstimator();
  private since = performance.now();
  /** The loss curve's exponential average, shown by the progress line. */
  smoothed: number | undefined;

  constructor(
    private readonly rt: Runtime,
    private readonly optState: OptState,
    private readonly curve: CurvePoint[],
  ) {
    for (const c of curve) this.smoothed = this.smoothed === undefined ? c.loss : 0.9 * this.smoothed + 0.1 * c.loss;
  }

  get pending(): number {
    return this.unread.length;
  }

  push(point: { step: number; loss: Tensor; inferenceSteps: number; rejected: number }): void {
    this.unread.push(point);
  }

  /** Time spent on other work (a test, a checkpoint) is not GPU time of the steps read next. */
  restartClock(): void {
    this.since = performance.now();
  }

  /** Reads the unread losses into the curve; the guard's verdict when a step diverged (nothing then joins it). */
  async read(): Promise<WpcDivergenceError | null> {
    const unread = this.unread;
    if (unread.length === 0) return null;
    const pending = this.rt.readLater([
      ...unread.map((u) => ({ buffer: u.loss.buffer, byteOffset: u.loss.byteOffset, byteLength: 4 })),
      this.optState.controlRange,
    ]);
    const values = await pending.wait({
      expectedMs: this.estimator.sleepFor(unread.length, performance.now() - this.since),
    });
    this.estimator.update(unread.length, performance.now() - this.since, pending.mapMs);
    const diverged = this.optState.noteControl(values.at(-1)!);
    if (diverged) {
      for (const u of unread) u.loss.dispose();
      unread.length = 0;
      return diverged;
    }
    unread.forEach((u, i) => {
      const v = values[i]![0]!;
      this.curve.push({ step: u.step, loss: v, inferenceSteps: u.inferenceSteps, rejected: u.rejected });
      this.smoothed = this.smoothed === undefined ? v : 0.9 * this.smoothed + 0.1 * v;
      u.loss.dispose();
    });
    unread.length = 0;
    this.since = performance.now();
    return null;
  }
}

/** Trains a run from its start to the end of its last epoch, testing and checkpointing on the way. */
export class TrainingLoop {
  private readonly losses: LossReader;
  private readonly solver: SolverOptions & { divergenceThreshold: false | { factor: number } };
  private step: number;
  /** The step of the checkpoint on disk that this run wrote or resumed from. */
  private lastCheckpoint: number | undefined;

  constructor(
    rt: Runtime,
    private readonly run: TrainingRun,
    private readonly s: LoopSetup,
  ) {
    this.losses = new LossReader(rt, run.optState, run.curve);
    const factor = s.config.divergenceFactor;
    this.solver = { ...trainSolver(s.config), divergenceThreshold: factor === null ? false : { factor } };
    this.step = run.startStep;
    this.lastCheckpoint = s.config.resume ? run.startStep : undefined;
  }

  /** Runs every step; returns the last one. Throws a WpcDivergenceError that says what to do when one diverges. */
  async train(): Promise<number> {
    const { config, trainSet, perEpoch, checkpointFile, progress } = this.s;
    const first = Math.floor(this.run.startStep / perEpoch);
    for (let epoch = first; epoch < config.epochs; epoch++) {
      // A resumed run replays the epoch's shuffle (seeded by epoch) and skips the batches already trained on.
      const done = epoch === first ? this.run.startStep % perEpoch : 0;
      let inEpoch = 0;
      for (const batch of batches(trainSet, {
        batchSize: config.batch,
        shuffle: true,
        seed: config.seed * 1000 + epoch,
      })) {
        if (inEpoch >= perEpoch) break;
        if (inEpoch++ < done) continue;
        await this.trainStep(batch);
      }
    }
    await this.readLosses();
    if (checkpointFile && (this.step % config.checkpointEvery !== 0 || this.step === this.run.startStep))
      await this.writeCheckpoint();
    progress.update(this.step, this.losses.smoothed);
    progress.end();
    return this.step;
  }

  /** One makePcStep on `batch`, then the test point and checkpoint that fall on it. */
  private async trainStep(batch: Batch): Promise<void> {
    const { config, total, checkpointFile, progress } = this.s;
    const { model, optim, optState } = this.run;
    const r =
      config.task === 'generative'
        ? await makePcStep(model, optim, optState, batch.x, { input: batch.y, ...this.solver })
        : await makePcStep(model, optim, optState, batch.y, { input: batch.x, loss: config.loss, ...this.solver });
    const step = ++this.step;
    r.energies.dispose();
    this.losses.push({
      step,
      loss: r.loss!,
      inferenceSteps: r.steps.accepted + r.steps.rejected,
      rejected: r.steps.rejected,
    });
    const testNow = config.testEvery > 0 && step % config.testEvery === 0 && step < total;
    if (this.losses.pending >= LOSS_READ_EVERY || testNow) await this.readLosses();
    progress.update(step, this.losses.smoothed);
    if (testNow) {
      const t = await this.s.test();
      this.run.tests.push({ step, ...t });
      progress.log(
        `step ${step}: test accuracy ${t.accuracy.toFixed(2)}%${config.task === 'generative' ? ' (inferred labels)' : `  (test loss ${t.loss.toFixed(4)})`}`,
      );
      this.losses.restartClock();
    }
    if (checkpointFile && step % config.checkpointEvery === 0) await this.writeCheckpoint();
  }

  /** Reads the pending losses; a divergence ends the run here, with the error that says what to do. */
  private async readLosses(): Promise<void> {
    const d = await this.losses.read();
    if (!d) return;
    this.s.progress.end();
    throw new WpcDivergenceError(
      `${WpcDivergenceError.describe(d.step, d.what, d.layer, d)}. ${await this.divergenceAftermath(d)}`,
      d.step,
      d.what,
      d.layer,
      d,
    );
  }

  /** The checkpoint of the current step; never one of a diverged state (the losses are read first). */
  private async writeCheckpoint(): Promise<void> {
    await this.readLosses();
    const { model, optim, optState, curve, tests } = this.run;
    await saveCheckpoint(this.s.checkpointFile!, model, {
      optim,
      optState,
      step: this.step,
      extra: { settings: this.s.settings, curve, tests },
    });
    this.lastCheckpoint = this.step;
    this.losses.restartClock();
  }

  /**
   * What a divergence leaves behind, and what to do: the checkpoint (never one of a diverged state: every write
   * follows a read that found none), and no outputs (a run that stops writes no --save/--samples/--out).
   */
  private async divergenceAftermath(d: WpcDivergenceError): Promise<string> {
    const { config, checkpointFile, total } = this.s;
    const last = this.lastCheckpoint;
    let kept: string;
    if (checkpointFile === undefined) kept = 'No checkpoint was kept (--checkpoint DIR keeps one).';
    else if (last === undefined) {
      const earlier = await access(checkpointFile).then(
        () => true,
        () => false,
      );
      kept =
        `This run had written no checkpoint yet (the first was due at step ${Math.min(config.checkpointEvery, total)}); ` +
        (earlier ? `${checkpointFile} is left as it was, from an earlier run.` : `${checkpointFile} does not exist.`);
    } else if (config.resume && last === this.run.startStep) {
      kept = `The checkpoint this run resumed from, ${checkpointFile} (step ${last}), is kept as it was.`;
    } else kept = `The last checkpoint, ${checkpointFile} (step ${last}), holds the model from before it and is kept.`;
    const unwritten = (
      [
        ['--save', config.save],
        ['--samples', config.samples],
        ['--out', config.out],
      ] as const
    ).filter(([, v]) => v !== undefined);
    const outputs =
      unwritten.length > 0 ? ` Not written: ${unwritten.map(([flag, v]) => `${flag} ${v}`).join(', ')}.` : '';
    const runaway = d.what === 'energy-runaway' || d.what === 'loss-runaway';
    const stepSize = config.solver === 'sgd' || config.solver === 'adam' ? '--activity-lr' : '--dt';
    const advice =
      `Lower --lr (now ${config.lr}) or ${stepSize} and train again` +
      (runaway
        ? `; if the run was healthy, raise --divergence-factor (now ${config.divergenceFactor}) or turn the check off with --divergence-factor off` +
          (last === undefined ? '.' : ' (a --resume may change it).')
        : '.');
    return `${kept}${outputs} ${advice}`;
  }
}
