/**
 * `wpc train`: trains a discriminative (image → label) or generative (label → image) PC network on MNIST,
 * Fashion-MNIST or CIFAR-10 (the flags: train-options.ts; the step loop: train-loop.ts), then tests it and writes
 * the outputs (--save, --samples, --out) and the JSON summary line.
 */
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadDataset } from '../data/node.js';
import { batches, epochBatchCount, type Dataset } from '../data/dataset.js';
import type { Runtime } from '../runtime/runtime.js';
import { makeMlp, type Model } from '../pc/model.js';
import { adam } from '../pc/optim.js';
import { testGenerativePc } from '../pc/evaluate.js';
import { loadCheckpoint, saveModel } from '../io/node-files.js';
import { writeAtomically } from '../util/atomic-write.js';
import { checkSolveFits, resolveSolverOptions } from '../pc/solve/index.js';
import { checkWorkspaceFits } from '../pc/workspace.js';
import { UsageError, checkOutputFile, checkOutputFolder } from './checks.js';
import { testSetMetrics } from './studies/test-set.js';
import { adapterLabel, DATASET_SHAPES, checkNetworkFits, openRuntime } from './device.js';
import { Progress } from './progress.js';
import { type TrainConfig, trainDepth, trainSolver } from './train-options.js';
import { checkArchFits, makeArchModel } from './train-model.js';
import { formatArch } from './arch.js';
import { type CurvePoint, type TestPoint, TrainingLoop, type TrainingRun } from './train-loop.js';
import { writeSamples } from './sample.js';

/**
 * Refuses, before anything is allocated, a network or batch the device cannot hold, naming the flags: the
 * parameters and Adam's moments (one storage buffer each), the training workspace of a --batch, and for a
 * generator the test solve's and --samples' workspaces. `shape` is the dataset's, known before it is loaded.
 */
function checkTrainSizes(rt: Runtime, config: TrainConfig, shape: { inputDim: number; numClasses: number }): void {
  const generative = config.task === 'generative';
  const dims = [
    generative ? shape.numClasses : shape.inputDim,
    ...Array<number>(config.hidden!).fill(config.width!),
    generative ? shape.inputDim : shape.numClasses,
  ];
  checkNetworkFits(
    'wpc train',
    rt,
    dims,
    config.bias,
    `--width ${config.width} with --hidden ${config.hidden}`,
    config.batch,
    resolveSolverOptions('wpc train', trainSolver(config)),
  );
  if (generative) {
    checkSolveFits(
      'wpc train',
      { runtime: rt, dims },
      config.batch,
      'unsupervised',
      resolveSolverOptions('wpc train', { maxT1: config.testMaxT1 }),
      `--batch ${config.batch}`,
    );
    if (config.samples !== undefined)
      checkWorkspaceFits(`--samples (${shape.numClasses} images)`, rt, dims, shape.numClasses, 'train', 'supervised', {
        stages: 2,
        gridSteps: 1,
      });
  }
}

/** --out, --save, --samples and --checkpoint, checked before the run: a save that fails at the end loses the model. */
async function checkTrainTargets(config: TrainConfig): Promise<void> {
  if (config.out !== undefined) await checkOutputFile('--out', config.out);
  if (config.save !== undefined) await checkOutputFile('--save', config.save);
  if (config.samples !== undefined) await checkOutputFile('--samples', config.samples);
  if (config.checkpoint !== undefined)
    await checkOutputFolder('--checkpoint', config.checkpoint, 'parent', ['checkpoint.safetensors']);
}

/**
 * The model's test-set accuracy: for a classifier also its loss, over every test example; for a generator (JPC's
 * test_generative_pc) the label inferred from each image with the image clamped, averaged over test batches of
 * the training batch size, dropping the last partial one as JPC's loaders do (loss: NaN).
 */
async function testModel(
  model: Model,
  test: Dataset,
  config: TrainConfig,
): Promise<{ loss: number; accuracy: number }> {
  if (config.task === 'discriminative') return testSetMetrics(model, test, { loss: config.loss });
  let accSum = 0;
  let count = 0;
  for (const batch of batches(test, { batchSize: config.batch, shuffle: false })) {
    if (config.testBatches !== undefined && count >= config.testBatches) break;
    const r = await testGenerativePc(model, batch.x, batch.y, {
      seed: config.seed * 7919 + count,
      maxT1: config.testMaxT1,
    });
    r.preds.dispose();
    accSum += r.acc;
    count++;
  }
  return { loss: NaN, accuracy: accSum / Math.max(1, count) };
}

/**
 * The settings a resumed run must share with the run it continues, as its checkpoint records them: outputs and
 * the data folder may differ, and so may the divergence factor (it changes nothing in a run that does not diverge).
 */
function runSettings(config: TrainConfig): Record<string, unknown> {
  const {
    out: _out,
    quiet: _quiet,
    save: _save,
    samples: _samples,
    checkpoint: _dir,
    checkpointEvery: _every,
    resume: _resume,
    dataDir: _data,
    divergenceFactor: _factor,
    ...settings
  } = config;
  // --arch keeps its layers (not how they were written), so a resumed run may spell them differently.
  return { ...settings, arch: config.arch?.layers };
}

/** A new run: the network of `config` (seeded: --hidden/--width or --arch) and a fresh Adam state. */
function newRun(rt: Runtime, config: TrainConfig, trainSet: Dataset): TrainingRun {
  const generative = config.task === 'generative';
  const model = config.arch
    ? makeArchModel(rt, config, config.arch, trainSet)
    : makeMlp(rt, {
        seed: config.seed,
        inputDim: generative ? trainSet.numClasses : trainSet.inputDim,
        width: config.width!,
        depth: config.hidden! + 1,
        outputDim: generative ? trainSet.inputDim : trainSet.numClasses,
        actFn: config.act,
        useBias: config.bias,
      });
  const optim = adam({ lr: config.lr });
  return { model, optim, optState: optim.init(model), startStep: 0, curve: [], tests: [] };
}

/** The run saved in `file`, refused (a usage error) unless it was written by wpc train with the same `settings`. */
async function resumeRun(rt: Runtime, file: string, settings: Record<string, unknown>): Promise<TrainingRun> {
  try {
    await access(file);
  } catch {
    throw new UsageError(`--resume: there is no checkpoint to resume from (${file} does not exist)`);
  }
  const restored = await loadCheckpoint(rt, file);
  const saved = (restored.extra.settings ?? {}) as Record<string, unknown>;
  const differs = Object.keys({ ...saved, ...settings }).find(
    (k) => JSON.stringify(saved[k]) !== JSON.stringify(settings[k]),
  );
  if (differs !== undefined || !restored.optim || !restored.optState) {
    restored.model.dispose();
    restored.optState?.dispose();
    throw new UsageError(
      differs === undefined
        ? `--resume: ${file} holds no optimiser state (not written by wpc train)`
        : `--resume: ${file} was written with ${differs} = ${JSON.stringify(saved[differs])}, this run has ${JSON.stringify(settings[differs])}; resume with the same settings`,
    );
  }
  return {
    model: restored.model,
    optim: restored.optim,
    optState: restored.optState,
    startStep: restored.step,
    curve: [...((restored.extra.curve ?? []) as CurvePoint[])],
    tests: [...((restored.extra.tests ?? []) as TestPoint[])],
  };
}

/** The first progress line: the run's network, solver, length and adapter. */
function runBanner(config: TrainConfig, total: number, adapter: string, startStep: number, file?: string): string {
  return (
    `wpc train: ${config.dataset}${config.task === 'generative' ? ' (generative: label -> image)' : ''}, ${config.arch ? `--arch "${formatArch(config.arch.layers)}" ${config.act}` : `${config.hidden} hidden x ${config.width} ${config.act}`}, ` +
    (config.solver === 'sgd' || config.solver === 'adam'
      ? `${config.solver} inference (${config.steps ?? trainDepth(config)} steps, lr ${config.activityLr})`
      : `${config.solver}/${config.controller}, T=${config.maxT1}, dt=${config.dt ?? 'auto'}${config.steadyState ? `, steady state ${config.steadyState}` : ''}`) +
    `, batch ${config.batch}, ${total} steps, on ${adapter}` +
    (startStep > 0 ? ` (resumed at step ${startStep} from ${file})` : '')
  );
}

/** Runs `wpc train` with `config`: checks, trains, tests, writes the outputs and the summary line. */
export async function train(config: TrainConfig): Promise<void> {
  const started = performance.now();
  await checkTrainTargets(config);
  let rt: Runtime | undefined;
  try {
    rt = await openRuntime(config.tiles);
    if (!config.arch) checkTrainSizes(rt, config, DATASET_SHAPES[config.dataset]);
    const data = config.dataDir === undefined ? {} : { dataDir: config.dataDir };
    const [trainSet, testSet] = await Promise.all([
      loadDataset(config.dataset, 'train', data),
      loadDataset(config.dataset, 'test', data),
    ]);
    if (config.batch > trainSet.count)
      throw new UsageError(`--batch ${config.batch} is larger than the training set (${trainSet.count})`);
    const adapter = adapterLabel(rt);
    const checkpointFile =
      config.checkpoint === undefined ? undefined : join(config.checkpoint, 'checkpoint.safetensors');
    const settings = runSettings(config);
    const run = config.resume ? await resumeRun(rt, checkpointFile!, settings) : newRun(rt, config, trainSet);
    if (config.arch && config.resume) {
      try {
        checkArchFits(rt, config, run.model, trainSet.numClasses);
      } catch (e) {
        run.model.dispose();
        run.optState.dispose();
        throw e;
      }
    }
    if (config.checkpoint !== undefined) await mkdir(config.checkpoint, { recursive: true });
    const test = () => testModel(run.model, testSet, config);
    const perEpoch = Math.min(epochBatchCount(trainSet.count, config.batch), config.maxBatches ?? Infinity);
    const total = perEpoch * config.epochs;
    const progress = new Progress(total, config.quiet);
    progress.log(runBanner(config, total, adapter, run.startStep, checkpointFile));
    const loop = new TrainingLoop(rt, run, {
      config,
      trainSet,
      perEpoch,
      total,
      checkpointFile,
      settings,
      progress,
      test,
    });
    const step = await loop.train();
    const final = await test();
    run.tests.push({ step, ...final });
    const seconds = (performance.now() - started) / 1000;
    await finish(config, run, {
      step,
      final,
      seconds,
      adapter,
      testCount: testSet.count,
      classes: trainSet.numClasses,
      images: trainSet,
      settings,
      progress,
    });
  } finally {
    rt?.dispose();
  }
}

/** What a finished run reports and writes. */
interface Finished {
  step: number;
  final: { loss: number; accuracy: number };
  seconds: number;
  adapter: string;
  /** Test images and classes in the dataset. */
  testCount: number;
  classes: number;
  /** The dataset's images: how --samples draws them. */
  images: Pick<Dataset, 'shape' | 'channelNormalization'>;
  settings: Record<string, unknown>;
  progress: Progress;
}

/** The end of a run: the final accuracy, --save, --samples and --out, the summary line on stdout. */
async function finish(config: TrainConfig, run: TrainingRun, f: Finished): Promise<void> {
  const generative = config.task === 'generative';
  const { step, final, seconds, adapter, progress } = f;
  const tested =
    generative && config.testBatches !== undefined
      ? `${Math.min(config.testBatches, Math.floor(f.testCount / config.batch)) * config.batch}`
      : `${f.testCount}`;
  progress.log(
    `final test accuracy ${final.accuracy.toFixed(2)}%${generative ? ' (inferred labels)' : ''} over ${tested} test images (${seconds.toFixed(1)} s)`,
  );
  const summary = {
    testAccuracy: Number(final.accuracy.toFixed(4)),
    steps: step,
    seconds: Number(seconds.toFixed(3)),
    ...(generative ? {} : { testLoss: Number(final.loss.toFixed(6)) }),
    task: config.task,
    dataset: config.dataset,
    adapter,
  };
  if (config.save) {
    await saveModel(run.model, config.save, {
      task: config.task,
      dataset: config.dataset,
      steps: step,
      testAccuracy: summary.testAccuracy,
    });
    progress.log(`saved the model to ${config.save}`);
  }
  if (config.samples) {
    const labels = Array.from({ length: f.classes }, (_, i) => i);
    const [channels] = f.images.shape;
    await writeSamples(run.model, config.samples, labels, 1, 3, f.images.channelNormalization);
    progress.log(`wrote generated ${channels === 3 ? 'images' : 'digits'} to ${config.samples}`);
  }
  if (config.out) {
    const settings = { ...f.settings, dataDir: config.dataDir, divergenceFactor: config.divergenceFactor };
    const curve = run.curve;
    const points = {
      step: curve.map((c) => c.step),
      loss: curve.map((c) => c.loss),
      inferenceSteps: curve.map((c) => c.inferenceSteps),
      rejected: curve.map((c) => c.rejected),
    };
    const record = { command: 'train', settings, adapter, summary, tests: run.tests, curve: points };
    await writeAtomically(config.out, `${JSON.stringify(record, null, 1)}\n`);
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  run.model.dispose();
  run.optState.dispose();
}
