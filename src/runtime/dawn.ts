/**
 * Node only: loads Dawn (the `webgpu` npm package) on first use. Nothing else in WPC imports this file, so
 * browser bundles never see it.
 */
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WpcArgumentError, WpcGpuError } from './errors.js';

export const NO_ADAPTER_HINT_NODE =
  'Dawn (the `webgpu` package) found no Vulkan, Metal or D3D12 adapter. On Linux without a GPU driver, install ' +
  "Mesa's software Vulkan driver lavapipe: `sudo bash scripts/install-lavapipe.sh` in a WPC checkout, or " +
  '`sudo bash node_modules/wpc/scripts/install-lavapipe.sh` where WPC is a dependency (Debian 12: it takes ' +
  'mesa-vulkan-drivers and libvulkan1 from bookworm-backports, since Debian 12\'s own Mesa is too old for Dawn). ' +
  'Elsewhere install libvulkan1 and a Vulkan driver (Mesa >= 24, or your GPU vendor\'s), then check with `vulkaninfo --summary`.';

let loaded: Promise<GPU> | undefined;
let loadedWith = '';

/** Dawn's `GPU` object, created once per process (Dawn allows one instance per set of options). */
export async function dawnGpu(options: readonly string[]): Promise<GPU> {
  for (const o of options) {
    if (typeof o !== 'string') throw new WpcArgumentError(`init: dawnOptions must be strings, got ${typeof o}`);
    if (/^backend\s*=\s*null$/i.test(o)) {
      throw new WpcArgumentError("init: dawnOptions must not select 'backend=null': Dawn's null backend computes nothing");
    }
  }
  const key = options.join('\n');
  if (loaded && key !== loadedWith) {
    throw new WpcArgumentError(`init: Dawn was already created with dawnOptions ${JSON.stringify(loadedWith.split('\n').filter(Boolean))}; one process uses one set`);
  }
  if (!loaded) {
    loadedWith = key;
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
        throw new WpcGpuError(`WPC: could not load Dawn (the \`webgpu\` npm package): ${(e as Error).message}. Run \`npm install webgpu\`.`, 'no-adapter');
      }
      return mod.create([...options]);
    })();
    loaded.catch(() => {
      loaded = undefined;
    });
  }
  return loaded;
}
