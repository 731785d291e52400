// `npm run bench`: bundles and runs the benchmarks in bench/, writes bench/results/<name>.json and the
// corresponding section of BENCHMARKS.md (machine, adapter, date and command included).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, totalmem, platform, release } from 'node:os';

const BENCHES = {
  inference: 'Inference and training steps, JPC paper networks',
  solvers: 'Every inference method, H = 3 paper network',
  fused: 'Fused single-workgroup solve vs per-stage dispatches (small networks)',
  matmul: "Matrix products: WPC's gemm kernel vs the CPU's BLAS (numpy)",
  peers: 'The same PC training step in WPC, TensorFlow.js (WebGPU) and numpy',
  scaling: 'Scaling with width, depth and batch (Euler, 10 steps), with GPU memory',
  profile: 'Where a training step\'s GPU time goes (per kernel, timestamp queries; 20 Euler steps + Adam)',
};
mkdirSync('bench/results', { recursive: true });
mkdirSync('.bench-build', { recursive: true });
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${platform()} ${release()}, Node ${process.version}`;
const date = new Date().toISOString().slice(0, 10);
const only = process.argv.slice(2);

const readDoc = () => (existsSync('BENCHMARKS.md') ? readFileSync('BENCHMARKS.md', 'utf8') : '# Benchmarks\n\nProduced by `npm run bench`. Each figure is a median over repeated runs after warm-up.\n');
for (const [name, title] of Object.entries(BENCHES)) {
  if (only.length > 0 && !only.includes(name)) continue;
  await build({ entryPoints: [`bench/${name}.ts`], bundle: true, platform: 'node', format: 'esm', outfile: `.bench-build/${name}.mjs`, loader: { '.wgsl': 'text' }, external: ['webgpu', '@tensorflow/*'], logLevel: 'warning' });
  console.error(`bench ${name} ...`);
  const out = execFileSync(process.execPath, [`.bench-build/${name}.mjs`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const result = JSON.parse(out.trim().split('\n').pop());
  writeFileSync(`bench/results/${name}.json`, `${JSON.stringify({ machine, date, ...result }, null, 1)}\n`);
  const cols = Object.keys(result.rows[0]);
  const table = [`| ${cols.join(' | ')} |`, `| ${cols.map(() => '---').join(' | ')} |`, ...result.rows.map((r) => `| ${cols.map((c) => r[c]).join(' | ')} |`)].join('\n');
  const section = `<!-- bench:${name} -->\n## ${title}\n\n- machine: ${machine}\n- adapter: ${result.adapter}\n- date: ${date}\n- command: \`npm run bench -- ${name}\`\n\n${table}\n<!-- /bench:${name} -->`;
  const re = new RegExp(`<!-- bench:${name} -->[\\s\\S]*?<!-- /bench:${name} -->`);
  // Re-read now: the file may have been edited while the benchmark ran (only this section is ours to replace).
  let doc = readDoc();
  doc = re.test(doc) ? doc.replace(re, section) : `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync('BENCHMARKS.md', doc.endsWith('\n') ? doc : `${doc}\n`);
  console.error(table);
}
