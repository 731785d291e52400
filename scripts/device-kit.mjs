// The benchmarks on a lent GPU machine (the `device` tool; DEVELOPERS.md, "On a lent GPU"), in two steps here:
//
//   node scripts/device-kit.mjs build [--jpc <JPC's git dir>]
//       bundles bench/*.ts into .bench-build/ (TensorFlow.js bundled in, only `webgpu` left outside) and fills
//       .device-kit/ with what the GPU image lacks: Node (xz), the webgpu package with its linux-x64 dawn.node
//       (xz), and JPC's `jpc` package from its repository (never committed). Both folders are git-ignored and
//       travel with `carry`; bench/device/run.sh runs them there.
//   node scripts/device-kit.mjs report <dir> <tag>
//       <dir> holds what run.sh left in $OUT/results.tgz, unpacked. Writes each benchmark's section of
//       BENCHMARKS.md under the key NAME@TAG (the lavapipe sections stay), and the side-by-side table with JPC
//       (bench:jpc@TAG) where both jpc.json and inference.json are there.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BENCHES, bundleBench, writeSection } from './bench-sections.mjs';

const KIT = '.device-kit';
const [command, ...args] = process.argv.slice(2);

function fail(message) {
  console.error(`device-kit: ${message}`);
  process.exit(2);
}

function sizeOf(path) {
  const s = statSync(path);
  return s.isDirectory() ? readdirSync(path).reduce((n, f) => n + sizeOf(join(path, f)), 0) : s.size;
}

async function buildKit() {
  const jpcAt = args.indexOf('--jpc');
  const jpcGit = jpcAt >= 0 ? args[jpcAt + 1] : null;
  if (jpcAt >= 0 && !jpcGit)
    fail("--jpc needs the path of JPC's git directory (e.g. what `fetch github:thebuckleylab/jpc` returned)");
  mkdirSync('.bench-build', { recursive: true });
  // TensorFlow.js goes into the peers bundle: the kit carries only the webgpu package.
  for (const name of Object.keys(BENCHES)) await bundleBench(name, ['webgpu']);
  rmSync(KIT, { recursive: true, force: true });
  const webgpu = join(KIT, 'node_modules', 'webgpu');
  mkdirSync(join(webgpu, 'dist', 'linux-x64'), { recursive: true });
  for (const f of ['package.json', 'index.js']) copyFileSync(join('node_modules', 'webgpu', f), join(webgpu, f));
  const dawn = join('node_modules', 'webgpu', 'dist', 'linux-x64', 'dawn.node');
  execFileSync('sh', ['-c', `xz -T0 -6 -c "${dawn}" > "${join(webgpu, 'dist', 'linux-x64', 'dawn.node.xz')}"`]);
  execFileSync('sh', ['-c', `xz -T0 -6 -c "${process.execPath}" > "${join(KIT, 'node.xz')}"`]);
  if (jpcGit) {
    mkdirSync(join(KIT, 'jpc'), { recursive: true });
    execFileSync('sh', ['-c', `git --git-dir="${jpcGit}" archive HEAD jpc | tar -x -C "${join(KIT, 'jpc')}"`]);
  }
  const mib = (p) => (sizeOf(p) / 2 ** 20).toFixed(1);
  console.log(
    `${KIT}: ${mib(KIT)} MiB, .bench-build: ${mib('.bench-build')} MiB${existsSync('.gl') ? `, .gl: ${mib('.gl')} MiB` : ' (no .gl yet: see the device README)'}; JPC ${jpcGit ? 'included' : 'not included (--jpc)'}`,
  );
  console.log('carry: [".device-kit", ".bench-build", ".gl"], command: "bash bench/device/run.sh [benchmarks…]"');
}

function report() {
  const [dir, tag] = args;
  if (!dir || !existsSync(dir)) fail(`report needs the folder of unpacked results, got ${dir}`);
  if (!tag || !/^[A-Za-z0-9._-]+$/.test(tag))
    fail(`report needs a tag of letters, digits, '.', '_' or '-' (e.g. h100), got ${tag}`);
  const read = (name) => {
    const p = join(dir, `${name}.json`);
    if (!existsSync(p)) return null;
    // A benchmark prints one JSON line last (anything before it is chatter); bench/results files are whole JSON.
    const text = readFileSync(p, 'utf8').trim();
    for (const candidate of [text, text.split('\n').pop() ?? '']) {
      try {
        return JSON.parse(candidate);
      } catch {
        // next candidate
      }
    }
    return null;
  };
  const { machine, date } = read('machine') ?? fail(`${dir}/machine.json is missing`);
  const gpu =
    (existsSync(join(dir, 'gpu.csv'))
      ? readFileSync(join(dir, 'gpu.csv'), 'utf8').trim().split('\n').slice(1).join('; ')
      : '') || 'unknown (no nvidia-smi)';
  const command = (name) => `bash bench/device/run.sh ${name} (lent GPU machine; DEVELOPERS.md)`;
  for (const [name, title] of Object.entries(BENCHES)) {
    const result = read(name);
    if (!result?.rows?.length) {
      if (existsSync(join(dir, `${name}.json`))) console.error(`${name}: no result (see ${name}.log)`);
      continue;
    }
    writeSection('BENCHMARKS.md', `${name}@${tag}`, {
      title: `${title} — ${tag}`,
      machine: `${machine}; GPU: ${gpu}`,
      adapter: result.adapter,
      date,
      command: command(name),
      rows: result.rows,
    });
    console.error(`${name}@${tag}: written`);
  }
  const jpc = read('jpc');
  const inference = read('inference');
  const peers = read('peers');
  if (jpc?.rows?.length && inference?.rows?.length) {
    const wpcRow = (H, solver) => inference.rows.find((r) => r.hidden === H && r.solver.startsWith(solver));
    const rows = jpc.rows.flatMap((j) => {
      const out = [];
      for (const [solver, key] of [
        ['Euler', 'Euler'],
        ['Heun', 'HeunPid'],
      ]) {
        const w = wpcRow(j.H, solver);
        if (!w) continue;
        out.push({
          H: j.H,
          solver: w.solver,
          jpcSolveMs: j[`solve${key}Ms`],
          wpcSolveMs: w.solveMs,
          solveJpcOverWpc: `${(j[`solve${key}Ms`] / w.solveMs).toFixed(2)}×`,
          jpcTrainStepMs: j[`step${key}Ms`],
          wpcTrainStepMs: w.trainStepMs,
          stepJpcOverWpc: `${(j[`step${key}Ms`] / w.trainStepMs).toFixed(2)}×`,
        });
      }
      const p = peers?.rows?.find((r) => r.H === j.H);
      if (p)
        out.push({
          H: j.H,
          solver: 'peers step: 20 Euler steps of dt 0.5 + Adam',
          jpcSolveMs: '',
          wpcSolveMs: '',
          solveJpcOverWpc: '',
          jpcTrainStepMs: j.peersStepMs,
          wpcTrainStepMs: p.wpcMs,
          stepJpcOverWpc: `${(j.peersStepMs / p.wpcMs).toFixed(2)}×`,
        });
      return out;
    });
    writeSection('BENCHMARKS.md', `jpc@${tag}`, {
      title: `WPC beside JPC on the same GPU — ${tag}`,
      machine: `${machine}; GPU: ${gpu}`,
      adapter: `WPC: ${inference.adapter}; JPC: ${jpc.device}, JAX ${jpc.jax}`,
      date,
      command: command('inference peers jpc'),
      note: 'JPC timed by bench/peers/pc_step_jpc.py (jitted, blocked on the result, median after two warm-up calls); WPC by bench/inference.ts and bench/peers.ts',
      rows,
    });
    console.error(`jpc@${tag}: written`);
  }
}

if (command === 'build') await buildKit();
else if (command === 'report') report();
else fail('usage: node scripts/device-kit.mjs build [--jpc <git dir>] | report <dir> <tag>');
