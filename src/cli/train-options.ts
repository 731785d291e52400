/**
 * `wpc train`'s flags (one table, which also writes their help) and their parsing into a TrainConfig, checked as
 * far as is possible without the device: the combinations of flags, the solver's step counts and grid, the run's
 * length.
 */
import { DATASET_NAMES, type DatasetName } from '../data/node.js';
import { ACTIVATIONS, type Activation } from '../kernels/index.js';
import { F32_MAX, groupDigits } from '../runtime/limits.js';
import { MAX_DEPTH } from '../pc/model.js';
import { adam, sgd } from '../pc/optim.js';
import { SOLVER_NAMES, TABLEAUX, type SolverName } from '../pc/tableaux.js';
import { DEFAULT_DIVERGENCE_THRESHOLD } from '../pc/train.js';
import { MAX_SOLVE_STEPS, resolveSolverOptions, type SolverOptions } from '../pc/solve/index.js';
import type { Loss } from '../pc/workspace.js';
import { UsageError } from './checks.js';
import {
  INTEGER,
  NON_NEGATIVE,
  NON_NEGATIVE_INTEGER,
  POSITIVE,
  POSITIVE_INTEGER,
  STANDARD_FLAGS,
  checkSolverFlags,
  choice,
  flagLines,
  number,
  numberValue,
  parseFlags,
  text,
  toggle,
  upTo,
  valued,
} from './args.js';
import { DATASET_SHAPES, type KernelTiles } from './device.js';
import { ARCH_HELP, type ArchSpec, archDepth, parseArch, readArchFile } from './arch.js';

/** Most training steps (epochs × batches per epoch) one run may take: the loss curve keeps one entry per step. */
const MAX_TRAIN_STEPS = 10_000_000;

/** --tiles: a JSON object; init checks its fields against the device (see openRuntime). */
function parseTiles(raw: string): KernelTiles {
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

const TASK_FLAGS = {
  task: choice(
    '--task NAME',
    [
      'discriminative: image -> label, tested by a feedforward pass (default);',
      "generative: label -> image (JPC's supervised generative PC), tested by inferring the",
      'label from each test image with only the image clamped (test_generative_pc)',
    ],
    ['discriminative', 'generative'] as const,
    'discriminative',
  ),
};

const DATA_FLAGS = {
  dataset: choice(
    '--dataset NAME',
    'mnist | fashion-mnist | cifar10                         (default mnist)',
    DATASET_NAMES,
    'mnist',
  ),
  'data-dir': text('--data-dir DIR', [
    'folder with NAME/{train,t10k}-*-ubyte.gz (or the files)',
    "(default: see the lookup order, 'wpc data path --help')",
  ]),
};

const MODEL_FLAGS = {
  arch: text('--arch SPEC', [
    'the network as a list of layers instead of --hidden/--width: a string such as',
    '"conv(8,3,pad=1) avgpool(2) dense(10)", or a FILE.json (see Architectures below)',
  ]),
  hidden: number('--hidden H', 'hidden layers (depth = H + 1)                            (default 3)', 3, [
    (v) => Number.isSafeInteger(v) && v >= 0 && v < MAX_DEPTH,
    `an integer in 0..${MAX_DEPTH - 1}`,
  ]),
  width: number(
    '--width N',
    'units per hidden layer                                   (default 300)',
    300,
    POSITIVE_INTEGER,
  ),
  act: choice('--act NAME', `${ACTIVATIONS.join(' | ')}   (default tanh)`, ACTIVATIONS, 'tanh'),
  bias: toggle('--bias', 'give every layer a bias                                  (default: no bias, as JPC)'),
  loss: choice(
    '--loss NAME',
    'mse | ce: output energy and reported loss                (default mse)',
    ['mse', 'ce'] as const,
    'mse',
  ),
};

const INFERENCE_FLAGS = {
  solver: choice(
    '--solver NAME',
    [SOLVER_NAMES.join(' | '), "(diffrax's Runge-Kutta methods), or sgd | adam for discrete inference (default heun)"],
    [...SOLVER_NAMES, 'sgd', 'adam'] as const,
    'heun',
  ),
  // The default depends on --solver (pid where it has an error estimate): parseTrain fills it in.
  controller: choice(
    '--controller NAME',
    [
      'pid | constant; euler is always constant                 (default pid if the solver has',
      '                                                          an error estimate)',
    ],
    ['pid', 'constant'] as const,
    undefined,
  ),
  'max-t1': number('--max-t1 T', 'integration time                                         (default 20)', 20, POSITIVE),
  dt: valued('--dt DT', "step size (initial step for pid; 'auto' for Hairer's)    (default 0.05)", 0.05, (raw, name) =>
    raw === 'auto' ? undefined : numberValue(name, raw, [POSITIVE[0], 'a positive number (or auto)']),
  ),
  rtol: number(
    '--rtol R, --atol A',
    'PID tolerances                                           (default 1e-3, 1e-3)',
    1e-3,
    NON_NEGATIVE,
  ),
  atol: number('--atol A', [], 1e-3, NON_NEGATIVE), // listed with --rtol
  'steady-state': number(
    '--steady-state TOL',
    [
      "stop once rms(dz/dt) < TOL + TOL*rms(z) (diffrax's steady-state event; with JPC's 1/B",
      'scaling try 3e-5)                                        (default: integrate to T, as JPC)',
    ],
    undefined,
    [POSITIVE[0], 'a positive tolerance'],
  ),
  'max-steps': number(
    '--max-steps N',
    'most attempted steps per solve                           (default 4096)',
    4096,
    upTo(MAX_SOLVE_STEPS),
  ),
  'poll-every': number(
    '--poll-every K',
    'adaptive solves: read the solver state at most every K steps (default 8)',
    8,
    upTo(MAX_SOLVE_STEPS),
  ),
  steps: number(
    '--steps T',
    [
      "discrete inference (--solver sgd|adam): activity updates (default: depth, as JPC's notebooks)",
      `--max-steps, --steps and --poll-every are at most ${groupDigits(MAX_SOLVE_STEPS)}`,
    ],
    undefined,
    upTo(MAX_SOLVE_STEPS),
  ),
  'activity-lr': number(
    '--activity-lr LR',
    "discrete inference: the activity optimiser's learning rate (default 0.5)",
    0.5,
    POSITIVE,
  ),
};

const TRAINING_FLAGS = {
  batch: number(
    '--batch B',
    'batch size (the last partial batch is dropped)           (default 64)',
    64,
    POSITIVE_INTEGER,
  ),
  lr: number('--lr LR', 'Adam learning rate                                       (default 1e-3)', 1e-3, POSITIVE),
  epochs: number(
    '--epochs E',
    `passes over the training set; at most ${groupDigits(MAX_TRAIN_STEPS)} training steps in all (default 1)`,
    1,
    POSITIVE_INTEGER,
  ),
  'max-batches': number(
    '--max-batches N',
    'stop each epoch after N batches (a shortened epoch)      (default: all)',
    undefined,
    POSITIVE_INTEGER,
  ),
  'test-every': number(
    '--test-every N',
    'test-set accuracy every N training steps (0: only at the end) (default 100)',
    100,
    NON_NEGATIVE_INTEGER,
  ),
  seed: number('--seed S', 'seeds the weights and the shuffling                      (default 0)', 0, INTEGER),
  'divergence-factor': valued(
    '--divergence-factor F|off',
    [
      "stop when a step's energy or loss exceeds F x the largest of the first 10",
      "steps' (and at least 1), rolling back the update that caused it; off: stop",
      'only on NaN/Inf. A resumed run may change it                  (default 100)',
    ],
    DEFAULT_DIVERGENCE_THRESHOLD.factor,
    (raw, name): number | null =>
      raw === 'off'
        ? null
        : numberValue(name, raw, [(v) => v >= 1 && v <= F32_MAX, 'a number >= 1 (at most 3.4e38) or off']),
  ),
};

const KERNEL_FLAGS = {
  tiles: valued(
    '--tiles JSON',
    [
      'the matmul layout (init\'s kernels.tiles), e.g. {"wg":64,"tm":4,"tn":4}; with "matrix":"f16"',
      'tensor cores where Dawn has subgroup matrices (f16 operands, f32 sums; opt-in)',
      '                                                         (default: chosen for the adapter)',
    ],
    undefined,
    parseTiles,
  ),
};

const GENERATIVE_TEST_FLAGS = {
  'test-max-t1': number(
    '--test-max-t1 T',
    "inference time of test_generative_pc (Heun + PID)      (default 100, as JPC's notebook)",
    100,
    POSITIVE,
  ),
  'test-batches': number(
    '--test-batches N',
    'test on the first N batches of the test set           (default: all)',
    undefined,
    POSITIVE_INTEGER,
  ),
};

const OUTPUT_FLAGS = {
  out: text('--out FILE', 'write the run (config, loss curve, test points) as JSON'),
  save: text('--save FILE', 'write the trained model as a JSON checkpoint (for wpc sample, or loadModel)'),
  checkpoint: text('--checkpoint DIR', [
    'keep DIR/checkpoint.safetensors (model, Adam state, step, loss curve), rewritten',
    'atomically every --checkpoint-every steps and at the end (loadCheckpoint reads it)',
  ]),
  'checkpoint-every': number(
    '--checkpoint-every N',
    'steps between checkpoints                               (default 100)',
    100,
    POSITIVE_INTEGER,
  ),
  resume: toggle('--resume', [
    'continue from DIR/checkpoint.safetensors (same settings needed); the run ends',
    'where an uninterrupted one ends, bit for bit',
  ]),
  samples: text('--samples FILE', [
    'generative: write a PNG of the images the model generates for each label',
    '(the folders of --out, --save, --samples and --checkpoint are checked before training)',
  ]),
  quiet: toggle('--quiet', 'no progress on stderr'),
  ...STANDARD_FLAGS,
};

const TRAIN_FLAGS = {
  ...TASK_FLAGS,
  ...DATA_FLAGS,
  ...MODEL_FLAGS,
  ...INFERENCE_FLAGS,
  ...TRAINING_FLAGS,
  ...KERNEL_FLAGS,
  ...GENERATIVE_TEST_FLAGS,
  ...OUTPUT_FLAGS,
};

const COLUMN = 23;

export const TRAIN_HELP = `Usage: wpc train [options]

Trains a predictive-coding MLP (JPC's make_mlp + make_pc_step), or the list of layers of --arch (convolutions,
pooling, residual blocks, dense layers), on MNIST or Fashion-MNIST and reports the test accuracy. Progress goes
to stderr; the last line on stdout is a JSON summary
{"testAccuracy": <percent>, "steps": <training steps>, "seconds": <wall time>, ...}.

Task
${flagLines(TASK_FLAGS, COLUMN)}
Data
${flagLines(DATA_FLAGS, COLUMN)}
Model
${flagLines(MODEL_FLAGS, COLUMN)}
${ARCH_HELP}
Inference (the ODE dz/dt = -dF/dz, or discrete optimiser steps)
${flagLines(INFERENCE_FLAGS, COLUMN)}
Training
${flagLines(TRAINING_FLAGS, COLUMN)}
Kernels
${flagLines(KERNEL_FLAGS, COLUMN)}
Testing a generative model
${flagLines(GENERATIVE_TEST_FLAGS, COLUMN)}
Output
${flagLines(OUTPUT_FLAGS, COLUMN)}

Limits: the parameters (and each of Adam's moments) must fit one storage buffer of the device, and so must the
working memory of a batch (about (6 + stages) x batch x the summed widths floats): 'wpc info' shows the device's
maxStorageBufferBindingSize. A size beyond them is refused before anything is allocated (exit 1).

Example (JPC's paper network, one epoch):
  wpc train --dataset mnist --data-dir ../shared/datasets --hidden 3 --width 300 --act tanh \\
            --solver heun --max-t1 20 --dt 0.05 --batch 64 --lr 1e-3 --epochs 1 --test-every 100 --seed 0 --out run.json
Example (a small PC CNN: 8 and 16 channels, two poolings, a dense readout):
  wpc train --data-dir ../shared/datasets --arch "conv(8,3,pad=1) avgpool(2) conv(16,3,pad=1) avgpool(2) dense(10)" \\
            --act relu --max-batches 200 --test-every 100
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
  /** --hidden and --width of an MLP; undefined with --arch. */
  hidden: number | undefined;
  width: number | undefined;
  /** --arch's layers (the settings keep only `arch.layers`). */
  arch: ArchSpec | undefined;
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

/**
 * `wpc train ARGS` as a TrainConfig, or 'help'. The flags are checked in a fixed order (each combination as soon
 * as the flags it involves are known), so that the first mistake is the one reported.
 */
export async function parseTrain(argv: string[]): Promise<TrainConfig | 'help'> {
  const a = parseFlags(argv, TRAIN_FLAGS);
  if (a === 'help') return 'help';
  const arch = await parseArchFlag(a.value('arch'));
  if (arch && (a.given('hidden') || a.given('width')))
    throw new UsageError(
      `--arch and --${a.given('hidden') ? 'hidden' : 'width'} do not go together: --arch gives every layer`,
    );
  const act = a.value('act');
  if (arch?.actFn !== undefined && a.given('act') && act !== arch.actFn)
    throw new UsageError(`--act ${act} disagrees with the actFn "${arch.actFn}" of ${arch.source}; give one of them`);
  if (arch?.useBias === false && a.value('bias'))
    throw new UsageError(`--bias disagrees with the useBias false of ${arch.source}; give one of them`);
  const task = a.value('task');
  if (task === 'generative' && a.raw('loss') === 'ce')
    throw new UsageError('--loss ce needs --task discriminative (a generator predicts images, scored by mse)');
  if (task === 'discriminative') {
    for (const flag of ['samples', 'test-max-t1', 'test-batches'] as const) {
      if (a.given(flag)) throw new UsageError(`--${flag} needs --task generative`);
    }
  }
  const solver = a.value('solver');
  const discrete = solver === 'sgd' || solver === 'adam';
  const hasError = !discrete && TABLEAUX[solver].e !== null;
  const controller = a.value('controller') ?? (hasError ? 'pid' : 'constant');
  if (!discrete && !hasError && controller === 'pid') {
    throw new UsageError(
      `--solver ${solver} has no error estimate, so it needs --controller constant (diffrax refuses it too)`,
    );
  }
  if (!discrete && (a.given('steps') || a.given('activity-lr'))) {
    throw new UsageError('--steps and --activity-lr are for discrete inference (--solver sgd or adam)');
  }
  const dt = a.value('dt');
  if (dt === undefined && controller === 'constant') throw new UsageError('--dt auto needs --controller pid');
  const maxBatches = a.value('max-batches');
  const resume = a.value('resume');
  if (!a.given('checkpoint') && (resume || a.given('checkpoint-every'))) {
    throw new UsageError(`--${resume ? 'resume' : 'checkpoint-every'} needs --checkpoint DIR`);
  }
  // The order of these keys is the order of the settings in --out and in checkpoints.
  const config: TrainConfig = {
    checkpoint: a.value('checkpoint'),
    checkpointEvery: a.value('checkpoint-every'),
    resume,
    divergenceFactor: a.value('divergence-factor'),
    task,
    testMaxT1: a.value('test-max-t1'),
    testBatches: a.value('test-batches'),
    save: a.value('save'),
    samples: a.value('samples'),
    dataset: a.value('dataset'),
    dataDir: a.value('data-dir'),
    hidden: arch ? undefined : a.value('hidden'),
    width: arch ? undefined : a.value('width'),
    arch,
    act: (arch?.actFn as Activation | undefined) ?? act,
    bias: arch?.useBias ?? a.value('bias'),
    loss: a.value('loss'),
    solver,
    controller,
    maxT1: a.value('max-t1'),
    dt,
    steadyState: a.value('steady-state'),
    steps: a.value('steps'),
    activityLr: a.value('activity-lr'),
    rtol: a.value('rtol'),
    atol: a.value('atol'),
    maxSteps: a.value('max-steps'),
    pollEvery: a.value('poll-every'),
    batch: a.value('batch'),
    lr: a.value('lr'),
    epochs: a.value('epochs'),
    maxBatches,
    testEvery: a.value('test-every'),
    seed: a.value('seed'),
    tiles: a.value('tiles'),
    out: a.value('out'),
    quiet: a.value('quiet'),
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
        steps: config.steps ?? trainDepth(config),
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

/** The trained network's number of layers: --hidden + 1, or --arch's PC layers. */
export function trainDepth(config: TrainConfig): number {
  return config.arch ? archDepth(config.arch.layers) : config.hidden! + 1;
}

/** --arch: the string form, or a path ending in .json. */
function parseArchFlag(raw: string | undefined): Promise<ArchSpec | undefined> | ArchSpec | undefined {
  if (raw === undefined) return undefined;
  return /\.json$/i.test(raw.trim()) ? readArchFile(raw.trim()) : parseArch(raw);
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
