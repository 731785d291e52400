/**
 * Seeded pseudo-random numbers for weight initialisation and data shuffling.
 *
 * xoshiro128** (Blackman & Vigna) seeded through splitmix32, so that every integer seed gives a
 * well-mixed, reproducible stream on every platform (pure 32-bit integer arithmetic, no `Math.random`).
 * `fork(i)` derives independent child streams, the way JAX's `random.split` gives each layer its own key.
 *
 * These streams are not JAX's threefry: a WPC model made from seed s does not have the weights that
 * `jpc.make_mlp(PRNGKey(s))` has. Use `mlpFromWeights` to load exact weights.
 */

function splitmix32(state: number): [value: number, next: number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [z >>> 0, next];
}

export class Random {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  /** A cached second normal deviate from the Box–Muller pair. */
  private spareNormal: number | undefined;

  /** @param seed any safe integer; equal seeds give equal streams. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) {
      throw new TypeError(`Random: seed must be a safe integer, got ${String(seed)}`);
    }
    // Fold the (up to 53-bit) seed into 32 bits without losing the high part.
    const hi = Math.floor(seed / 2 ** 32) | 0;
    let st = (seed | 0) ^ Math.imul(hi, 0x27d4eb2d);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [v, next] = splitmix32(st);
      words.push(v);
      st = next;
    }
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniform double in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.nextFloat();
  }

  /** A standard normal deviate (Box–Muller). */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const v = this.spareNormal;
      this.spareNormal = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** An integer uniformly distributed in [0, n), without modulo bias. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) {
      throw new RangeError(`Random.nextInt: n must be an integer in [1, 2^32], got ${String(n)}`);
    }
    const limit = 2 ** 32 - (2 ** 32 % n);
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return x % n;
  }

  /** Shuffles `array` in place (Fisher–Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /** An independent stream derived from this one's seed material and `index` (does not advance this one). */
  fork(index: number): Random {
    if (!Number.isInteger(index) || index < 0) {
      throw new RangeError(`Random.fork: index must be a non-negative integer, got ${String(index)}`);
    }
    const mix =
      (this.s0 ^ Math.imul(this.s1, 0x9e3779b1) ^ Math.imul(this.s2 + index, 0x85ebca77) ^ rotl(this.s3, 13)) | 0;
    return new Random(mix * 4096 + index);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k)) | 0;
}
