/**
 * `wpc train`: trains a discriminative (image → label) or generative (label → image) PC network on MNIST or
 * Fashion-MNIST, with test points, checkpoints (and --resume), the divergence guard's report, and the outputs.
 */
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadDataset } from '../data/node.js';
import { batches, epochBatchCount, type Dataset } from '../data/dataset.js';
import { WpcDivergenceError } from '../runtime/errors.js';
import { SleepEstimator, type Runtime } from '../runtime/runtime.js';
import type { Tensor } from '../runtime/tensor.js';
import { makeMlp, type Model } from '../pc/model.js';
import { type OptState, adam } from '../pc/optim.js';
import { makePcStep } from '../pc/train.js';
import { testGenerativePc } from '../pc/evaluate.js';
import { loadCheckpoint, saveCheckpoint, saveModel } from '../io/node-files.js';
import { writeAtomically } from '../util/atomic-write.js';
import { checkSolveFits, resolveSolverOptions, type SolverOptions } from '../pc/solver.js';
import { checkWorkspaceFits, type Loss } from '../pc/workspace.js';
import { UsageError, checkOutputFile, checkOutputFolder } from './checks.js';
import { testSetMetrics } from './studies/test-set.js';
import { adapterLabel, DATASET_SHAPES, checkNetworkFits, trainRuntime } from './device.js';
import { Progress } from './progress.js';
import { type TrainConfig, trainSolver } from './train-options.js';
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
    ...Array<number>(config.hidden).fill(config.width),
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

/** --out, --save, --samples and --checkpoint: checked before anything runs (the model is lost if a save fails at the end). */
async function checkTrainTargets(config: TrainConfig): Promise<void> {
  if (config.out !== undefined) await checkOutputFile('--out', config.out);
  if (config.save !== undefined) await checkOutputFile('--save', config.save);
  if (config.samples !== undefined) await checkOutputFile('--samples', config.samples);
  if (config.checkpoint !== undefined)
    await checkOutputFolder('--checkpoint', config.checkpoint, 'parent', ['checkpoint.safetensors']);
}

/** Test-set loss and accuracy over every test example. */
function evaluate(model: Model, test: Dataset, loss: Loss): Promise<{ loss: number; accuracy: number }> {
  return testSetMetrics(model, test, { loss });
}

/**
 * A generator's test accuracy (JPC's test_generative_pc, averaged over test batches of the training batch size,
 * dropping the last partial one as JPC's loaders do): the label inferred from each image with the image clamped.
 */
async function evaluateGenerative(
  model: Model,
  test: Dataset,
  config: TrainConfig,
): Promise<{ loss: number; accuracy: number }> {
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

export async function train(config: TrainConfig): Promise<void> {
  const started = performance.now();
  await checkTrainTargets(config);
  let rt: Runtime | undefined;
  try {
    rt = await trainRuntime(config.tiles);
    checkTrainSizes(rt, config, DATASET_SHAPES[config.dataset]);
    const [trainSet, testSet] = await Promise.all([
      loadDataset(config.dataset, 'train', config.dataDir === undefined ? {} : { dataDir: config.dataDir }),
      loadDataset(config.dataset, 'test', config.dataDir === undefined ? {} : { dataDir: config.dataDir }),
    ]);
    if (config.batch > trainSet.count)
      throw new UsageError(`--batch ${config.batch} is larger than the training set (${trainSet.count})`);
    const adapter = adapterLabel(rt);
    const generative = config.task === 'generative';
    const checkpointFile =
      config.checkpoint === undefined ? undefined : join(config.checkpoint, 'checkpoint.safetensors');
    // The settings a resumed run must share with the run it continues (outputs and the data folder may differ).
    // The divergence factor may differ too: it changes nothing in a run that does not diverge.
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
      ...identity
    } = config;
    let optim = adam({ lr: config.lr });
    let model: Model;
    let optState: OptState;
    let startStep = 0;
    const curve: { step: number; loss: number; inferenceSteps: number; rejected: number }[] = [];
    const tests: { step: number; loss: number; accuracy: number }[] = [];
    if (config.resume) {
      try {
        await access(checkpointFile!);
      } catch {
        throw new UsageError(`--resume: there is no checkpoint to resume from (${checkpointFile} does not exist)`);
      }
      const restored = await loadCheckpoint(rt, checkpointFile!);
      const saved = (restored.extra.settings ?? {}) as Record<string, unknown>;
      const differs = Object.keys({ ...saved, ...identity }).find(
        (k) => JSON.stringify(saved[k]) !== JSON.stringify((identity as Record<string, unknown>)[k]),
      );
      if (differs !== undefined || !restored.optim || !restored.optState) {
        restored.model.dispose();
        restored.optState?.dispose();
        throw new UsageError(
          differs === undefined
            ? `--resume: ${checkpointFile} holds no optimiser state (not written by wpc train)`
            : `--resume: ${checkpointFile} was written with ${differs} = ${JSON.stringify(saved[differs])}, this run has ${JSON.stringify((identity as Record<string, unknown>)[differs])}; resume with the same settings`,
        );
      }
      model = restored.model;
      optim = restored.optim;
      optState = restored.optState;
      startStep = restored.step;
      curve.push(...((restored.extra.curve ?? []) as typeof curve));
      tests.push(...((restored.extra.tests ?? []) as typeof tests));
    } else {
      model = makeMlp(rt, {
        seed: config.seed,
        inputDim: generative ? trainSet.numClasses : trainSet.inputDim,
        width: config.width,
        depth: config.hidden + 1,
        outputDim: generative ? trainSet.inputDim : trainSet.numClasses,
        actFn: config.act,
        useBias: config.bias,
      });
      optState = optim.init(model);
    }
    if (config.checkpoint !== undefined) await mkdir(config.checkpoint, { recursive: true });
    const test = () =>
      generative ? evaluateGenerative(model, testSet, config) : evaluate(model, testSet, config.loss);
    const solver: SolverOptions & { divergenceThreshold: false | { factor: number } } = {
      ...trainSolver(config),
      divergenceThreshold: config.divergenceFactor === null ? false : { factor: config.divergenceFactor },
    };
    const perEpoch = Math.min(epochBatchCount(trainSet.count, config.batch), config.maxBatches ?? Infinity);
    const total = perEpoch * config.epochs;
    const progress = new Progress(total, config.quiet);
    progress.log(
      `wpc train: ${config.dataset}${generative ? ' (generative: label -> image)' : ''}, ${config.hidden} hidden x ${config.width} ${config.act}, ` +
        (config.solver === 'sgd' || config.solver === 'adam'
          ? `${config.solver} inference (${config.steps ?? config.hidden + 1} steps, lr ${config.activityLr})`
          : `${config.solver}/${config.controller}, T=${config.maxT1}, dt=${config.dt ?? 'auto'}${config.steadyState ? `, steady state ${config.steadyState}` : ''}`) +
        `, batch ${config.batch}, ${total} steps, on ${adapter}` +
        (startStep > 0 ? ` (resumed at step ${startStep} from ${checkpointFile})` : ''),
    );
    // Losses are read in groups (one readback per LOSS_READ_EVERY steps), sleeping first for the estimated GPU
    // time: a map pending in Dawn busy-polls the JS thread, which would take a core from a software adapter.
    const LOSS_READ_EVERY = 10;
    const unread: { step: number; loss: Tensor; inferenceSteps: number; rejected: number }[] = [];
    const estimator = new SleepEstimator();
    let since = performance.now();
    let smoothed: number | undefined;
    for (const c of curve) smoothed = smoothed === undefined ? c.loss : 0.9 * smoothed + 0.1 * c.loss;
    const flush = async () => {
      if (unread.length === 0) return;
      // The divergence flag (makePcStep's guard) is read with the losses: no extra readback.
      const pending = rt!.readLater([
        ...unread.map((u) => ({ buffer: u.loss.buffer, byteOffset: u.loss.byteOffset, byteLength: 4 })),
        optState.controlRange,
      ]);
      const values = await pending.wait({ expectedMs: estimator.sleepFor(unread.length, performance.now() - since) });
      estimator.update(unread.length, performance.now() - since, pending.mapMs);
      const diverged = optState.noteControl(values.at(-1)!);
      if (diverged) {
        for (const u of unread) u.loss.dispose();
        unread.length = 0;
        progress.end();
        throw new WpcDivergenceError(
          `${WpcDivergenceError.describe(diverged.step, diverged.what, diverged.layer, diverged)}. ${await divergenceAftermath(diverged)}`,
          diverged.step,
          diverged.what,
          diverged.layer,
          diverged,
        );
      }
      unread.forEach((u, i) => {
        const v = values[i]![0]!;
        curve.push({ step: u.step, loss: v, inferenceSteps: u.inferenceSteps, rejected: u.rejected });
        smoothed = smoothed === undefined ? v : 0.9 * smoothed + 0.1 * v;
        u.loss.dispose();
      });
      unread.length = 0;
      since = performance.now();
    };
    let lastCheckpoint: number | undefined = config.resume ? startStep : undefined;
    // What a divergence leaves behind, and what to do: the checkpoint (never one of a diverged state: every
    // write follows a flush that found none), and no outputs (a run that stops writes no --save/--samples/--out).
    const divergenceAftermath = async (d: WpcDivergenceError): Promise<string> => {
      let kept: string;
      if (checkpointFile === undefined) kept = 'No checkpoint was kept (--checkpoint DIR keeps one).';
      else if (lastCheckpoint === undefined) {
        const earlier = await access(checkpointFile).then(
          () => true,
          () => false,
        );
        kept =
          `This run had written no checkpoint yet (the first was due at step ${Math.min(config.checkpointEvery, total)}); ` +
          (earlier ? `${checkpointFile} is left as it was, from an earlier run.` : `${checkpointFile} does not exist.`);
      } else if (config.resume && lastCheckpoint === startStep) {
        kept = `The checkpoint this run resumed from, ${checkpointFile} (step ${lastCheckpoint}), is kept as it was.`;
      } else
        kept = `The last checkpoint, ${checkpointFile} (step ${lastCheckpoint}), holds the model from before it and is kept.`;
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
            (lastCheckpoint === undefined ? '.' : ' (a --resume may change it).')
          : '.');
      return `${kept}${outputs} ${advice}`;
    };
    const writeCheckpoint = async () => {
      await flush(); // throws on divergence, before a diverged state could be written
      await saveCheckpoint(checkpointFile!, model, {
        optim,
        optState,
        step,
        extra: { settings: identity, curve, tests },
      });
      lastCheckpoint = step;
      since = performance.now();
    };
    let step = startStep;
    for (let epoch = Math.floor(startStep / perEpoch); epoch < config.epochs; epoch++) {
      // A resumed run replays the epoch's shuffle (seeded by epoch) and skips the batches already trained on.
      const done = epoch === Math.floor(startStep / perEpoch) ? startStep % perEpoch : 0;
      let inEpoch = 0;
      for (const batch of batches(trainSet, {
        batchSize: config.batch,
        shuffle: true,
        seed: config.seed * 1000 + epoch,
      })) {
        if (inEpoch >= perEpoch) break;
        if (inEpoch++ < done) continue;
        const r = generative
          ? await makePcStep(model, optim, optState, batch.x, { input: batch.y, ...solver })
          : await makePcStep(model, optim, optState, batch.y, { input: batch.x, loss: config.loss, ...solver });
        step++;
        r.energies.dispose();
        unread.push({
          step,
          loss: r.loss!,
          inferenceSteps: r.steps.accepted + r.steps.rejected,
          rejected: r.steps.rejected,
        });
        const testNow = config.testEvery > 0 && step % config.testEvery === 0 && step < total;
        if (unread.length >= LOSS_READ_EVERY || testNow) await flush();
        progress.update(step, smoothed);
        if (testNow) {
          const t = await test();
          tests.push({ step, ...t });
          progress.log(
            `step ${step}: test accuracy ${t.accuracy.toFixed(2)}%${generative ? ' (inferred labels)' : `  (test loss ${t.loss.toFixed(4)})`}`,
          );
          since = performance.now();
        }
        if (checkpointFile && step % config.checkpointEvery === 0) await writeCheckpoint();
      }
    }
    await flush();
    if (checkpointFile && (step % config.checkpointEvery !== 0 || step === startStep)) await writeCheckpoint();
    progress.update(step, smoothed);
    progress.end();
    const final = await test();
    tests.push({ step, ...final });
    const seconds = (performance.now() - started) / 1000;
    const tested =
      generative && config.testBatches !== undefined
        ? `${Math.min(config.testBatches, Math.floor(testSet.count / config.batch)) * config.batch}`
        : `${testSet.count}`;
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
      await saveModel(model, config.save, {
        task: config.task,
        dataset: config.dataset,
        steps: step,
        testAccuracy: summary.testAccuracy,
      });
      progress.log(`saved the model to ${config.save}`);
    }
    if (config.samples) {
      await writeSamples(
        model,
        config.samples,
        Array.from({ length: trainSet.numClasses }, (_, i) => i),
        1,
        3,
        'mnist',
      );
      progress.log(`wrote generated digits to ${config.samples}`);
    }
    if (config.out) {
      const settings = { ...identity, dataDir: config.dataDir, divergenceFactor: config.divergenceFactor };
      await writeAtomically(
        config.out,
        `${JSON.stringify({ command: 'train', settings, adapter, summary, tests, curve: { step: curve.map((c) => c.step), loss: curve.map((c) => c.loss), inferenceSteps: curve.map((c) => c.inferenceSteps), rejected: curve.map((c) => c.rejected) } }, null, 1)}\n`,
      );
    }
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    model.dispose();
    optState.dispose();
  } finally {
    rt?.dispose();
  }
}
