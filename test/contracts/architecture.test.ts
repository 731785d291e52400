/**
 * The house rules of src/, checked on the source text (no GPU): the import graph has no circles, type-only imports
 * included; the rooms point one way (core ← runtime ← kernels ← pc ← io ← api ← entries ← cli); no file runs past
 * 500 lines without saying why at its top; no export is dead; no comment carries measurement history (those facts
 * live in BENCHMARKS.md and DEVELOPERS.md); no comment line runs past the 120-column width.
 *
 * The graph comes from TypeScript's own parser: static imports and re-exports (type-only too), dynamic `import()`
 * and `import('…')` types, relative paths resolved as the bundler does (`.js` → `.ts`, a folder → its index.ts).
 * Each failure lists every violation, one per line, with the file and line to fix; a circle reads
 * `a.ts:3 → b.ts:7 → a.ts`: line 3 of a.ts imports b.ts, line 7 of b.ts imports a.ts.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * The rooms, lowest first: a file may import from its own room and the rooms before it, never from a later one.
 * io holds the files (checkpoints, images) and the datasets (src/data).
 */
const ROOMS = ['core', 'runtime', 'kernels', 'pc', 'io', 'api', 'entries', 'cli'] as const;
type Room = (typeof ROOMS)[number];

/**
 * The room of every folder (ending in /) and of the files that sit apart from their folder's room; the longest
 * matching entry wins. errors.ts imports nothing, and every room throws its errors: it is core.
 */
const ROOM_OF: Readonly<Record<string, Room>> = {
  'src/core/': 'core',
  'src/util/': 'core',
  'src/runtime/errors.ts': 'core',
  'src/wgsl.d.ts': 'core',
  'src/runtime/': 'runtime',
  'src/kernels/': 'kernels',
  'src/pc/': 'pc',
  'src/io/': 'io',
  'src/data/': 'io',
  'src/api.ts': 'api',
  'src/init.ts': 'api',
  'src/node.ts': 'entries',
  'src/browser.ts': 'entries',
  'src/cli/': 'cli',
};

/** The public entries: every name they export, directly or through re-exports, is the package's API. */
const PUBLIC_ENTRIES = ['src/node.ts', 'src/browser.ts'];

/**
 * The repository's own programs besides src/: a name they use is not dead. Tests count: a function a test checks
 * directly (a parser, a tile rule) is exported for that test, and the tests stay as they are.
 */
const USER_FOLDERS = ['test', 'bench', 'examples', 'scripts'];

const MAX_LINES = 500;
const LONG_FILE_REASON = /Longer than 500 lines:\s*\S/;
const MAX_COMMENT_WIDTH = 120;

/**
 * Measurement history in a comment: a date, a count of runs or sessions, a timing or throughput figure, a
 * relative speed in numbers, or "measured" followed by a figure. "measure" as a word (`measureText`, "the
 * accuracy is measured at the end") and a reason in words ("where it measured faster") are not history.
 */
const NUMBER = String.raw`\d+(?:[.,]\d+)?(?:\s*[–-]\s*\d+(?:[.,]\d+)?)?`;
const COUNT = '(?:\\d+|two|three|four|five|six|seven|eight|nine|ten|paired|repeated)';
const ORDINAL = '(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\\d+(?:st|nd|rd|th))';
const HISTORY_PATTERNS: readonly { name: string; re: RegExp }[] = [
  { name: 'a date', re: /\b20\d\d-[01]\d(?:-[0-3]\d)?\b/ },
  {
    name: 'a count of runs or sessions',
    re: new RegExp(
      `\\b${COUNT}\\s+(?:[\\w-]+\\s+)?(?:runs|sessions)\\b(?!\\s+(?:the|a|an|it|its|on|in|each|every)\\b)` +
        `|\\b${ORDINAL}\\s+(?:session|run)\\b`,
      'i',
    ),
  },
  { name: 'a timing or throughput figure', re: new RegExp(`${NUMBER}\\s*(?:ms|µs|GFLOP/s|GB/s|steps/s)(?![\\w/])`) },
  { name: 'a time in seconds', re: new RegExp(`${NUMBER}\\s*s\\s+(?:vs|against|→|->)\\s*\\d|\\b\\d+\\.\\d+\\s*s\\b`) },
  {
    name: 'a relative speed or cost in numbers',
    re: new RegExp(
      `${NUMBER}\\s*(?:%|×)\\s*(?:faster|slower|quicker|less|more|of\\b[^.;]{0,60}\\btime)\\b|\\bup to ${NUMBER}\\s*(?:%|×)` +
        `|\\b\\d+\\.\\d+(?:\\s*[–-]\\s*\\d+\\.\\d+)?×(?!\\s*\\d)`,
      'i',
    ),
  },
  {
    name: 'a measured figure',
    re: /\bmeasured\b(?:\s*:|\s*[~≈(]?\s*\d|\s+(?:on|at|as|to be)\b[^.;]{0,40}\d)/i,
  },
];

// ---------------------------------------------------------------------------------------------------------------
// Files and the graph

interface ImportEdge {
  from: string;
  to: string;
  line: number;
  /** The exported names used: 'default', a name, or '*' (all of them: `import * as`, `import()`). */
  names: string[];
}

interface ExportEntry {
  line: number;
  /** Set for a re-export: the file and the name there. */
  from?: { file: string; name: string };
}

interface ParsedFile {
  file: string;
  text: string;
  edges: ImportEdge[];
  unresolved: { spec: string; line: number }[];
  exports: Map<string, ExportEntry>;
  /** `export * from` targets. */
  starFrom: string[];
  /** Comments: their text and the line each starts on. */
  comments: { text: string; line: number }[];
  /** The comments before the first statement. */
  header: string;
  /** How often each identifier occurs in the file, export lists left out. */
  identifiers: Map<string, number>;
}

function listFiles(dir: string, exts: readonly string[]): string[] {
  const out: string[] = [];
  if (!existsSync(join(ROOT, dir))) return out;
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    if (entry.isDirectory()) out.push(...listFiles(path, exts));
    else if (exts.some((e) => entry.name.endsWith(e))) out.push(path);
  }
  return out.sort();
}

/** A relative specifier as the bundler resolves it, as a path from the repository root; undefined if missing. */
function resolveSpec(from: string, spec: string): string | undefined {
  const base = resolve(ROOT, dirname(from), spec);
  const candidates = [base, base.replace(/\.js$/, '.ts'), base.replace(/\.mjs$/, '.mts'), `${base}.ts`];
  candidates.push(join(base, 'index.ts'), join(base.replace(/\.js$/, ''), 'index.ts'));
  for (const c of candidates) if (existsSync(c) && statSync(c).isFile()) return relative(ROOT, c);
  return undefined;
}

const isTs = (file: string) => /\.(ts|mts|cts|mjs|js|cjs)$/.test(file);

interface ParseOptions {
  /** The file's text; read from disk when absent. */
  text?: string;
  /** Collect comments (src/ only; the users of src/ are read for their imports). */
  withComments?: boolean;
  resolve?: (from: string, spec: string) => string | undefined;
}

function parse(file: string, options: ParseOptions = {}): ParsedFile {
  const { withComments = true, resolve: resolveImport = resolveSpec } = options;
  const text = options.text ?? readFileSync(join(ROOT, file), 'utf8');
  const parsed: ParsedFile = {
    file,
    text,
    edges: [],
    unresolved: [],
    exports: new Map(),
    starFrom: [],
    comments: [],
    header: '',
    identifiers: new Map(),
  };
  if (!isTs(file)) {
    // WGSL: `//` comments only (block comments too, in case one appears); no imports.
    const lines = text.split('\n');
    let inHeader = true;
    const header: string[] = [];
    lines.forEach((l, i) => {
      const at = l.indexOf('//');
      if (at >= 0) parsed.comments.push({ text: l.slice(at), line: i + 1 });
      if (inHeader && /^\s*\/\//.test(l)) header.push(l);
      else if (inHeader && l.trim() !== '') inHeader = false;
    });
    parsed.header = header.join('\n');
    return parsed;
  }
  const kind = file.endsWith('.ts') ? ts.ScriptKind.TS : ts.ScriptKind.JS;
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
  const lineOf = (pos: number) => sf.getLineAndCharacterOfPosition(pos).line + 1;
  const addEdge = (spec: string, node: ts.Node, names: string[]) => {
    if (!spec.startsWith('.')) return undefined;
    const to = resolveImport(file, spec);
    const line = lineOf(node.getStart(sf));
    if (to === undefined) parsed.unresolved.push({ spec, line });
    else parsed.edges.push({ from: file, to, line, names });
    return to;
  };
  const specText = (e: ts.Expression | undefined) => (e && ts.isStringLiteral(e) ? e.text : undefined);

  const imported = new Map<string, { file: string; name: string }>();
  const localExports: { el: ts.ExportSpecifier; local: string }[] = [];
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st)) {
      const spec = specText(st.moduleSpecifier);
      if (spec === undefined) continue;
      const names: string[] = [];
      const clause = st.importClause;
      if (clause?.name) names.push('default');
      const bindings = clause?.namedBindings;
      if (bindings && ts.isNamespaceImport(bindings)) names.push('*');
      if (bindings && ts.isNamedImports(bindings))
        for (const el of bindings.elements) names.push((el.propertyName ?? el.name).text);
      const to = addEdge(spec, st, names);
      if (to && bindings && ts.isNamedImports(bindings))
        for (const el of bindings.elements)
          imported.set(el.name.text, { file: to, name: (el.propertyName ?? el.name).text });
    } else if (ts.isExportDeclaration(st)) {
      const spec = specText(st.moduleSpecifier);
      const clause = st.exportClause;
      if (spec === undefined) {
        // `export { a, b as c }` of local names, or of imported ones (a re-export).
        if (clause && ts.isNamedExports(clause))
          for (const el of clause.elements) localExports.push({ el, local: (el.propertyName ?? el.name).text });
        continue;
      }
      if (!clause) {
        const to = addEdge(spec, st, ['*']);
        if (to) parsed.starFrom.push(to);
      } else if (ts.isNamespaceExport(clause)) {
        addEdge(spec, st, ['*']);
        parsed.exports.set(clause.name.text, { line: lineOf(st.getStart(sf)) });
      } else {
        // The names count as used only when the re-exporting name is (see deadExports).
        const to = addEdge(spec, st, []);
        for (const el of clause.elements) {
          const entry: ExportEntry = { line: lineOf(el.getStart(sf)) };
          if (to) entry.from = { file: to, name: (el.propertyName ?? el.name).text };
          parsed.exports.set(el.name.text, entry);
        }
      }
    } else if (ts.isExportAssignment(st)) {
      parsed.exports.set('default', { line: lineOf(st.getStart(sf)) });
    } else if (ts.canHaveModifiers(st) && ts.getModifiers(st)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) {
      const isDefault = ts.getModifiers(st)?.some((m) => m.kind === ts.SyntaxKind.DefaultKeyword);
      const line = lineOf(st.getStart(sf));
      if (isDefault) parsed.exports.set('default', { line });
      else if (ts.isVariableStatement(st)) {
        for (const d of st.declarationList.declarations)
          for (const n of bindingNames(d.name)) parsed.exports.set(n, { line: lineOf(d.getStart(sf)) });
      } else {
        const name = (st as ts.DeclarationStatement).name;
        if (name && (ts.isIdentifier(name) || ts.isStringLiteral(name))) parsed.exports.set(name.text, { line });
      }
    }
  }
  for (const { el, local } of localExports) {
    const entry: ExportEntry = { line: lineOf(el.getStart(sf)) };
    const from = imported.get(local);
    if (from) entry.from = from;
    parsed.exports.set(el.name.text, entry);
  }
  // Dynamic imports and import types, anywhere in the file.
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const spec = specText(node.arguments[0]);
      if (spec !== undefined) addEdge(spec, node, ['*']);
    } else if (ts.isImportTypeNode(node)) {
      const arg = node.argument;
      const spec = ts.isLiteralTypeNode(arg) ? specText(arg.literal as ts.Expression) : undefined;
      const q = node.qualifier;
      const name = q ? (ts.isIdentifier(q) ? q.text : q.left.getText(sf)) : '*';
      if (spec !== undefined) addEdge(spec, node, [name]);
    } else if (ts.isIdentifier(node) && !ts.isExportSpecifier(node.parent)) {
      parsed.identifiers.set(node.text, (parsed.identifiers.get(node.text) ?? 0) + 1);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);

  if (!withComments) return parsed;
  // Comments: the trivia around every token the parser read (so `//` inside a string or a regular expression is
  // not taken for one).
  const firstStatement = sf.statements[0]?.getStart(sf) ?? text.length;
  const header: string[] = [];
  const seen = new Set<number>();
  const collect = (pos: number, end: number) => {
    if (seen.has(pos)) return;
    seen.add(pos);
    const comment = text.slice(pos, end);
    parsed.comments.push({ text: comment, line: lineOf(pos) });
    if (pos < firstStatement && !comment.startsWith('///')) header.push(comment);
  };
  const tokens = (node: ts.Node): void => {
    ts.forEachLeadingCommentRange(text, node.pos, collect);
    ts.forEachTrailingCommentRange(text, node.end, collect);
    for (const child of node.getChildren(sf)) tokens(child);
  };
  tokens(sf);
  parsed.comments.sort((a, b) => a.line - b.line);
  parsed.header = header.join('\n');
  return parsed;
}

function bindingNames(name: ts.BindingName): string[] {
  if (ts.isIdentifier(name)) return [name.text];
  return name.elements.flatMap((e) => (ts.isOmittedExpression(e) ? [] : bindingNames(e.name)));
}

const SRC_FILES = listFiles('src', ['.ts', '.wgsl']);
const USER_FILES = USER_FOLDERS.flatMap((d) => listFiles(d, ['.ts', '.mts', '.mjs', '.js']));
const PARSED = new Map(SRC_FILES.map((f) => [f, parse(f)]));
const USERS = USER_FILES.map((f) => parse(f, { withComments: false }));
const SRC_EDGES = [...PARSED.values()].flatMap((p) => p.edges).filter((e) => PARSED.has(e.to));

function roomOf(file: string): Room | undefined {
  let best: string | undefined;
  for (const key of Object.keys(ROOM_OF)) {
    const matches = key.endsWith('/') || key.endsWith('-') ? file.startsWith(key) : file === key;
    if (matches && (best === undefined || key.length > best.length)) best = key;
  }
  return best === undefined ? undefined : ROOM_OF[best];
}

// ---------------------------------------------------------------------------------------------------------------
// Circles: for every import edge that lies on a circle, the shortest circle through it.

function circles(edges: readonly ImportEdge[]): string[] {
  const next = new Map<string, Set<string>>();
  const lineOf = new Map<string, number>();
  for (const e of edges) {
    if (!next.has(e.from)) next.set(e.from, new Set());
    next.get(e.from)!.add(e.to);
    const k = `${e.from} ${e.to}`;
    lineOf.set(k, Math.min(lineOf.get(k) ?? e.line, e.line));
  }
  const shortestPath = (start: string, goal: string): string[] | undefined => {
    const before = new Map<string, string>([[start, start]]);
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const at = queue[i]!;
      if (at === goal) {
        const path = [goal];
        while (path[0] !== start) path.unshift(before.get(path[0]!)!);
        return path;
      }
      for (const n of [...(next.get(at) ?? [])].sort())
        if (!before.has(n)) {
          before.set(n, at);
          queue.push(n);
        }
    }
    return undefined;
  };
  const found = new Set<string>();
  for (const [from, tos] of next)
    for (const to of tos) {
      const back = shortestPath(to, from);
      if (!back) continue;
      // The circle from → to → … → from, turned to start at its smallest file so that each is listed once.
      const ring = [from, ...back.slice(0, -1)];
      const first = ring.indexOf([...ring].sort()[0]!);
      const turned = [...ring.slice(first), ...ring.slice(0, first)];
      const steps = turned.map((f, i) => `${f}:${lineOf.get(`${f} ${turned[(i + 1) % turned.length]}`)}`);
      found.add([...steps, turned[0]].join(' → '));
    }
  return [...found].sort();
}

// ---------------------------------------------------------------------------------------------------------------
// Dead exports: names no other file uses, that no public entry re-exports, and that no program of the repository
// (tests, benchmarks, examples, scripts) imports.

function deadExports(): string[] {
  const used = new Set<string>();
  const key = (file: string, name: string) => `${file}\0${name}`;
  const namesOf = (file: string, seen = new Set<string>()): string[] => {
    const p = PARSED.get(file);
    if (!p || seen.has(file)) return [];
    seen.add(file);
    const own = [...p.exports.keys()];
    const starred = p.starFrom.flatMap((f) => namesOf(f, seen).filter((n) => n !== 'default'));
    return [...new Set([...own, ...starred])];
  };
  // Marks file:name used, and follows re-exports to the file that declares it.
  const use = (file: string, name: string): void => {
    const p = PARSED.get(file);
    if (!p) return;
    if (name === '*') {
      for (const n of namesOf(file)) use(file, n);
      return;
    }
    if (used.has(key(file, name))) return;
    used.add(key(file, name));
    const entry = p.exports.get(name);
    if (entry?.from) use(entry.from.file, entry.from.name);
    else if (!entry) for (const f of p.starFrom) if (namesOf(f).includes(name)) use(f, name);
  };
  for (const entry of PUBLIC_ENTRIES) use(entry, '*');
  for (const p of [...PARSED.values(), ...USERS])
    for (const e of p.edges) {
      if (e.from === e.to) continue;
      for (const n of e.names) use(e.to, n);
    }
  const dead: string[] = [];
  for (const p of PARSED.values())
    for (const [name, entry] of p.exports)
      if (!used.has(key(p.file, name))) {
        const own = (p.identifiers.get(name) ?? 0) > 1 ? 'used only in its own file' : 'used nowhere';
        const why = entry.from ? `a re-export of ${entry.from.file} that nothing uses` : own;
        dead.push(`${p.file}:${entry.line} ${name} (${why})`);
      }
  return dead;
}

// ---------------------------------------------------------------------------------------------------------------

const byFileAndLine = (a: string, b: string) => {
  const [fa, la] = a.split(/:(\d+)/);
  const [fb, lb] = b.split(/:(\d+)/);
  return fa === fb ? Number(la) - Number(lb) : fa! < fb! ? -1 : 1;
};

/** The comments of a file, with runs of `//` lines on consecutive lines joined into one block. */
function commentBlocks(p: ParsedFile): { text: string; line: number }[] {
  const blocks: { text: string; line: number; last: number; lineComment: boolean }[] = [];
  for (const c of p.comments) {
    const lineComment = c.text.startsWith('//');
    const prev = blocks.at(-1);
    if (prev && lineComment && prev.lineComment && c.line === prev.last + 1) {
      prev.text += `\n${c.text}`;
      prev.last = c.line;
    } else blocks.push({ text: c.text, line: c.line, last: c.line + c.text.split('\n').length - 1, lineComment });
  }
  return blocks;
}

// ---------------------------------------------------------------------------------------------------------------

describe('architecture of src/', () => {
  it('reads every file and resolves every relative import', () => {
    expect(SRC_FILES.length).toBeGreaterThan(50);
    expect(SRC_EDGES.length).toBeGreaterThan(100);
    const unresolved = [...PARSED.values(), ...USERS].flatMap((p) =>
      p.unresolved.map((u) => `${p.file}:${u.line} imports ${u.spec}, which does not exist`),
    );
    expect(unresolved).toEqual([]);
  });

  it('has no import circles, type-only imports included', () => {
    expect(circles(SRC_EDGES)).toEqual([]);
  });

  it('gives every file a room', () => {
    expect(SRC_FILES.filter((f) => roomOf(f) === undefined).map((f) => `${f} has no room in ROOM_OF`)).toEqual([]);
  });

  it('points the rooms one way: core ← runtime ← kernels ← pc ← io ← api ← entries ← cli', () => {
    const wrong: string[] = [];
    for (const e of SRC_EDGES) {
      const a = roomOf(e.from);
      const b = roomOf(e.to);
      if (a && b && ROOMS.indexOf(b) > ROOMS.indexOf(a))
        wrong.push(`${e.from}:${e.line} (${a}) imports ${e.to} (${b})`);
    }
    expect(wrong).toEqual([]);
  });

  it(`keeps files to ${MAX_LINES} lines, or says at the top why not`, () => {
    const long: string[] = [];
    for (const p of PARSED.values()) {
      const lines = p.text.replace(/\n$/, '').split('\n').length;
      if (lines > MAX_LINES && !LONG_FILE_REASON.test(p.header.replace(/\n\s*(\*|\/\/)\s*/g, ' ')))
        long.push(`${p.file}: ${lines} lines, and its header has no "Longer than ${MAX_LINES} lines: …"`);
    }
    expect(long).toEqual([]);
  });

  it('has no dead exports', () => {
    expect(deadExports().sort(byFileAndLine)).toEqual([]);
  });

  it('keeps measurement history out of comments', () => {
    const found = new Map<string, { kinds: Set<string>; figures: string[]; text: string }>();
    for (const p of PARSED.values()) {
      const lines = p.text.split('\n');
      for (const block of commentBlocks(p)) {
        // Comment markers out, line breaks kept (a pattern may span two lines; its first line is reported).
        const body = block.text.replace(/\n[ \t]*(?:\/\/+|\*(?!\/))?[ \t]?/g, '\n');
        for (const { name, re } of HISTORY_PATTERNS)
          for (const m of body.matchAll(new RegExp(re.source, `${re.flags}g`))) {
            const line = block.line + (body.slice(0, m.index).match(/\n/g)?.length ?? 0);
            const at = `${p.file}:${line}`;
            if (!found.has(at)) found.set(at, { kinds: new Set(), figures: [], text: lines[line - 1]!.trim() });
            found.get(at)!.kinds.add(name);
            found.get(at)!.figures.push(`"${m[0].replace(/\s+/g, ' ')}"`);
          }
      }
    }
    const list = [...found].map(([at, f]) => `${at} ${[...f.kinds].join('; ')} (${f.figures.join(', ')}): ${f.text}`);
    expect(list.sort(byFileAndLine)).toEqual([]);
  });

  it(`keeps comment lines within ${MAX_COMMENT_WIDTH} columns`, () => {
    const wide: string[] = [];
    for (const p of PARSED.values()) {
      const lines = p.text.split('\n');
      const seen = new Set<number>();
      for (const c of p.comments) {
        const n = c.text.split('\n').length;
        for (let l = c.line; l < c.line + n; l++) {
          const width = lines[l - 1]!.length;
          if (width > MAX_COMMENT_WIDTH && !seen.has(l)) {
            seen.add(l);
            wide.push(`${p.file}:${l} is ${width} columns`);
          }
        }
      }
    }
    expect(wide).toEqual([]);
  });
});

describe('the checks themselves', () => {
  const fixture = (text: string) => parse('src/fixture.ts', { text, resolve: (_, spec) => `src/${spec.slice(2)}` });

  it('sees every kind of import edge and the names each uses', () => {
    const p = fixture(
      [
        "import def, { a, b as c } from './one.js';",
        "import type { T } from './two.js';",
        "import * as ns from './three.js';",
        "export { d } from './four.js';",
        "export type { E } from './five.js';",
        "export * from './six.js';",
        "import { x } from 'node:fs';",
        "type U = import('./seven.js').U;",
        "export async function f() { return import('./eight.js'); }",
      ].join('\n'),
    );
    expect(p.edges.map((e) => `${e.line} ${e.to} ${e.names.join(',')}`)).toEqual([
      '1 src/one.js default,a,b',
      '2 src/two.js T',
      '3 src/three.js *',
      '4 src/four.js ',
      '5 src/five.js ',
      '6 src/six.js *',
      '8 src/seven.js U',
      '9 src/eight.js *',
    ]);
    expect([...p.exports.keys()]).toEqual(['d', 'E', 'f']);
    expect(p.exports.get('d')!.from).toEqual({ file: 'src/four.js', name: 'd' });
    expect(p.starFrom).toEqual(['src/six.js']);
  });

  it('resolves .js to .ts and a folder to its index, and reports a missing file', () => {
    expect(resolveSpec('test/contracts/architecture.test.ts', '../support/helpers.js')).toBe('test/support/helpers.ts');
    expect(resolveSpec('test/contracts/architecture.test.ts', '../../src/node.js')).toBe('src/node.ts');
    expect(resolveSpec('test/contracts/architecture.test.ts', '../../src/util')).toBe(
      existsSync(join(ROOT, 'src/util/index.ts')) ? 'src/util/index.ts' : undefined,
    );
    expect(resolveSpec('test/contracts/architecture.test.ts', './no-such-file.js')).toBeUndefined();
  });

  it('finds comments, not // in strings, templates or regular expressions', () => {
    const p = fixture(
      [
        '/** Header. */',
        "const url = 'https://example.org';",
        'const t = `\u0024{url}//x`;',
        'const re = /\\/\\//g; // trailing',
        '/* block',
        '   two lines */',
      ].join('\n'),
    );
    expect(p.comments).toEqual([
      { text: '/** Header. */', line: 1 },
      { text: '// trailing', line: 4 },
      { text: '/* block\n   two lines */', line: 5 },
    ]);
    expect(p.header).toBe('/** Header. */');
  });

  it('reports each circle once, from its first file, with the line of each import', () => {
    const edge = (from: string, to: string, line: number): ImportEdge => ({ from, to, line, names: [] });
    const found = circles([edge('b', 'a', 3), edge('a', 'b', 1), edge('b', 'c', 2), edge('c', 'd', 5)]);
    expect(found).toEqual(['a:1 → b:3 → a']);
    expect(circles([edge('a', 'b', 1), edge('b', 'c', 1), edge('c', 'd', 1)])).toEqual([]);
  });

  it('tells measurement history from words about measuring', () => {
    const history = (line: string) => HISTORY_PATTERNS.filter(({ re }) => re.test(line)).map(({ name }) => name);
    for (const line of [
      'Measured on 2026-12-07.',
      '(tenth session, five runs) the fused solve won',
      'beat 8 × 32 in 8 of 9 paired training-step runs',
      'a branch inside the loop measured 15-21% slower',
      '64×784×300: 5 workgroups, 24 GFLOP/s',
      'measured 0.95 and 1.4 ms for the H = 3 kernels',
      'measured: 1.85 s vs 1.19 s',
      'training steps took 10–15% less time',
      'Euler 1.2–1.4×, Tsit5 1.3–1.6×',
    ])
      expect(history(line), line).not.toEqual([]);
    for (const line of [
      'the test accuracy is measured at the end',
      'a blow-up at step 2 is measured against step 1',
      'picks this kernel where it measured it faster (see solver.ts)',
      'after which lane 0 runs the epilogue',
      'That loop spins the JS thread at 100% of a core',
      'a 4 × 32 tile, 8 × 32 workgroups; 0.1% + 64 KiB of slack',
      'measureText returns the width',
      'waits up to maxWaitMs before it polls',
    ])
      expect(history(line), line).toEqual([]);
  });
});
