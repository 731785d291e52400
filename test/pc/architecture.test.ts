/**
 * makeModel: the shapes it infers, the scalings of each parameterisation (against JPC's ScaledConv2d, Readout and
 * ResNet depth scaling as the float64 reference states them), and its refusals of bad layer lists.
 */
import { describe, expect, it } from 'vitest';
import { readoutScale, resnetDepthScaling, scaledConvScale } from '../reference/conv64.js';
import { makeModel } from '../../src/pc/architecture.js';
import { pcEnergy } from '../../src/pc/energy.js';
import { avgPool, conv, convTranspose, dense, flatten, maxPool, reshape, residual } from '../../src/pc/layer-defs.js';
import { refusal, useRuntime } from '../support/helpers.js';

const rt = useRuntime();

describe('makeModel', () => {
  it('infers every activity shape and lays the parameters out back to back', () => {
    const model = makeModel(rt(), {
      seed: 1,
      inputShape: [3, 9, 7],
      actFn: 'relu',
      useBias: true,
      layers: [
        conv(4, 3, { stride: 2, padding: 1 }),
        maxPool(2, { stride: 1 }),
        residual(3),
        avgPool(2, { stride: 1 }),
        flatten(),
        dense(6, { useBias: false }),
        reshape([1, 2, 3]),
        convTranspose(2, 3, { stride: 2, outputPadding: 1 }),
      ],
    });
    expect(model.shapes).toEqual([[3, 9, 7], [4, 5, 4], [4, 4, 3], [4, 4, 3], [4, 3, 2], [6], [2, 6, 8]]);
    expect(model.dims).toEqual([189, 80, 48, 48, 24, 6, 96]);
    expect(model.weights.map((w) => w.shape)).toEqual([
      [4, 3, 3, 3],
      [0, 0],
      [4, 4, 3, 3],
      [0, 0],
      [6, 24],
      [2, 1, 3, 3],
    ]);
    expect(model.biases.map((b) => b?.shape ?? null)).toEqual([[4], null, [4], null, null, [2]]);
    expect(model.paramCount).toBe(4 * 27 + 4 + 4 * 36 + 4 + 6 * 24 + 2 * 9 + 2);
    expect(model.skips).toEqual([false, false, true, false, false, false]);
    model.dispose();
  });

  it("gives JPC's μPC and NTP scalings (ScaledConv2d, ResNet blocks, Readout) and μPC's N(0, 1) weights", async () => {
    const layers = [
      conv(8, 3, { padding: 1, act: 'linear' as const }),
      residual(3),
      residual(3),
      avgPool(2, { act: 'linear' as const }),
      dense(10, { act: 'linear' as const }),
    ];
    for (const paramType of ['sp', 'mupc', 'ntp'] as const) {
      const model = makeModel(rt(), { seed: 2, inputShape: [3, 8, 8], actFn: 'tanh', layers, paramType });
      const depth = resnetDepthScaling(paramType, 2);
      expect(model.layers.map((l) => l.scale)).toEqual([
        scaledConvScale(paramType, { inChannels: 3, kernel: 3 }),
        scaledConvScale(paramType, { inChannels: 8, kernel: 3, act: 'tanh', depthScaling: depth }),
        scaledConvScale(paramType, { inChannels: 8, kernel: 3, act: 'tanh', depthScaling: depth }),
        1,
        readoutScale(paramType, 8 * 4 * 4),
      ]);
      expect(model.paramType).toBe(paramType);
      expect(model.definition?.paramType).toBe(paramType);
      if (paramType === 'mupc') {
        const { weights } = await model.toArrays();
        const w = weights[1]!;
        const mean = w.reduce((a, b) => a + b, 0) / w.length;
        const sd = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
        expect(Math.abs(sd - 1)).toBeLessThan(0.1);
      }
      model.dispose();
    }
  });

  it('refuses bad layer lists, naming the layer and what it expected', () => {
    const base = { seed: 0, inputShape: [1, 6, 6], actFn: 'relu' as const };
    const cases: [unknown, RegExp][] = [
      [{ ...base, layers: [] }, /options\.layers must be a non-empty array/],
      [{ ...base, layers: [{ type: 'pool', kernel: 2 }] }, /options\.layers\[0\] must be a layer/],
      [{ ...base, layers: [conv(2, 7)] }, /layers\[0\]: a 7×7 kernel with padding 0 does not fit a 6×6 input/],
      [{ ...base, layers: [conv(2, 3, { act: 'relu' })] }, /layers\[0\]\.act must be 'linear': the first layer sees/],
      [
        { ...base, layers: [conv(2, 3), conv(2, 3, { act: 'tanh' })] },
        /layers\[1\]\.act must be 'linear' or the model's actFn 'relu'/,
      ],
      [{ ...base, layers: [residual(3)] }, /a residual block cannot be the first layer/],
      [{ ...base, layers: [conv(2, 3), residual(2)] }, /layers\[1\]\.kernel must be an odd side/],
      [
        { ...base, layers: [flatten(), conv(2, 3)] },
        /layers\[1\] \(conv\) needs an image input \[C, H, W\], got \[36\]/,
      ],
      [{ ...base, layers: [conv(2, 3), reshape([5, 5])] }, /layers\[1\]\.shape must be \[C, H, W\] or \[N\]/],
      [
        { ...base, layers: [conv(2, 3), reshape([7, 1, 5])] },
        /shape \[7, 1, 5\] has 35 elements, but the activity before it has 32/,
      ],
      [
        { ...base, layers: [convTranspose(2, 3, { stride: 2, outputPadding: 2 })] },
        /outputPadding must be an integer in \[0, stride 2\)/,
      ],
      [{ ...base, layers: [avgPool(7)] }, /a 7×7 window does not fit a 6×6 input/],
      [
        { ...base, layers: [conv(2, 3, { dilation: 2 } as never)] },
        /unknown option "dilation" in options\.layers\[0\]; known options are "type", "channels"/,
      ],
      [{ ...base, layers: [avgPool(2)] }, /layers with at least one parameter/],
      [{ ...base, layers: [conv(2, 3)], paramType: 'mup' }, /options\.paramType must be one of/],
      [
        { ...base, actFn: 'gelu', layers: [conv(2, 3), conv(2, 3)], paramType: 'mupc' },
        /torch's gain of its activation, which 'gelu' \(layer 1\)/,
      ],
      [{ ...base, inputShape: [1, 6], layers: [dense(3)] }, /options\.inputShape must be \[C, H, W\] or \[N\]/],
    ];
    for (const [options, message] of cases) {
      expect(refusal(() => makeModel(rt(), options as never), String(message))).toMatch(message);
    }
  });

  it("refuses ce on an image output (JPC's softmax runs along its last axis)", async () => {
    const model = makeModel(rt(), {
      seed: 0,
      inputShape: [2],
      actFn: 'relu',
      layers: [dense(4), reshape([1, 2, 2]), conv(1, 1)],
    });
    const acts = [rt().tensor(new Float32Array(4), [1, 4]), rt().tensor(new Float32Array(4), [1, 4])];
    const output = rt().tensor(new Float32Array(4), [1, 4]);
    await expect(
      pcEnergy(model, acts, output, { input: rt().tensor(new Float32Array(2), [1, 2]), loss: 'ce' }),
    ).rejects.toThrow(
      /options\.loss 'ce' needs a vector output \(a dense last layer\), got an output of shape \[1, 2, 2\]/,
    );
    model.dispose();
  });
});
