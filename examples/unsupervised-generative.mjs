// JPC's unsupervised_generative_pc notebook: a generator with no input, 50 → 300 → 300 → 784 (relu, biases).
// Every step starts all activities, the latent z_0 included, from N(0, 0.05²) draws and infers them with only
// the image clamped (Heun + PID to t = 100), then updates the weights (Adam 1e-3), for 300 iterations. The
// notebook plots the layer energies during inference; this writes that plot (SVG) and a PNG of test images
// next to the images generated from their inferred latents.
//   node examples/unsupervised-generative.mjs --data-dir ../shared/datasets
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  adam,
  initActivitiesFromNormal,
  initActivitiesWithFfwd,
  makeMlp,
  makePcStep,
  solveInference,
  writeImageGrid,
} from 'webgpu-pc';
import { mnist, report, setup, testBatches, trainingBatches } from './_common.mjs';

const MAX_T1 = 100;
const ctx = setup('unsupervised-generative', { iters: 300, testEvery: 100 });
const { train, test, runtime } = await mnist(ctx.dataDir);
const model = makeMlp(runtime, {
  seed: ctx.seed,
  inputDim: 50,
  width: 300,
  depth: 3,
  outputDim: 784,
  actFn: 'relu',
  useBias: true,
});
const optim = adam({ lr: 1e-3 });
const optState = optim.init(model);

/** Infers the latents of test images and regenerates the images from them: mean squared error per pixel. */
async function reconstruction(limit) {
  let sum = 0;
  let n = 0;
  let last;
  for (const b of testBatches(test, limit)) {
    const start = initActivitiesFromNormal(model, { seed: 1e6 + n, batchSize: 64, mode: 'unsupervised' });
    const solved = await solveInference(model, start, b.x, { maxT1: MAX_T1 });
    const generated = (await initActivitiesWithFfwd(model, solved.activities[0])).at(-1);
    const g = await generated.toArray();
    sum += g.reduce((s, v, i) => s + (v - b.x[i]) ** 2, 0) / g.length;
    n++;
    last = { images: b.x, generated: g };
  }
  return { mse: sum / n, last };
}

let iter = 0;
let recording = null;
for (const { x } of trainingBatches(train, ctx.iters, ctx.seed)) {
  iter++;
  const lastStep = iter === ctx.iters;
  const step = await makePcStep(model, optim, optState, x, {
    seed: ctx.seed * 100003 + iter,
    maxT1: MAX_T1,
    recordIters: lastStep,
  });
  if (lastStep) recording = { energies: await step.recording.energies.toArray(), states: step.recording.tMax + 1 };
  if (ctx.testEvery > 0 && iter % ctx.testEvery === 0 && !lastStep) {
    const e = await step.energies.toArray();
    ctx.log(
      `iter ${iter}: equilibrium energy ${e.reduce((a, b) => a + b, 0).toFixed(2)}, ${step.steps.accepted} inference steps`,
    );
  }
  step.energies.dispose();
}

// The notebook's figure: each layer's energy along the last step's inference (JPC's order [E_L, E_2, E_1]).
const L = 3;
const rows = recording.states;
const series = Array.from({ length: L }, (_, j) =>
  Array.from({ length: rows }, (_, r) => recording.energies[r * L + j]),
);
const names = ['output (E_3)', 'hidden (E_2)', 'first (E_1)'];
const maxE = Math.max(...series.flat().map((v) => Math.log10(Math.max(v, 1e-6))));
const minE = Math.min(...series.flat().map((v) => Math.log10(Math.max(v, 1e-6))));
const px = (r) => 60 + (500 * r) / Math.max(1, rows - 1);
const py = (v) => 20 + (260 * (maxE - Math.log10(Math.max(v, 1e-6)))) / Math.max(1e-9, maxE - minE);
const colours = ['#d62728', '#1f77b4', '#2ca02c'];
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="720" height="330" font-family="sans-serif" font-size="12">
<rect width="720" height="330" fill="white"/>
<text x="320" y="14" text-anchor="middle">Layer energies during inference (last training step; log scale)</text>
<line x1="60" y1="280" x2="560" y2="280" stroke="black"/><line x1="60" y1="20" x2="60" y2="280" stroke="black"/>
<text x="310" y="310" text-anchor="middle">inference step (accepted)</text>
<text x="55" y="24" text-anchor="end">${(10 ** maxE).toPrecision(2)}</text><text x="55" y="284" text-anchor="end">${(10 ** minE).toPrecision(2)}</text>
${series.map((s, j) => `<polyline fill="none" stroke="${colours[j]}" stroke-width="2" points="${s.map((v, r) => `${px(r).toFixed(1)},${py(v).toFixed(1)}`).join(' ')}"/><text x="570" y="${40 + 16 * j}" fill="${colours[j]}">${names[j]}</text>`).join('\n')}
</svg>
`;
const plot = join(ctx.out, 'unsupervised-energies.svg');
writeFileSync(plot, svg);

const { mse, last } = await reconstruction(ctx.testBatches ?? 10);
const both = new Float32Array(20 * 784);
both.set(last.images.subarray(0, 10 * 784), 0);
both.set(last.generated.subarray(0, 10 * 784), 10 * 784);
const png = join(ctx.out, 'unsupervised-reconstructions.png');
await writeImageGrid(png, both, { count: 20, columns: 10, scale: 3 });
const finalEnergy = series.reduce((s, e) => s + e[rows - 1], 0);
ctx.log(
  `equilibrium energy ${finalEnergy.toFixed(2)} at the last step; test reconstruction error ${mse.toFixed(4)} per pixel; wrote ${plot} and ${png} (top: test images, bottom: generated from their inferred latents)`,
);
report(ctx, 'unsupervised-generative', {
  finalEnergy: Number(finalEnergy.toFixed(3)),
  reconstructionMse: Number(mse.toFixed(4)),
  plot,
  png,
});
runtime.dispose();
