// Runs the built command line as a user would: `node dist/cli.js ...` (npm test builds dist/ first).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const DATA_DIR = process.env.WPC_DATA_DIR ?? fileURLToPath(new URL('../../../shared/datasets', import.meta.url));

/** `wpc ARGS` in the repository root; the exit code (1 for a signal or a timeout), stdout and stderr. */
export function wpc(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, 'dist/cli.js'), ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 300_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      },
    );
  });
}
