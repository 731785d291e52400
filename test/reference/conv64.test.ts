/**
 * Self-tests of the float64 convolutional PC reference (test/reference/conv64.ts), the oracle of the conv kernels.
 * No GPU: every operator against a literal definition (explicit padding, dilation and windows) and small cases
 * worked by hand; adjoints by dot-product identities; energy gradients of small random networks against central
 * finite differences; a Heun + PID inference solve through jpc64's integrator.
 */
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/util/random.js';
import {
  activityGrads,
  avgPool2d,
  avgPool2dInputVjp,
  avgPoolOp,
  conv2d,
  conv2dInputVjp,
  conv2dWeightGrad,
  convOp,
  convTranspose2d,
  convTranspose2dInputVjp,
  convTranspose2dWeightGrad,
  convTransposeOp,
  denseForward,
  denseInputVjp,
  denseOp,
  denseWeightGrad,
  energy,
  ffwd,
  flattenConvParams,
  initBound,
  layerEnergies,
  maxPool2d,
  maxPool2dInputVjp,
  maxPoolOp,
  modelShapes,
  opOutputShape,
  paramGrads,
  paramsOf,
  pcVectorField,
  randomConvModel,
  readoutScale,
  resnetDepthScaling,
  scaledConvScale,
  shapeSize,
  torchGain,
  vectorField,
  withFlatParams,
  type ConvEnergyOpts,
  type ConvModel,
  type LayerSpec,
  type TensorShape,
} from './conv64.js';
import {
  ACT_KINKS,
  cloneMats,
  integrateConstant,
  integrateHeunPid,
  mat,
  matFromRows,
  maxAbsDiff,
  randomNormalMat,
  randomUniformMat,
  rmsNorm,
  type Act,
  type Mat,
} from './jpc64.js';

// ─────────────────────────────────────────── helpers ───────────────────────────────────────────

type Img = number[][][]; // [C][H][W]

/** Row b of a batch as a [C][H][W] array. */
function toImg(m: Mat, b: number, [C, H, W]: readonly [number, number, number]): Img {
  return Array.from({ length: C }, (_, c) =>
    Array.from({ length: H }, (_, y) => Array.from({ length: W }, (_, x) => m.data[b * m.cols + (c * H + y) * W + x]!)),
  );
}

/** An OIHW weight Mat as a [O][C][k][k] array. */
function toKernel(w: Mat, cin: number, k: number): number[][][][] {
  return Array.from({ length: w.rows }, (_, o) => toImg(w, o, [cin, k, k]));
}

/** The literal Conv2d: pad with p zeros on every side, then slide the (unflipped) kernel with stride s. */
function naiveConv(x: Img, V: number[][][][], s: number, p: number): Img {
  const C = x.length;
  const H = x[0]!.length + 2 * p;
  const W = x[0]![0]!.length + 2 * p;
  const P = x.map((ch) =>
    Array.from({ length: H }, (_, y) => Array.from({ length: W }, (_, xx) => ch[y - p]?.[xx - p] ?? 0)),
  );
  const k = V[0]![0]!.length;
  const Ho = Math.floor((H - k) / s) + 1;
  const Wo = Math.floor((W - k) / s) + 1;
  return V.map((Vo) =>
    Array.from({ length: Ho }, (_, u) =>
      Array.from({ length: Wo }, (_, v) => {
        let acc = 0;
        for (let c = 0; c < C; c++)
          for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) acc += Vo[c]![i]![j]! * P[c]![u * s + i]![v * s + j]!;
        return acc;
      }),
    ),
  );
}

/**
 * The literal ConvTranspose2d of Equinox's lax call: dilate the input by s (s − 1 zeros between pixels), pad by
 * D = k − 1 − p before and D + a after (D ≥ 0 here), then a stride-1 cross-correlation with W unflipped.
 */
function naiveConvTranspose(x: Img, Wk: number[][][][], s: number, p: number, a: number): Img {
  const k = Wk[0]![0]!.length;
  const D = k - 1 - p;
  if (D < 0) throw new RangeError('naiveConvTranspose: needs p <= k - 1');
  const H = x[0]!.length;
  const W = x[0]![0]!.length;
  const Hp = (H - 1) * s + 1 + 2 * D + a;
  const Wp = (W - 1) * s + 1 + 2 * D + a;
  const P = x.map((ch) => {
    const grid = Array.from({ length: Hp }, () => new Array<number>(Wp).fill(0));
    ch.forEach((row, qy) => row.forEach((val, qx) => (grid[D + qy * s]![D + qx * s] = val)));
    return grid;
  });
  return naiveConv(P, Wk, 1, 0);
}

function flat(img: Img): number[] {
  return img.flat(2);
}

function dot(a: Mat | Float64Array, b: Mat | Float64Array): number {
  const da = 'data' in a ? a.data : a;
  const db = 'data' in b ? b.data : b;
  expect(da.length).toBe(db.length);
  return da.reduce((s, v, i) => s + v * db[i]!, 0);
}

function centralDiff(fn: (v: number) => number, v: number, h: number): number {
  return (fn(v + h) - fn(v - h)) / (2 * h);
}

/** Uniform in [lo, hi], at least `gap` away from every kink of `a`. */
function awayFromKinks(rng: Random, a: Act, lo: number, hi: number, gap = 0.05): number {
  for (;;) {
    const v = rng.uniform(lo, hi);
    if (ACT_KINKS[a].every((k) => Math.abs(v - k) > gap)) return v;
  }
}

// ────────────────────────────────────── operators, worked by hand ──────────────────────────────────────

describe('operators on cases worked by hand', () => {
  const x33 = mat(1, 9, [1, 2, 3, 4, 5, 6, 7, 8, 9]); // [[1,2,3],[4,5,6],[7,8,9]]

  it('conv2d is a cross-correlation (no kernel flip)', () => {
    // kernel [[1, 0], [0, −1]]: y[u,v] = x[u,v] − x[u+1,v+1] = −4 (a flipped kernel would give +4)
    const y = conv2d(x33, [1, 3, 3], mat(1, 4, [1, 0, 0, -1]), convOp(1, 2));
    expect([...y.data]).toEqual([-4, -4, -4, -4]);
  });

  it('conv2d with stride 2 and padding 1 sums the zero-padded windows', () => {
    const y = conv2d(x33, [1, 3, 3], mat(1, 9, new Array(9).fill(1)), convOp(1, 3, { stride: 2, padding: 1 }));
    expect([...y.data]).toEqual([1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 4 + 5 + 7 + 8, 5 + 6 + 8 + 9]);
  });

  it('conv2d mixes channels with the OIHW weight layout', () => {
    // two input channels, 1x1 kernels, two outputs: W[0] = [2, 3], W[1] = [−1, 10]
    const x = mat(1, 2, [5, 7]);
    const y = conv2d(x, [2, 1, 1], mat(2, 2, [2, 3, -1, 10]), convOp(2, 1));
    expect([...y.data]).toEqual([2 * 5 + 3 * 7, -5 + 70]);
  });

  it("convTranspose2d stamps the flipped kernel at stride s (Equinox's lax call)", () => {
    const x = mat(1, 4, [1, 2, 3, 4]); // [[1, 2], [3, 4]]
    const w = mat(1, 4, [1, 10, 100, 1000]); // [[1, 10], [100, 1000]]
    const y = convTranspose2d(x, [1, 2, 2], w, convTransposeOp(1, 2, { stride: 2 }));
    expect(y.cols).toBe(16);
    // x[q] · [[1000, 100], [10, 1]] placed at (2qy, 2qx)
    expect([...y.data]).toEqual([1000, 100, 2000, 200, 10, 1, 20, 2, 3000, 300, 4000, 400, 30, 3, 40, 4]);
  });

  it('convTranspose2d: padding crops the output, output padding gives back its last row and column', () => {
    // a 1x1 input, k = 3, s = 2: without padding the output is the flipped kernel
    const x = mat(1, 1, [1]);
    const w = mat(1, 9, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const full = convTranspose2d(x, [1, 1, 1], w, convTransposeOp(1, 3, { stride: 2 }));
    expect([...full.data]).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1]);
    const cropped = convTranspose2d(
      x,
      [1, 1, 1],
      w,
      convTransposeOp(1, 3, { stride: 2, padding: 1, outputPadding: 1 }),
    );
    // size (1 − 1)·2 − 2 + 3 + 1 = 2: p = 1 crops a border (leaving 5), a = 1 restores the cropped last row/column
    expect([...cropped.data]).toEqual([5, 4, 2, 1]);
  });

  it('average and max pooling', () => {
    const x = mat(
      1,
      16,
      Array.from({ length: 16 }, (_, i) => i + 1),
    );
    expect([...avgPool2d(x, [1, 4, 4], avgPoolOp(2)).data]).toEqual([3.5, 5.5, 11.5, 13.5]);
    expect([...maxPool2d(x, [1, 4, 4], maxPoolOp(2)).data]).toEqual([6, 8, 14, 16]);
    // stride 1 (overlapping windows) on the 3x3 grid, and a 5-wide row that leaves its last column out
    expect([...avgPool2d(x33, [1, 3, 3], avgPoolOp(2, 1)).data]).toEqual([3, 4, 6, 7]);
    expect([
      ...maxPool2d(mat(1, 5, [3, 1, 4, 1, 5]), [1, 1, 5], { kind: 'maxPool', kernel: 1, stride: 2 }).data,
    ]).toEqual([3, 4, 5]);
  });

  it('max pooling routes each window whole to its first maximal element (ties included), windows adding', () => {
    // windows of [[5, 5, 1, 7], [1, 2, 7, 0]] with k = 2: the tie 5/5 picks index 0; the tie 7/7 picks (0, 3)
    const x = mat(1, 8, [5, 5, 1, 7, 1, 2, 7, 0]);
    const g = mat(1, 2, [10, 20]);
    expect([...maxPool2dInputVjp(x, g, [1, 2, 4], maxPoolOp(2)).data]).toEqual([10, 0, 0, 20, 0, 0, 0, 0]);
    // stride 1 on [[1, 9, 2], [3, 4, 5]]: windows pick 9, 9, so the 9 receives both
    const y = mat(1, 6, [1, 9, 2, 3, 4, 5]);
    expect([...maxPool2dInputVjp(y, mat(1, 2, [1, 2]), [1, 2, 3], maxPoolOp(2, 1)).data]).toEqual([0, 3, 0, 0, 0, 0]);
  });

  it('avg pooling hands g/k² to every element of each window', () => {
    const g = mat(1, 4, [4, 8, 12, 16]);
    expect([...avgPool2dInputVjp(g, [1, 3, 3], avgPoolOp(2, 1)).data]).toEqual([1, 3, 2, 4, 10, 6, 3, 7, 4]);
  });

  it('dense layers flatten [C, H, W] inputs NCHW (jnp.ravel)', () => {
    const x = mat(2, 4, [1, 2, 3, 4, 5, 6, 7, 8]); // two examples of shape [2, 1, 2]
    const w = matFromRows([
      [1, 0, 0, 0],
      [0, 0, 1, -1],
    ]);
    expect([...denseForward(x, w).data]).toEqual([1, -1, 5, -1]);
    expect([...denseInputVjp(mat(2, 2, [1, 2, 3, 4]), w).data]).toEqual([1, 0, 2, -2, 3, 0, 4, -4]);
    expect([...denseWeightGrad(x, mat(2, 2, [1, 0, 0, 1])).data]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('output shapes follow Equinox, and impossible layers are refused', () => {
    expect(opOutputShape(convOp(4, 3, { stride: 2, padding: 1 }), [3, 5, 7])).toEqual([4, 3, 4]);
    expect(opOutputShape(convOp(4, 3, { stride: 2, padding: 2 }), [3, 5, 7])).toEqual([4, 4, 5]);
    expect(opOutputShape(convTransposeOp(2, 3, { stride: 2, padding: 1, outputPadding: 1 }), [5, 3, 4])).toEqual([
      2, 6, 8,
    ]);
    expect(opOutputShape(avgPoolOp(2), [3, 5, 7])).toEqual([3, 2, 3]);
    expect(opOutputShape(denseOp([2, 3, 4]), [7])).toEqual([2, 3, 4]);
    expect(() => opOutputShape(convOp(4, 3), [12])).toThrow(/\[C, H, W\]/);
    expect(() => opOutputShape(convOp(4, 9), [3, 5, 7])).toThrow(/output shape/);
    expect(() => opOutputShape(convTransposeOp(2, 3, { stride: 2, outputPadding: 2 }), [1, 3, 3])).toThrow(
      /outputPadding/,
    );
    expect(() => opOutputShape(convOp(4, 3, { stride: 0 }), [3, 5, 7])).toThrow(/stride/);
  });
});

// ─────────────────────────────────── operators against literal definitions ───────────────────────────────────

describe('operators against literal definitions on random cases', () => {
  const convCases = [
    { inShape: [3, 5, 7] as const, op: convOp(5, 3, { stride: 2, padding: 1 }), B: 3 },
    { inShape: [5, 5, 7] as const, op: convOp(3, 3, { padding: 2 }), B: 1 },
    { inShape: [3, 7, 5] as const, op: convOp(4, 2, { stride: 2 }), B: 2 },
    { inShape: [1, 6, 6] as const, op: convOp(3, 5, { stride: 3, padding: 2 }), B: 1 },
  ];

  it.each(convCases)('conv2d $inShape → $op.outChannels ch, k $op.kernel s $op.stride p $op.padding', (c) => {
    const rng = new Random(7);
    const x = randomNormalMat(rng, c.B, shapeSize(c.inShape));
    const w = randomNormalMat(rng, c.op.outChannels, c.inShape[0] * c.op.kernel ** 2);
    const y = conv2d(x, c.inShape, w, c.op);
    const V = toKernel(w, c.inShape[0], c.op.kernel);
    for (let b = 0; b < c.B; b++) {
      const want = flat(naiveConv(toImg(x, b, c.inShape), V, c.op.stride, c.op.padding));
      const got = [...y.data.subarray(b * y.cols, (b + 1) * y.cols)];
      expect(got.length).toBe(want.length);
      got.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 12));
    }
  });

  const convTCases = [
    { inShape: [3, 5, 7] as const, op: convTransposeOp(5, 3, { stride: 2, padding: 1, outputPadding: 1 }), B: 3 },
    { inShape: [5, 3, 4] as const, op: convTransposeOp(3, 3, { stride: 2, padding: 2 }), B: 1 },
    { inShape: [2, 4, 3] as const, op: convTransposeOp(3, 4, { stride: 3, padding: 1, outputPadding: 2 }), B: 2 },
    { inShape: [3, 5, 5] as const, op: convTransposeOp(2, 3, { padding: 1 }), B: 1 },
  ];

  it.each(convTCases)('convTranspose2d $inShape → $op.outChannels ch, k $op.kernel s $op.stride', (c) => {
    const rng = new Random(8);
    const x = randomNormalMat(rng, c.B, shapeSize(c.inShape));
    const w = randomNormalMat(rng, c.op.outChannels, c.inShape[0] * c.op.kernel ** 2);
    const y = convTranspose2d(x, c.inShape, w, c.op);
    const Wk = toKernel(w, c.inShape[0], c.op.kernel);
    for (let b = 0; b < c.B; b++) {
      const want = flat(naiveConvTranspose(toImg(x, b, c.inShape), Wk, c.op.stride, c.op.padding, c.op.outputPadding));
      const got = [...y.data.subarray(b * y.cols, (b + 1) * y.cols)];
      expect(got.length).toBe(want.length);
      got.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 12));
    }
  });

  it.each([
    { convIn: [3, 5, 7] as const, k: 3, s: 2, p: 1, a: 0 },
    { convIn: [3, 6, 6] as const, k: 3, s: 2, p: 1, a: 1 },
    { convIn: [5, 7, 5] as const, k: 2, s: 2, p: 0, a: 1 },
  ])(
    "Equinox's FAQ: ConvTranspose(flip(V).swapaxes(0, 1)) is the exact transpose of Conv(V) ($convIn, a=$a)",
    ({ convIn, k, s, p, a }) => {
      const rng = new Random(9);
      const Co = 4;
      const cop = convOp(Co, k, { stride: s, padding: p });
      const convOut = opOutputShape(cop, convIn) as readonly [number, number, number];
      const top = convTransposeOp(convIn[0], k, { stride: s, padding: p, outputPadding: a });
      expect(opOutputShape(top, convOut)).toEqual(convIn);
      const V = randomNormalMat(rng, Co, convIn[0] * k * k); // Conv: [Co, Ci, k, k]
      const Wt = mat(convIn[0], Co * k * k); // ConvTranspose: [Ci, Co, k, k], W[c, o, i, j] = V[o, c, k−1−i, k−1−j]
      for (let o = 0; o < Co; o++)
        for (let c = 0; c < convIn[0]; c++)
          for (let i = 0; i < k; i++)
            for (let j = 0; j < k; j++)
              Wt.data[((c * Co + o) * k + i) * k + j] =
                V.data[((o * convIn[0] + c) * k + (k - 1 - i)) * k + (k - 1 - j)]!;
      const u = randomNormalMat(rng, 2, shapeSize(convOut));
      const v = randomNormalMat(rng, 2, shapeSize(convIn));
      expect(dot(convTranspose2d(u, convOut, Wt, top), v)).toBeCloseTo(dot(u, conv2d(v, convIn, V, cop)), 10);
      // and the conv adjoint is that transposed convolution
      expect(maxAbsDiff([conv2dInputVjp(u, convIn, V, cop)], [convTranspose2d(u, convOut, Wt, top)])).toBeLessThan(
        1e-12,
      );
    },
  );
});

// ───────────────────────────────────────────── adjoints ─────────────────────────────────────────────

describe('adjoints by dot-product identities', () => {
  const rng = new Random(21);

  it.each([
    ['conv, stride 2, padding 1', [3, 5, 7] as const, convOp(5, 3, { stride: 2, padding: 1 })],
    ['conv, padding 2', [5, 5, 7] as const, convOp(3, 3, { padding: 2 })],
    ['conv, stride 3 leaving the edge out', [3, 7, 8] as const, convOp(2, 2, { stride: 3 })],
  ])('%s: ⟨conv(x), g⟩ = ⟨x, convᵀ(g)⟩ = ⟨W, ∂W⟩', (_, inShape, op) => {
    const outShape = opOutputShape(op, inShape) as readonly [number, number, number];
    const x = randomNormalMat(rng, 3, shapeSize(inShape));
    const g = randomNormalMat(rng, 3, shapeSize(outShape));
    const w = randomNormalMat(rng, op.outChannels, inShape[0] * op.kernel ** 2);
    const lhs = dot(conv2d(x, inShape, w, op), g);
    expect(dot(x, conv2dInputVjp(g, inShape, w, op))).toBeCloseTo(lhs, 10);
    expect(dot(w, conv2dWeightGrad(x, g, inShape, op))).toBeCloseTo(lhs, 10);
  });

  it.each([
    [
      'stride 2, padding 1, output padding 1',
      [3, 5, 7] as const,
      convTransposeOp(5, 3, { stride: 2, padding: 1, outputPadding: 1 }),
    ],
    ['padding > k − 1 (lax crops)', [2, 4, 5] as const, convTransposeOp(3, 2, { stride: 2, padding: 2 })],
  ])('convTranspose, %s: ⟨convT(x), g⟩ = ⟨x, convTᵀ(g)⟩ = ⟨W, ∂W⟩', (_, inShape, op) => {
    const outShape = opOutputShape(op, inShape) as readonly [number, number, number];
    const x = randomNormalMat(rng, 3, shapeSize(inShape));
    const g = randomNormalMat(rng, 3, shapeSize(outShape));
    const w = randomNormalMat(rng, op.outChannels, inShape[0] * op.kernel ** 2);
    const lhs = dot(convTranspose2d(x, inShape, w, op), g);
    expect(dot(x, convTranspose2dInputVjp(g, inShape, w, op))).toBeCloseTo(lhs, 10);
    expect(dot(w, convTranspose2dWeightGrad(x, g, inShape, op))).toBeCloseTo(lhs, 10);
  });

  it('dense and average pooling', () => {
    const x = randomNormalMat(rng, 3, 35);
    const g = randomNormalMat(rng, 3, 4);
    const w = randomNormalMat(rng, 4, 35);
    const lhs = dot(denseForward(x, w), g);
    expect(dot(x, denseInputVjp(g, w))).toBeCloseTo(lhs, 10);
    expect(dot(w, denseWeightGrad(x, g))).toBeCloseTo(lhs, 10);
    const xp = randomNormalMat(rng, 2, 3 * 5 * 7);
    const op = avgPoolOp(3, 2);
    const gp = randomNormalMat(rng, 2, shapeSize(opOutputShape(op, [3, 5, 7])));
    expect(dot(xp, avgPool2dInputVjp(gp, [3, 5, 7], op))).toBeCloseTo(dot(avgPool2d(xp, [3, 5, 7], op), gp), 10);
  });

  it('max pooling: the adjoint is the derivative of ⟨maxPool(x), g⟩ where no window ties', () => {
    const inShape = [3, 5, 7] as const;
    const op = maxPoolOp(3, 2);
    const x = randomNormalMat(rng, 2, shapeSize(inShape));
    const g = randomNormalMat(rng, 2, shapeSize(opOutputShape(op, inShape)));
    const dx = maxPool2dInputVjp(x, g, inShape, op);
    for (let i = 0; i < x.data.length; i++) {
      const fd = centralDiff(
        (v) => {
          const xx = mat(x.rows, x.cols, x.data);
          xx.data[i] = v;
          return dot(maxPool2d(xx, inShape, op), g);
        },
        x.data[i]!,
        1e-7,
      );
      expect(dx.data[i]).toBeCloseTo(fd, 6);
    }
  });
});

// ──────────────────────────────── energy gradients by finite differences ────────────────────────────────

interface Problem {
  model: ConvModel;
  acts: Mat[];
  x: Mat | null;
  y: Mat;
  opts: ConvEnergyOpts;
}

interface Case {
  name: string;
  inputShape: TensorShape;
  layers: LayerSpec[];
  B: number;
  opts: ConvEnergyOpts;
  supervised: boolean;
}

/** Random parameters doubled (every term matters), activities away from kinks, max-pool inputs without near-ties. */
function makeProblem(c: Case, seed: number): Problem {
  const rng = new Random(seed);
  const model = randomConvModel(rng, c.inputShape, c.layers);
  for (const l of model.layers) {
    if (l.weight) for (let i = 0; i < l.weight.data.length; i++) l.weight.data[i] = 2 * l.weight.data[i]!;
  }
  const shapes = modelShapes(model);
  const L = model.layers.length;
  const acts: Mat[] = [];
  for (let k = c.supervised ? 1 : 0; k <= L; k++) {
    const a = k < L ? model.layers[k]!.act : 'linear'; // the activation that z_k goes through
    const m = mat(c.B, shapeSize(shapes[k]!));
    for (let i = 0; i < m.data.length; i++) m.data[i] = awayFromKinks(rng, a, -1.5, 1.5);
    acts.push(m);
  }
  const x = c.supervised ? randomNormalMat(rng, c.B, shapeSize(c.inputShape)) : null;
  const outSize = shapeSize(shapes[L]!);
  // ce: positive labels whose groups do not sum to 1, to exercise the softmax·Σy term
  const y = c.opts.loss === 'mse' ? randomNormalMat(rng, c.B, outSize) : randomUniformMat(rng, c.B, outSize, 0.1, 1);
  return { model, acts, x, y, opts: c.opts };
}

/** The smallest gap between the largest and second-largest entry of any max-pool window of any activity. */
function maxPoolGap(p: Problem): number {
  const shapes = modelShapes(p.model);
  let gap = Infinity;
  p.model.layers.forEach((layer, k) => {
    if (layer.op.kind !== 'maxPool') return;
    const z = k === 0 ? p.x! : p.acts[p.x === null ? k : k - 1]!;
    const [C, H, W] = shapes[k] as readonly [number, number, number];
    const [, Ho, Wo] = shapes[k + 1] as readonly [number, number, number];
    const { kernel: kk, stride: s } = layer.op;
    for (let b = 0; b < z.rows; b++)
      for (let c = 0; c < C; c++)
        for (let u = 0; u < Ho; u++)
          for (let v = 0; v < Wo; v++) {
            const vals: number[] = [];
            for (let i = 0; i < kk; i++)
              for (let j = 0; j < kk; j++) vals.push(z.data[b * z.cols + (c * H + u * s + i) * W + v * s + j]!);
            vals.sort((a, bb) => bb - a);
            gap = Math.min(gap, vals[0]! - vals[1]!);
          }
  });
  return gap;
}

const CASES: Case[] = [
  {
    name: 'conv (stride 2, padding 1) → conv (padding 2) → dense after conv; mse, batch 3, bias',
    inputShape: [3, 5, 7],
    layers: [
      { op: convOp(5, 3, { stride: 2, padding: 1 }) },
      { op: convOp(3, 3, { padding: 2 }), act: 'tanh' },
      { op: denseOp(4), act: 'tanh' },
    ],
    B: 3,
    opts: { loss: 'mse' },
    supervised: true,
  },
  {
    name: 'conv (stride 2, padding 2) → dense; ce, batch 1, no bias, gelu',
    inputShape: [5, 5, 7],
    layers: [
      { op: convOp(3, 3, { stride: 2, padding: 2 }), bias: false },
      { op: denseOp(5), act: 'gelu', bias: false, scale: 0.6 },
      { op: denseOp(3), act: 'gelu', bias: false },
    ],
    B: 1,
    opts: { loss: 'ce' },
    supervised: true,
  },
  {
    name: 'unsupervised decoder: dense to [2, 3, 4] → convTranspose (output padding 1) → conv; mse, λ = 0.7',
    inputShape: [3],
    layers: [
      { op: denseOp([2, 3, 4]) },
      { op: convTransposeOp(3, 3, { stride: 2, padding: 1, outputPadding: 1 }), act: 'tanh', scale: 0.8 },
      { op: convOp(1, 3, { padding: 1 }), act: 'silu' },
    ],
    B: 3,
    opts: { loss: 'mse', lambda: 0.7 },
    supervised: false,
  },
  {
    name: 'convTranspose (stride 3, output padding 2, no bias) inside a supervised net; batch 1',
    inputShape: [3, 3, 2],
    layers: [
      { op: convTransposeOp(5, 4, { stride: 3, padding: 1, outputPadding: 2 }), bias: false },
      { op: convOp(3, 3, { stride: 2 }), act: 'selu' },
      { op: denseOp(2), act: 'leaky_relu' },
    ],
    B: 1,
    opts: { loss: 'mse' },
    supervised: true,
  },
  {
    name: 'conv → avgPool → maxPool (stride 1) → dense; ce, batch 3',
    inputShape: [3, 6, 7],
    layers: [
      { op: convOp(5, 3, { padding: 1 }) },
      { op: avgPoolOp(2), act: 'tanh' },
      { op: maxPoolOp(2, 1), act: 'tanh' },
      { op: denseOp(3), act: 'silu' },
    ],
    B: 3,
    opts: { loss: 'ce' },
    supervised: true,
  },
  {
    name: 'μPC residual blocks act → conv + skip, then avgPool and a readout; mse, batch 3',
    inputShape: [3, 5, 5],
    layers: [
      {
        op: convOp(4, 3, { padding: 1 }),
        bias: false,
        init: 'normal',
        scale: scaledConvScale('mupc', { inChannels: 3, kernel: 3 }),
      },
      {
        op: convOp(4, 3, { padding: 1 }),
        act: 'relu',
        skip: true,
        init: 'normal',
        scale: scaledConvScale('mupc', {
          inChannels: 4,
          kernel: 3,
          act: 'relu',
          depthScaling: resnetDepthScaling('mupc', 2),
        }),
      },
      {
        op: convOp(4, 3, { padding: 1 }),
        act: 'leaky_relu',
        skip: true,
        init: 'normal',
        scale: scaledConvScale('mupc', {
          inChannels: 4,
          kernel: 3,
          act: 'leaky_relu',
          depthScaling: resnetDepthScaling('mupc', 2),
        }),
      },
      { op: avgPoolOp(2) },
      { op: denseOp(3), init: 'normal', scale: readoutScale('mupc', 16) },
    ],
    B: 3,
    opts: { loss: 'mse' },
    supervised: true,
  },
  {
    name: 'unsupervised conv net with a maxPool (stride 2) and a ce output over an image (softmax along W)',
    inputShape: [2, 5, 7],
    layers: [
      { op: convOp(3, 3, { padding: 1 }), act: 'linear' },
      { op: maxPoolOp(2), act: 'tanh' },
      { op: convOp(2, 2), act: 'hard_tanh' },
    ],
    B: 3,
    opts: { loss: 'ce', lambda: 1.5 },
    supervised: false,
  },
];

describe('energy gradients vs central finite differences', () => {
  const h = 1e-5;
  const close = (got: number, fd: number) => expect(Math.abs(got - fd)).toBeLessThan(1e-8 + 1e-6 * Math.abs(fd));

  it.each(CASES.map((c, i) => [c.name, c, i] as const))('%s: activity gradients', (_, c, i) => {
    const p = makeProblem(c, 100 + i);
    expect(maxPoolGap(p)).toBeGreaterThan(1e-3);
    const g = activityGrads(p.model, p.acts, p.y, p.x, p.opts);
    expect(g.length).toBe(p.acts.length);
    const last = g.at(-1)!;
    expect(last.data.every((v) => v === 0)).toBe(true); // the dummy
    expect(g.slice(0, -1).every((m) => m.data.some((v) => Math.abs(v) > 1e-3))).toBe(true);
    p.acts.forEach((a, l) => {
      for (let k = 0; k < a.data.length; k++) {
        const fd = centralDiff(
          (v) => {
            const acts = cloneMats(p.acts);
            acts[l]!.data[k] = v;
            return energy(p.model, acts, p.y, p.x, p.opts);
          },
          a.data[k]!,
          h,
        );
        close(g[l]!.data[k]!, fd);
      }
    });
    const f = vectorField(p.model, p.acts, p.y, p.x, p.opts);
    f.forEach((m, l) => m.data.forEach((v, k) => expect(v).toBe(-g[l]!.data[k]!)));
  });

  it.each(CASES.map((c, i) => [c.name, c, i] as const))('%s: weight and bias gradients', (_, c, i) => {
    const p = makeProblem(c, 200 + i);
    const g = paramGrads(p.model, p.acts, p.y, p.x, p.opts);
    p.model.layers.forEach((l, k) => {
      expect(g.weights[k] === null).toBe(l.weight === null);
      expect(g.biases[k] === null).toBe(l.bias === null);
    });
    const flatG = flattenConvParams(g);
    const theta = flattenConvParams(paramsOf(p.model));
    expect(flatG.length).toBe(theta.length);
    expect(flatG.some((v) => Math.abs(v) > 1e-3)).toBe(true);
    for (let k = 0; k < theta.length; k++) {
      const fd = centralDiff(
        (v) => {
          const t = Float64Array.from(theta);
          t[k] = v;
          return energy(withFlatParams(p.model, t), p.acts, p.y, p.x, p.opts);
        },
        theta[k]!,
        h,
      );
      close(flatG[k]!, fd);
    }
  });
});

// ─────────────────────────────────────── energies and the forward pass ───────────────────────────────────────

describe('energies and the forward pass', () => {
  it('a feedforward initialisation leaves only the output energy', () => {
    const p = makeProblem(CASES[0]!, 5);
    const acts = ffwd(p.model, p.x!);
    const e = layerEnergies(p.model, acts, p.y, p.x, p.opts);
    expect(e.slice(0, -1)).toEqual([0, 0]);
    // the output term is ½ Σ_b ‖y − ŷ‖² / B with ŷ the ffwd prediction (the dummy)
    const pred = acts.at(-1)!;
    const want = p.y.data.reduce((s, v, i) => s + 0.5 * (v - pred.data[i]!) ** 2, 0) / 3;
    expect(e.at(-1)).toBeCloseTo(want, 12);
  });

  it('a layer is s·(op(act(z)) + b) [+ z]: a residual block checked element by element', () => {
    const rng = new Random(3);
    const model = randomConvModel(
      rng,
      [2, 3, 3],
      [{ op: convOp(2, 3, { padding: 1 }), act: 'tanh', skip: true, scale: 0.5 }],
    );
    const x = randomNormalMat(rng, 1, 18);
    const [z1] = ffwd(model, x);
    const { weight, bias } = model.layers[0]!;
    const h = mat(1, 18, x.data.map(Math.tanh));
    const conv = conv2d(h, [2, 3, 3], weight!, convOp(2, 3, { padding: 1 }));
    for (let e = 0; e < 18; e++) {
      expect(z1!.data[e]).toBeCloseTo(0.5 * (conv.data[e]! + bias![Math.floor(e / 9)]!) + x.data[e]!, 14);
    }
  });

  it('ce on an image-shaped output takes the softmax along the last axis (jax.nn.log_softmax, axis=-1)', () => {
    const model: ConvModel = {
      inputShape: [4],
      layers: [
        {
          op: denseOp([2, 1, 2]),
          act: 'linear',
          scale: 1,
          skip: false,
          weight: mat(4, 4, [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]),
          bias: null,
        },
      ],
    };
    const x = mat(1, 4, [0.3, -1, 2, 0.5]);
    const y = mat(1, 4, [1, 0, 0.2, 0.6]);
    const lse = (a: number, b: number) => Math.log(Math.exp(a) + Math.exp(b));
    const want = -(1 * (0.3 - lse(0.3, -1)) + 0.2 * (2 - lse(2, 0.5)) + 0.6 * (0.5 - lse(2, 0.5)));
    expect(energy(model, [mat(1, 4)], y, x, { loss: 'ce' })).toBeCloseTo(want, 14);
  });

  it('refuses inconsistent models and activities', () => {
    const rng = new Random(4);
    expect(() => randomConvModel(rng, [3, 5, 5], [{ op: convOp(4, 3), skip: true }])).toThrow(
      /skip needs equal shapes/,
    );
    const model = randomConvModel(rng, [3, 5, 5], [{ op: convOp(4, 3) }, { op: denseOp(2) }]);
    const x = randomNormalMat(rng, 2, 75);
    const y = randomNormalMat(rng, 2, 2);
    const acts = ffwd(model, x);
    expect(() => energy(model, acts.slice(1), y, x, { loss: 'mse' })).toThrow(/expected 2 activities/);
    expect(() => energy(model, acts, y, null, { loss: 'mse' })).toThrow(/expected 3 activities \(unsupervised\)/);
    expect(() => energy(model, [mat(2, 35), acts[1]!], y, x, { loss: 'mse' })).toThrow(/z_1 must be 2x36/);
    const bad: ConvModel = { ...model, layers: [{ ...model.layers[0]!, weight: mat(4, 26) }, model.layers[1]!] };
    expect(() => modelShapes(bad)).toThrow(/weight must be 4x27/);
    const pooled: ConvModel = { ...model, layers: [{ ...model.layers[0]!, op: avgPoolOp(2) }, model.layers[1]!] };
    expect(() => modelShapes(pooled)).toThrow(/no parameters/);
  });
});

// ─────────────────────────────────────── initialisation and scalings ───────────────────────────────────────

describe("Equinox's initialisation and JPC's CNN scalings", () => {
  it('weights and biases are U(±1/√fan_in): C_in·k² for conv kinds (convTranspose: its own C_in), in for dense', () => {
    const rng = new Random(12);
    const specs: LayerSpec[] = [
      { op: convOp(16, 3, { padding: 1 }) },
      { op: convTransposeOp(5, 2, { stride: 2 }) },
      { op: denseOp(40) },
    ];
    const model = randomConvModel(rng, [3, 8, 8], specs);
    const shapes = modelShapes(model);
    const bounds = [1 / Math.sqrt(27), 1 / Math.sqrt(16 * 4), 1 / Math.sqrt(5 * 16 * 16)];
    model.layers.forEach((l, k) => {
      expect(initBound(l.op, shapes[k]!)).toBeCloseTo(bounds[k]!, 15);
      const w = [...l.weight!.data];
      expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bounds[k]!);
      expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.9 * bounds[k]!);
      expect(Math.max(...[...l.bias!].map(Math.abs))).toBeLessThanOrEqual(bounds[k]!);
    });
    expect([model.layers[0]!.weight!.rows, model.layers[0]!.weight!.cols, model.layers[0]!.bias!.length]).toEqual([
      16, 27, 16,
    ]);
    expect([model.layers[1]!.weight!.rows, model.layers[1]!.weight!.cols, model.layers[1]!.bias!.length]).toEqual([
      5, 64, 5,
    ]);
    expect([model.layers[2]!.weight!.cols, model.layers[2]!.bias!.length]).toEqual([5 * 16 * 16, 40]);
  });

  it('μPC: N(0, std²) weights, uniform bias', () => {
    const rng = new Random(13);
    const model = randomConvModel(rng, [8, 6, 6], [{ op: convOp(32, 3), init: 'normal', weightStd: 2 }]);
    const w = model.layers[0]!.weight!.data;
    const mean = w.reduce((s, v) => s + v, 0) / w.length;
    const sd = Math.sqrt(w.reduce((s, v) => s + (v - mean) ** 2, 0) / w.length);
    expect(Math.abs(mean)).toBeLessThan(0.1);
    expect(Math.abs(sd - 2)).toBeLessThan(0.1);
    expect(Math.max(...[...model.layers[0]!.bias!].map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(72));
  });

  it("gains are torch's calculate_gain, and the scalings those of ScaledConv2d and Readout", () => {
    expect([torchGain('linear'), torchGain('tanh'), torchGain('relu'), torchGain('selu')]).toEqual([
      1,
      5 / 3,
      Math.SQRT2,
      0.75,
    ]);
    expect(torchGain('leaky_relu')).toBeCloseTo(Math.sqrt(2 / 1.0001), 15);
    expect(() => torchGain('gelu')).toThrow(/calculate_gain/);
    // a μPC residual block of a 3-block ResNet: √2/√(3·9) · 1/√3 = √2/9
    const d = resnetDepthScaling('mupc', 3);
    expect(scaledConvScale('mupc', { inChannels: 3, kernel: 3, act: 'relu', depthScaling: d })).toBeCloseTo(
      Math.SQRT2 / 9,
      15,
    );
    expect(scaledConvScale('sp', { inChannels: 3, kernel: 3, act: 'relu' })).toBe(1);
    expect(scaledConvScale('ntp', { inChannels: 4, kernel: 2 })).toBe(1 / 4);
    expect([resnetDepthScaling('sp', 3), resnetDepthScaling('mupc', 6, 3)]).toEqual([1, 1 / 3]);
    expect([
      readoutScale('mupc', 64),
      readoutScale('mupc', 64, 0.5),
      readoutScale('sp', 64),
      readoutScale('ntp', 64),
    ]).toEqual([1 / 64, 0.5 / 64, 1, 1 / 8]);
  });
});

// ─────────────────────────────────────────── inference ───────────────────────────────────────────

describe('inference through jpc64’s integrators', () => {
  /** A small CNN classifier-shaped problem: conv → avgPool → dense, activities from a feedforward pass. */
  function cnnProblem() {
    const rng = new Random(31);
    const model = randomConvModel(
      rng,
      [1, 5, 5],
      [{ op: convOp(3, 3, { padding: 1 }) }, { op: avgPoolOp(2), act: 'tanh' }, { op: denseOp(3), act: 'tanh' }],
    );
    const x = randomNormalMat(rng, 2, 25);
    const y = randomNormalMat(rng, 2, 3);
    return { model, x, y, acts0: ffwd(model, x), opts: { loss: 'mse' } as ConvEnergyOpts };
  }

  it('Heun + PID (JPC defaults: max_t1 20, rtol = atol = 1e-3) lowers the energy and nears the steady state', () => {
    const { model, x, y, acts0, opts } = cnnProblem();
    const f = pcVectorField(model, y, x, opts);
    const res = integrateHeunPid(f, acts0, { t1: 20, rtol: 1e-3, atol: 1e-3, recordStates: true });
    expect(res.accepted).toBeGreaterThan(5);
    const energies = [acts0, ...res.states!].map((a) => energy(model, a, y, x, opts));
    // gradient flow: no accepted step raises the energy by more than the solver's tolerance allows
    for (let k = 1; k < energies.length; k++) expect(energies[k]!).toBeLessThan(energies[k - 1]! + 1e-4);
    expect(energies.at(-1)!).toBeLessThan(energies[0]! - 0.05);
    expect(rmsNorm(f(res.y))).toBeLessThan(2e-2 * rmsNorm(f(acts0)));
    // the dummy activity never moves
    expect(maxAbsDiff([res.y.at(-1)!], [acts0.at(-1)!])).toBe(0);
    // and the solution is the one a fine constant-step Heun finds
    const fine = integrateConstant(f, acts0, { t1: 20, dt0: 0.05, method: 'heun' });
    expect(maxAbsDiff(res.y, fine.y)).toBeLessThan(1e-2);
  });
});
