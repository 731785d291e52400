// The published declarations (dist/types, as a consumer's TypeScript sees them) reject unknown option keys: for
// every function, method and constructor of both entries that takes an options object, a call whose options
// carry an unknown key fails to compile with TypeScript's excess-property error, and the same call without it
// compiles. The calls are generated from the declarations themselves, so a new function is covered the day it
// is exported. Compiled with `strict` and without skipLibCheck or @types/node (a browser consumer's setting).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ENTRIES = { N: join(ROOT, 'dist/types/node.d.ts'), B: join(ROOT, 'dist/types/browser.d.ts') };
const OPTIONS: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
  types: [],
};
/**
 * TypeScript's excess-property error (TS2353, or TS2561 with "Did you mean"; inside TS2769 or TS2345 where the
 * parameter has overloads or is a union).
 */
const EXCESS = /Object literal may only specify known properties,? (and|but) '(\w+)' does not exist in type/;
const TYPO = 'notAnOption';

/** One place where a consumer passes an options object: how to call it, and which argument is the options. */
interface Site {
  label: string;
  /** The callee as the probe writes it: `N.makePcStep`, `new N.Tensor`, `i0.finish` (with `decl` declaring i0). */
  callee: string;
  /** The tuple type of its arguments (`Parameters<…>`). */
  params: string;
  /** How many arguments it takes (the options one included). */
  count: number;
  index: number;
  decl?: string;
}

/** A parameter a consumer fills with an options object: named options or config, destructured, or typed …Options. */
function isOptionsParameter(checker: ts.TypeChecker, p: ts.Symbol): boolean {
  const decl = p.valueDeclaration as ts.ParameterDeclaration | undefined;
  if (decl && (ts.isObjectBindingPattern(decl.name) || /^(options|config)$/.test(decl.name.getText()))) return true;
  const type = checker.getNonNullableType(checker.getTypeOfSymbol(p));
  const name = (type.aliasSymbol ?? type.getSymbol())?.getName() ?? '';
  return /Options$/.test(name);
}

/** Every options parameter of every function, class method and constructor the two entries export. */
function optionSites(): Site[] {
  const program = ts.createProgram(Object.values(ENTRIES), OPTIONS);
  const checker = program.getTypeChecker();
  const sites: Site[] = [];
  let instances = 0;
  for (const [ns, file] of Object.entries(ENTRIES)) {
    const module = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
    for (const exported of checker.getExportsOfModule(module)) {
      const sym = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      const decl = sym.valueDeclaration;
      if (!decl) continue;
      const type = checker.getTypeOfSymbolAtLocation(sym, decl);
      const name = `${ns}.${exported.getName()}`;
      const add = (label: string, sigs: readonly ts.Signature[], callee: string, params: string, extra?: string) => {
        // The last signature is the one Parameters<> and ConstructorParameters<> describe.
        const sig = sigs[sigs.length - 1];
        if (!sig) return;
        sig.getParameters().forEach((p, index) => {
          if (isOptionsParameter(checker, p))
            sites.push({
              label,
              callee,
              params,
              count: sig.getParameters().length,
              index,
              ...(extra ? { decl: extra } : {}),
            });
        });
      };
      add(name, type.getCallSignatures(), name, `Parameters<typeof ${name}>`);
      if (!(sym.flags & ts.SymbolFlags.Class)) continue;
      add(`new ${name}`, type.getConstructSignatures(), `new ${name}`, `ConstructorParameters<typeof ${name}>`);
      for (const prop of checker.getPropertiesOfType(type)) {
        if (prop.getName() !== 'prototype')
          add(
            `${name}.${prop.getName()}`,
            checker.getTypeOfSymbol(prop).getCallSignatures(),
            `${name}.${prop.getName()}`,
            `Parameters<typeof ${name}.${prop.getName()}>`,
          );
      }
      for (const prop of checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(sym))) {
        const v = `i${instances++}`;
        const sigs = checker.getTypeOfSymbol(prop).getCallSignatures();
        add(
          `${name}#${prop.getName()}`,
          sigs,
          `${v}.${prop.getName()}`,
          `Parameters<${name}['${prop.getName()}']>`,
          `declare const ${v}: ${name};`,
        );
      }
    }
  }
  return sites;
}

/** The call at `site` with its options written as `{ ...valid }` plus `extra`; other arguments any valid values. */
function call(site: Site, n: number, extra: string): string {
  const args = Array.from({ length: site.count }, (_, i) =>
    i === site.index ? `{ ...o${n}${extra} }` : `p${n}[${i}]`,
  );
  return `${site.callee}(${args.join(', ')});`;
}

interface Probe {
  text: string;
  /** Line (0-based) → what must happen there. */
  expect: Map<number, { want: Want; label: string }>;
}

/** 'ok' compiles; 'excess' fails with one excess-property error; 'not-assignable' with a type mismatch (TS2322). */
type Want = 'ok' | 'excess' | 'not-assignable';

function probe(sites: readonly Site[], extraLines: readonly [string, Want, string][]): Probe {
  const lines = [
    `import * as N from ${JSON.stringify(ENTRIES.N.replace(/\.d\.ts$/, '.js'))};`,
    `import * as B from ${JSON.stringify(ENTRIES.B.replace(/\.d\.ts$/, '.js'))};`,
    'export {};',
  ];
  const expectations = new Map<number, { want: Want; label: string }>();
  sites.forEach((site, n) => {
    if (site.decl) lines.push(site.decl);
    lines.push(
      `declare const p${n}: ${site.params};`,
      `declare const o${n}: NonNullable<(${site.params})[${site.index}]>;`,
    );
    expectations.set(lines.length, { want: 'ok', label: site.label });
    lines.push(call(site, n, ''));
    expectations.set(lines.length, { want: 'excess', label: site.label });
    lines.push(call(site, n, `, ${TYPO}: 1`));
  });
  for (const [line, want, label] of extraLines) {
    expectations.set(lines.length, { want, label });
    lines.push(line);
  }
  return { text: `${lines.join('\n')}\n`, expect: expectations };
}

/** Compiles `text` and returns its diagnostics by line, and those elsewhere (the declarations themselves). */
function compile(text: string): { byLine: Map<number, ts.Diagnostic[]>; elsewhere: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'wpc-options-types-'));
  const file = join(dir, 'probe.mts');
  writeFileSync(file, text);
  const program = ts.createProgram([file], OPTIONS);
  const byLine = new Map<number, ts.Diagnostic[]>();
  const elsewhere: string[] = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (d.file?.fileName !== file || d.start === undefined) {
      elsewhere.push(`${d.file?.fileName ?? ''}: TS${d.code} ${message}`);
      continue;
    }
    const line = d.file.getLineAndCharacterOfPosition(d.start).line;
    byLine.set(line, [...(byLine.get(line) ?? []), d]);
  }
  return { byLine, elsewhere };
}

// makePcStep is generic in its input (the result's loss is a Tensor when there is one): its inference must keep
// working while unknown keys are refused, including the typo this check was written for (maxT for maxT1).
const MAKE_PC_STEP: [string, Want, string][] = [
  [
    'declare const m: N.Model, opt: N.Optimizer, st: N.OptState, x: N.Tensor, y: N.Tensor, loose: N.PcStepOptions;',
    'ok',
    'declarations',
  ],
  [
    'const supervised = await N.makePcStep(m, opt, st, y, { input: x, maxT1: 20, dt: 0.05 });',
    'ok',
    'makePcStep with input',
  ],
  ['const l1: N.Tensor = supervised.loss;', 'ok', "makePcStep's loss is a Tensor with an input"],
  ['const unsupervised = await N.makePcStep(m, opt, st, y, { seed: 1 });', 'ok', 'makePcStep without input'],
  ['const l2: N.Tensor = unsupervised.loss;', 'not-assignable', "makePcStep's loss may be null without an input"],
  [
    'const l3: N.Tensor | null = (await N.makePcStep(m, opt, st, y, loose)).loss;',
    'ok',
    'makePcStep with an options variable',
  ],
  ['await N.makePcStep(m, opt, st, y, { input: x, maxT: 20, dt: 0.05 });', 'excess', 'makePcStep with maxT for maxT1'],
  [
    'await B.makePcStep(m, opt, st, y, { input: x, solver: "heun", stepSizeController: "constant" });',
    'excess',
    'makePcStep with stepSizeController',
  ],
  ['export const used = [l1, l3];', 'ok', 'uses'],
];

describe('options types', () => {
  it('every options parameter of the public API refuses an unknown key at compile time, and accepts the known ones', () => {
    const sites = optionSites();
    const labels = sites.map((s) => s.label);
    // The generator must see the API: a sample of what it has to find, generic and plain, functions and methods.
    for (const name of [
      'N.makePcStep',
      'B.makePcStep',
      'N.init',
      'B.init',
      'N.solveInference',
      'N.makeMlp',
      'N.adam',
      'N.loadDataset',
      'B.fetchDataset',
      'N.makeHpcStep',
      'N.Runtime#finish',
      'new N.WpcArgumentError',
    ]) {
      expect(labels, name).toContain(name);
    }
    expect(sites.length).toBeGreaterThan(100);
    const { text, expect: expectations } = probe(sites, MAKE_PC_STEP);
    const { byLine, elsewhere } = compile(text);
    expect(elsewhere, 'errors in the declarations themselves').toEqual([]);
    const wrong: string[] = [];
    const lines = text.split('\n');
    for (const [line, { want, label }] of expectations) {
      const found = byLine.get(line) ?? [];
      byLine.delete(line);
      const codes = found.map((d) => d.code);
      if (want === 'ok' && found.length > 0)
        wrong.push(
          `${label}: should compile, got ${found.map((d) => `TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`).join('; ')}\n  ${lines[line]}`,
        );
      if (want === 'not-assignable' && !(found.length === 1 && found[0]!.code === 2322)) {
        wrong.push(`${label}: should fail as not assignable (TS2322), got ${JSON.stringify(codes)}\n  ${lines[line]}`);
      } else if (
        want === 'excess' &&
        !(found.length === 1 && EXCESS.test(ts.flattenDiagnosticMessageText(found[0]!.messageText, ' ')))
      ) {
        wrong.push(
          `${label}: should fail with one excess-property error, got ${found.length ? found.map((d) => `TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`).join('; ') : 'none'}\n  ${lines[line]}`,
        );
      }
    }
    for (const [line, found] of byLine)
      wrong.push(
        `unexpected error on line ${line + 1}: ${found.map((d) => ts.flattenDiagnosticMessageText(d.messageText, ' ')).join('; ')}\n  ${lines[line]}`,
      );
    expect(wrong).toEqual([]);
  });
});
