// The segment reduction (reduce.wgsl + workgroup-sum.wgsl) against float64 sums, for counts around the
// workgroup and subgroup sizes, in both of its forms: subgroup butterflies (adapters with one fixed subgroup
// size, lavapipe's 8 here) and the tree in workgroup memory (every other adapter).
import { describe, expect, it } from 'vitest';
import { ReduceFlag, reduceKernel } from '../../src/kernels/reduce.js';
import { createBindGroup } from '../../src/runtime/kernel.js';
import { Recorder } from '../../src/runtime/recorder.js';
import { Random } from '../../src/util/random.js';
import { useRuntime } from '../support/helpers.js';

const rt = useRuntime();

interface Seg {
  off: number;
  count: number;
  stride: number;
  scale: number;
  flags: number;
  off2?: number;
  count2?: number;
  scale2?: number;
}

const SEGMENT_WORDS = 12;

async function reduceOnGpu(
  subgroupSize: number | null,
  src: Float32Array,
  segs: readonly Seg[],
): Promise<Float32Array> {
  const r = rt();
  const table = new ArrayBuffer(segs.length * SEGMENT_WORDS * 4);
  const u32 = new Uint32Array(table);
  const f32 = new Float32Array(table);
  segs.forEach((s, i) => {
    const o = i * SEGMENT_WORDS;
    [u32[o], u32[o + 1], u32[o + 2], u32[o + 3]] = [s.off, s.count, s.stride, i];
    f32[o + 4] = s.scale;
    u32[o + 5] = s.flags;
    [u32[o + 6], u32[o + 7]] = [s.off2 ?? 0, s.count2 ?? 0];
    f32[o + 8] = s.scale2 ?? 0;
  });
  const segments = r.tensor(f32, [f32.length]);
  const input = r.tensor(src, [src.length]);
  const out = r.empty([segs.length]);
  const kernel = await r.kernel(reduceKernel(subgroupSize));
  const rec = new Recorder(r, 'test.reduce');
  rec.dispatch(
    kernel,
    createBindGroup(r.device, kernel, { segments: segments.buffer, src: input.buffer, dst: out.buffer }),
    segs.length,
  );
  rec.submit();
  const values = await out.toArray();
  for (const t of [segments, input, out]) t.dispose();
  return values;
}

function reference(src: Float32Array, s: Seg): number {
  let a = 0;
  for (let i = 0; i < s.count; i++) {
    const v = src[s.off + s.stride * i]!;
    a += s.flags & ReduceFlag.SQUARE ? v * v : v;
  }
  let b = 0;
  for (let i = 0; i < (s.count2 ?? 0); i++) {
    const v = src[(s.off2 ?? 0) + s.stride * i]!;
    b += s.flags & ReduceFlag.SQUARE2 ? v * v : v;
  }
  const total = s.scale * a + (s.scale2 ?? 0) * b;
  return s.flags & ReduceFlag.SQRT ? Math.sqrt(total) : total;
}

describe('segment reductions', () => {
  const rng = new Random(5);
  const src = Float32Array.from({ length: 50000 }, () => rng.normal());
  const segs: Seg[] = [];
  // Counts around a subgroup (8), the workgroup (64) and many workgroups' worth of iterations.
  for (const count of [0, 1, 7, 8, 9, 55, 56, 57, 63, 64, 65, 127, 128, 129, 1000, 9999]) {
    segs.push({ off: rng.nextInt(1000), count, stride: 1, scale: 1, flags: 0 });
    segs.push({ off: rng.nextInt(1000), count, stride: 4, scale: 0.5, flags: ReduceFlag.SQUARE });
  }
  segs.push({ off: 3, count: 5000, stride: 1, scale: 1, flags: ReduceFlag.SQUARE | ReduceFlag.SQRT });
  segs.push({
    off: 10,
    count: 300,
    stride: 3,
    scale: 0.25,
    flags: ReduceFlag.SQUARE,
    off2: 20000,
    count2: 777,
    scale2: 2,
  });
  const expected = Float64Array.from(segs, (s) => reference(src, s));

  const forms: [string, () => number | null][] = [
    ['workgroup-memory tree', () => null],
    // The adapter's own choice: butterflies where it reports one fixed subgroup size (lavapipe: 8), else the tree.
    ['subgroup butterflies', () => rt().adapter.subgroupSize],
  ];
  for (const [name, size] of forms) {
    it(`match float64 sums (${name})`, async () => {
      const got = await reduceOnGpu(size(), src, segs);
      // Each segment on its own scale (an absolute floor of 1e-5 of the sum of magnitudes).
      segs.forEach((s, i) => {
        const magnitude =
          reference(Float32Array.from(src, Math.abs), { ...s, flags: s.flags & ~ReduceFlag.SQRT }) + 1e-30;
        const bound = s.flags & ReduceFlag.SQRT ? 1e-5 * Math.sqrt(magnitude) : 1e-5 * magnitude;
        expect(
          Math.abs(got[i]! - expected[i]!),
          `segment ${i} (count ${s.count}, stride ${s.stride})`,
        ).toBeLessThanOrEqual(bound);
      });
    });
  }

  it('are deterministic: the same sums bit for bit on every run', async () => {
    const a = await reduceOnGpu(rt().adapter.subgroupSize, src, segs);
    const b = await reduceOnGpu(rt().adapter.subgroupSize, src, segs);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
  });
});
