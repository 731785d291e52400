/**
 * Optimisers with optax's semantics, for parameters (`updatePcParams`, `makePcStep`) and for activities
 * (`updatePcActivities`). State (momentum traces, Adam's moments) lives on the GPU; the step count lives on the
 * host, so bias correction needs no readback.
 *
 *   sgd:       p ← p − lr·g;  with momentum μ: t ← g + μt, p ← p − lr·t  (nesterov: p ← p − lr·(g + μt))
 *   adam:      m ← (1−b1)g + b1·m,  v ← (1−b2)g² + b2·v,  p ← p − lr·m̂ / (√(v̂ + epsRoot) + eps),
 *              m̂ = m/(1 − b1ᵗ), v̂ = v/(1 − b2ᵗ)  (eps outside the square root, as optax)
 *
 * Longer than 500 lines: an OptState holds both the optimiser's GPU state and the divergence guard's (the copy
 * saved before an update, the health checks, the rollback), which read and restore the same buffers; the guard
 * could become a class of its own that the state owns.
 */
import { copyKernel } from '../kernels/copy.js';
import { healthKernel } from '../kernels/health.js';
import { type OptimizerKernelKind, optimizerKernel } from '../kernels/optimizer.js';
import { SMALL_WG } from '../kernels/parts.js';
import {
  CONTROL,
  CONTROL_BYTES,
  HEALTH_UNIFORM_BYTES,
  NONE,
  OPT_BYTES,
  ROLLBACK_ARGS,
  packHealth,
  packHealthyControl,
  packOpt,
} from '../kernels/structs.js';
import {
  type DivergenceKind,
  WpcArgumentError,
  WpcDivergenceError,
  argError,
  checkFinite,
  checkKnownKeys,
} from '../runtime/errors.js';
import { BufferUsage, UNIFORM_USAGE } from '../runtime/flags.js';
import { type CompiledKernel, createBindGroup } from '../runtime/kernel.js';
import { checkFits, storageLimit } from '../runtime/limits.js';
import { type Recorder, foldWorkgroups } from '../runtime/recorder.js';
import type { Runtime } from '../runtime/runtime.js';
import { type Tensor, checkTensor } from '../runtime/tensor.js';
import { Model } from './model.js';

export interface SgdOptions {
  /** Learning rate. */
  lr: number;
  /** optax.trace's decay; omitted (default) for plain SGD. */
  momentum?: number;
  /** Nesterov momentum. Default false. */
  nesterov?: boolean;
}

export interface AdamOptions {
  lr: number;
  /** Default 0.9. */
  b1?: number;
  /** Default 0.999. */
  b2?: number;
  /** Added outside the square root. Default 1e-8. */
  eps?: number;
  /** Added inside the square root. Default 0. */
  epsRoot?: number;
}

export type OptimizerConfig =
  | { kind: 'sgd'; lr: number; momentum: number | undefined; nesterov: boolean }
  | { kind: 'adam'; lr: number; b1: number; b2: number; eps: number; epsRoot: number };

/** The runaway check of makePcStep's divergence guard, resolved (see PcStepOptions.divergenceThreshold). */
export interface RunawayThreshold {
  factor: number;
  warmup: number;
  floor: number;
}

/** An optimiser description (like an optax GradientTransformation); `init` makes its state for a target. */
export class Optimizer {
  /** @internal use `sgd()` or `adam()`. */
  constructor(readonly config: Readonly<OptimizerConfig>) {}

  /** The kernel variant: plain SGD keeps no state. */
  get kernelKind(): OptimizerKernelKind {
    return this.config.kind === 'adam' ? 'adam' : this.config.momentum === undefined ? 'sgd' : 'momentum';
  }

  /** Words of state per optimised value. */
  get stateWidth(): number {
    return this.kernelKind === 'adam' ? 2 : this.kernelKind === 'momentum' ? 1 : 0;
  }

  /**
   * Fresh optimiser state (zeros, step count 0) for a model's parameters or for a list of activities
   * (`updatePcActivities`).
   */
  init(target: Model | readonly Tensor[]): OptState {
    const fn = 'Optimizer.init';
    let runtime: Runtime;
    let size: number;
    let kind: OptState['target'];
    if (target instanceof Model) {
      target.checkAlive(fn);
      runtime = target.runtime;
      size = target.paramCount;
      kind = 'params';
    } else if (Array.isArray(target) && target.length > 0) {
      const first = checkTensor(fn, 'target[0]', target[0], (target[0] as Tensor)?.runtime);
      runtime = first.runtime;
      target.forEach((t, i) => checkTensor(fn, `target[${i}]`, t, runtime));
      size = target.reduce((s, t) => s + t.size, 0);
      kind = 'activities';
    } else {
      return argError(fn, 'target', 'a Model or a non-empty array of activity tensors', target);
    }
    runtime.checkHealthy(fn);
    this.checkStateFits(
      `${fn}: target (${size} ${kind === 'params' ? 'parameters' : 'activity values'})`,
      size,
      runtime.limits,
    );
    return new OptState(runtime, this, size, kind);
  }

  /**
   * Refuses, before anything is allocated, a target of `size` values whose state (one buffer of `stateWidth`
   * words per value) the device cannot hold; `subject` names what sets the size.
   */
  checkStateFits(subject: string, size: number, limits: GPUSupportedLimits): void {
    const width = this.stateWidth;
    if (width > 0)
      checkFits(subject, `${this.config.kind}'s ${width} moment(s) per value`, width * size * 4, storageLimit(limits));
  }
}

/** optax.sgd: lr ≥ 0 (0 keeps the target fixed), momentum in [0, 1). */
export function sgd(options: SgdOptions): Optimizer {
  const fn = 'sgd';
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object like { lr: 0.1 }', options);
  checkKnownKeys(fn, 'options', options, ['lr', 'momentum', 'nesterov']);
  const lr = checkFinite(fn, 'options.lr', options.lr, { min: 0 });
  const momentum = options.momentum === undefined ? undefined : checkUnit(fn, 'options.momentum', options.momentum);
  const nesterov = options.nesterov ?? false;
  if (typeof nesterov !== 'boolean') argError(fn, 'options.nesterov', 'a boolean', nesterov);
  if (nesterov && momentum === undefined) throw new WpcArgumentError(`${fn}: options.nesterov needs options.momentum`);
  return new Optimizer({ kind: 'sgd', lr, momentum, nesterov });
}

/** optax.adam: lr ≥ 0, b1 and b2 in [0, 1), eps and epsRoot ≥ 0 and not both 0. */
export function adam(options: AdamOptions): Optimizer {
  const fn = 'adam';
  if (typeof options !== 'object' || options === null) argError(fn, 'options', 'an object like { lr: 1e-3 }', options);
  checkKnownKeys(fn, 'options', options, ['lr', 'b1', 'b2', 'eps', 'epsRoot']);
  const lr = checkFinite(fn, 'options.lr', options.lr, { min: 0 });
  const b1 = checkUnit(fn, 'options.b1', options.b1 ?? 0.9);
  const b2 = checkUnit(fn, 'options.b2', options.b2 ?? 0.999);
  const eps = checkFinite(fn, 'options.eps', options.eps ?? 1e-8, { min: 0 });
  const epsRoot = checkFinite(fn, 'options.epsRoot', options.epsRoot ?? 0, { min: 0 });
  // m̂ / (√(v̂ + eps_root) + eps) is 0/0 for a parameter whose gradient has always been zero.
  if (eps === 0 && epsRoot === 0)
    throw new WpcArgumentError(
      `${fn}: options.eps and options.epsRoot cannot both be 0 (a parameter with zero gradient would get 0/0 = NaN), got eps 0 and epsRoot 0`,
    );
  return new Optimizer({ kind: 'adam', lr, b1, b2, eps, epsRoot });
}

/**
 * A decay rate in [0, 1): at 1 Adam's bias correction 1 − β^t is 0 and momentum never forgets (optax accepts
 * both; the result is NaN or unbounded).
 */
function checkUnit(fn: string, arg: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value >= 1)
    argError(fn, arg, 'a finite number in [0, 1)', value);
  return value;
}

/** An optimiser's state for one target: its moments on the GPU and the step count. */
export class OptState {
  /** Updates applied so far (optax's `count`). */
  count = 0;
  readonly moments: GPUBuffer | null;
  private readonly uniform: GPUBuffer;
  /** Bind groups by target buffer, then gradient buffer, then kernel. */
  private readonly groups = new WeakMap<GPUBuffer, WeakMap<GPUBuffer, Map<string, GPUBindGroup>>>();
  private disposedFlag = false;

  /** @internal use `optimizer.init(target)`. */
  constructor(
    readonly runtime: Runtime,
    readonly optimizer: Optimizer,
    /** Values optimised (parameters, or activity elements). */
    readonly size: number,
    readonly target: 'params' | 'activities',
  ) {
    const width = optimizer.stateWidth;
    this.moments = width > 0 ? runtime.createStorageBuffer(width * size * 4, 'wpc.optimizer.moments') : null;
    this.uniform = runtime.device.createBuffer({
      size: OPT_BYTES,
      usage: UNIFORM_USAGE,
      label: 'wpc.optimizer.params',
    });
    runtime.track(this);
  }

  get disposed(): boolean {
    return this.disposedFlag;
  }

  /** @internal validates that this state can update `size` values of kind `target` with `optimizer`. */
  check(
    fn: string,
    optimizer: unknown,
    target: 'params' | 'activities',
    size: number,
    runtime: Runtime,
    names: { optim: string; optState: string } = { optim: 'optim', optState: 'optState' },
  ): void {
    const { optState: name } = names;
    if (!(optimizer instanceof Optimizer)) argError(fn, names.optim, 'an Optimizer (from sgd() or adam())', optimizer);
    if (this.disposedFlag) throw new WpcArgumentError(`${fn}: ${name} has been disposed`);
    if (this.runtime !== runtime) {
      throw new WpcArgumentError(
        `${fn}: ${name} belongs to a different runtime (GPU device) than the model; make it with optim.init(...) on the model's runtime`,
      );
    }
    if (optimizer !== this.optimizer) {
      throw new WpcArgumentError(
        `${fn}: ${name} was made by a different optimiser than ${names.optim} (call ${names.optim}.init(...) to make it)`,
      );
    }
    if (this.target !== target || this.size !== size) {
      throw new WpcArgumentError(
        `${fn}: ${name} was made for ${this.size} ${this.target === 'params' ? 'parameters' : 'activity values'}, but this update needs ${size} ${target === 'params' ? 'parameters' : 'activity values'}`,
      );
    }
  }

  /** vec4 variants of the update kernels, by the scalar kernel's cache key (see recordStep). */
  private readonly vec4Kernels = new Map<string, CompiledKernel>();

  /**
   * @internal compiles the update kernel for a target layout (guarded: gated by the divergence flag), and its
   * vec4 variant, which recordStep uses where the layout allows.
   */
  async kernel(gradsInTarget: boolean, guarded = false): Promise<CompiledKernel> {
    const kind = this.optimizer.kernelKind;
    const [scalar, vec4] = await Promise.all([
      this.runtime.kernel(optimizerKernel(kind, gradsInTarget, guarded)),
      this.runtime.kernel(optimizerKernel(kind, gradsInTarget, guarded, true)),
    ]);
    this.vec4Kernels.set(scalar.cacheKey, vec4);
    return scalar;
  }

  // ── Divergence guard (training steps): see kernels/health.wgsl ──
  private control: GPUBuffer | null = null;
  private healthUniform: GPUBuffer | null = null;
  private readonly healthGroups = new Map<string, WeakMap<GPUBuffer, GPUBindGroup>>();
  /** The parameters and optimiser state as they were before the last guarded update (runaway check only). */
  private saved: { params: GPUBuffer; moments: GPUBuffer | null } | null = null;
  private rollbackGroups = new WeakMap<GPUBuffer, { params: GPUBindGroup; moments: GPUBindGroup | null }>();
  /** A divergence already read back and not yet cleared. */
  private diverged: WpcDivergenceError | null = null;

  /** @internal the control words (health.wgsl), created on first use. */
  controlBuffer(): GPUBuffer {
    if (!this.control) {
      this.control = this.runtime.createStorageBuffer(
        CONTROL_BYTES,
        'wpc.optimizer.control',
        BufferUsage.COPY_SRC | BufferUsage.COPY_DST | BufferUsage.INDIRECT,
      );
      // No reference yet, no rollback.
      this.runtime.device.queue.writeBuffer(this.control, 0, new Uint32Array(CONTROL_BYTES / 4));
      this.writeHealthyControl();
      this.healthUniform = this.runtime.device.createBuffer({
        size: HEALTH_UNIFORM_BYTES,
        usage: UNIFORM_USAGE,
        label: 'wpc.optimizer.health',
      });
    }
    return this.control;
  }

  /** Lowers the flag (words 0–10); the runaway references (11–15) stay. */
  private writeHealthyControl(): void {
    this.runtime.device.queue.writeBuffer(this.control!, 0, packHealthyControl());
  }

  /**
   * @internal records the divergence check of the step about to be applied (step = count + 1) over the
   * per-layer energies, activity norms, gradient norms, total energy and loss (lossOff -1: none) at the given
   * offsets of `scalars`, the clipping scale for `clip` (0: none) and, with `runaway`, the runaway check
   * against the run's reference. `params` is the buffer the step updates (sizes the rollback).
   */
  recordHealthCheck(
    rec: Recorder,
    kernel: CompiledKernel,
    scalars: GPUBuffer,
    at: {
      energyOff: number;
      nEnergy: number;
      actOff: number;
      nAct: number;
      actFirstLayer: number;
      gradOff: number;
      nGrad: number;
      totalOff: number;
      lossOff: number;
    },
    clip: number,
    runaway: RunawayThreshold | null = null,
    params: GPUBuffer | null = null,
  ): void {
    const control = this.controlBuffer();
    // The rollback copies 16 bytes per invocation (copy.wgsl); (0, 1) workgroups without an optimiser state.
    const grid = (buffer: GPUBuffer | null | undefined): [number, number] =>
      buffer ? foldWorkgroups(Math.ceil(buffer.size / 16 / SMALL_WG), this.runtime.limits) : [0, 1];
    const words = packHealth({
      nEnergy: at.nEnergy,
      energyOff: at.energyOff,
      nAct: at.nAct,
      actOff: at.actOff,
      actFirstLayer: at.actFirstLayer,
      nGrad: at.nGrad,
      gradOff: at.gradOff,
      step: this.count + 1,
      clip,
      totalOff: at.totalOff,
      lossOff: at.lossOff < 0 ? NONE : at.lossOff,
      runaway: runaway !== null,
      factor: runaway?.factor ?? 0,
      floor: runaway?.floor ?? 0,
      warmup: runaway?.warmup ?? 0,
      rollbackParams: runaway ? grid(params) : [0, 0],
      rollbackState: runaway ? grid(this.moments) : [0, 0],
    });
    this.runtime.device.queue.writeBuffer(this.healthUniform!, 0, words);
    rec.dispatch(kernel, this.healthGroup(kernel, scalars, control), 1);
  }

  private healthGroup(kernel: CompiledKernel, scalars: GPUBuffer, control: GPUBuffer): GPUBindGroup {
    let byScalars = this.healthGroups.get(kernel.cacheKey);
    if (!byScalars) this.healthGroups.set(kernel.cacheKey, (byScalars = new WeakMap()));
    let group = byScalars.get(scalars);
    if (!group) {
      group = createBindGroup(this.runtime.device, kernel, { health: this.healthUniform!, scalars, control });
      byScalars.set(scalars, group);
    }
    return group;
  }

  /**
   * @internal runaway check: saves the parameters and optimiser state just before the update (two buffer
   * copies), so that `recordRollbackCheck` can restore them bit for bit.
   */
  recordSave(rec: Recorder, params: GPUBuffer): void {
    if (!this.saved || this.saved.params.size !== params.size) {
      this.saved?.params.destroy();
      this.saved?.moments?.destroy();
      this.saved = {
        params: this.runtime.createStorageBuffer(params.size, 'wpc.optimizer.saved-params'),
        moments: this.moments ? this.runtime.createStorageBuffer(this.moments.size, 'wpc.optimizer.saved-state') : null,
      };
      this.rollbackGroups = new WeakMap();
    }
    rec.copy(params, 0, this.saved.params, 0, params.size);
    if (this.moments) rec.copy(this.moments, 0, this.saved.moments!, 0, this.moments.size);
  }

  /**
   * @internal runaway check, after the update and the updated model's feedforward loss (energy) on the batch: the
   * after-update check, then the rollback (indirect: zero workgroups unless this step diverged).
   */
  recordRollbackCheck(
    rec: Recorder,
    kernels: { after: CompiledKernel; copy: CompiledKernel },
    scalars: GPUBuffer,
    params: GPUBuffer,
  ): void {
    const control = this.controlBuffer();
    rec.dispatch(kernels.after, this.healthGroup(kernels.after, scalars, control), 1);
    let groups = this.rollbackGroups.get(params);
    if (!groups) {
      const saved = this.saved!;
      groups = {
        params: createBindGroup(this.runtime.device, kernels.copy, { src: saved.params, dst: params }),
        moments: this.moments
          ? createBindGroup(this.runtime.device, kernels.copy, { src: saved.moments!, dst: this.moments })
          : null,
      };
      this.rollbackGroups.set(params, groups);
    }
    rec.dispatchIndirect(kernels.copy, groups.params, control, ROLLBACK_ARGS.params);
    if (groups.moments) rec.dispatchIndirect(kernels.copy, groups.moments, control, ROLLBACK_ARGS.state);
  }

  /** @internal the health kernels (before and after the update) and the rollback's copy kernel. */
  async healthKernels(): Promise<{ before: CompiledKernel; after: CompiledKernel; copy: CompiledKernel }> {
    const [before, after, copy] = await Promise.all([
      this.runtime.kernel(healthKernel('before')),
      this.runtime.kernel(healthKernel('after')),
      this.runtime.kernel(copyKernel()),
    ]);
    return { before, after, copy };
  }

  /** @internal the byte range of the control words, for a readback batched with others (`wpc train`). */
  get controlRange(): { buffer: GPUBuffer; byteOffset: number; byteLength: number } {
    return { buffer: this.controlBuffer(), byteOffset: 0, byteLength: CONTROL_BYTES };
  }

  /**
   * @internal interprets control words read back: on a raised flag, remembers the divergence (so every later
   * step refuses to run until `clearDivergence`), rolls the step count back to the last applied update, and
   * returns the error.
   */
  noteControl(words: Float32Array | Uint32Array): WpcDivergenceError | null {
    const u = new Uint32Array(words.buffer, words.byteOffset, CONTROL_BYTES / 4);
    const f = new Float32Array(words.buffer, words.byteOffset, CONTROL_BYTES / 4);
    if (u[CONTROL.flag] === 0 || this.diverged) return this.diverged;
    const step = u[CONTROL.step]!;
    const layerOf = (w: number) => (w === NONE ? -1 : w);
    const kind = u[CONTROL.kind]!;
    const afterUpdate = u[CONTROL.afterUpdate] === 1;
    const energyLayer = u[CONTROL.energyLayer]!;
    let what: DivergenceKind;
    let layer = -1;
    if (kind === 2 || kind === 3) what = kind === 2 ? 'energy-runaway' : 'loss-runaway';
    else if (kind === 1) what = 'loss';
    else if (energyLayer !== NONE || afterUpdate) [what, layer] = ['energy', layerOf(energyLayer)];
    else if (u[CONTROL.activityLayer] !== NONE) [what, layer] = ['activity', u[CONTROL.activityLayer]!];
    else [what, layer] = ['gradient', layerOf(u[CONTROL.gradLayer]!)];
    const runaway =
      kind >= 2
        ? {
            value: f[CONTROL.value]!,
            threshold: f[CONTROL.threshold]!,
            reference: f[CONTROL.reference]!,
            referenceSteps: u[CONTROL.referenceSteps]!,
            factor: f[CONTROL.factor]!,
            floor: f[CONTROL.floor]!,
          }
        : null;
    const details = { afterUpdate, runaway };
    const advice = runaway
      ? "lower the learning rate (or the step size dt), or raise makePcStep's divergenceThreshold.factor"
      : "lower the step size (dt) or the learning rate, or clip gradients (makePcStep's clipGradNorm)";
    this.diverged = new WpcDivergenceError(
      `${WpcDivergenceError.describe(step, what, layer, details)}; ${advice}, then call optState.clearDivergence() to go on`,
      step,
      what,
      layer,
      details,
    );
    this.count = step - 1;
    return this.diverged;
  }

  /**
   * Reads the divergence flag of the steps recorded so far (one small readback, so call it at your usual
   * polls, e.g. with the losses) and throws a WpcDivergenceError naming the step and layer if one diverged.
   */
  async checkDivergence(): Promise<void> {
    if (this.disposedFlag) throw new WpcArgumentError('OptState.checkDivergence: this state has been disposed');
    if (this.diverged) throw this.diverged;
    if (!this.control) return;
    const [words] = await this.runtime.read([this.controlRange]);
    const error = this.noteControl(words!);
    if (error) throw error;
  }

  /** @internal throws the divergence already read, if any (makePcStep refuses to run on). */
  throwIfDiverged(fn: string): void {
    const d = this.diverged;
    if (d)
      throw new WpcDivergenceError(`${fn}: ${d.message}`, d.step, d.what, d.layer, {
        afterUpdate: d.afterUpdate,
        runaway: d.runaway,
      });
  }

  /**
   * Lowers the divergence flag after a WpcDivergenceError, so that training can go on (e.g. with a lower dt).
   * The runaway check's references (the run's early energy and loss) are kept.
   */
  clearDivergence(): void {
    if (this.disposedFlag) throw new WpcArgumentError('OptState.clearDivergence: this state has been disposed');
    this.diverged = null;
    if (this.control) this.writeHealthyControl();
  }

  /**
   * @internal writes this step's hyper-parameters (queue-ordered: before the submit that holds the dispatch)
   * and records p ← update(p, g) over `n` values. With `grads` null the gradient is read from the target buffer.
   */
  recordStep(
    rec: Recorder,
    kernel: CompiledKernel,
    target: { buffer: GPUBuffer; offset: number },
    grads: { buffer: GPUBuffer; offset: number } | { inTarget: number },
    n: number,
  ): void {
    this.count++;
    const c = this.optimizer.config;
    const adam = c.kind === 'adam';
    const gOff = 'inTarget' in grads ? grads.inTarget : grads.offset;
    const words = packOpt({
      n,
      pOff: target.offset,
      gOff,
      sOff: 0,
      lr: c.lr,
      b1: adam ? c.b1 : (c.momentum ?? 0),
      b2: adam ? c.b2 : 0,
      eps: adam ? c.eps : 0,
      epsRoot: adam ? c.epsRoot : 0,
      bc1: adam ? 1 - c.b1 ** this.count : 0,
      bc2: adam ? 1 - c.b2 ** this.count : 0,
      nesterov: !adam && c.nesterov === true,
    });
    this.runtime.device.queue.writeBuffer(this.uniform, 0, words);
    const gradBuffer = 'inTarget' in grads ? target.buffer : grads.buffer;
    // 4 values per invocation where every offset and n are multiples of 4 and every bound buffer a multiple of
    // 16 bytes (a vec4 array binding cannot reach a buffer's last 1–3 floats otherwise).
    const aligned =
      (n | target.offset | gOff) % 4 === 0 &&
      [target.buffer, gradBuffer, ...(this.moments ? [this.moments] : [])].every((b) => b.size % 16 === 0);
    const vec4 = aligned ? this.vec4Kernels.get(kernel.cacheKey) : undefined;
    if (vec4) kernel = vec4;
    let byGrads = this.groups.get(target.buffer);
    if (!byGrads) this.groups.set(target.buffer, (byGrads = new WeakMap()));
    let byKernel = byGrads.get(gradBuffer);
    if (!byKernel) byGrads.set(gradBuffer, (byKernel = new Map()));
    let group = byKernel.get(kernel.cacheKey);
    if (!group) {
      const resources: Record<string, GPUBuffer> = { opt: this.uniform, values: target.buffer };
      if (!('inTarget' in grads)) resources.grads = grads.buffer;
      if (this.moments) resources.moments = this.moments;
      if (kernel.spec.bindings.some((b) => b.name === 'control')) resources.control = this.controlBuffer();
      group = createBindGroup(this.runtime.device, kernel, resources);
      byKernel.set(kernel.cacheKey, group);
    }
    rec.dispatch(kernel, group, Math.ceil(n / (vec4 ? 4 : 1) / SMALL_WG));
  }

  /**
   * The optimiser state as stored: `stateWidth` planes of `size` values (momentum trace; or Adam's m then v),
   * in the target's flat layout, or null for plain SGD. One readback.
   */
  async stateToArray(): Promise<Float32Array | null> {
    if (this.disposedFlag) throw new WpcArgumentError('OptState.stateToArray: this state has been disposed');
    if (!this.moments) return null;
    const [values] = await this.runtime.read([
      { buffer: this.moments, byteOffset: 0, byteLength: this.optimizer.stateWidth * this.size * 4 },
    ]);
    return values!;
  }

  /**
   * Replaces the state with `values` (as `stateToArray` returns) and the step count with `count`. Everything is
   * validated first: on a bad argument nothing changes.
   */
  loadState(values: Float32Array | null, count: number): void {
    const fn = 'OptState.loadState';
    if (this.disposedFlag) throw new WpcArgumentError(`${fn}: this state has been disposed`);
    if (!Number.isSafeInteger(count) || count < 0) argError(fn, 'count', 'a non-negative integer', count);
    const want = this.optimizer.stateWidth * this.size;
    if (want === 0) {
      if (values !== null && values.length !== 0)
        throw new WpcArgumentError(`${fn}: values must be null for a stateless optimiser, got ${values.length} values`);
    } else {
      if (!(values instanceof Float32Array)) argError(fn, 'values', `a Float32Array of ${want} values`, values);
      if (values.length !== want)
        throw new WpcArgumentError(
          `${fn}: values must hold ${want} values (${this.optimizer.stateWidth} × ${this.size}), got ${values.length}`,
        );
      this.runtime.device.queue.writeBuffer(this.moments!, 0, values.buffer, values.byteOffset, values.byteLength);
    }
    this.count = count;
  }

  /** Frees the moments. Idempotent. */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    this.moments?.destroy();
    this.uniform.destroy();
    this.control?.destroy();
    this.healthUniform?.destroy();
    this.saved?.params.destroy();
    this.saved?.moments?.destroy();
    this.runtime.untrack(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Validates `optState` (an OptState from `optim.init`, for this runtime, kind and size). */
export function checkOptState(
  fn: string,
  optState: unknown,
  optim: unknown,
  target: 'params' | 'activities',
  size: number,
  runtime: Runtime,
  names: { optim: string; optState: string } = { optim: 'optim', optState: 'optState' },
): asserts optState is OptState {
  if (!(optState instanceof OptState))
    argError(fn, names.optState, `an OptState (from ${names.optim}.init(...))`, optState);
  optState.check(fn, optim, target, size, runtime, names);
}
