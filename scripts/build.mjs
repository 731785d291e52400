// Builds dist/: the Node entry (Dawn loaded lazily), the browser entry (never imports Dawn), the CLI, and
// type declarations (tsc). WGSL files are bundled as strings.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, rmSync } from 'node:fs';
import { packageDefines } from './package-defines.mjs';

rmSync('dist', { recursive: true, force: true });
const common = {
  bundle: true,
  format: 'esm',
  target: 'es2022',
  sourcemap: true,
  loader: { '.wgsl': 'text' },
  // The version and Dawn's range, from package.json (src/runtime/build-info.ts).
  define: packageDefines(),
  logLevel: 'warning',
};
await build({
  ...common,
  entryPoints: { node: 'src/node.ts', cli: 'src/cli/main.ts' },
  outdir: 'dist',
  platform: 'node',
  // Dawn is a native addon: keep it an import (a dynamic one, in src/runtime/dawn.ts).
  external: ['webgpu'],
  banner: { js: '' },
});
await build({
  ...common,
  entryPoints: { browser: 'src/browser.ts' },
  outdir: 'dist',
  platform: 'browser',
});
chmodSync('dist/cli.js', 0o755);
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
console.log('built dist/ (node.js, browser.js, cli.js, types/)');
