/**
 * WPC in a browser: Debian's Chromium driven by playwright-core (flags in DEVELOPERS.md) loads the demo page
 * served by scripts/demo-server.mjs, trains in the page on Chromium's WebGPU (SwiftShader), and is compared with
 * the same session (examples/browser/session.js) run here on Dawn. Screenshots go to test-artifacts/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import * as wpc from '../../src/node.js';
// @ts-expect-error plain JS module shared with the page
import { createSession } from '../../examples/browser/session.js';
// @ts-expect-error plain JS module
import { startDemoServer } from '../../scripts/demo-server.mjs';
import { useRuntime } from '../support/helpers.js';
import { DATA_DIR, ROOT } from '../support/cli-run.js';

const rt = useRuntime();
const CHROMIUM = process.env.WPC_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');
const FLAGS = ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-dev-shm-usage'];

let server: { url: string; close(): Promise<void> };
let browser: BrowserContext;
const profiles: string[] = [];

async function launch(args: string[]): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), 'wpc-chromium-'));
  profiles.push(profile);
  return chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args });
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  server = await startDemoServer({ port: 0, dataDir: DATA_DIR });
  browser = await launch(FLAGS);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  for (const p of profiles) rmSync(p, { recursive: true, force: true });
});

interface DemoState {
  state: string;
  adapter: { architecture: string } | null;
  steps: { step: number; energy: number; ms: number; frames: number }[];
  accuracy: { step: number; accuracy: number }[];
  error: string | null;
  maxFrameGapMs: number;
  digits: boolean;
}

async function runDemo(page: Page, query: string): Promise<DemoState> {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.url}?auto=1&${query}`);
  await page.waitForFunction(
    () => ['done', 'error', 'no-webgpu'].includes((window as unknown as { wpcDemo?: DemoState }).wpcDemo?.state ?? ''),
    null,
    { timeout: 540_000, polling: 500 },
  );
  const demo = await page.evaluate(() => (window as unknown as { wpcDemo: DemoState }).wpcDemo);
  expect(errors, 'page errors').toEqual([]);
  return demo;
}

/** The same session in Node, on Dawn: energy after each step. */
async function nodeEnergies(model: string, solver: string, steps: number): Promise<number[]> {
  const [train, test] = await Promise.all([
    wpc.loadDataset('mnist', 'train', { dataDir: DATA_DIR }),
    wpc.loadDataset('mnist', 'test', { dataDir: DATA_DIR }),
  ]);
  const session = await createSession(wpc, rt(), { model, solver, seed: 0 }, train, test);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) out.push((await session.step()).energy);
  session.dispose();
  return out;
}

function expectRelClose(actual: number[], expected: number[], rtol: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  actual.forEach((a, i) =>
    expect(
      Math.abs(a - expected[i]!) / Math.abs(expected[i]!),
      `${what}[${i}]: ${a} vs ${expected[i]}`,
    ).toBeLessThanOrEqual(rtol),
  );
}

describe('the demo page in headless Chromium', () => {
  it('trains bidirectional PC for 30 steps: accuracy rises, energies match Node’s, the digits are drawn, frames keep coming', {
    timeout: 600_000,
  }, async () => {
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1100, height: 820 });
    const demo = await runDemo(page, 'model=bidirectional&steps=30&testEvery=10&testImages=1000&seed=0');
    expect(demo.error).toBeNull();
    expect(demo.state).toBe('done');
    expect(demo.adapter?.architecture).toBe('swiftshader');
    expect(demo.steps).toHaveLength(30);
    const first = demo.accuracy[0]!.accuracy;
    const last = demo.accuracy.at(-1)!.accuracy;
    expect(last, `accuracy ${first}% → ${last}%`).toBeGreaterThan(first + 30);
    expect(demo.digits).toBe(true);
    // The GPU works outside the page's main thread: the page draws while every step runs (a step that held the
    // thread would draw no frame). Counted in frames, not milliseconds, so a busy machine slows both alike.
    const frames = demo.steps.map((s) => s.frames);
    expect(Math.min(...frames), `animation frames drawn during each step: ${frames.join(', ')}`).toBeGreaterThanOrEqual(
      1,
    );
    expect(
      [...frames].sort((a, b) => a - b)[frames.length >> 1],
      `frames per step: ${frames.join(', ')}`,
    ).toBeGreaterThanOrEqual(3);
    await page.screenshot({ path: join(ARTIFACTS, 'browser-demo-bidirectional.png'), fullPage: true });
    expectRelClose(
      demo.steps.map((s) => s.energy),
      await nodeEnergies('bidirectional', 'heun', 30),
      1e-3,
      'bPC energy per step, browser vs Node',
    );
    await page.close();
  });

  it('discriminative PC with Heun + PID: the energy after every step matches Node’s within 1e-3', {
    timeout: 600_000,
  }, async () => {
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1100, height: 820 });
    const demo = await runDemo(page, 'model=discriminative&solver=heun&steps=12&testEvery=12&testImages=500&seed=0');
    expect(demo.error).toBeNull();
    expect(demo.accuracy.at(-1)!.accuracy).toBeGreaterThan(demo.accuracy[0]!.accuracy + 20);
    await page.screenshot({ path: join(ARTIFACTS, 'browser-demo-discriminative.png'), fullPage: true });
    expectRelClose(
      demo.steps.map((s) => s.energy),
      await nodeEnergies('discriminative', 'heun', 12),
      1e-3,
      'PC energy per step, browser vs Node',
    );
    await page.close();
  });

  it('the small PC CNN: accuracy rises and the energy after every step matches Node’s within 1e-3', {
    timeout: 600_000,
  }, async () => {
    const page = await browser.newPage();
    const demo = await runDemo(page, 'model=cnn&solver=heun&steps=8&testEvery=8&testImages=250&seed=0');
    expect(demo.error).toBeNull();
    expect(demo.steps).toHaveLength(8);
    expect(demo.accuracy.at(-1)!.accuracy).toBeGreaterThan(demo.accuracy[0]!.accuracy + 5);
    expect(demo.digits).toBe(false);
    expectRelClose(
      demo.steps.map((s) => s.energy),
      await nodeEnergies('cnn', 'heun', 8),
      1e-3,
      'PC CNN energy per step, browser vs Node',
    );
    await page.close();
  });

  it('refuses a model or a number the page does not offer, with a message and no run', {
    timeout: 120_000,
  }, async () => {
    const page = await browser.newPage();
    for (const query of ['model=constructor&steps=1', 'model=cnn&steps=1e9', 'model=cnn&steps=2&testImages=-5']) {
      const demo = await runDemo(page, query);
      expect(demo.state, query).toBe('error');
      expect(demo.steps, query).toEqual([]);
      expect(demo.error, query).toMatch(/unknown model|must be a whole number in/);
    }
    await expect(createSession(wpc, rt(), { model: '__proto__' }, null, null)).rejects.toThrow(/unknown model/);
    await expect(createSession(wpc, rt(), { model: 'cnn', seed: 0.5 }, null, null)).rejects.toThrow(/seed must be/);
    await page.close();
  });

  it('says clearly when the browser has no WebGPU', { timeout: 120_000 }, async () => {
    const plain = await launch(['--no-sandbox', '--disable-dev-shm-usage']); // no --enable-unsafe-webgpu: no adapter
    try {
      const page = await plain.newPage();
      await page.goto(`${server.url}?auto=1&steps=1`);
      await page.waitForFunction(
        () => ['error', 'no-webgpu'].includes((window as unknown as { wpcDemo?: DemoState }).wpcDemo?.state ?? ''),
        null,
        { timeout: 60_000 },
      );
      expect(await page.isVisible('#no-webgpu')).toBe(true);
      expect(await page.textContent('#no-webgpu')).toContain('WebGPU is not available here');
    } finally {
      await plain.close();
    }
  });
});

describe('embedding: WPC on the caller’s device', () => {
  it('draws WPC’s activity buffers with the app’s render pipeline, and the app’s device outlives runtime.dispose()', {
    timeout: 300_000,
  }, async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}embedding.html?steps=12&present=copy`);
    await page.waitForFunction(
      () =>
        ['done', 'error', 'no-webgpu'].includes(
          (window as unknown as { wpcEmbedding?: { state: string } }).wpcEmbedding?.state ?? '',
        ),
      null,
      { timeout: 240_000, polling: 500 },
    );
    const report = await page.evaluate(
      () => (window as unknown as { wpcEmbedding: Record<string, unknown> }).wpcEmbedding,
    );
    expect(errors).toEqual([]);
    expect(report.error).toBeNull();
    expect(report.state).toBe('done');
    expect(report.frames).toBe(13);
    expect(report.litPixels as number).toBeGreaterThan(1000);
    expect(report.deviceUsableAfterDispose).toBe(true);
    expect(report.appErrors).toEqual([]);
    await page.screenshot({ path: join(ARTIFACTS, 'browser-embedding.png') });
    await page.close();
  });
});
