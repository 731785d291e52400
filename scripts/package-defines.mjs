// What the bundles take from package.json when they are built (esbuild's `define` in scripts/build.mjs and
// bench-sections.mjs, vite's in vitest.config.ts), so that no code reads package.json from a path at run time.
import { readFileSync } from 'node:fs';

/** esbuild / vite `define` entries: the package's version and the `webgpu` (Dawn) range it works with. */
export function packageDefines() {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const dawn = pkg.peerDependencies?.webgpu;
  if (typeof pkg.version !== 'string' || typeof dawn !== 'string')
    throw new Error('package.json needs a version and peerDependencies.webgpu');
  return { __WPC_VERSION__: JSON.stringify(pkg.version), __WPC_DAWN_RANGE__: JSON.stringify(dawn) };
}
