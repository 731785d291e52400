import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

// WGSL sources are imported as strings (esbuild does the same with its `text` loader in scripts/build.mjs).
const wgslAsText = {
  name: 'wgsl-as-text',
  enforce: 'pre' as const,
  load(id: string) {
    if (!id.endsWith('.wgsl')) return null;
    return `export default ${JSON.stringify(readFileSync(id, 'utf8'))};`;
  },
};

export default defineConfig({
  plugins: [wgslAsText],
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    // One process, files one after another: lavapipe already spreads each dispatch over every core, and a
    // native addon (Dawn) is happier in a forked process than in a worker thread.
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    setupFiles: ['test/setup.ts'],
  },
});
