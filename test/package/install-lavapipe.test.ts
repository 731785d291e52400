// scripts/install-lavapipe.sh's edit of the apt sources (the part that can be checked without root or network).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../scripts/install-lavapipe.sh', import.meta.url));

// Debian 12's stock /etc/apt/sources.list.d/debian.sources.
const DEB822 = `Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;

function edit(content: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'wpc-apt-')), 'sources');
  writeFileSync(file, content);
  execFileSync('bash', [script, '--sources-only', file]);
  execFileSync('bash', [script, '--sources-only', file]); // idempotent
  return readFileSync(file, 'utf8');
}

describe('install-lavapipe.sh', () => {
  it('adds bookworm-backports to the main Suites: line of a deb822 file, once', () => {
    const out = edit(DEB822);
    expect(out.match(/^Suites:.*$/gm)).toEqual([
      'Suites: bookworm bookworm-updates bookworm-backports',
      'Suites: bookworm-security',
    ]);
  });

  it('appends a backports line to a classic sources.list, once', () => {
    const out = edit('deb http://deb.debian.org/debian bookworm main\n');
    expect(out.split('\n').filter((l) => l.includes('bookworm-backports'))).toEqual([
      'deb http://deb.debian.org/debian bookworm-backports main',
    ]);
  });
});
