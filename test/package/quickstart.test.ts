// scripts/quickstart.sh, the README's first command: its decisions (Node too old, no adapter as root / through
// sudo / with neither, data found or downloaded, the paper's training flags) with `node`, `npm`, `id`, `sudo` and
// `bash` replaced by recording stand-ins, so nothing is installed or trained here. .ci/run runs the real thing
// on a clean clone.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../scripts/quickstart.sh', import.meta.url));
const BASH = '/bin/bash';

interface World {
  /** `node --version`'s answer; below 20.19 the script must stop. */
  nodeVersion?: string;
  /** Whether `node dist/cli.js info` finds an adapter, before and after an install. */
  adapter?: boolean;
  adapterAfterInstall?: boolean;
  uid?: number;
  sudo?: boolean;
  /** Whether `wpc data path` finds the dataset. */
  dataFound?: boolean;
}

/** Runs the script with stand-ins on PATH; returns the exit code, stderr, stdout and every stand-in's calls. */
function quickstart(
  world: World,
  args: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string; calls: string[] }> {
  const bin = mkdtempSync(join(tmpdir(), 'wpc-quickstart-'));
  const log = join(bin, 'calls.log');
  const installed = join(bin, 'installed');
  const version = world.nodeVersion ?? 'v20.19.0';
  const [major, minor] = version.slice(1).split('.').map(Number) as [number, number];
  const ok = major > 20 || (major === 20 && minor >= 19);
  const stub = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!${BASH}\necho "${name} $*" >> '${log}'\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  const adapterCheck = world.adapter
    ? 'exit 0'
    : world.adapterAfterInstall
      ? `[ -f '${installed}' ] || exit 1`
      : 'exit 1';
  stub(
    'node',
    `case "$1 $2" in
  "--version "*) echo ${version} ;;
  "-e "*) exit ${ok ? 0 : 1} ;;
  "dist/cli.js info") ${adapterCheck}; echo '{"adapter":{"description":"stand-in"}}' ;;
  "dist/cli.js data") if [ "$3" = path ]; then ${world.dataFound ? 'echo /data/$4' : 'echo "wpc: $4 not found" >&2; exit 1'}; fi ;;
  "dist/cli.js train") echo '{"testAccuracy":96}' ;;
  *) exit 0 ;;
esac`,
  );
  symlinkSync('/usr/bin/dirname', join(bin, 'dirname'));
  stub('npm', 'exit 0');
  stub('id', `echo ${world.uid ?? 0}`);
  stub('bash', `: > '${installed}'`);
  if (world.sudo) stub('sudo', `: > '${installed}'`);
  return new Promise((resolve) => {
    execFile(BASH, [SCRIPT, ...args], { env: { PATH: bin, HOME: bin } }, (error, stdout, stderr) => {
      let calls: string[] = [];
      try {
        calls = readFileSync(log, 'utf8').trim().split('\n');
      } catch {
        // no stand-in was called
      }
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr, calls });
    });
  });
}

describe('quickstart.sh', () => {
  it('with everything there: builds, finds the data and trains the paper network with its settings', async () => {
    const r = await quickstart({ adapter: true, dataFound: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('{"testAccuracy":96}');
    expect(r.calls).toContain('npm run -s build');
    expect(
      r.calls.filter((c) => c === 'node dist/cli.js info'),
      'the adapter is asked for once',
    ).toHaveLength(1);
    expect(r.calls).toContain('node dist/cli.js data path mnist');
    expect(r.calls.some((c) => c.includes('data download'))).toBe(false);
    expect(r.calls.some((c) => c.includes('install-lavapipe'))).toBe(false);
    expect(r.calls.at(-1)).toBe(
      'node dist/cli.js train --dataset mnist --hidden 3 --width 300 --act tanh --solver heun --controller pid --rtol 1e-3 --atol 1e-3 --max-t1 20 --dt 0.05 --batch 64 --lr 1e-3 --epochs 1 --test-every 100 --seed 0',
    );
  });

  it('downloads the dataset named by --dataset when no place has it, and passes the flags on', async () => {
    const r = await quickstart({ adapter: true, dataFound: false }, [
      '--dataset',
      'fashion-mnist',
      '--out',
      'run.json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.calls).toContain('node dist/cli.js data download fashion-mnist');
    expect(r.calls.at(-1)).toMatch(
      /^node dist\/cli\.js train --dataset mnist .* --seed 0 --dataset fashion-mnist --out run\.json$/,
    );
  });

  it("a --data-dir without the data stops with wpc's message, downloading nothing", async () => {
    const r = await quickstart({ adapter: true, dataFound: false }, ['--data-dir', '/nowhere']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('wpc: mnist not found');
    expect(r.calls.some((c) => c.includes('data download') || c.includes(' train '))).toBe(false);
  });

  it('no adapter: installs lavapipe as root, or through sudo, then checks again', async () => {
    const root = await quickstart({ adapter: false, adapterAfterInstall: true, uid: 0, dataFound: true });
    expect(root.code, root.stderr).toBe(0);
    expect(root.calls).toContain('bash scripts/install-lavapipe.sh');
    expect(
      root.calls.filter((c) => c === 'node dist/cli.js info'),
      'before and after the install',
    ).toHaveLength(2);
    const sudo = await quickstart({
      adapter: false,
      adapterAfterInstall: true,
      uid: 1000,
      sudo: true,
      dataFound: true,
    });
    expect(sudo.code, sudo.stderr).toBe(0);
    expect(sudo.calls).toContain('sudo bash scripts/install-lavapipe.sh');
    expect(sudo.calls).not.toContain('bash scripts/install-lavapipe.sh');
  });

  it('no adapter, not root and no sudo: says what to run, installs and trains nothing', async () => {
    const r = await quickstart({ adapter: false, uid: 1000, sudo: false, dataFound: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /quickstart: no WebGPU adapter, and installing lavapipe needs root: run 'bash scripts\/install-lavapipe\.sh' as root/,
    );
    expect(r.calls.some((c) => c.includes(' train '))).toBe(false);
  });

  it('an install that still finds no adapter stops there', async () => {
    const r = await quickstart({ adapter: false, adapterAfterInstall: false, uid: 0, dataFound: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('still no WebGPU adapter after installing lavapipe');
  });

  it('Node older than 20.19 (Debian 12 ships 18) stops at once, saying where to get a newer one', async () => {
    for (const v of ['v18.19.0', 'v20.18.1']) {
      const r = await quickstart({ nodeVersion: v, adapter: true, dataFound: true });
      expect(r.code, v).toBe(1);
      expect(r.stderr).toContain(`Node.js >= 20.19 is needed, this is ${v}`);
      expect(
        r.calls.filter((c) => !c.startsWith('node ')),
        v,
      ).toEqual([]);
    }
  });
});
