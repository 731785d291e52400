// The published shape of the package: ESM entries for Node and browsers, declarations, the CLI binary.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const pkg = JSON.parse(readFileSync(root('package.json'), 'utf8'));

describe('package', () => {
  it('is ESM-only and side-effect free, with types first in every export condition', () => {
    expect(pkg.name).toBe('webgpu-pc');
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

  it('has what a published package needs: semver, a changelog entry for the version, LICENSE, metadata', () => {
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
    const changelog = readFileSync(root('CHANGELOG.md'), 'utf8');
    expect(changelog.match(/^## (\S+)/m)?.[1], 'the first CHANGELOG entry is this version').toBe(pkg.version);
    const license = readFileSync(root('LICENSE'), 'utf8');
    expect(pkg.license).toBe('MIT');
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} /);
    expect(license).toContain('THE SOFTWARE IS PROVIDED "AS IS"');
    for (const field of ['description', 'homepage', 'author']) expect(typeof pkg[field], field).toBe('string');
    expect(pkg.repository.url).toMatch(/^git\+https:\/\//);
    expect(pkg.bugs.url).toMatch(/^https:\/\//);
    expect(pkg.keywords).toContain('predictive-coding');
    expect(pkg.engines.node).toBe('>=20.19');
    expect(Object.keys(pkg.bin), 'one command, so that `npx webgpu-pc` runs it').toEqual(['wpc']);
    // Only what a consumer needs (npm adds package.json itself).
    expect([...pkg.files].sort()).toEqual([
      'CHANGELOG.md',
      'LICENSE',
      'README.md',
      'dist',
      'scripts/install-lavapipe.sh',
    ]);
  });

  it('depends at run time only on what the bundles import: Dawn an optional peer, the bundled packages dev-only', () => {
    // Every import the bundles keep is a Node built-in or Dawn; everything else esbuild put inside them.
    const kept = new Set<string>();
    for (const file of ['dist/node.js', 'dist/cli.js', 'dist/browser.js']) {
      const text = readFileSync(root(file), 'utf8');
      for (const m of text.matchAll(
        /^(?:import|export)\b[^;"']*?\bfrom\s*["']([^"']+)["'];$|\bimport\(\s*["']([^"']+)["']\s*\)/gm,
      ))
        kept.add((m[1] ?? m[2])!);
    }
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    expect([...kept].filter((m) => !builtins.has(m))).toEqual(['webgpu']);
    // Dawn: an optional peer (browsers never need it), and a dev dependency of this repository (its tests).
    expect(pkg.peerDependencies).toEqual({ webgpu: pkg.devDependencies.webgpu });
    expect(pkg.peerDependenciesMeta).toEqual({ webgpu: { optional: true } });
    // The only runtime dependency is the WebGPU types the declarations reference.
    expect(pkg.dependencies).toEqual({ '@webgpu/types': expect.any(String) });
    for (const bundled of ['fast-png', 'wgsl-preprocessor']) {
      expect(pkg.devDependencies[bundled], `${bundled} (bundled into dist/)`).toBeDefined();
      expect(readFileSync(root('dist/node.js'), 'utf8'), `${bundled} inside dist/node.js`).toContain(
        `node_modules/${bundled}/`,
      );
    }
    for (const entry of ['node', 'browser']) {
      const types = readFileSync(root(`dist/types/${entry}.d.ts`), 'utf8');
      expect(
        types.startsWith('/// <reference types="@webgpu/types" preserve="true" />\n'),
        `dist/types/${entry}.d.ts references @webgpu/types`,
      ).toBe(true);
    }
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
    for (const name of [
      'init',
      'initFromDevice',
      'makeMlp',
      'mlpFromWeights',
      'makePcStep',
      'solveInference',
      'pcEnergy',
      'computePcActivityGrad',
      'computePcParamGrads',
      'initActivitiesWithFfwd',
      'updatePcActivities',
      'updatePcParams',
      'testDiscriminativePc',
      'mseLoss',
      'crossEntropyLoss',
      'computeAccuracy',
      'adam',
      'sgd',
      'loadDataset',
      'batches',
      'parseIdx',
    ]) {
      expect(typeof nodeApi[name], name).toBe('function');
    }
    const browserTypes = readFileSync(root('dist/types/browser.d.ts'), 'utf8');
    expect(browserTypes).toContain('export declare function init');
    expect(browserTypes).not.toContain('loadDataset');
  });
});
