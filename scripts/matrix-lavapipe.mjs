#!/usr/bin/env node
// A WebGPU adapter with subgroup matrices on a machine without a GPU, for the tests of the `matrix` tile layout.
//
// Mesa 26's lavapipe implements VK_KHR_cooperative_matrix (f16 → f32, 8×8×8), which Dawn exposes as
// `chromium-experimental-subgroup-matrix` (with dawnOptions ['enable-dawn-features=allow_unsafe_apis']). Debian 12
// has Mesa 25.0 (no cooperative matrices); Debian 13's backports have 26.1, built for glibc 2.41. So this script
// unpacks that driver with every library it needs (glibc and its loader included) from Debian's mirror into a
// private directory — nothing is installed — and runs this Node binary under Debian 13's dynamic loader
// (`ld-linux-x86-64.so.2 --library-path DIR node …`). Such a process's execPath would be the loader, which
// child_process.fork (vitest's workers) cannot start with Node's flags: a preloaded module points execPath at a
// wrapper script (bin/node) that starts Node the same way.
//
// Usage: node scripts/matrix-lavapipe.mjs setup               unpack into .cache/matrix-lavapipe (idempotent)
//        node scripts/matrix-lavapipe.mjs run SCRIPT ARGS…     run a Node script there, the driver selected
//                                                               (LP_NATIVE_VECTOR_WIDTH=256: see below)
// On Linux x86-64; needs Debian's mirror (https://deb.debian.org, or $DEBIAN_MIRROR), xz and dpkg-deb.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = process.env.WPC_MATRIX_LAVAPIPE_DIR ?? join(ROOT, '.cache', 'matrix-lavapipe');
const MIRROR = process.env.DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
const SYSROOT = join(CACHE, 'root');
const LIBDIR = join(SYSROOT, 'usr', 'lib', 'x86_64-linux-gnu');
const LOADER = join(LIBDIR, 'ld-linux-x86-64.so.2');
const ICD = join(CACHE, 'lvp_icd.json');
const WRAPPER = join(CACHE, 'bin', 'node');
const EXEC_PATH_HOOK = join(CACHE, 'exec-path.mjs');
/** What follows the loader to run Node with the unpacked libraries. */
const LOADER_ARGS = ['--library-path', LIBDIR, process.execPath];
/** The Mesa build this was written against; change it (and re-run setup) to move on. */
const MESA = { suite: 'trixie-backports', version: '26.1.6-1~bpo13+1' };
const STAMP = join(CACHE, `ready-${MESA.version}-${process.version}`);

/** Packages the driver's closure must not pull in (maintainer scripts, data, or the host's own business). */
const SKIP = new Set([
  'debconf',
  'debconf-2.0',
  'libc-bin',
  'base-files',
  'dpkg',
  'perl-base',
  'tzdata',
  'install-info',
  'usrmerge',
  'usr-is-merged',
]);

async function download(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`matrix-lavapipe: GET ${url}: HTTP ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

/** A Packages index: package name → its stanza's fields; `Provides` names map to the providing package. */
function parsePackages(text) {
  const byName = new Map();
  const provides = new Map();
  for (const stanza of text.split('\n\n')) {
    const fields = {};
    for (const line of stanza.split('\n')) {
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (m) fields[m[1]] = m[2];
    }
    if (!fields.Package || byName.has(fields.Package)) continue;
    byName.set(fields.Package, fields);
    for (const p of (fields.Provides ?? '').split(',')) {
      const name = p.trim().split(' ')[0];
      if (name && !provides.has(name)) provides.set(name, fields.Package);
    }
  }
  return { byName, provides };
}

async function packages(suite) {
  const xz = await download(`${MIRROR}/dists/${suite}/main/binary-amd64/Packages.xz`);
  return parsePackages(execFileSync('xz', ['-dc'], { input: xz, maxBuffer: 1 << 30 }).toString('utf8'));
}

/** The .deb files of `roots` and everything they depend on (first alternative of each), Mesa from backports. */
function closure(roots, main, backports) {
  const chosen = new Map();
  const todo = [...roots];
  while (todo.length > 0) {
    const name = todo.pop();
    if (chosen.has(name) || SKIP.has(name)) continue;
    const index = name === 'mesa-vulkan-drivers' ? backports : main;
    const fields = index.byName.get(name) ?? index.byName.get(index.provides.get(name));
    if (!fields) throw new Error(`matrix-lavapipe: package ${name} not found in the index`);
    if (name === 'mesa-vulkan-drivers' && fields.Version !== MESA.version) {
      throw new Error(
        `matrix-lavapipe: ${MESA.suite} has mesa-vulkan-drivers ${fields.Version}, this script expects ${MESA.version}; update MESA in ${fileURLToPath(import.meta.url)}`,
      );
    }
    chosen.set(name, fields);
    for (const dep of `${fields['Pre-Depends'] ?? ''},${fields.Depends ?? ''}`.split(',')) {
      const first = dep.split('|')[0].trim().split(' ')[0].split(':')[0];
      if (first) todo.push(first);
    }
  }
  return [...chosen.values()];
}

async function setup() {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `matrix-lavapipe: needs Linux on x86-64 (Debian's amd64 packages), this is ${process.platform}/${process.arch}`,
    );
  }
  if (existsSync(STAMP)) return;
  rmSync(CACHE, { recursive: true, force: true });
  mkdirSync(join(CACHE, 'debs'), { recursive: true });
  const [main, backports] = await Promise.all([packages('trixie'), packages(MESA.suite)]);
  const debs = closure(['mesa-vulkan-drivers', 'libvulkan1', 'libc6', 'libstdc++6'], main, backports);
  for (const fields of debs) {
    const file = join(CACHE, 'debs', fields.Filename.split('/').pop());
    writeFileSync(file, await download(`${MIRROR}/${fields.Filename}`));
    execFileSync('dpkg-deb', ['-x', file, SYSROOT]);
  }
  rmSync(join(CACHE, 'debs'), { recursive: true, force: true });
  const icd = JSON.parse(readFileSync(join(SYSROOT, 'usr', 'share', 'vulkan', 'icd.d', 'lvp_icd.json'), 'utf8'));
  icd.ICD.library_path = join(LIBDIR, 'libvulkan_lvp.so');
  writeFileSync(ICD, JSON.stringify(icd, null, 2));
  mkdirSync(dirname(WRAPPER), { recursive: true });
  writeFileSync(WRAPPER, `#!/bin/sh\nexec ${[LOADER, ...LOADER_ARGS].map((a) => `'${a}'`).join(' ')} "$@"\n`, {
    mode: 0o755,
  });
  writeFileSync(EXEC_PATH_HOOK, `process.execPath = ${JSON.stringify(WRAPPER)};\n`);
  const version = execFileSync(LOADER, [...LOADER_ARGS, '--version'])
    .toString()
    .trim();
  if (version !== process.version)
    throw new Error(`matrix-lavapipe: Node under Debian 13's loader says ${version}, expected ${process.version}`);
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
  console.error(`matrix-lavapipe: Mesa ${MESA.version} lavapipe and ${debs.length} packages unpacked in ${CACHE}`);
}

/** The environment that selects the unpacked driver (and tells forks how to start Node). */
function matrixEnv(env = process.env) {
  return {
    ...env,
    VK_DRIVER_FILES: ICD,
    VK_ICD_FILENAMES: ICD,
    // lavapipe 26.1 crashes compiling cooperative-matrix shaders for 16-lane subgroups; 8 lanes work.
    LP_NATIVE_VECTOR_WIDTH: '256',
    WPC_MATRIX_ADAPTER: 'lavapipe-26',
  };
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'setup') {
  await setup();
} else if (command === 'run' && rest.length > 0) {
  // Elsewhere (macOS: Metal's simdgroup matrices) the machine's own adapter has to offer subgroup matrices.
  const native = process.platform !== 'linux' || process.arch !== 'x64';
  if (!native) await setup();
  const child = native
    ? spawnSync(process.execPath, rest, { stdio: 'inherit', env: { ...process.env, WPC_MATRIX_ADAPTER: 'native' } })
    : spawnSync(WRAPPER, ['--import', pathToFileURL(EXEC_PATH_HOOK).href, ...rest], {
        stdio: 'inherit',
        env: matrixEnv(),
      });
  if (child.error) throw child.error;
  process.exit(child.status ?? 1);
} else {
  console.error('usage: node scripts/matrix-lavapipe.mjs setup | run SCRIPT [ARGS…]');
  process.exit(2);
}
