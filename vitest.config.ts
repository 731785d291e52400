import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';
// @ts-expect-error: a plain .mjs script without types
import { packageDefines } from './scripts/package-defines.mjs';

// WGSL sources are imported as strings (esbuild does the same with its `text` loader in scripts/build.mjs).
const wgslAsText = {
  name: 'wgsl-as-text',
  enforce: 'pre' as const,
  load(id: string) {
    if (!id.endsWith('.wgsl')) return null;
    return `export default ${JSON.stringify(readFileSync(id, 'utf8'))};`;
  },
};

// The files that check GPU kernels against float64 references, run a second time with the other lane count.
const OTHER_LANES_FILES = [
  'test/tiles.test.ts',
  'test/reductions.test.ts',
  'test/energy.test.ts',
  'test/solver.test.ts',
  'test/rk.test.ts',
  'test/train.test.ts',
  'test/pc-variants.test.ts',
  'test/bidirectional.test.ts',
  'test/epc.test.ts',
  'test/inference-features.test.ts',
];

// The subgroup-matrix layout's tests need an adapter with subgroup matrices: `npm run test:matrix` runs them
// under Mesa 26's lavapipe (scripts/matrix-lavapipe.mjs), which sets WPC_MATRIX_ADAPTER.
const MATRIX_FILE = 'test/subgroup-matrix.test.ts';
const matrixProject = process.env.WPC_MATRIX_ADAPTER ? [{ extends: true as const, test: { name: 'subgroup matrix', include: [MATRIX_FILE] } }] : [];

export default defineConfig({
  plugins: [wgslAsText],
  // The version and Dawn's range, as scripts/build.mjs defines them (src/runtime/build-info.ts).
  define: packageDefines(),
  test: {
    environment: 'node',
    // One process, files one after another: lavapipe already spreads each dispatch over every core, and a
    // native addon (Dawn) is happier in a forked process than in a worker thread.
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    setupFiles: ['test/setup.ts'],
    projects: [
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'], exclude: [MATRIX_FILE] } },
      {
        // The kernels again with lavapipe's other vector width (8 or 16 subgroup lanes; test/setup-other-lanes.ts).
        extends: true,
        test: { name: 'other lanes', include: OTHER_LANES_FILES, setupFiles: ['test/setup.ts', 'test/setup-other-lanes.ts'] },
      },
      ...matrixProject,
    ],
  },
});
