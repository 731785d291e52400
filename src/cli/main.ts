#!/usr/bin/env node
/**
 * The `wpc` command line's entry (the build's dist/cli.js): picks the command from argv, prints the top-level help
 * and the version, and reports every failure on one line (checks.ts) with an exit code; `--debug` anywhere adds the
 * stack trace. Each command lives in its own file: train.ts, sample.ts, reproduce-runtime.ts, reproduce-theory.ts,
 * data.ts, info.ts. Progress goes to stderr; stdout gets one JSON line per command.
 */
import { VERSION } from '../runtime/build-info.js';
import { UsageError, errorReport } from './checks.js';
import { dataCommand } from './data.js';
import { TRAIN_HELP, parseTrain } from './train-options.js';
import { train } from './train.js';
import { SAMPLE_HELP, sample } from './sample.js';
import { RUNTIME_HELP, reproduceRuntime } from './reproduce-runtime.js';
import { THEORY_HELP, reproduceTheory } from './reproduce-theory.js';
import { info } from './info.js';

const MAIN_HELP = `Usage: wpc <command> [options]

Commands
  train              train a PC network on MNIST / Fashion-MNIST (wpc train --help)
  sample             draw images from a saved generative model (wpc sample --help)
  reproduce runtime  the JPC paper's runtime study, Euler vs Heun (wpc reproduce runtime --help)
  reproduce theory   the paper's Figure 2: theoretical vs numerical energy of a deep linear network
                     (wpc reproduce theory --help)
  data download NAME fetch mnist or fashion-mnist from the public mirrors, checksums verified
                     (wpc data download --help)
  data path NAME     print the folder the data lookup order finds NAME in (wpc data path --help)
  info               show the WebGPU adapter WPC gets on this machine

  -v, --version      print the version (${VERSION})
  -h, --help         this help

Every command takes --debug (print the stack trace of an error). Exit codes: 0 success, 2 a usage error (bad
flags, an output folder that does not exist), 1 any other error (missing data, a device limit, a failed run).

WPC ${VERSION} (npm package webgpu-pc) trains predictive-coding networks with WGSL compute shaders (WebGPU
through Dawn in Node).
`;

/** Runs the command in `argv`; returns the exit code (errors are reported here, on stderr). */
async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      process.stdout.write(MAIN_HELP);
      return command === undefined ? 2 : 0;
    }
    if (command === '--version' || command === '-v') {
      if (rest.some((a) => a !== '--debug'))
        throw new UsageError(`${command} takes no arguments, got ${JSON.stringify(rest.find((a) => a !== '--debug'))}`);
      process.stdout.write(`${VERSION}\n`);
      return 0;
    }
    if (command === 'train') {
      const config = await parseTrain(rest);
      if (config === 'help') {
        process.stdout.write(TRAIN_HELP);
        return 0;
      }
      await train(config);
      return 0;
    }
    if (command === 'info') {
      await info(rest);
      return 0;
    }
    if (command === 'data') return await dataCommand(rest);
    if (command === 'sample') {
      if ((await sample(rest)) === 'help') process.stdout.write(SAMPLE_HELP);
      return 0;
    }
    if (command === 'reproduce') {
      const [study, ...args] = rest;
      if (study === undefined || study === '--help' || study === '-h') {
        process.stdout.write(`${RUNTIME_HELP}\n${THEORY_HELP}`);
        return study === undefined ? 2 : 0;
      }
      if (study === 'theory') {
        if ((await reproduceTheory(args)) === 'help') process.stdout.write(THEORY_HELP);
        return 0;
      }
      if (study !== 'runtime')
        throw new UsageError(`unknown study ${JSON.stringify(study)}; the studies are 'runtime' and 'theory'`);
      if ((await reproduceRuntime(args)) === 'help') process.stdout.write(RUNTIME_HELP);
      return 0;
    }
    throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  } catch (e) {
    const sub =
      command === 'train' || command === 'sample' || command === 'info'
        ? `${command} `
        : command === 'reproduce'
          ? `reproduce ${rest[0] === 'theory' ? 'theory' : 'runtime'} `
          : command === 'data'
            ? `data ${rest[0] === 'download' || rest[0] === 'path' ? `${rest[0]} ` : ''}`
            : '';
    const report = errorReport(e, `wpc ${sub}--help`, debug);
    process.stderr.write(report.text);
    return report.code;
  }
}

const argv = process.argv.slice(2);
/** --debug anywhere on the command line: errors come with their stack trace. */
const debug = argv.includes('--debug');
// Whatever escapes main (a rejected promise nobody awaited) is reported the same way, on one line.
const fatal = (e: unknown): void => {
  process.stderr.write(errorReport(e, 'wpc --help', debug).text);
  process.exit(1);
};
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);
process.exitCode = await main(argv);
