#!/usr/bin/env node
/**
 * The `wpc` command line: `wpc train` trains a discriminative (image → label) or generative (label → image) PC
 * network on MNIST or Fashion-MNIST, `wpc sample` draws images from a saved generator, `wpc reproduce runtime`
 * runs the JPC paper's runtime study, `wpc data` fetches and finds the datasets (cli-data.ts), `wpc info` shows
 * the WebGPU adapter. Progress goes to stderr; stdout gets one JSON line per command.
 */
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DATASET_NAMES, loadDataset, type DatasetName } from '../data/node.js';
import { batches, epochBatchCount, type Dataset } from '../data/dataset.js';
import { ACTIVATIONS, type Activation } from '../kernels/index.js';
import { init, type InitOptions } from '../node.js';
import { VERSION } from '../runtime/build-info.js';
import { WpcArgumentError, WpcDivergenceError } from '../runtime/errors.js';
import { F32_MAX, groupDigits } from '../runtime/limits.js';
import { initOptionsWithTiles, SleepEstimator, type Runtime } from '../runtime/runtime.js';
import type { Tensor } from '../runtime/tensor.js';
import { MAX_DEPTH, checkParamsFit, makeMlp, type Model } from '../pc/model.js';
import { type OptState, adam, sgd } from '../pc/optim.js';
import { SOLVER_NAMES, TABLEAUX, type SolverName } from '../pc/tableaux.js';
import { DEFAULT_DIVERGENCE_THRESHOLD, makePcStep } from '../pc/train.js';
import { testGenerativePc } from '../pc/evaluate.js';
import { initActivitiesWithFfwd } from '../pc/energy.js';
import { loadCheckpoint, loadModel, saveCheckpoint, saveModel, writeImageGrid } from '../io/node-files.js';
import { writeAtomically } from '../util/atomic-write.js';
import {
  MAX_SOLVE_STEPS,
  checkSolveFits,
  constantStepCount,
  resolveSolverOptions,
  type SolverOptions,
} from '../pc/solver.js';
import { checkWorkspaceFits, type Loss } from '../pc/workspace.js';
import { MAX_GRID_PIXELS, imageGridShape } from '../io/image-grid.js';
import { UsageError, checkOutputFile, checkOutputFolder, errorReport } from './checks.js';
import { dataCommand } from './data.js';
import { THEORY_MAX_T1, runTheoryStudy, theoryCsv, theoryFigureSvg } from './studies/theory-study.js';
import { testSetMetrics } from './studies/test-set.js';
import {
  PAPER_DT,
  PAPER_MAX_T1,
  bestTable,
  figureSvg,
  heunEulerRatios,
  runRuntimeStudy,
  solverOptions,
  studyConfigs,
  toCsv,
  type StudyDataset,
  type StudySolver,
} from './studies/runtime-study.js';

/** Most training steps (epochs × batches per epoch) one run may take: the loss curve keeps one entry per step. */
const MAX_TRAIN_STEPS = 10_000_000;

const TRAIN_HELP = `Usage: wpc train [options]

Trains a predictive-coding MLP (JPC's make_mlp + make_pc_step) on MNIST or Fashion-MNIST and reports the
test accuracy. Progress goes to stderr; the last line on stdout is a JSON summary
{"testAccuracy": <percent>, "steps": <training steps>, "seconds": <wall time>, ...}.

Task
  --task NAME          discriminative: image -> label, tested by a feedforward pass (default);
                       generative: label -> image (JPC's supervised generative PC), tested by inferring the
                       label from each test image with only the image clamped (test_generative_pc)
Data
  --dataset NAME       mnist | fashion-mnist                                   (default mnist)
  --data-dir DIR       folder with NAME/{train,t10k}-*-ubyte.gz (or the files)
                       (default: see the lookup order, 'wpc data path --help')
Model
  --hidden H           hidden layers (depth = H + 1)                            (default 3)
  --width N            units per hidden layer                                   (default 300)
  --act NAME           ${ACTIVATIONS.join(' | ')}   (default tanh)
  --bias               give every layer a bias                                  (default: no bias, as JPC)
  --loss NAME          mse | ce: output energy and reported loss                (default mse)
Inference (the ODE dz/dt = -dF/dz, or discrete optimiser steps)
  --solver NAME        ${SOLVER_NAMES.join(' | ')}
                       (diffrax's Runge-Kutta methods), or sgd | adam for discrete inference (default heun)
  --controller NAME    pid | constant; euler is always constant                 (default pid if the solver has
                                                                                 an error estimate)
  --max-t1 T           integration time                                         (default 20)
  --dt DT              step size (initial step for pid; 'auto' for Hairer's)    (default 0.05)
  --rtol R, --atol A   PID tolerances                                           (default 1e-3, 1e-3)
  --steady-state TOL   stop once rms(dz/dt) < TOL + TOL*rms(z) (diffrax's steady-state event; with JPC's 1/B
                       scaling try 3e-5)                                        (default: integrate to T, as JPC)
  --max-steps N        most attempted steps per solve                           (default 4096)
  --poll-every K       adaptive solves: read the solver state at most every K steps (default 8)
  --steps T            discrete inference (--solver sgd|adam): activity updates (default: depth, as JPC's notebooks)
                       --max-steps, --steps and --poll-every are at most ${groupDigits(MAX_SOLVE_STEPS)}
  --activity-lr LR     discrete inference: the activity optimiser's learning rate (default 0.5)
Training
  --batch B            batch size (the last partial batch is dropped)           (default 64)
  --lr LR              Adam learning rate                                       (default 1e-3)
  --epochs E           passes over the training set; at most ${groupDigits(MAX_TRAIN_STEPS)} training steps in all (default 1)
  --max-batches N      stop each epoch after N batches (a shortened epoch)      (default: all)
  --test-every N       test-set accuracy every N training steps (0: only at the end) (default 100)
  --seed S             seeds the weights and the shuffling                      (default 0)
  --divergence-factor F|off
                       stop when a step's energy or loss exceeds F x the largest of the first 10
                       steps' (and at least 1), rolling back the update that caused it; off: stop
                       only on NaN/Inf. A resumed run may change it                  (default 100)
Kernels
  --tiles JSON         the matmul layout (init's kernels.tiles), e.g. {"wg":64,"tm":4,"tn":4}; with "matrix":"f16"
                       tensor cores where Dawn has subgroup matrices (f16 operands, f32 sums; opt-in)
                                                                                (default: chosen for the adapter)
Testing a generative model
  --test-max-t1 T      inference time of test_generative_pc (Heun + PID)      (default 100, as JPC's notebook)
  --test-batches N     test on the first N batches of the test set           (default: all)
Output
  --out FILE           write the run (config, loss curve, test points) as JSON
  --save FILE          write the trained model as a JSON checkpoint (for wpc sample, or loadModel)
  --checkpoint DIR     keep DIR/checkpoint.safetensors (model, Adam state, step, loss curve), rewritten
                       atomically every --checkpoint-every steps and at the end (loadCheckpoint reads it)
  --checkpoint-every N steps between checkpoints                               (default 100)
  --resume             continue from DIR/checkpoint.safetensors (same settings needed); the run ends
                       where an uninterrupted one ends, bit for bit
  --samples FILE       generative: write a PNG of the images the model generates for each label
                       (the folders of --out, --save, --samples and --checkpoint are checked before training)
  --quiet              no progress on stderr
  --debug              print the stack trace of an error
  -h, --help           this help

Limits: the parameters (and each of Adam's moments) must fit one storage buffer of the device, and so must the
working memory of a batch (about (6 + stages) x batch x the summed widths floats): 'wpc info' shows the device's
maxStorageBufferBindingSize. A size beyond them is refused before anything is allocated (exit 1).

Example (JPC's paper network, one epoch):
  wpc train --dataset mnist --data-dir ../shared/datasets --hidden 3 --width 300 --act tanh \\
            --solver heun --max-t1 20 --dt 0.05 --batch 64 --lr 1e-3 --epochs 1 --test-every 100 --seed 0 --out run.json
Example (JPC's supervised generative notebook: 10 -> 300 -> 300 -> 784, 200 steps, then sample digits):
  wpc train --task generative --data-dir ../shared/datasets --hidden 2 --width 300 --act relu --bias \\
            --max-t1 100 --max-batches 200 --test-every 50 --save gen.json --samples digits.png
`;

const SAMPLE_HELP = `Usage: wpc sample --model FILE --out FILE [options]

Draws images from a generative model saved by 'wpc train --task generative --save FILE' (or saveModel): the
feedforward prediction from each one-hot label, as a PNG grid (JPC's output_preds).

  --model FILE         the checkpoint
  --out FILE           the PNG to write
  --labels LIST        labels to draw, e.g. 0,1,2 (default: every label, 0..inputDim-1)
  --rows N             repeat the labels on N rows                           (default 1)
  --scale S            each pixel becomes S x S                               (default 3)
  --range NAME         mnist: undo the MNIST normalisation (default); per-image: stretch each image
  --debug              print the stack trace of an error
  -h, --help           this help
`;

const MAIN_HELP = `Usage: wpc <command> [options]

Commands
  train              train a PC network on MNIST / Fashion-MNIST (wpc train --help)
  sample             draw images from a saved generative model (wpc sample --help)
  reproduce runtime  the JPC paper's runtime study, Euler vs Heun (wpc reproduce runtime --help)
  reproduce theory   the paper's Figure 2: theoretical vs numerical energy of a deep linear network
                     (wpc reproduce theory --help)
  data download NAME fetch mnist or fashion-mnist from the public mirrors, checksums verified
                     (wpc data download --help)
  data path NAME     print the folder the data lookup order finds NAME in (wpc data path --help)
  info               show the WebGPU adapter WPC gets on this machine

  -v, --version      print the version (${VERSION})
  -h, --help         this help

Every command takes --debug (print the stack trace of an error). Exit codes: 0 success, 2 a usage error (bad
flags, an output folder that does not exist), 1 any other error (missing data, a device limit, a failed run).

WPC ${VERSION} (npm package webgpu-pc) trains predictive-coding networks with WGSL compute shaders (WebGPU
through Dawn in Node).
`;

/** The adapter as the outputs name it, e.g. "llvmpipe: Mesa … (software)". */
function adapterLabel(rt: Runtime): string {
  return `${rt.adapter.description || rt.adapter.device || rt.adapter.vendor || 'unknown'} (${rt.adapter.architecture || 'unknown architecture'})`;
}

function parseNumber(
  flag: string,
  raw: string | undefined,
  fallback: number,
  check: (v: number) => boolean,
  expected: string,
): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || !check(v))
    throw new UsageError(`--${flag} must be ${expected}, got ${JSON.stringify(raw)}`);
  return v;
}

const positiveInt = (v: number) => Number.isSafeInteger(v) && v > 0;
const nonNegativeInt = (v: number) => Number.isSafeInteger(v) && v >= 0;
const positive = (v: number) => v > 0;
/** A positive integer at most `max`, with the expected text for messages. */
const upTo = (max: number): [(v: number) => boolean, string] => [
  (v) => positiveInt(v) && v <= max,
  `an integer in 1..${groupDigits(max)}`,
];

/** The datasets' shapes, known before they are loaded (loadDataset refuses files of any other shape). */
const DATASET_SHAPES: Record<
  DatasetName | 'cifar10-synthetic',
  { inputDim: number; numClasses: number; trainCount: number }
> = {
  mnist: { inputDim: 784, numClasses: 10, trainCount: 60_000 },
  'fashion-mnist': { inputDim: 784, numClasses: 10, trainCount: 60_000 },
  'cifar10-synthetic': { inputDim: 3072, numClasses: 10, trainCount: 60_000 },
};

/** Solver options' names and the flags that set them, for messages about them. */
const SOLVER_FLAGS: [RegExp, string][] = [
  [/options\.stepsizeController\.pid needs rtol > 0 or atol > 0, got both 0/g, '--rtol and --atol cannot both be 0'],
  [/options\.stepsizeController\.pid\.rtol/g, '--rtol'],
  [/options\.stepsizeController\.pid\.atol/g, '--atol'],
  [/options\.steadyState\.(rtol|atol)/g, '--steady-state'],
  [/options\.maxT1/g, '--max-t1'],
  [/options\.dt/g, '--dt'],
  [/options\.maxSteps/g, '--max-steps'],
  [/options\.pollEvery/g, '--poll-every'],
  [/options\.steps/g, '--steps'],
];

/**
 * Runs the library's check of solver options at parse time, reporting a refusal as a usage error that names the
 * flags (`flags` maps option names to them; `prefix` is the library function's name in its messages).
 */
function checkSolverFlags<T>(check: () => T, prefix: string, flags: readonly [RegExp, string][] = SOLVER_FLAGS): T {
  try {
    return check();
  } catch (e) {
    if (!(e instanceof WpcArgumentError)) throw e;
    let message = e.message.startsWith(`${prefix}: `) ? e.message.slice(prefix.length + 2) : e.message;
    for (const [pattern, flag] of flags) message = message.replace(pattern, flag);
    throw new UsageError(message);
  }
}

function oneOf<T extends string>(flag: string, raw: string | undefined, fallback: T, options: readonly T[]): T {
  if (raw === undefined) return fallback;
  if (!(options as readonly string[]).includes(raw)) {
    throw new UsageError(`--${flag} must be one of ${options.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return raw as T;
}

interface TrainConfig {
  task: 'discriminative' | 'generative';
  testMaxT1: number;
  testBatches: number | undefined;
  save: string | undefined;
  samples: string | undefined;
  checkpoint: string | undefined;
  checkpointEvery: number;
  resume: boolean;
  /** The divergence guard's runaway factor (makePcStep's divergenceThreshold.factor); null: off. */
  divergenceFactor: number | null;
  dataset: DatasetName;
  dataDir: string | undefined;
  hidden: number;
  width: number;
  act: Activation;
  bias: boolean;
  loss: Loss;
  solver: SolverName | 'sgd' | 'adam';
  controller: 'pid' | 'constant';
  steadyState: number | undefined;
  steps: number | undefined;
  activityLr: number;
  maxT1: number;
  dt: number | undefined;
  rtol: number;
  atol: number;
  maxSteps: number;
  pollEvery: number;
  batch: number;
  lr: number;
  epochs: number;
  maxBatches: number | undefined;
  testEvery: number;
  seed: number;
  tiles: KernelTiles | undefined;
  out: string | undefined;
  quiet: boolean;
}

function parseTrain(argv: string[]): TrainConfig | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      dataset: { type: 'string' },
      'data-dir': { type: 'string' },
      hidden: { type: 'string' },
      width: { type: 'string' },
      act: { type: 'string' },
      bias: { type: 'boolean' },
      loss: { type: 'string' },
      solver: { type: 'string' },
      controller: { type: 'string' },
      'max-t1': { type: 'string' },
      dt: { type: 'string' },
      rtol: { type: 'string' },
      atol: { type: 'string' },
      'steady-state': { type: 'string' },
      'max-steps': { type: 'string' },
      'poll-every': { type: 'string' },
      steps: { type: 'string' },
      'activity-lr': { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      epochs: { type: 'string' },
      'max-batches': { type: 'string' },
      'test-every': { type: 'string' },
      seed: { type: 'string' },
      tiles: { type: 'string' },
      out: { type: 'string' },
      task: { type: 'string' },
      'test-max-t1': { type: 'string' },
      'test-batches': { type: 'string' },
      save: { type: 'string' },
      samples: { type: 'string' },
      checkpoint: { type: 'string' },
      'checkpoint-every': { type: 'string' },
      resume: { type: 'boolean' },
      'divergence-factor': { type: 'string' },
      quiet: { type: 'boolean' },
      debug: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const task = oneOf('task', values.task, 'discriminative', ['discriminative', 'generative'] as const);
  if (task === 'generative' && values.loss === 'ce')
    throw new UsageError('--loss ce needs --task discriminative (a generator predicts images, scored by mse)');
  if (task === 'discriminative') {
    for (const flag of ['samples', 'test-max-t1', 'test-batches'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --task generative`);
    }
  }
  const solver = oneOf('solver', values.solver, 'heun', [...SOLVER_NAMES, 'sgd', 'adam'] as const);
  const discrete = solver === 'sgd' || solver === 'adam';
  const hasError = !discrete && TABLEAUX[solver].e !== null;
  const controller = oneOf('controller', values.controller, hasError ? 'pid' : 'constant', [
    'pid',
    'constant',
  ] as const);
  if (!discrete && !hasError && controller === 'pid') {
    throw new UsageError(
      `--solver ${solver} has no error estimate, so it needs --controller constant (diffrax refuses it too)`,
    );
  }
  if (!discrete && (values.steps !== undefined || values['activity-lr'] !== undefined)) {
    throw new UsageError('--steps and --activity-lr are for discrete inference (--solver sgd or adam)');
  }
  const dt =
    values.dt === 'auto' ? undefined : parseNumber('dt', values.dt, 0.05, positive, 'a positive number (or auto)');
  if (dt === undefined && controller === 'constant') throw new UsageError('--dt auto needs --controller pid');
  const maxBatches =
    values['max-batches'] === undefined
      ? undefined
      : parseNumber('max-batches', values['max-batches'], 0, positiveInt, 'a positive integer');
  if (values.checkpoint === undefined && (values.resume || values['checkpoint-every'] !== undefined)) {
    throw new UsageError(`--${values.resume ? 'resume' : 'checkpoint-every'} needs --checkpoint DIR`);
  }
  const config: TrainConfig = {
    checkpoint: values.checkpoint,
    checkpointEvery: parseNumber(
      'checkpoint-every',
      values['checkpoint-every'],
      100,
      positiveInt,
      'a positive integer',
    ),
    resume: values.resume ?? false,
    divergenceFactor:
      values['divergence-factor'] === 'off'
        ? null
        : parseNumber(
            'divergence-factor',
            values['divergence-factor'],
            DEFAULT_DIVERGENCE_THRESHOLD.factor,
            (v) => v >= 1 && v <= F32_MAX,
            'a number >= 1 (at most 3.4e38) or off',
          ),
    task,
    testMaxT1: parseNumber('test-max-t1', values['test-max-t1'], 100, positive, 'a positive number'),
    testBatches:
      values['test-batches'] === undefined
        ? undefined
        : parseNumber('test-batches', values['test-batches'], 0, positiveInt, 'a positive integer'),
    save: values.save,
    samples: values.samples,
    dataset: oneOf('dataset', values.dataset, 'mnist', DATASET_NAMES),
    dataDir: values['data-dir'],
    hidden: parseNumber(
      'hidden',
      values.hidden,
      3,
      (v) => nonNegativeInt(v) && v < MAX_DEPTH,
      `an integer in 0..${MAX_DEPTH - 1}`,
    ),
    width: parseNumber('width', values.width, 300, positiveInt, 'a positive integer'),
    act: oneOf('act', values.act, 'tanh', ACTIVATIONS),
    bias: values.bias ?? false,
    loss: oneOf('loss', values.loss, 'mse', ['mse', 'ce'] as const),
    solver,
    controller,
    maxT1: parseNumber('max-t1', values['max-t1'], 20, positive, 'a positive number'),
    dt,
    steadyState:
      values['steady-state'] === undefined
        ? undefined
        : parseNumber('steady-state', values['steady-state'], 0, positive, 'a positive tolerance'),
    steps: values.steps === undefined ? undefined : parseNumber('steps', values.steps, 0, ...upTo(MAX_SOLVE_STEPS)),
    activityLr: parseNumber('activity-lr', values['activity-lr'], 0.5, positive, 'a positive number'),
    rtol: parseNumber('rtol', values.rtol, 1e-3, (v) => v >= 0, 'a non-negative number'),
    atol: parseNumber('atol', values.atol, 1e-3, (v) => v >= 0, 'a non-negative number'),
    maxSteps: parseNumber('max-steps', values['max-steps'], 4096, ...upTo(MAX_SOLVE_STEPS)),
    pollEvery: parseNumber('poll-every', values['poll-every'], 8, ...upTo(MAX_SOLVE_STEPS)),
    batch: parseNumber('batch', values.batch, 64, positiveInt, 'a positive integer'),
    lr: parseNumber('lr', values.lr, 1e-3, positive, 'a positive number'),
    epochs: parseNumber('epochs', values.epochs, 1, positiveInt, 'a positive integer'),
    maxBatches,
    testEvery: parseNumber('test-every', values['test-every'], 100, nonNegativeInt, 'a non-negative integer'),
    seed: parseNumber('seed', values.seed, 0, Number.isSafeInteger, 'an integer'),
    tiles: parseTiles(values.tiles),
    out: values.out,
    quiet: values.quiet ?? false,
  };
  // Sizes known without the device: the solver's step counts and grid, the run's length.
  checkSolverFlags(() => resolveSolverOptions('wpc train', trainSolver(config)), 'wpc train');
  if (task === 'generative') {
    checkSolverFlags(() => resolveSolverOptions('wpc train', { maxT1: config.testMaxT1 }), 'wpc train', [
      [/options\.maxT1/g, '--test-max-t1'],
    ]);
  }
  checkTrainLength(config, DATASET_SHAPES[config.dataset].trainCount);
  return config;
}

/** The inference options of a training step. */
function trainSolver(config: TrainConfig): SolverOptions {
  return config.solver === 'sgd' || config.solver === 'adam'
    ? {
        solver: (config.solver === 'sgd' ? sgd : adam)({ lr: config.activityLr }),
        steps: config.steps ?? config.hidden + 1,
      }
    : {
        solver: config.solver,
        stepsizeController:
          config.controller === 'constant' ? 'constant' : { pid: { rtol: config.rtol, atol: config.atol } },
        maxT1: config.maxT1,
        ...(config.dt === undefined ? {} : { dt: config.dt }),
        maxSteps: config.maxSteps,
        pollEvery: config.pollEvery,
        ...(config.steadyState === undefined
          ? {}
          : { steadyState: { rtol: config.steadyState, atol: config.steadyState } }),
      };
}

/** Refuses a run of more than MAX_TRAIN_STEPS steps (`count` training examples). */
function checkTrainLength(config: TrainConfig, count: number): void {
  const perEpoch = Math.min(Math.floor(count / config.batch), config.maxBatches ?? Infinity);
  if (perEpoch * config.epochs > MAX_TRAIN_STEPS) {
    throw new UsageError(
      `--epochs ${config.epochs} makes ${perEpoch * config.epochs} training steps (${perEpoch} per epoch), more than ${groupDigits(MAX_TRAIN_STEPS)} (the most one run takes); lower --epochs or --max-batches`,
    );
  }
}

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

/**
 * A network trained with Adam against the device, naming the flags (`fn` the command): its parameters (one storage buffer), Adam's
 * state (one buffer of two moments per parameter) and the training workspace of a batch with the solver `cfg`.
 */
function checkNetworkFits(
  fn: string,
  rt: Runtime,
  dims: number[],
  bias: boolean,
  net: string,
  batch: number,
  cfg: ReturnType<typeof resolveSolverOptions>,
): void {
  const params = checkParamsFit(net, dims, bias, rt.limits);
  adam({ lr: 1e-3 }).checkStateFits(net, params, rt.limits);
  checkSolveFits(fn, { runtime: rt, dims }, batch, 'supervised', cfg, `--batch ${batch}`);
}

/** --out, --save, --samples and --checkpoint: checked before anything runs (the model is lost if a save fails at the end). */
async function checkTrainTargets(config: TrainConfig): Promise<void> {
  if (config.out !== undefined) await checkOutputFile('--out', config.out);
  if (config.save !== undefined) await checkOutputFile('--save', config.save);
  if (config.samples !== undefined) await checkOutputFile('--samples', config.samples);
  if (config.checkpoint !== undefined)
    await checkOutputFolder('--checkpoint', config.checkpoint, 'parent', ['checkpoint.safetensors']);
}

type KernelTiles = NonNullable<NonNullable<InitOptions['kernels']>['tiles']>;

/** --tiles: a JSON object; init checks its fields against the device (see trainRuntime). */
function parseTiles(raw: string | undefined): KernelTiles | undefined {
  if (raw === undefined) return undefined;
  let tiles: unknown;
  try {
    tiles = JSON.parse(raw);
  } catch {
    tiles = undefined;
  }
  if (typeof tiles !== 'object' || tiles === null || Array.isArray(tiles)) {
    throw new UsageError(`--tiles must be a JSON object such as {"wg":64,"tm":4,"tn":4}, got ${JSON.stringify(raw)}`);
  }
  return tiles as KernelTiles;
}

/**
 * The runtime of a training run: default kernels, or --tiles (subgroup-matrix tiles need Dawn's experimental
 * features shown). A layout the device refuses is a usage error naming the flag.
 */
async function trainRuntime(tiles: KernelTiles | undefined): Promise<Runtime> {
  if (tiles === undefined) return init();
  try {
    return await init(initOptionsWithTiles({}, tiles));
  } catch (e) {
    if (e instanceof WpcArgumentError) throw new UsageError(`--tiles: ${e.message.replace(/^init: /, '')}`);
    throw e;
  }
}

/** A one-line progress display on stderr: redrawn in place on a terminal, a line every 10% otherwise. */
class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private lastDraw = 0;
  private lastDecile = -1;
  private readonly started = performance.now();

  constructor(
    private readonly total: number,
    private readonly quiet: boolean,
    private readonly unit = 'steps',
    private readonly showLoss = true,
  ) {}

  update(done: number, loss: number | undefined, note = ''): void {
    if (this.quiet) return;
    const now = performance.now();
    const decile = Math.floor((10 * done) / this.total);
    if (this.tty ? now - this.lastDraw < 100 && done < this.total : decile === this.lastDecile) return;
    this.lastDraw = now;
    this.lastDecile = decile;
    const seconds = (now - this.started) / 1000;
    const rate = done / Math.max(seconds, 1e-9);
    const eta = rate > 0 ? (this.total - done) / rate : 0;
    const width = 24;
    const filled = Math.round((width * done) / this.total);
    const bar = `${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? (done < this.total ? '>' : '=') : ''}${' '.repeat(width - filled)}`;
    const line =
      `[${bar}] ${String(done).padStart(String(this.total).length)}/${this.total} ` +
      `${rate.toFixed(1)} ${this.unit}/s  ETA ${formatTime(eta)}${this.showLoss ? `  loss ${loss === undefined ? '-' : loss.toFixed(4)}` : ''}${note ? `  ${note}` : ''}`;
    if (this.tty) process.stderr.write(`\r${line}\x1b[K`);
    else process.stderr.write(`${line}\n`);
  }

  log(message: string): void {
    if (this.quiet) return;
    if (this.tty) process.stderr.write(`\r\x1b[K${message}\n`);
    else process.stderr.write(`${message}\n`);
    this.lastDraw = 0;
  }

  end(): void {
    if (!this.quiet && this.tty) process.stderr.write('\n');
  }
}

function formatTime(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return m >= 60
    ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
    : `${m}:${String(s % 60).padStart(2, '0')}`;
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

/** One-hot rows for `labels` (repeated `rows` times). */
function labelRows(labels: readonly number[], classes: number, rows = 1): Float32Array {
  const out = new Float32Array(labels.length * rows * classes);
  for (let r = 0; r < rows; r++) labels.forEach((label, i) => (out[(r * labels.length + i) * classes + label] = 1));
  return out;
}

/** The generator's feedforward image for each label, as a PNG grid. */
async function writeSamples(
  model: Model,
  path: string,
  labels: readonly number[],
  rows: number,
  scale: number,
  range: 'mnist' | 'per-image',
): Promise<void> {
  const x = labelRows(labels, model.inputDim, rows);
  const acts = await initActivitiesWithFfwd(model, x);
  await writeImageGrid(path, acts.at(-1)!, { columns: labels.length, scale, range });
  for (const a of acts) a.dispose();
}

async function train(config: TrainConfig): Promise<void> {
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

const RUNTIME_HELP = `Usage: wpc reproduce runtime [options]

The JPC library paper's runtime study (Figure 1, and the best settings of Figures 3-6): Euler with a constant
step vs Heun with the PID controller (rtol = atol = 1e-3); networks of H hidden tanh layers of 300 units, no
bias, batch 64, Adam 1e-3, one epoch per setting. Every batch times one inference solve from a fresh
feedforward initialisation until the GPU is done (the first batch excluded); the test accuracy is measured at
the end of each run.

Writes OUT/runtime.csv (every run), OUT/best.md (the best setting of each dataset/depth/solver and the
Euler/Heun time ratios) and OUT/runtime.svg (Figure 1's layout); the last stdout line is a JSON summary.

  --datasets LIST    mnist,fashion-mnist,cifar10-synthetic (CIFAR-10-shaped random data, for timing only)
                                                                   (default: all three)
  --data-dir DIR     folder with mnist/ and fashion-mnist/          (default: see the lookup order,
                                                                   'wpc data path --help')
  --hidden LIST      hidden depths                                  (default 3,5,10)
  --solvers LIST     euler,heun                                     (default both)
  --max-t1 LIST      integration times T, 'paper' for the paper's grid ${PAPER_MAX_T1.join(',')},
                     or 'best' for the paper's best T of each setting (default best)
  --dt LIST          step sizes (Heun: the initial one), 'paper' (${PAPER_DT.join(',')}) or 'best'
                                                                   (default best)
  --batches N        batches per run, a shortened epoch            (default: the whole epoch)
  --width N          units per hidden layer                         (default 300)
  --batch B          batch size                                     (default 64)
  --max-steps N      most steps per solve; Euler settings beyond it are skipped, as in the paper (default 4096)
  --timing MODE      step: time the solve inside each training step (it starts from a fresh feedforward init);
                     separate: the paper's extra solve after each step with the updated weights (the same
                     computation, at twice the cost)                 (default step)
  --seed S           weights, shuffling and synthetic data          (default 0)
  --out DIR          output folder, created if needed               (default runs/runtime)
  --quiet            no progress on stderr
  --debug            print the stack trace of an error
  -h, --help         this help

The whole grid (--max-t1 paper --dt paper) is 252 training runs per depth set; on a CPU adapter such as lavapipe
it takes many hours, so start with the defaults or a subset, e.g.
  wpc reproduce runtime --hidden 3 --batches 100
`;

function parseList<T>(
  flag: string,
  raw: string | undefined,
  fallback: readonly T[],
  parse: (item: string) => T | undefined,
  expected: string,
): T[] {
  if (raw === undefined) return [...fallback];
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0)
    throw new UsageError(`--${flag} must be a comma-separated list of ${expected}, got ${JSON.stringify(raw)}`);
  return items.map((item) => {
    const v = parse(item);
    if (v === undefined)
      throw new UsageError(
        `--${flag} must be a comma-separated list of ${expected}, got ${JSON.stringify(item)} in ${JSON.stringify(raw)}`,
      );
    return v;
  });
}

const positiveNumber = (s: string) => {
  const v = Number(s);
  return Number.isFinite(v) && v > 0 ? v : undefined;
};

async function reproduceRuntime(argv: string[]): Promise<undefined | 'help'> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      datasets: { type: 'string' },
      'data-dir': { type: 'string' },
      hidden: { type: 'string' },
      solvers: { type: 'string' },
      'max-t1': { type: 'string' },
      dt: { type: 'string' },
      batches: { type: 'string' },
      width: { type: 'string' },
      batch: { type: 'string' },
      'max-steps': { type: 'string' },
      timing: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      quiet: { type: 'boolean' },
      debug: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const timing = oneOf('timing', values.timing, 'step', ['step', 'separate'] as const);
  const STUDY_DATASETS = ['mnist', 'fashion-mnist', 'cifar10-synthetic'] as const;
  const datasets = parseList(
    'datasets',
    values.datasets,
    STUDY_DATASETS,
    (s) => ((STUDY_DATASETS as readonly string[]).includes(s) ? (s as StudyDataset) : undefined),
    STUDY_DATASETS.join(' / '),
  );
  const hidden = parseList(
    'hidden',
    values.hidden,
    [3, 5, 10],
    (s) => (/^\d+$/.test(s) && positiveInt(Number(s)) ? Number(s) : undefined),
    'positive integers',
  );
  const deep = hidden.find((h) => h >= MAX_DEPTH);
  if (deep !== undefined) throw new UsageError(`--hidden ${deep} makes a network of more than ${MAX_DEPTH} layers`);
  const solvers = parseList(
    'solvers',
    values.solvers,
    ['euler', 'heun'] as StudySolver[],
    (s) => (s === 'euler' || s === 'heun' ? s : undefined),
    'euler / heun',
  );
  const grid = (flag: 'max-t1' | 'dt', paper: readonly number[]) => {
    const raw = values[flag];
    if (raw === undefined || raw === 'best') return 'best' as const;
    if (raw === 'paper') return [...paper];
    return parseList(flag, raw, paper, positiveNumber, "positive numbers (or 'paper' / 'best')");
  };
  const maxT1 = grid('max-t1', PAPER_MAX_T1);
  const dt = grid('dt', PAPER_DT);
  const batchesFlag =
    values.batches === undefined
      ? undefined
      : parseNumber('batches', values.batches, 0, positiveInt, 'a positive integer');
  const width = parseNumber('width', values.width, 300, positiveInt, 'a positive integer');
  const batchSize = parseNumber('batch', values.batch, 64, positiveInt, 'a positive integer');
  const maxSteps = parseNumber('max-steps', values['max-steps'], 4096, ...upTo(MAX_SOLVE_STEPS));
  const seed = parseNumber('seed', values.seed, 0, Number.isSafeInteger, 'an integer');
  const out = values.out ?? 'runs/runtime';
  const quiet = values.quiet ?? false;
  const configs = studyConfigs({ datasets, hidden, solvers, maxT1, dt });
  // Euler settings whose grid is longer than --max-steps are skipped by the study (as in the paper).
  const run = configs.filter((c) => c.solver !== 'euler' || constantStepCount(c.maxT1, c.dt) <= maxSteps);
  for (const c of run)
    checkSolverFlags(
      () => resolveSolverOptions('wpc reproduce runtime', solverOptions(c, maxSteps)),
      'wpc reproduce runtime',
    );
  await checkOutputFolder('--out', out, 'ancestors', ['runtime.csv', 'best.md', 'runtime.svg']);
  const started = performance.now();
  const rt = await init();
  try {
    for (const c of run) {
      const shape = DATASET_SHAPES[c.dataset];
      const dims = [shape.inputDim, ...Array<number>(c.hidden).fill(width), shape.numClasses];
      checkNetworkFits(
        'wpc reproduce',
        rt,
        dims,
        false,
        `--width ${width} with --hidden ${c.hidden}`,
        batchSize,
        resolveSolverOptions('wpc reproduce runtime', solverOptions(c, maxSteps)),
      );
    }
    const adapter = adapterLabel(rt);
    let progress: Progress | undefined;
    if (!quiet)
      process.stderr.write(
        `wpc reproduce runtime: ${configs.length} runs (${datasets.join(', ')}; H ${hidden.join(', ')}; ${solvers.join(', ')}) on ${adapter}\n`,
      );
    const rows = await runRuntimeStudy(rt, {
      timing,
      datasets,
      hidden,
      solvers,
      maxT1,
      dt,
      ...(batchesFlag === undefined ? {} : { batches: batchesFlag }),
      seed,
      width,
      batchSize,
      maxSteps,
      load: (name, split) =>
        loadDataset(name, split, values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
      onProgress: (done, total, c) => {
        progress ??= new Progress(total, quiet, 'batches', false);
        progress.update(done, undefined, `${c.dataset} H=${c.hidden} ${c.solver} T=${c.maxT1} dt=${c.dt}`);
      },
      onRow: (r) =>
        progress?.log(
          r.status === 'ok'
            ? `${r.dataset} H=${r.hidden} ${r.solver} T=${r.maxT1} dt=${r.dt}: solve ${r.solveMsMean.toFixed(2)} ms (${r.inferenceStepsMean.toFixed(1)} steps), test ${Number.isNaN(r.testAccuracy) ? 'n/a' : `${r.testAccuracy.toFixed(2)}%`}`
            : `${r.dataset} H=${r.hidden} ${r.solver} T=${r.maxT1} dt=${r.dt}: ${r.status}`,
        ),
    });
    progress?.end();
    await mkdir(out, { recursive: true });
    const seconds = (performance.now() - started) / 1000;
    await writeAtomically(join(out, 'runtime.csv'), toCsv(rows));
    const table = bestTable(rows);
    await writeAtomically(
      join(out, 'best.md'),
      `# Runtime study: best settings\n\nAdapter: ${adapter}. ${batchesFlag === undefined ? 'One epoch' : `${batchesFlag} batches`} per setting; ${seconds.toFixed(0)} s in all.\n\n${table}`,
    );
    await writeAtomically(
      join(out, 'runtime.svg'),
      figureSvg(rows, `Time per inference solve, Euler vs Heun (${adapter})`),
    );
    if (!quiet)
      process.stderr.write(
        `\n${table}\nwrote ${join(out, 'runtime.csv')}, ${join(out, 'best.md')}, ${join(out, 'runtime.svg')}\n`,
      );
    const ratios = heunEulerRatios(rows).map((r) => ({
      dataset: r.dataset,
      hidden: r.hidden,
      eulerMs: +r.euler.solveMsMean.toFixed(3),
      heunMs: +r.heun.solveMsMean.toFixed(3),
      eulerOverHeun: +r.ratio.toFixed(3),
    }));
    process.stdout.write(`${JSON.stringify({ runs: rows.length, seconds: +seconds.toFixed(1), ratios, out })}\n`);
  } finally {
    rt.dispose();
  }
}

const THEORY_HELP = `Usage: wpc reproduce theory [options]

The JPC library paper's Figure 2 (Figure 7 with --dataset fashion-mnist): a deep linear network (H hidden
layers of W units, no bias) trained with PC, batch 64, Adam 1e-3, once per inference limit T (Heun + PID, the
same initial weights for every T). Before each step the theoretical energy at the exact inference equilibrium
(linearEquilibEnergy, paper Eq. 4) is computed for the batch; the step's inference ends at the numerical
energy; the test accuracy is measured every --test-every iterations. As T grows the numerical energy approaches
the theoretical one.

Writes OUT/theory-DATASET.csv (every iteration of every T) and OUT/theory-DATASET.svg (energies and accuracies,
Figure 2's layout); the last stdout line is a JSON summary (mean |numerical − theory| / theory per T).

  --dataset NAME     mnist or fashion-mnist                           (default mnist)
  --data-dir DIR     folder with mnist/ and fashion-mnist/            (default: see the lookup order,
                                                                     'wpc data path --help')
  --max-t1 LIST      inference limits T                               (default ${THEORY_MAX_T1.join(',')})
  --iters N          training iterations per T                        (default 100)
  --test-every N     test every N iterations                          (default 10)
  --test-images N    test on the first N test images                  (default: all)
  --hidden N         hidden layers                                    (default 10)
  --width N          units per hidden layer                           (default 300)
  --batch B          batch size                                       (default 64)
  --lr LR            Adam learning rate                               (default 1e-3)
  --seed S           weights and batch order                          (default 0)
  --out DIR          output folder, created if needed                 (default runs/theory)
  --quiet            no progress
  --debug            print the stack trace of an error
`;

async function reproduceTheory(argv: string[]): Promise<undefined | 'help'> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      dataset: { type: 'string' },
      'data-dir': { type: 'string' },
      'max-t1': { type: 'string' },
      iters: { type: 'string' },
      'test-every': { type: 'string' },
      'test-images': { type: 'string' },
      hidden: { type: 'string' },
      width: { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      quiet: { type: 'boolean' },
      debug: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const dataset = oneOf('dataset', values.dataset, 'mnist', ['mnist', 'fashion-mnist'] as const);
  const maxT1s = parseList('max-t1', values['max-t1'], THEORY_MAX_T1, positiveNumber, 'positive numbers');
  const iters = parseNumber('iters', values.iters, 100, positiveInt, 'a positive integer');
  const testEvery = parseNumber('test-every', values['test-every'], 10, positiveInt, 'a positive integer');
  const testImages =
    values['test-images'] === undefined
      ? undefined
      : parseNumber('test-images', values['test-images'], 0, positiveInt, 'a positive integer');
  const hidden = parseNumber('hidden', values.hidden, 10, ...upTo(MAX_DEPTH - 1));
  const width = parseNumber('width', values.width, 300, positiveInt, 'a positive integer');
  const batchSize = parseNumber('batch', values.batch, 64, positiveInt, 'a positive integer');
  const lr = parseNumber('lr', values.lr, 1e-3, positive, 'a positive number');
  const seed = parseNumber('seed', values.seed, 0, Number.isSafeInteger, 'an integer');
  const out = values.out ?? 'runs/theory';
  const quiet = values.quiet ?? false;
  const dataOptions = values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] };
  const theorySolver = (maxT1: number) => resolveSolverOptions('wpc reproduce theory', { maxT1 });
  for (const t of maxT1s) checkSolverFlags(() => theorySolver(t), 'wpc reproduce theory');
  await checkOutputFolder('--out', out, 'ancestors', [`theory-${dataset}.csv`, `theory-${dataset}.svg`]);
  const started = performance.now();
  const rt = await init();
  try {
    const shape = DATASET_SHAPES[dataset];
    const dims = [shape.inputDim, ...Array<number>(hidden).fill(width), shape.numClasses];
    for (const t of maxT1s)
      checkNetworkFits(
        'wpc reproduce',
        rt,
        dims,
        false,
        `--width ${width} with --hidden ${hidden}`,
        batchSize,
        theorySolver(t),
      );
    const [train, test] = await Promise.all([
      loadDataset(dataset, 'train', dataOptions),
      loadDataset(dataset, 'test', dataOptions),
    ]);
    const adapter = adapterLabel(rt);
    if (!quiet)
      process.stderr.write(
        `wpc reproduce theory: ${dataset}, linear ${hidden}×${width}, T ∈ {${maxT1s.join(', ')}}, ${iters} iterations each, on ${adapter}\n`,
      );
    const progress = new Progress(maxT1s.length * iters, quiet, 'steps', false);
    const rows = await runTheoryStudy(rt, {
      dataset,
      train,
      test,
      maxT1s,
      iters,
      testEvery,
      width,
      hidden,
      batchSize,
      lr,
      seed,
      ...(testImages === undefined ? {} : { testImages }),
      onProgress: (done, _total, t) => progress.update(done, undefined, `T=${t}`),
      onTest: (r) =>
        progress.log(
          `T=${r.maxT1} iter ${r.iter}: theory ${r.theoryEnergy.toFixed(4)}, numerical ${r.numericalEnergy.toFixed(4)}, test ${r.testAccuracy.toFixed(2)}%`,
        ),
    });
    progress.end();
    await mkdir(out, { recursive: true });
    const csv = join(out, `theory-${dataset}.csv`);
    const svg = join(out, `theory-${dataset}.svg`);
    await writeAtomically(csv, theoryCsv(rows));
    const title = `Theoretical vs numerical PC energy, deep linear network (${dataset}, ${hidden}×${width})`;
    await writeAtomically(svg, theoryFigureSvg(rows, title));
    const gaps = maxT1s.map((t) => {
      const run = rows.filter((r) => r.maxT1 === t);
      const gap =
        run.reduce((sum, r) => sum + Math.abs(r.numericalEnergy - r.theoryEnergy) / r.theoryEnergy, 0) / run.length;
      const last = run[run.length - 1]!;
      return { maxT1: t, meanRelativeGap: +gap.toFixed(5), finalTestAccuracy: +last.testAccuracy.toFixed(2) };
    });
    const seconds = (performance.now() - started) / 1000;
    if (!quiet) process.stderr.write(`wrote ${csv} and ${svg}\n`);
    process.stdout.write(`${JSON.stringify({ dataset, seconds: +seconds.toFixed(1), gaps, csv, svg, adapter })}\n`);
  } finally {
    rt.dispose();
  }
}

async function sample(argv: string[]): Promise<undefined | 'help'> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      out: { type: 'string' },
      labels: { type: 'string' },
      rows: { type: 'string' },
      scale: { type: 'string' },
      range: { type: 'string' },
      debug: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  if (values.model === undefined) throw new UsageError('--model FILE (a checkpoint from wpc train --save) is required');
  if (values.out === undefined) throw new UsageError('--out FILE (the PNG to write) is required');
  const rows = parseNumber('rows', values.rows, 1, positiveInt, 'a positive integer');
  const scale = parseNumber('scale', values.scale, 3, (v) => positiveInt(v) && v <= 16, 'an integer in 1..16');
  const range = oneOf('range', values.range, 'mnist', ['mnist', 'per-image'] as const);
  await checkOutputFile('--out', values.out);
  const rt = await init();
  try {
    const model = await loadModel(rt, values.model);
    const pixels = model.outputDim;
    if (Math.round(Math.sqrt(pixels)) ** 2 !== pixels) {
      throw new UsageError(
        `${values.model} predicts ${pixels} values, not a square image: sample needs a generator (label -> image), e.g. from 'wpc train --task generative'`,
      );
    }
    const labels = parseList(
      'labels',
      values.labels,
      Array.from({ length: model.inputDim }, (_, i) => i),
      (s) => (/^\d+$/.test(s) && Number(s) < model.inputDim ? Number(s) : undefined),
      `labels in 0..${model.inputDim - 1}`,
    );
    // The grid (a host image) and the batch of labels × rows (a workspace on the device), before either is made.
    const images = labels.length * rows;
    const side = Math.round(Math.sqrt(pixels));
    const grid = imageGridShape(images, side, side, { columns: labels.length, scale, padding: 2 });
    if (grid.width * grid.height > MAX_GRID_PIXELS) {
      throw new UsageError(
        `--rows ${rows} and --scale ${scale} make a ${grid.width} × ${grid.height} image, more than ${groupDigits(MAX_GRID_PIXELS)} pixels; lower --rows or --scale`,
      );
    }
    checkWorkspaceFits(`--rows ${rows} (${images} images)`, rt, model.dims, images, 'train', 'supervised', {
      stages: 2,
      gridSteps: 1,
    });
    await writeSamples(model, values.out, labels, rows, scale, range);
    process.stdout.write(`${JSON.stringify({ out: values.out, images: labels.length * rows, labels })}\n`);
    model.dispose();
  } finally {
    rt.dispose();
  }
}

async function info(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(
      'Usage: wpc info [--debug]\n\nPrints the WebGPU adapter WPC gets and its size limits (as JSON on stdout).\n\n  --debug   print the stack trace of an error\n',
    );
    return;
  }
  const extra = argv.filter((a) => a !== '--debug');
  if (extra.length > 0) throw new UsageError(`info takes no arguments but --debug, got ${JSON.stringify(extra[0])}`);
  const rt = await init();
  try {
    const l = rt.limits;
    process.stdout.write(
      `${JSON.stringify({
        adapter: rt.adapter,
        limits: {
          maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
          maxBufferSize: l.maxBufferSize,
          maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        },
        features: [...rt.device.features].sort(),
      })}\n`,
    );
  } finally {
    rt.dispose();
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      process.stdout.write(MAIN_HELP);
      return command === undefined ? 2 : 0;
    }
    if (command === '--version' || command === '-v') {
      if (rest.some((a) => a !== '--debug'))
        throw new UsageError(`${command} takes no arguments, got ${JSON.stringify(rest.find((a) => a !== '--debug'))}`);
      process.stdout.write(`${VERSION}\n`);
      return 0;
    }
    if (command === 'train') {
      const config = parseTrain(rest);
      if (config === 'help') {
        process.stdout.write(TRAIN_HELP);
        return 0;
      }
      await train(config);
      return 0;
    }
    if (command === 'info') {
      await info(rest);
      return 0;
    }
    if (command === 'data') return await dataCommand(rest);
    if (command === 'sample') {
      if ((await sample(rest)) === 'help') process.stdout.write(SAMPLE_HELP);
      return 0;
    }
    if (command === 'reproduce') {
      const [study, ...args] = rest;
      if (study === undefined || study === '--help' || study === '-h') {
        process.stdout.write(`${RUNTIME_HELP}\n${THEORY_HELP}`);
        return study === undefined ? 2 : 0;
      }
      if (study === 'theory') {
        if ((await reproduceTheory(args)) === 'help') process.stdout.write(THEORY_HELP);
        return 0;
      }
      if (study !== 'runtime')
        throw new UsageError(`unknown study ${JSON.stringify(study)}; the studies are 'runtime' and 'theory'`);
      if ((await reproduceRuntime(args)) === 'help') process.stdout.write(RUNTIME_HELP);
      return 0;
    }
    throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  } catch (e) {
    const sub =
      command === 'train' || command === 'sample' || command === 'info'
        ? `${command} `
        : command === 'reproduce'
          ? `reproduce ${rest[0] === 'theory' ? 'theory' : 'runtime'} `
          : command === 'data'
            ? `data ${rest[0] === 'download' || rest[0] === 'path' ? `${rest[0]} ` : ''}`
            : '';
    const report = errorReport(e, `wpc ${sub}--help`, debug);
    process.stderr.write(report.text);
    return report.code;
  }
}

const argv = process.argv.slice(2);
/** --debug anywhere on the command line: errors come with their stack trace. */
const debug = argv.includes('--debug');
// Whatever escapes main (a rejected promise nobody awaited) is reported the same way, on one line.
const fatal = (e: unknown): void => {
  process.stderr.write(errorReport(e, 'wpc --help', debug).text);
  process.exit(1);
};
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);
process.exitCode = await main(argv);
