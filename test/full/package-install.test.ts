/**
 * The package as a user gets it: `npm pack`, then the tarball installed into fresh folders.
 *
 * - A Node consumer (with `webgpu`, Dawn) runs the README's API example as ESM — taken from README.md itself, so
 *   the two cannot drift — after `tsc --strict` (no skipLibCheck) compiled it, and the same example with an option
 *   typo (maxT for maxT1) fails to compile with the excess-property error.
 * - A browser consumer installs the tarball alone: no Dawn in node_modules, no @types/node. Its app type-checks
 *   strictly, esbuild bundles it for the browser with no import left (so none of Dawn), and Chromium (WebGPU on
 *   SwiftShader) trains a small network with it to the same energies as the Node consumer on Dawn.
 * The install sizes (du -sb of node_modules) are printed and written to test-artifacts/install-sizes.json.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { DATA_DIR, ROOT } from '../support/cli-run.js';

const CHROMIUM = process.env.WPC_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
/** The versions this repository uses, so the consumers get what the npm cache already holds. */
const version = (name: string): string =>
  JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
const NPM_INSTALL = ['install', '--prefer-offline', '--no-audit', '--no-fund'];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; npm's own variables from an outer `npm test` are left out, so they cannot steer the installs. */
function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
  timeout = 300_000,
): Promise<Run> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: { ...clean, ...env }, timeout, maxBuffer: 1 << 26 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

async function ok(
  cmd: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
  timeout?: number,
): Promise<Run> {
  const r = await run(cmd, args, cwd, env, timeout);
  expect(r.code, `${cmd} ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
}

async function sizeOf(path: string): Promise<number> {
  return Number((await ok('du', ['-sb', path], ROOT)).stdout.split('\t')[0]);
}

/** The README's API example: the ```ts block under "## The API, in JPC's shape". */
function readmeExample(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## The API, in JPC's shape$/m)[1];
  const code = section?.match(/^```ts\n([\s\S]*?)^```$/m)?.[1];
  if (!code) throw new Error("README.md: no ```ts block under '## The API, in JPC's shape'");
  return code;
}

function consumer(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: `consumer-${dir.split('/').at(-1)}`, private: true, type: 'module' }),
  );
}

const tsc = (dir: string) => join(dir, 'node_modules/typescript/bin/tsc');

// A small classifier on a seeded synthetic task (4 classes, linear boundaries), the same code in Node and in the
// browser: the energy and loss after every training step, then the accuracy on a held-out batch.
const COMPUTE_TS = `import { adam, makeMlp, makePcStep, oneHot, Random, testDiscriminativePc, type Runtime } from 'webgpu-pc';

export interface SmallRun { energies: number[]; losses: number[]; acc: number }

export async function trainSmall(runtime: Runtime): Promise<SmallRun> {
  const rng = new Random(7);
  const B = 64, D = 16, C = 4;
  const w = Array.from({ length: C * D }, () => rng.normal());
  const batch = (rows: number) => {
    const x = new Float32Array(rows * D);
    const labels = new Uint8Array(rows);
    for (let b = 0; b < rows; b++) {
      for (let i = 0; i < D; i++) x[b * D + i] = rng.normal();
      let best = 0;
      let bestScore = -Infinity;
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let i = 0; i < D; i++) s += w[c * D + i]! * x[b * D + i]!;
        if (s > bestScore) [best, bestScore] = [c, s];
      }
      labels[b] = best;
    }
    return { x, y: oneHot(labels, C) };
  };
  const model = makeMlp(runtime, { seed: 3, inputDim: D, width: 32, depth: 3, outputDim: C, actFn: 'tanh' });
  const optim = adam({ lr: 1e-2 });
  const optState = optim.init(model);
  const energies: number[] = [];
  const losses: number[] = [];
  for (let step = 0; step < 12; step++) {
    const { x, y } = batch(B);
    const r = await makePcStep(model, optim, optState, y, { input: x, solver: 'euler', stepsizeController: 'constant', dt: 0.1, maxT1: 2 });
    losses.push(await r.loss.item()); // a Tensor, not Tensor | null: the step has an input
    energies.push((await r.energies.toArray()).reduce((s, e) => s + e, 0));
    r.loss.dispose();
    r.energies.dispose();
  }
  const test = batch(256);
  const { acc } = await testDiscriminativePc(model, test.y, test.x);
  optState.dispose();
  model.dispose();
  return { energies, losses, acc };
}
`;

const NODE_MAIN_TS = `import { init } from 'webgpu-pc';
import { trainSmall } from './compute.js';

const runtime = await init();
console.log(JSON.stringify(await trainSmall(runtime)));
runtime.dispose();
`;

const BROWSER_APP_TS = `import { fetchDataset, init } from 'webgpu-pc';
import { trainSmall, type SmallRun } from './compute.js';

declare global {
  interface Window { wpcResult?: (SmallRun & { adapter: string }) | { error: string } }
}

// fetchDataset exists only in the browser entry: compiling this proves TypeScript and the bundler chose it.
export const loader: typeof fetchDataset = fetchDataset;

try {
  const runtime = await init();
  try {
    window.wpcResult = { adapter: runtime.adapter.architecture, ...(await trainSmall(runtime)) };
  } finally {
    runtime.dispose();
  }
} catch (e) {
  window.wpcResult = { error: String(e) };
}
`;

let work: string;
let tarball: string;
const sizes: Record<string, number> = {};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'wpc-package-'));
  // npm pack runs prepack (the build), as a publish would.
  await ok('npm', ['pack', '--pack-destination', work], ROOT, {}, 600_000);
  const packed = readdirSync(work).filter((f) => f.endsWith('.tgz'));
  expect(packed).toEqual([`${pkg.name}-${pkg.version}.tgz`]);
  tarball = join(work, packed[0]!);
}, 600_000);

afterAll(() => {
  if (Object.keys(sizes).length) {
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(ARTIFACTS, 'install-sizes.json'), `${JSON.stringify(sizes, null, 2)}\n`);
    console.log(`install sizes (du -sb node_modules): ${JSON.stringify(sizes)}`);
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed tarball in Node', () => {
  let dir: string;

  beforeAll(async () => {
    dir = join(work, 'node');
    consumer(dir);
    await ok('npm', [...NPM_INSTALL, tarball, `webgpu@${pkg.peerDependencies.webgpu}`], dir);
    sizes.node = await sizeOf(join(dir, 'node_modules'));
    // The tools of this test, installed after the size was taken.
    await ok(
      'npm',
      [...NPM_INSTALL, `typescript@${version('typescript')}`, `@types/node@${version('@types/node')}`],
      dir,
    );
  }, 600_000);

  it('runs its one command as `npx webgpu-pc` and `npx wpc`', async () => {
    for (const name of [pkg.name, 'wpc']) {
      const r = await ok('npx', ['--offline', name, '--version'], dir);
      expect(r.stdout, `npx ${name} --version`).toBe(`${pkg.version}\n`);
    }
  });

  it('holds only what a consumer needs', () => {
    const installed = join(dir, 'node_modules', pkg.name);
    expect(readdirSync(installed).sort()).toEqual([
      'CHANGELOG.md',
      'LICENSE',
      'README.md',
      'dist',
      'package.json',
      'scripts',
    ]);
    expect(existsSync(join(dir, 'node_modules/fast-png')), 'a bundled package installed again').toBe(false);
    expect(existsSync(join(dir, 'node_modules/wgsl-preprocessor')), 'a bundled package installed again').toBe(false);
  });

  it("runs the README's API example as ESM after tsc --strict compiled it: one epoch of MNIST", {
    timeout: 900_000,
  }, async () => {
    const example = readmeExample();
    expect(example).toContain(`from '${pkg.name}'`);
    writeFileSync(join(dir, 'example.mts'), example);
    await ok(
      process.execPath,
      [
        tsc(dir),
        '--strict',
        '--module',
        'nodenext',
        '--target',
        'es2022',
        '--noEmitOnError',
        '--outDir',
        'out',
        'example.mts',
      ],
      dir,
    );
    const r = await ok(process.execPath, ['out/example.mjs'], dir, { WPC_DATA_DIR: DATA_DIR }, 900_000);
    // console.log of testDiscriminativePc's { loss, acc }.
    const acc = Number(r.stdout.match(/\bacc: ([\d.]+)/)?.[1]);
    expect(acc, r.stdout).toBeGreaterThan(90);
  });

  it('the same example with an option typo (maxT for maxT1) fails to compile with the excess-property error', async () => {
    const example = readmeExample();
    expect(example).toMatch(/\bmaxT1: /);
    writeFileSync(join(dir, 'typo.mts'), example.replace(/\bmaxT1: /, 'maxT: '));
    const r = await run(
      process.execPath,
      [tsc(dir), '--strict', '--module', 'nodenext', '--target', 'es2022', '--noEmit', 'typo.mts'],
      dir,
    );
    expect(r.code).not.toBe(0);
    const errors = r.stdout.split('\n').filter((l) => /error TS\d+/.test(l));
    expect(errors, r.stdout).toHaveLength(1);
    expect(errors[0]).toMatch(
      /^typo\.mts\(\d+,\d+\): error TS(2353|2561): Object literal may only specify known properties, (and|but) 'maxT' does not exist/,
    );
  });

  it('computes the small run the browser test compares with', { timeout: 300_000 }, async () => {
    writeFileSync(join(dir, 'compute.ts'), COMPUTE_TS);
    writeFileSync(join(dir, 'main.ts'), NODE_MAIN_TS);
    await ok(
      process.execPath,
      [
        tsc(dir),
        '--strict',
        '--module',
        'nodenext',
        '--target',
        'es2022',
        '--noEmitOnError',
        '--outDir',
        'out',
        'main.ts',
      ],
      dir,
    );
    const r = await ok(process.execPath, ['out/main.js'], dir);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    writeFileSync(join(work, 'node-small-run.json'), JSON.stringify(result));
    expect(result.energies).toHaveLength(12);
    expect(result.losses.at(-1)).toBeLessThan(result.losses[0]);
    expect(result.acc, 'accuracy on held-out data, 4 classes').toBeGreaterThan(50);
  });
});

describe('the packed tarball in a browser', () => {
  let dir: string;
  let server: Server;

  beforeAll(async () => {
    dir = join(work, 'browser');
    consumer(dir);
    await ok('npm', [...NPM_INSTALL, tarball], dir);
    sizes.browser = await sizeOf(join(dir, 'node_modules'));
    expect(existsSync(join(dir, 'node_modules/webgpu')), 'Dawn installed for a browser-only consumer').toBe(false);
    expect(
      readdirSync(join(dir, 'node_modules'))
        .filter((f) => !f.startsWith('.'))
        .sort(),
      'the packages installed',
    ).toEqual(['@webgpu', pkg.name].sort());
    await ok('npm', [...NPM_INSTALL, `typescript@${version('typescript')}`], dir);
    expect(existsSync(join(dir, 'node_modules/@types/node')), '@types/node in the browser consumer').toBe(false);
    writeFileSync(join(dir, 'compute.ts'), COMPUTE_TS);
    writeFileSync(join(dir, 'app.ts'), BROWSER_APP_TS);
  }, 600_000);

  afterAll(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  it('type-checks strictly without @types/node or skipLibCheck, against the browser entry', async () => {
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'ESNext',
          moduleResolution: 'bundler',
          lib: ['ES2022', 'DOM'],
          types: [],
          strict: true,
          noEmit: true,
        },
        files: ['app.ts'],
      }),
    );
    const r = await run(process.execPath, [tsc(dir), '-p', 'tsconfig.json', '--traceResolution'], dir);
    expect(
      r.code,
      r.stdout
        .split('\n')
        .filter((l) => /error TS/.test(l))
        .join('\n'),
    ).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `Module name '${pkg.name}' was successfully resolved to '[^']*/node_modules/${pkg.name}/dist/types/browser\\.d\\.ts'`,
      ),
    );
  });

  it('bundles with esbuild for the browser without Dawn, and trains in Chromium to the energies Node computes', {
    timeout: 600_000,
  }, async () => {
    const bundle = join(dir, 'public/app.js');
    await build({
      entryPoints: [join(dir, 'app.ts')],
      absWorkingDir: dir,
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      outfile: bundle,
      logLevel: 'error',
    });
    const text = readFileSync(bundle, 'utf8');
    sizes.browserBundle = text.length;
    // Everything is inside the bundle: no import or require is left, so nothing of Dawn (or Node) can load.
    expect(text).not.toMatch(/^\s*import\b|\bimport\s*\(|\brequire\s*\(/m);
    expect(text).not.toMatch(/["'](webgpu|node:[a-z/]+)["']/);
    writeFileSync(
      join(dir, 'public/index.html'),
      '<!doctype html><meta charset="utf-8"><title>webgpu-pc</title><script type="module" src="app.js"></script>\n',
    );

    server = createServer((req, res) => {
      const name = req.url === '/' ? 'index.html' : req.url === '/app.js' ? 'app.js' : null;
      if (!name) return void res.writeHead(404).end();
      res
        .writeHead(200, { 'content-type': name.endsWith('.js') ? 'text/javascript' : 'text/html' })
        .end(readFileSync(join(dir, 'public', name)));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };

    const profile = mkdtempSync(join(tmpdir(), 'wpc-chromium-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-dev-shm-usage'],
    });
    let result: { adapter?: string; energies?: number[]; losses?: number[]; acc?: number; error?: string };
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      // http://localhost is a secure context, which WebGPU needs.
      await page.goto(`http://localhost:${port}/`);
      await page.waitForFunction(() => (window as { wpcResult?: unknown }).wpcResult !== undefined, null, {
        timeout: 540_000,
        polling: 250,
      });
      result = await page.evaluate(() => (window as unknown as { wpcResult: typeof result }).wpcResult);
      expect(errors, 'page errors').toEqual([]);
    } finally {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    }
    expect(result.error).toBeUndefined();
    expect(result.adapter).toBe('swiftshader');
    const nodeRun = join(work, 'node-small-run.json');
    expect(existsSync(nodeRun), "the Node consumer's small run (the test before) did not run").toBe(true);
    const node = JSON.parse(readFileSync(nodeRun, 'utf8')) as { energies: number[]; losses: number[]; acc: number };
    for (const key of ['energies', 'losses'] as const) {
      const got = result[key]!;
      expect(got, key).toHaveLength(node[key].length);
      got.forEach((v, i) =>
        expect(
          Math.abs(v - node[key][i]!) / Math.abs(node[key][i]!),
          `${key}[${i}]: browser ${v}, Node ${node[key][i]}`,
        ).toBeLessThanOrEqual(1e-3),
      );
    }
    // 256 test rows: at most two may fall on the other side of a boundary between the two devices' roundings.
    expect(Math.abs(result.acc! - node.acc), `accuracy: browser ${result.acc}, Node ${node.acc}`).toBeLessThanOrEqual(
      200 / 256,
    );
  });
});
