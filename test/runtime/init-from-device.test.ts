// Hand-offs with a host app's WebGPU code: tensors over the caller's GPUBuffers (runtime.wrap), models made
// from parameters already on the GPU (mlpFromBuffer), and WPC's own buffers handed out (Tensor.buffer,
// Model.params). The browser side (a render pipeline drawing activities) is in browser.test.ts.
import { describe, expect, it } from 'vitest';
import { initActivitiesWithFfwd, makeMlp, mlpFromBuffer, pcEnergy, WpcArgumentError } from '../../src/node.js';
import { BufferUsage } from '../../src/runtime/flags.js';
import { useRuntime } from '../support/helpers.js';

const rt = useRuntime();

function callerBuffer(
  data: Float32Array,
  usage = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST,
  size = data.byteLength,
): GPUBuffer {
  const buffer = rt().device.createBuffer({ size, usage: usage | BufferUsage.COPY_DST, label: 'caller' });
  rt().device.queue.writeBuffer(buffer, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  return buffer;
}

describe('runtime.wrap', () => {
  it('reads a caller buffer in place (with an offset) and works as any input tensor', async () => {
    const x = Float32Array.from({ length: 2 * 5 }, (_, i) => Math.sin(i));
    const y = Float32Array.from({ length: 2 * 3 }, (_, i) => Math.cos(i));
    const padded = new Float32Array(4 + x.length);
    padded.set(x, 4);
    const buffer = callerBuffer(padded);
    const wrapped = rt().wrap(buffer, [2, 5], 16);
    expect(Array.from(await wrapped.toArray())).toEqual(Array.from(x));
    expect(wrapped.buffer).toBe(buffer);
    const model = makeMlp(rt(), { seed: 1, inputDim: 5, width: 4, depth: 2, outputDim: 3, actFn: 'tanh' });
    const acts = await initActivitiesWithFfwd(model, wrapped);
    const viaWrap = await (await pcEnergy(model, acts, y, { input: wrapped })).item();
    const viaCopy = await (await pcEnergy(model, acts, y, { input: x })).item();
    expect(viaWrap).toBe(viaCopy);
    // WPC never destroys what it did not create: disposing the view leaves the buffer alone.
    wrapped.dispose();
    model.dispose();
    expect(Array.from(await rt().wrap(buffer, [2, 5], 16).toArray())).toEqual(Array.from(x));
    buffer.destroy();
  });

  it('refuses what it cannot use, naming the problem', () => {
    const data = new Float32Array(8);
    const noStorage = callerBuffer(data, BufferUsage.COPY_SRC);
    expect(() => rt().wrap(noStorage, [8])).toThrow(
      /runtime.wrap: buffer needs GPUBufferUsage STORAGE \(create it with those usage flags\)/,
    );
    const ok = callerBuffer(data);
    expect(() => rt().wrap(ok, [3, 3])).toThrow(
      /runtime.wrap: buffer holds 32 bytes, but 36 bytes from offset 0 are needed/,
    );
    expect(() => rt().wrap(ok, [2], 2)).toThrow(/byteOffset must be a non-negative multiple of 4, got 2/);
    expect(() => rt().wrap({} as GPUBuffer, [2])).toThrow(WpcArgumentError);
    expect(() => rt().wrap(ok, [0])).toThrow(/shape must be an array of positive integers/);
    noStorage.destroy();
    ok.destroy();
  });
});

describe('mlpFromBuffer', () => {
  it('copies parameters on the GPU from another buffer (here another model’s), giving the same network', async () => {
    const a = makeMlp(rt(), {
      seed: 3,
      inputDim: 6,
      width: 5,
      depth: 3,
      outputDim: 2,
      actFn: 'relu',
      useBias: true,
      paramType: 'mupc',
    });
    // Offset it inside a caller buffer, as another program might lay it out.
    const encoder = rt().device.createCommandEncoder();
    const host = rt().device.createBuffer({
      size: 64 + a.paramCount * 4,
      usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST,
    });
    encoder.copyBufferToBuffer(a.params, 0, host, 64, a.paramCount * 4);
    rt().device.queue.submit([encoder.finish()]);
    const b = mlpFromBuffer(rt(), {
      dims: a.dims,
      buffer: host,
      byteOffset: 64,
      useBias: true,
      actFn: 'relu',
      paramType: 'mupc',
    });
    expect(b.paramCount).toBe(a.paramCount);
    expect(b.layers.map((l) => l.scale)).toEqual(a.layers.map((l) => l.scale));
    const [wa, wb] = [await a.toArrays(), await b.toArrays()];
    expect(wb).toEqual(wa);
    // A copy: the caller may reuse its buffer.
    rt().device.queue.writeBuffer(host, 64, new Float32Array(a.paramCount));
    expect((await b.toArrays()).weights).toEqual(wa.weights);
    expect(b.params).not.toBe(host);
    for (const m of [a, b]) m.dispose();
    host.destroy();
  });

  it('validates the buffer, layout and options before touching the GPU', () => {
    const small = callerBuffer(new Float32Array(10));
    expect(() => mlpFromBuffer(rt(), { dims: [3, 4, 2], buffer: small, actFn: 'tanh' })).toThrow(
      /mlpFromBuffer: options.buffer holds 40 bytes, but 80 bytes from offset 0 are needed/,
    );
    const noCopy = callerBuffer(new Float32Array(20), BufferUsage.STORAGE);
    expect(() => mlpFromBuffer(rt(), { dims: [3, 4, 2], buffer: noCopy, actFn: 'tanh' })).toThrow(
      /options.buffer needs GPUBufferUsage COPY_SRC/,
    );
    expect(() => mlpFromBuffer(rt(), { dims: [3, 4, 2], buffer: small, actFn: 'tanh', byteOffset: 3 })).toThrow(
      /options.byteOffset must be a non-negative multiple of 4/,
    );
    expect(() => mlpFromBuffer(rt(), { dims: [3], buffer: small, actFn: 'tanh' })).toThrow(/options.dims/);
    expect(() => mlpFromBuffer(rt(), { dims: [3, 4, 2], buffer: small, actFn: 'sigmoid' as never })).toThrow(
      /options.actFn/,
    );
    expect(() => mlpFromBuffer(rt(), { dims: [3, 4, 2], buffer: small, actFn: 'tanh', weights: [] } as never)).toThrow(
      /unknown option/,
    );
    small.destroy();
    noCopy.destroy();
  });
});
