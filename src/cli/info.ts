/**
 * `wpc info`: the WebGPU adapter WPC gets on this machine and its size limits, as JSON.
 */
import { init } from '../node.js';
import { UsageError } from './checks.js';

/** `wpc info ARGS`: prints the adapter, or the help. */
export async function info(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(
      'Usage: wpc info [--debug]\n\nPrints the WebGPU adapter WPC gets and its size limits (as JSON on stdout).\n\n  --debug   print the stack trace of an error\n',
    );
    return;
  }
  const extra = argv.filter((a) => a !== '--debug');
  if (extra.length > 0) throw new UsageError(`info takes no arguments but --debug, got ${JSON.stringify(extra[0])}`);
  const rt = await init();
  try {
    const l = rt.limits;
    process.stdout.write(
      `${JSON.stringify({
        adapter: rt.adapter,
        limits: {
          maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
          maxBufferSize: l.maxBufferSize,
          maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        },
        features: [...rt.device.features].sort(),
      })}\n`,
    );
  } finally {
    rt.dispose();
  }
}
