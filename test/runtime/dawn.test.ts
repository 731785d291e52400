// Dawn (the `webgpu` package) is an optional peer dependency: a Node user who installed only webgpu-pc gets one
// clear sentence saying what to install, from the API (a WpcError) and from the CLI (one line, exit 1), and a
// Dawn that is there but fails to load keeps its loader's reason. Run on the built bundles, copied into a
// temporary folder whose node_modules has no `webgpu` (npm test builds dist/ first).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
/** Lines Dawn itself prints on stderr when it opens an adapter (not WPC's). */
const DAWN_NOTICE = /^Warning: max\w+ artificially reduced/;

let dir: string;
/** The installed package: dir/node_modules/webgpu-pc, with the bundles and a package.json. */
let installed: string;

function node(args: string[]): Promise<{ code: number; stdout: string; lines: string[] }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: dir, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, lines: stderr.split('\n').filter((l) => l !== '' && !DAWN_NOTICE.test(l)) });
    });
  });
}

/** What `init()` of the installed Node entry throws, as JSON. */
async function initError(): Promise<{ name: string; kind: string; wpc: boolean; message: string }> {
  const script = `
    const wpc = await import(${JSON.stringify(join(installed, 'dist/node.js'))});
    try { (await wpc.init()).dispose(); console.log('null'); }
    catch (e) { console.log(JSON.stringify({ name: e.name, kind: e.kind, wpc: e instanceof wpc.WpcError, message: e.message })); }`;
  const r = await node(['--input-type=module', '-e', script]);
  expect(r.code, r.lines.join('\n')).toBe(0);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wpc-no-dawn-'));
  installed = join(dir, 'node_modules/webgpu-pc');
  await mkdir(join(installed, 'dist'), { recursive: true });
  for (const file of ['node.js', 'cli.js']) await copyFile(join(ROOT, 'dist', file), join(installed, 'dist', file));
  await writeFile(
    join(installed, 'package.json'),
    JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module' }),
  );
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('without Dawn installed', () => {
  const expected = `WPC in Node needs Dawn: npm install webgpu@${pkg.peerDependencies.webgpu} `;

  it('init() fails with a WpcError that says what to install, with the version range', async () => {
    const e = await initError();
    expect(e).toMatchObject({ name: 'WpcGpuError', kind: 'no-adapter', wpc: true });
    expect(e.message.startsWith(expected), e.message).toBe(true);
    expect(e.message, 'no path of this machine').not.toContain(dir);
  });

  it('the CLI prints it on one line and exits 1; commands that need no device still run', async () => {
    const r = await node([join(installed, 'dist/cli.js'), 'info']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.lines).toEqual([
      `wpc: ${expected}(the \`webgpu\` package, an optional peer dependency of webgpu-pc that browsers do not need, was not found)`,
    ]);
    const version = await node([join(installed, 'dist/cli.js'), '--version']);
    expect(version).toEqual({ code: 0, stdout: `${pkg.version}\n`, lines: [] });
  });

  it('a Dawn that is installed but fails to load keeps its reason, on one escaped line', async () => {
    const broken = join(dir, 'node_modules/webgpu');
    await mkdir(broken, { recursive: true });
    await writeFile(
      join(broken, 'package.json'),
      JSON.stringify({ name: 'webgpu', version: '0.0.0', type: 'module', main: 'index.js' }),
    );
    await writeFile(
      join(broken, 'index.js'),
      'throw new Error("dawn.node: wrong ELF class\\nsecond line \\u001b[31m");\n',
    );
    try {
      const e = await initError();
      expect(e).toMatchObject({ name: 'WpcGpuError', kind: 'no-adapter', wpc: true });
      expect(e.message).toBe(
        `WPC: could not load Dawn (the \`webgpu\` package): dawn.node: wrong ELF class; second line \\x1b[31m. Reinstall it: npm install webgpu@${pkg.peerDependencies.webgpu}`,
      );
      const r = await node([join(installed, 'dist/cli.js'), 'info']);
      expect(r.code).toBe(1);
      expect(r.lines).toEqual([`wpc: ${e.message}`]);
    } finally {
      await rm(broken, { recursive: true, force: true });
    }
  });
});
