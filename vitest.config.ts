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
  'test/kernels/tiles.test.ts',
  'test/full/tile-layouts.test.ts',
  'test/kernels/reductions.test.ts',
  'test/pc/energy.test.ts',
  'test/pc/solver.test.ts',
  'test/pc/solver-rk.test.ts',
  'test/pc/train.test.ts',
  'test/pc/model-parameterisation.test.ts',
  'test/pc/bidirectional.test.ts',
  'test/pc/epc.test.ts',
  'test/pc/infer.test.ts',
];

// The subgroup-matrix layout's tests need an adapter with subgroup matrices: `npm run test:matrix` runs them
// under Mesa 26's lavapipe (scripts/matrix-lavapipe.mjs), which sets WPC_MATRIX_ADAPTER.
const MATRIX_FILE = 'test/kernels/subgroup-matrix.test.ts';
const matrixProject = process.env.WPC_MATRIX_ADAPTER
  ? [{ extends: true as const, test: { name: 'subgroup matrix', include: [MATRIX_FILE], testTimeout: 600_000 } }]
  : [];

// Two tiers. `npm test` runs the project `quick`: every test/**/*.test.ts file outside test/full/ (the folders
// mirror src/; shared helpers live in test/support/), no downloads; each test takes well under a minute on a quiet
// 2-core machine with lavapipe and a cold shader cache (DEVELOPERS.md has the figures), and a test that needs
// longer belongs in test/full/. `npm run test:all` runs every project: `quick`, `full`
// (test/full/: the browser, the examples, the package installed from its tarball, the long CLI runs, the option
// audit and the grids), `other lanes`, then the subgroup-matrix run. The limits only catch a hang: twice the
// quick tests' promise, so that a machine several times slower (busy, or a cold cache) still passes.
const QUICK_LIMIT_MS = 120_000;
const LONG_LIMIT_MS = 1_800_000;

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
    setupFiles: ['test/support/setup.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'quick',
          include: ['test/**/*.test.ts'],
          exclude: ['test/full/**', MATRIX_FILE],
          testTimeout: QUICK_LIMIT_MS,
          hookTimeout: QUICK_LIMIT_MS,
        },
      },
      {
        extends: true,
        test: {
          name: 'full',
          include: ['test/full/**/*.test.ts'],
          testTimeout: LONG_LIMIT_MS,
          hookTimeout: LONG_LIMIT_MS,
        },
      },
      {
        // The kernels again with lavapipe's other vector width (8 or 16 subgroup lanes; test/support/setup-other-lanes.ts).
        // A cold compile of some kernel sets for 16 lanes takes minutes on lavapipe: the limit only catches a hang.
        extends: true,
        test: {
          name: 'other lanes',
          include: OTHER_LANES_FILES,
          setupFiles: ['test/support/setup.ts', 'test/support/setup-other-lanes.ts'],
          testTimeout: LONG_LIMIT_MS,
          hookTimeout: LONG_LIMIT_MS,
        },
      },
      ...matrixProject,
    ],
  },
});
