/**
 * Node only: loads Dawn (the `webgpu` npm package) on first use. Nothing else in WPC imports this file, so
 * browser bundles never see it.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DAWN_RANGE } from './build-info.js';
import { describe, printable, WpcArgumentError, WpcGpuError } from './errors.js';

export const NO_ADAPTER_HINT_NODE =
  'Dawn (the `webgpu` package) found no Vulkan, Metal or D3D12 adapter. On Linux without a GPU driver, install ' +
  "Mesa's software Vulkan driver lavapipe, as root (or with sudo): `bash scripts/install-lavapipe.sh` in a WPC " +
  'checkout, or `bash node_modules/webgpu-pc/scripts/install-lavapipe.sh` where WPC is a dependency (Debian 12: it takes ' +
  "mesa-vulkan-drivers and libvulkan1 from bookworm-backports, since Debian 12's own Mesa is too old for Dawn). " +
  "Elsewhere install libvulkan1 and a Vulkan driver (Mesa >= 24, or your GPU vendor's), then check with `vulkaninfo --summary`.";

/**
 * The SIMD width lavapipe (Mesa's software Vulkan driver) compiles shaders for, in bits; `'auto'` picks it.
 * See `InitOptions.softwareVectorBits`.
 */
export type SoftwareVectorBits = 'auto' | 128 | 256 | 512;

const SOFTWARE_VECTOR_BITS: readonly SoftwareVectorBits[] = ['auto', 128, 256, 512];

/** The variable lavapipe reads its vector width from, once per process, when it first compiles. */
const LAVAPIPE_WIDTH_VAR = 'LP_NATIVE_VECTOR_WIDTH';

/** Whether this CPU has AVX-512 (Linux on x86-64 only: elsewhere we cannot tell cheaply, and say no). */
export function cpuHasAvx512(cpuinfo?: string): boolean {
  if (cpuinfo === undefined) {
    if (process.platform !== 'linux' || process.arch !== 'x64') return false;
    try {
      cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return false;
    }
  }
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1]?.split(/\s+/) ?? [];
  return flags.includes('avx512f') && flags.includes('avx512bw') && flags.includes('avx512vl');
}

/**
 * What LP_NATIVE_VECTOR_WIDTH should be set to for `bits`, or undefined to leave the environment alone. `'auto'`
 * asks for 512-bit vectors (16 lanes per subgroup) on CPUs with AVX-512 unless the user set the variable: there
 * training steps and lone products are faster than with lavapipe's default 256 (DEVELOPERS.md has the figures).
 */
export function lavapipeVectorWidth(
  bits: SoftwareVectorBits,
  env: Record<string, string | undefined>,
  avx512: () => boolean,
): string | undefined {
  if (bits !== 'auto') return String(bits);
  if (env[LAVAPIPE_WIDTH_VAR] !== undefined) return undefined;
  return avx512() ? '512' : undefined;
}

export function checkSoftwareVectorBits(fn: string, bits: unknown): SoftwareVectorBits {
  if (!SOFTWARE_VECTOR_BITS.includes(bits as SoftwareVectorBits)) {
    throw new WpcArgumentError(
      `${fn}: options.softwareVectorBits must be one of "auto", 128, 256, 512, got ${describe(bits)}`,
    );
  }
  return bits as SoftwareVectorBits;
}

let loaded: Promise<GPU> | undefined;
let loadedWith = '';
/** LP_NATIVE_VECTOR_WIDTH as it was when Dawn was created (lavapipe keeps what it read then). */
let loadedWidth: string | undefined;

/**
 * Sets lavapipe's vector width for this process, before anything creates a WebGPU instance with Dawn (it has no
 * effect after lavapipe first compiled a shader). `init()` calls it; call it yourself when you create Dawn's
 * `GPU` object before WPC does (e.g. for another library sharing the adapter). Returns the width in effect, or
 * undefined where lavapipe's own default applies.
 */
export function applySoftwareVectorBits(bits: SoftwareVectorBits = 'auto'): string | undefined {
  const fn = 'applySoftwareVectorBits';
  return applyWidth(fn, checkSoftwareVectorBits(fn, bits));
}

/** `bits` already checked (applySoftwareVectorBits, or init before it calls dawnGpu). */
function applyWidth(fn: string, bits: SoftwareVectorBits): string | undefined {
  const want = lavapipeVectorWidth(bits, process.env, () => cpuHasAvx512());
  if (loaded) {
    if (want !== undefined && want !== loadedWidth) {
      throw new WpcArgumentError(
        `${fn}: options.softwareVectorBits ${bits} asks for ${want}-bit vectors, but Dawn was already created in this process with ${loadedWidth ?? "lavapipe's default"}; one process uses one width`,
      );
    }
    return loadedWidth;
  }
  if (want !== undefined) process.env[LAVAPIPE_WIDTH_VAR] = want;
  return process.env[LAVAPIPE_WIDTH_VAR];
}

/**
 * Why `import('webgpu')` failed, as the error `init()` throws. `webgpu` is an optional peer dependency (browsers
 * never need it), so a missing package is the expected case and gets a message that says only what to install;
 * a package that is there but fails to load (a native binary for another platform, a broken install) keeps the
 * loader's own message.
 */
function dawnLoadError(e: unknown): WpcGpuError {
  const err = e as { code?: unknown; message?: unknown } | null;
  const message = typeof err?.message === 'string' ? err.message : String(e);
  const missing =
    (err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND') &&
    /Cannot find (package|module) 'webgpu'/.test(message);
  if (missing) {
    return new WpcGpuError(
      `WPC in Node needs Dawn: npm install webgpu@${DAWN_RANGE} (the \`webgpu\` package, an optional peer dependency of webgpu-pc that browsers do not need, was not found)`,
      'no-adapter',
    );
  }
  return new WpcGpuError(
    `WPC: could not load Dawn (the \`webgpu\` package): ${printable(message.trim().replace(/\s*\n\s*/g, '; '))}. Reinstall it: npm install webgpu@${DAWN_RANGE}`,
    'no-adapter',
  );
}

/**
 * Dawn's `GPU` object, created once per process (Dawn allows one instance per set of options). `vectorBits` is
 * checked by the caller (init).
 */
export async function dawnGpu(options: readonly string[], vectorBits: SoftwareVectorBits = 'auto'): Promise<GPU> {
  if (!Array.isArray(options))
    throw new WpcArgumentError(`init: dawnOptions must be an array of strings, got ${describe(options)}`);
  for (const o of options) {
    if (typeof o !== 'string') throw new WpcArgumentError(`init: dawnOptions must be strings, got ${typeof o}`);
    if (/^backend\s*=\s*null$/i.test(o)) {
      throw new WpcArgumentError(
        "init: dawnOptions must not select 'backend=null': Dawn's null backend computes nothing",
      );
    }
  }
  const key = options.join('\n');
  if (loaded && key !== loadedWith) {
    throw new WpcArgumentError(
      `init: Dawn was already created with dawnOptions ${JSON.stringify(loadedWith.split('\n').filter(Boolean))}; one process uses one set`,
    );
  }
  const width = applyWidth('init', vectorBits);
  if (!loaded) {
    loadedWith = key;
    loadedWidth = width;
    loaded = (async () => {
      // Dawn prints harmless errors when XDG_RUNTIME_DIR is missing; give it a private temporary one.
      if (!process.env.XDG_RUNTIME_DIR) {
        const dir = join(tmpdir(), `wpc-xdg-${process.getuid?.() ?? 0}`);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        process.env.XDG_RUNTIME_DIR = dir;
      }
      let mod: { create(options: string[]): GPU };
      try {
        mod = (await import('webgpu')) as unknown as { create(options: string[]): GPU };
      } catch (e) {
        throw dawnLoadError(e);
      }
      return mod.create([...options]);
    })();
    loaded.catch(() => {
      loaded = undefined;
    });
  }
  return loaded;
}
