/**
 * `wpc train`'s flags: its help, and their parsing into a TrainConfig, checked as far as is possible without the
 * device (the solver's step counts and the run's length).
 */
import { parseArgs } from 'node:util';
import { DATASET_NAMES, type DatasetName } from '../data/node.js';
import { ACTIVATIONS, type Activation } from '../kernels/index.js';
import { F32_MAX, groupDigits } from '../runtime/limits.js';
import { MAX_DEPTH } from '../pc/model.js';
import { adam, sgd } from '../pc/optim.js';
import { SOLVER_NAMES, TABLEAUX, type SolverName } from '../pc/tableaux.js';
import { DEFAULT_DIVERGENCE_THRESHOLD } from '../pc/train.js';
import { MAX_SOLVE_STEPS, resolveSolverOptions, type SolverOptions } from '../pc/solver.js';
import type { Loss } from '../pc/workspace.js';
import { UsageError } from './checks.js';
import { parseNumber, positiveInt, nonNegativeInt, positive, upTo, checkSolverFlags, oneOf } from './args.js';
import { DATASET_SHAPES, type KernelTiles } from './device.js';

/** Most training steps (epochs × batches per epoch) one run may take: the loss curve keeps one entry per step. */
const MAX_TRAIN_STEPS = 10_000_000;

export const TRAIN_HELP = `Usage: wpc train [options]

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

export interface TrainConfig {
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

export function parseTrain(argv: string[]): TrainConfig | 'help' {
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
export function trainSolver(config: TrainConfig): SolverOptions {
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
