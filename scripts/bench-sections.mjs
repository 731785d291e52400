// What `npm run bench` (scripts/run-bench.mjs) and the GPU-machine kit and report (scripts/device-kit.mjs) share:
// the benchmarks' titles, their bundling, and the writing of one marked section of BENCHMARKS.md.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export const BENCHES = {
  inference: 'Inference and training steps, JPC paper networks',
  solvers: 'Every inference method, H = 3 paper network',
  fused: 'Fused single-workgroup solve vs per-stage dispatches (small networks)',
  matmul: "Matrix products: WPC's gemm kernel vs the CPU's BLAS (numpy)",
  peers: 'The same PC training step in WPC, TensorFlow.js (WebGPU) and numpy',
  scaling: 'Scaling with width, depth and batch (Euler, 10 steps), with GPU memory',
  profile: "Where a training step's GPU time goes (per kernel, timestamp queries; 20 Euler steps + Adam)",
  tiles: 'Register tiles of the grouped matmul: gemm GFLOP/s and Euler µs per step for each candidate',
  conv: 'Convolutional PC networks vs an MLP: dispatches, time per step, GFLOP/s of the layer kernels',
  'tfjs/backprop-cnn': 'Backprop baseline: a CNN trained by TensorFlow.js (test accuracy per epoch)',
  'tfjs/pc-step': 'One conv PC training step in TensorFlow.js ops (WebGPU; wasm and CPU for reference)',
};

/**
 * The TF.js benchmarks (bench/tfjs/) bundle TF.js itself, from its ES modules: tfjs-core's gradients exist only
 * as ES modules, and one copy of tfjs-core must serve every backend. Its CommonJS parts (seedrandom, the wasm
 * backend's loader) then need `require`, `__filename` and `__dirname`, which an ES module lacks.
 */
const TFJS_BUNDLE = {
  mainFields: ['module', 'main'],
  banner: {
    js: [
      "import { createRequire as __wpcRequire } from 'node:module';",
      "import { fileURLToPath as __wpcPath } from 'node:url';",
      'const require = __wpcRequire(import.meta.url);',
      'const __filename = __wpcPath(import.meta.url);',
      "const __dirname = __wpcPath(new URL('.', import.meta.url));",
    ].join(' '),
  },
};

/**
 * Bundles bench/NAME.ts into .bench-build/NAME.mjs; `external` packages stay imports (esbuild is loaded here
 * only, so that the report runs where it is not installed), except TF.js in the TF.js benchmarks (TFJS_BUNDLE).
 */
export async function bundleBench(name, external) {
  const { build } = await import('esbuild');
  const { packageDefines } = await import('./package-defines.mjs');
  const tfjs = name.startsWith('tfjs/');
  await build({
    entryPoints: [`bench/${name}.ts`],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: `.bench-build/${name}.mjs`,
    loader: { '.wgsl': 'text' },
    define: packageDefines(),
    external: tfjs ? external.filter((e) => !e.startsWith('@tensorflow/')) : external,
    ...(tfjs ? TFJS_BUNDLE : {}),
    logLevel: 'warning',
  });
}

/** A markdown table of rows (the columns of the first row). */
export function markdownTable(rows) {
  const cols = Object.keys(rows[0]);
  return [
    `| ${cols.join(' | ')} |`,
    `| ${cols.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${cols.map((c) => r[c] ?? '').join(' | ')} |`),
  ].join('\n');
}

/**
 * Writes (or appends) the section between `<!-- bench:KEY -->` markers of the file, re-reading it first (it may
 * have been edited while a benchmark ran; only this section is ours). Returns the table.
 */
export function writeSection(file, key, { title, machine, adapter, date, command, rows, note }) {
  const table = markdownTable(rows);
  const lines = [
    `## ${title}`,
    '',
    `- machine: ${machine}`,
    `- adapter: ${adapter}`,
    `- date: ${date}`,
    `- command: \`${command}\``,
    ...(note ? [`- ${note}`] : []),
    '',
    table,
  ];
  const section = `<!-- bench:${key} -->\n${lines.join('\n')}\n<!-- /bench:${key} -->`;
  const escaped = key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`<!-- bench:${escaped} -->[\\s\\S]*?<!-- /bench:${escaped} -->`);
  let doc = existsSync(file)
    ? readFileSync(file, 'utf8')
    : '# Benchmarks\n\nProduced by `npm run bench`. Each figure is a median over repeated runs after warm-up.\n';
  doc = re.test(doc) ? doc.replace(re, section) : `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, doc.endsWith('\n') ? doc : `${doc}\n`);
  return table;
}
