/**
 * `wpc data download NAME` and `wpc data path NAME`: fetching MNIST / Fashion-MNIST / CIFAR-10 from their public
 * mirrors (checksums verified), and showing where the lookup order finds a dataset.
 */
import { DEFAULT_MIRRORS, MAX_RETRIES, downloadDataset, type DownloadProgress } from '../data/download.js';
import { DATASET_NAMES, type DatasetName } from '../data/files.js';
import { locateDataset } from '../data/locate.js';
import { WpcArgumentError, printable } from '../runtime/errors.js';
import { UsageError } from './checks.js';
import { STANDARD_FLAGS, flagLines, parseFlags, text, texts, toggle, valued } from './args.js';

/** The lookup order, as every help text that mentions --data-dir refers to it. */
const LOOKUP_ORDER = `Where data is looked for (wpc train, wpc reproduce, wpc data path, loadDataset):
  1. --data-dir DIR (dataDir in the API), else
  2. the WPC_DATA_DIR environment variable;
     either is your explicit choice: when the folder lacks the data, that is an error (no further search);
  3. the per-user cache directory, where 'wpc data download' puts the files: $XDG_CACHE_HOME/wpc/datasets or
     ~/.cache/wpc/datasets on Linux, ~/Library/Caches/wpc/datasets on macOS, %LOCALAPPDATA%\\wpc\\datasets on
     Windows, then
  4. ../shared/datasets relative to the current directory;
     these two count only when their NAME/ folder holds all the dataset's files.
A data directory holds NAME/ folders (mnist/, fashion-mnist/, cifar10/); one given explicitly may also hold one
dataset's files directly. MNIST's and Fashion-MNIST's four IDX files may be gzip-compressed (as distributed) or
not; CIFAR-10's are data_batch_1.bin ... data_batch_5.bin and test_batch.bin (the binary version). Loading
checks the files' structure, not their checksums; 'wpc data download' verifies those.`;

const mirrorList = (name: DatasetName) => DEFAULT_MIRRORS[name].map((m) => `      ${m}`).join('\n');

const DOWNLOAD_FLAGS = {
  dir: text('--dir DIR', [
    'data directory                       (default: $WPC_DATA_DIR when set, else the per-user',
    "                                      cache directory; see 'wpc data path --help')",
  ]),
  mirror: texts(
    '--mirror URL',
    "a base URL holding the dataset's files; repeat for more, tried in order (replaces the defaults)",
  ),
  retries: valued(
    '--retries N',
    [
      'retries per mirror after a transient failure (a dropped connection, a truncated or stalled',
      `transfer, HTTP 408/429/5xx), 0..${MAX_RETRIES}    (default 2; waits 1 s, 2 s, 4 s, ... between them)`,
    ],
    undefined,
    (raw, name) => {
      if (!/^\d+$/.test(raw) || Number(raw) > MAX_RETRIES)
        throw new UsageError(`--${name} must be an integer in 0..${MAX_RETRIES}, got ${JSON.stringify(raw)}`);
      return Number(raw);
    },
  ),
  quiet: toggle('--quiet', 'no progress on stderr'),
  ...STANDARD_FLAGS,
};

const DATA_DOWNLOAD_HELP = `Usage: wpc data download mnist|fashion-mnist|cifar10 [options]

Fetches the dataset's four IDX files (train/t10k images and labels, .gz) into DIR/NAME/, verifying each file's
size and SHA-256 against the genuine file's (known to WPC). Each file is written to a temporary file next to its
final name and renamed into place only once verified; files already there with the right checksum are kept.
For cifar10 it fetches cifar-10-binary.tar.gz (170 MB; size, MD5 and SHA-256 verified), extracts its six binary
files the same way, records their SHA-256s in DIR/cifar10/SHA256SUMS and removes the archive; an archive already
in DIR/cifar10/ is verified and used instead of fetching it.
Progress goes to stderr; the last line on stdout is a JSON summary {"dataset", "dir", "files": [{"file",
"bytes", "sha256", "alreadyPresent", "url", "failedAttempts"}]}.

${flagLines(DOWNLOAD_FLAGS, 21)}

A transfer that receives nothing for 30 s is abandoned as stalled. Default mirrors, in order:
  mnist
${mirrorList('mnist')}
  fashion-mnist
${mirrorList('fashion-mnist')}
  cifar10
${mirrorList('cifar10')}
`;

const PATH_FLAGS = {
  'data-dir': text('--data-dir DIR', 'look only there (see 1. below)'),
  ...STANDARD_FLAGS,
};

const DATA_PATH_HELP = `Usage: wpc data path mnist|fashion-mnist|cifar10 [--data-dir DIR]

Prints the folder holding the dataset's files, found in the lookup order below; exits with 1 and a message
listing every place searched when there is none (then 'wpc data download NAME' fetches it), e.g.
  wpc data path mnist || wpc data download mnist

${flagLines(PATH_FLAGS, 21)}

${LOOKUP_ORDER}
`;

const DATA_HELP = `Usage: wpc data download mnist|fashion-mnist|cifar10 [--dir DIR] [--mirror URL ...] [--retries N]
       wpc data path mnist|fashion-mnist|cifar10 [--data-dir DIR]

  download   fetch the dataset from its public mirrors, checksums verified (wpc data download --help)
  path       print the folder the lookup order finds the dataset in (wpc data path --help)
`;

function datasetArg(command: string, positionals: readonly string[]): DatasetName {
  const [name, extra] = positionals;
  if (name === undefined)
    throw new UsageError(
      `wpc data ${command} needs a dataset name: ${DATASET_NAMES.slice(0, -1).join(', ')} or ${DATASET_NAMES.at(-1)}`,
    );
  if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`);
  if (!(DATASET_NAMES as readonly string[]).includes(name))
    throw new UsageError(`the dataset must be one of ${DATASET_NAMES.join(', ')}, got ${JSON.stringify(name)}`);
  return name as DatasetName;
}

/** Progress on stderr: a line redrawn in place on a terminal, one line per file (and per failed attempt) otherwise. */
function progressPrinter(quiet: boolean): { update: (p: DownloadProgress) => void; end: () => void } {
  if (quiet) return { update: () => undefined, end: () => undefined };
  const tty = process.stderr.isTTY === true;
  let lastDraw = 0;
  const mb = (bytes: number) => (bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(1)} MB`);
  const line = (text: string) => process.stderr.write(tty ? `\r\x1b[K${text}\n` : `${text}\n`);
  return {
    update(p) {
      const where = `[${p.index + 1}/${p.count}] ${p.file}`;
      if (p.state === 'present') line(`${where}: already present, sha256 verified`);
      else if (p.state === 'done') line(`${where}: ${p.size} bytes from ${printable(p.url ?? '')}, sha256 verified`);
      else if (p.state === 'failed') line(`${where}: ${printable(p.url ?? '')} failed: ${p.reason ?? ''}`);
      else if (p.state === 'extracted') line(`${where}: ${p.size} bytes extracted from the verified archive`);
      else if (tty) {
        const now = performance.now();
        if (now - lastDraw < 100 && p.received < p.size) return;
        lastDraw = now;
        process.stderr.write(
          `\r${where}: ${mb(p.received)} of ${mb(p.size)} (${Math.floor((100 * p.received) / p.size)}%)\x1b[K`,
        );
      }
    },
    end() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}

async function download(argv: string[]): Promise<number> {
  const a = parseFlags(argv, DOWNLOAD_FLAGS, 'allowed');
  if (a === 'help') {
    process.stdout.write(DATA_DOWNLOAD_HELP);
    return 0;
  }
  const name = datasetArg('download', a.positionals);
  const retries = a.value('retries');
  const dir = a.value('dir');
  const mirrors = a.value('mirror');
  const progress = progressPrinter(a.value('quiet'));
  // Ctrl-C stops the transfer in flight and removes its temporary file before exiting.
  const stop = new AbortController();
  const onInterrupt = () => stop.abort(new Error('interrupted'));
  process.once('SIGINT', onInterrupt);
  process.once('SIGTERM', onInterrupt);
  try {
    const result = await downloadDataset(name, {
      ...(dir === undefined ? {} : { dir }),
      ...(mirrors === undefined ? {} : { mirrors }),
      ...(retries === undefined ? {} : { retries }),
      signal: stop.signal,
      onProgress: progress.update,
    });
    progress.end();
    const files = result.files.map(({ file, bytes, sha256, alreadyPresent, url, failedAttempts }) => ({
      file,
      bytes,
      sha256,
      alreadyPresent,
      url,
      failedAttempts,
    }));
    process.stdout.write(`${JSON.stringify({ dataset: result.dataset, dir: result.dir, files })}\n`);
    return 0;
  } catch (e) {
    progress.end();
    if (e instanceof WpcArgumentError) {
      // downloadDataset checks its options before any I/O: a bad --mirror or --dir is a usage error.
      const message = e.message
        .replace(/^downloadDataset: /, '')
        .replace(/options\.mirrors\[\d+\]/, '--mirror')
        .replace(/options\.dir/, '--dir')
        .replace(/options\.retries/, '--retries');
      throw new UsageError(message);
    }
    if (stop.signal.aborted) {
      process.stderr.write(`wpc: data download interrupted; no partial file was left under a final name\n`);
      return 130;
    }
    throw e;
  } finally {
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onInterrupt);
  }
}

async function path(argv: string[]): Promise<number> {
  const a = parseFlags(argv, PATH_FLAGS, 'allowed');
  if (a === 'help') {
    process.stdout.write(DATA_PATH_HELP);
    return 0;
  }
  const name = datasetArg('path', a.positionals);
  const dataDir = a.value('data-dir');
  if (dataDir === '') throw new UsageError('--data-dir needs a folder name, got ""');
  const found = await locateDataset(name, dataDir === undefined ? {} : { dataDir });
  process.stdout.write(`${found.dir}\n`);
  return 0;
}

/** `wpc data …`; returns the exit code. */
export async function dataCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(DATA_HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub === 'download') return download(rest);
  if (sub === 'path') return path(rest);
  throw new UsageError(`unknown data command ${JSON.stringify(sub)}; the commands are 'download' and 'path'`);
}
