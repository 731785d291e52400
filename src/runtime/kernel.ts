/**
 * Kernel descriptors and the pipeline cache.
 *
 * A kernel is WGSL source assembled from one or more `.wgsl` files plus a small descriptor: its bindings (all in
 * group 0, in order), its workgroup size and a cache key that names every specialisation baked into the source.
 * Pipelines use explicit bind-group layouts (never `layout: 'auto'`), so one bind group can be built per buffer
 * set and reused for every dispatch of an inference loop.
 *
 * Specialisation happens in two ways, both visible in the `.wgsl` files:
 * - `{{NAME}}` is replaced by a constant (tile sizes, activation ids): things WGSL `override`s cannot size;
 * - `#if NAME` / `#elif NAME` / `#else` / `#endif` select code, evaluated by `wgsl-preprocessor`.
 */
import { waitWithPolling } from './polling.js';
import { wgsl } from 'wgsl-preprocessor/wgsl-preprocessor.js';
import { WpcGpuError, WpcShaderError } from './errors.js';
import { ShaderStage } from './flags.js';

type BindingKind = 'uniform' | 'storage' | 'read-only-storage';

export interface BindingSpec {
  readonly name: string;
  readonly kind: BindingKind;
  /** `@binding(n)` in the WGSL; defaults to the position in `bindings`. */
  readonly index?: number;
  /** Bound with a dynamic offset (per-dispatch parameters in one uniform buffer). */
  readonly dynamicOffset?: boolean;
}

/** One source file that goes into a kernel, with its name for error messages. */
export interface SourcePart {
  readonly file: string;
  readonly source: string;
}

export interface KernelSpec {
  /** Names the kernel in labels and error messages. */
  readonly name: string;
  readonly parts: readonly SourcePart[];
  /** `#if` switches (false when absent) and `{{NAME}}` constants. */
  readonly defines?: Readonly<Record<string, boolean>>;
  readonly constants?: Readonly<Record<string, number | string>>;
  readonly entryPoint: string;
  readonly bindings: readonly BindingSpec[];
  /** Invocations per workgroup along x (the kernels here are 1-D workgroups). */
  readonly workgroupSize: number;
}

export interface CompiledKernel {
  readonly spec: KernelSpec;
  readonly cacheKey: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  /** The WGSL that was compiled, for debugging. */
  readonly source: string;
}

/** FNV-1a over the sources, so two specs that share a name but not their code never share a pipeline. */
function sourceHash(parts: readonly SourcePart[]): string {
  let h = 0x811c9dc5;
  for (const p of parts) {
    for (let i = 0; i < p.source.length; i++) h = Math.imul(h ^ p.source.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ 0x2f, 0x01000193);
  }
  return (h >>> 0).toString(16);
}

function kernelCacheKey(spec: KernelSpec): string {
  const defines = Object.entries(spec.defines ?? {})
    .filter(([, on]) => on)
    .map(([k]) => k)
    .sort();
  const constants = Object.entries(spec.constants ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  return `${spec.name}|${spec.entryPoint}|${defines.join(',')}|${constants.map(([k, v]) => `${k}=${v}`).join(',')}|${spec.parts.map((p) => p.file).join('+')}#${sourceHash(spec.parts)}`;
}

const IF_DIRECTIVE = /#(if|elif)[ \t]+(!?)([A-Za-z_][A-Za-z0-9_]*)/g;
const CONSTANT = /\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}/g;

/**
 * Applies `#if NAME` switches (through wgsl-preprocessor) and `{{NAME}}` constants to one source file.
 * An unknown `{{NAME}}` is an error: a silently unreplaced token would only fail later, inside the compiler.
 */
function preprocess(
  part: SourcePart,
  defines: Readonly<Record<string, boolean>>,
  constants: Readonly<Record<string, number | string>>,
  kernel = part.file,
): string {
  // wgsl-preprocessor is a template-literal tag that wants `#if ${value}`: split the file at each `#if NAME`.
  const strings: string[] = [];
  const values: boolean[] = [];
  let last = 0;
  for (const m of part.source.matchAll(IF_DIRECTIVE)) {
    strings.push(`${part.source.slice(last, m.index)}#${m[1]} `);
    const on = defines[m[3]!] === true;
    values.push(m[2] === '!' ? !on : on);
    last = m.index + m[0].length;
  }
  strings.push(part.source.slice(last));
  const raw = Object.assign([...strings], { raw: strings }) as unknown as TemplateStringsArray;
  let text: string;
  try {
    text = wgsl(raw, ...values);
  } catch (e) {
    throw new WpcShaderError(
      `WGSL kernel "${kernel}": ${part.file}: preprocessor error: ${(e as Error).message}`,
      kernel,
    );
  }
  return text.replace(CONSTANT, (_, name: string) => {
    const value = constants[name];
    if (value === undefined)
      throw new WpcShaderError(`WGSL kernel "${kernel}": ${part.file}: no value given for {{${name}}}`, kernel);
    return String(value);
  });
}

/** Preprocesses and joins a kernel's parts, remembering where each part starts for error messages. */
function assembleSource(spec: KernelSpec): { source: string; starts: { file: string; line: number }[] } {
  const starts: { file: string; line: number }[] = [];
  let source = '';
  let line = 1;
  for (const part of spec.parts) {
    const text = preprocess(part, spec.defines ?? {}, spec.constants ?? {}, spec.name);
    starts.push({ file: part.file, line });
    const chunk = text.endsWith('\n') ? text : `${text}\n`;
    source += chunk;
    line += chunk.split('\n').length - 1;
  }
  return { source, starts };
}

function locate(starts: { file: string; line: number }[], line: number): string {
  let where = starts[0];
  for (const s of starts) if (s.line <= line) where = s;
  return where ? `${where.file}:${line - where.line + 1}` : `line ${line}`;
}

/** Compiles kernels once per cache key; concurrent requests for the same key share one compilation. */
export class PipelineCache {
  private readonly cache = new Map<string, Promise<CompiledKernel>>();

  constructor(
    private readonly device: GPUDevice,
    private readonly polling: 'spin' | 'timer' = 'spin',
  ) {}

  get size(): number {
    return this.cache.size;
  }

  get(spec: KernelSpec): Promise<CompiledKernel> {
    const key = kernelCacheKey(spec);
    let entry = this.cache.get(key);
    if (!entry) {
      entry = this.compile(spec, key);
      this.cache.set(key, entry);
      entry.catch(() => this.cache.delete(key)); // a failed compile may be retried
    }
    return entry;
  }

  private async compile(spec: KernelSpec, cacheKey: string): Promise<CompiledKernel> {
    const { source, starts } = assembleSource(spec);
    const device = this.device;
    // The scope is popped before any await: error scopes are a per-device stack, and kernels compile
    // concurrently, so a scope left open across an await would catch (and be blamed for) another kernel's error.
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: source, label: spec.name });
    const scope = device.popErrorScope();
    const info = await waitWithPolling(this.polling, () => module.getCompilationInfo());
    const scopeError = await waitWithPolling(this.polling, () => scope);
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length > 0 || scopeError) {
      const lines = source.split('\n');
      const details = errors.map((m) => {
        const text = lines[m.lineNum - 1] ?? '';
        return `  ${locate(starts, m.lineNum)}:${m.linePos} (assembled line ${m.lineNum}): ${m.message}\n    ${text.trim()}`;
      });
      if (details.length === 0 && scopeError) details.push(`  ${scopeError.message}`);
      throw new WpcShaderError(`WGSL kernel "${spec.name}" failed to compile:\n${details.join('\n')}`, spec.name);
    }
    const layout = device.createBindGroupLayout({
      label: `${spec.name}.layout`,
      entries: spec.bindings.map((b, i) => ({
        binding: b.index ?? i,
        visibility: ShaderStage.COMPUTE,
        buffer: { type: b.kind, hasDynamicOffset: b.dynamicOffset ?? false },
      })),
    });
    let pipeline: GPUComputePipeline;
    try {
      pipeline = await waitWithPolling(this.polling, () =>
        device.createComputePipelineAsync({
          label: spec.name,
          layout: device.createPipelineLayout({ label: `${spec.name}.pipelineLayout`, bindGroupLayouts: [layout] }),
          compute: { module, entryPoint: spec.entryPoint },
        }),
      );
    } catch (e) {
      throw new WpcGpuError(
        `could not create the pipeline for kernel "${spec.name}": ${(e as Error).message}`,
        'validation',
      );
    }
    return { spec, cacheKey, pipeline, layout, source };
  }
}

/**
 * Builds a bind group for `kernel` from buffers given by binding name, so call sites cannot mix up indices.
 * Every binding must be given; unknown names are an error.
 */
export function createBindGroup(
  device: GPUDevice,
  kernel: CompiledKernel,
  resources: Readonly<Record<string, GPUBuffer | GPUBufferBinding>>,
  label = kernel.spec.name,
): GPUBindGroup {
  const names = new Set(kernel.spec.bindings.map((b) => b.name));
  for (const name of Object.keys(resources)) {
    if (!names.has(name)) throw new Error(`createBindGroup(${kernel.spec.name}): no binding named ${name}`);
  }
  return device.createBindGroup({
    label,
    layout: kernel.layout,
    entries: kernel.spec.bindings.map((b, i) => {
      const r = resources[b.name];
      if (!r) throw new Error(`createBindGroup(${kernel.spec.name}): binding ${b.name} was not given`);
      return { binding: b.index ?? i, resource: 'buffer' in r ? r : { buffer: r } };
    }),
  });
}
