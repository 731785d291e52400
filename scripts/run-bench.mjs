// `npm run bench`: bundles and runs the benchmarks in bench/, writes bench/results/<name>.json and the
// corresponding section of BENCHMARKS.md (machine, adapter, date and command included).
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { cpus, totalmem, platform, release } from 'node:os';
import { BENCHES, bundleBench, writeSection } from './bench-sections.mjs';

mkdirSync('bench/results', { recursive: true });
mkdirSync('.bench-build', { recursive: true });
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${platform()} ${release()}, Node ${process.version}`;
const date = new Date().toISOString().slice(0, 10);
const only = process.argv.slice(2);

for (const [name, title] of Object.entries(BENCHES)) {
  if (only.length > 0 && !only.includes(name)) continue;
  await bundleBench(name, ['webgpu', '@tensorflow/*']);
  console.error(`bench ${name} ...`);
  const out = execFileSync(process.execPath, [`.bench-build/${name}.mjs`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const result = JSON.parse(out.trim().split('\n').pop());
  mkdirSync(dirname(`bench/results/${name}.json`), { recursive: true });
  writeFileSync(`bench/results/${name}.json`, `${JSON.stringify({ machine, date, ...result }, null, 1)}\n`);
  // Re-read BENCHMARKS.md now: it may have been edited while the benchmark ran (only this section is ours).
  const table = writeSection('BENCHMARKS.md', name, {
    title,
    machine,
    adapter: result.adapter,
    date,
    command: `npm run bench -- ${name}`,
    rows: result.rows,
    note: result.note,
  });
  console.error(table);
}
