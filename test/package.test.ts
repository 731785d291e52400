// The published shape of the package: ESM entries for Node and browsers, declarations, the CLI binary.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = (p: string) => fileURLToPath(new URL(`../${p}`, import.meta.url));
const pkg = JSON.parse(readFileSync(root('package.json'), 'utf8'));

describe('package', () => {
  it('is ESM-only and side-effect free, with types first in every export condition', () => {
    expect(pkg.name).toBe('wpc');
    expect(pkg.type).toBe('module');
    expect(pkg.sideEffects).toBe(false);
    for (const [condition, target] of Object.entries(pkg.exports['.'] as Record<string, Record<string, string>>)) {
      expect(Object.keys(target)[0], `exports["."].${condition}`).toBe('types');
      expect(existsSync(root(target.types!)), target.types).toBe(true);
      expect(existsSync(root(target.default!)), target.default).toBe(true);
    }
    expect(pkg.bin.wpc).toBe('./dist/cli.js');
    expect(readFileSync(root('dist/cli.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('the browser bundle never loads Dawn or Node modules', () => {
    const browser = readFileSync(root('dist/browser.js'), 'utf8');
    expect(browser).not.toMatch(/["']webgpu["']/);
    expect(browser).not.toMatch(/from\s*["']node:|require\(|import\(["']node:/);
    expect(browser).toContain('navigator');
  });

  it('the Node bundle loads Dawn lazily (a dynamic import only)', () => {
    const node = readFileSync(root('dist/node.js'), 'utf8');
    expect(node).toMatch(/import\(["']webgpu["']\)/);
    expect(node).not.toMatch(/from\s*["']webgpu["']/);
  });

  it('the entries export the same API, plus the Node-only dataset loader', async () => {
    const nodeApi = await import(root('dist/node.js'));
    for (const name of ['init', 'initFromDevice', 'makeMlp', 'mlpFromWeights', 'makePcStep', 'solveInference', 'pcEnergy', 'computePcActivityGrad', 'computePcParamGrads', 'initActivitiesWithFfwd', 'updatePcActivities', 'updatePcParams', 'testDiscriminativePc', 'mseLoss', 'crossEntropyLoss', 'computeAccuracy', 'adam', 'sgd', 'loadDataset', 'batches', 'parseIdx']) {
      expect(typeof nodeApi[name], name).toBe('function');
    }
    const browserTypes = readFileSync(root('dist/types/browser.d.ts'), 'utf8');
    expect(browserTypes).toContain('export declare function init');
    expect(browserTypes).not.toContain('loadDataset');
  });
});
