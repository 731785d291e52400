// The WPC demo page: loads MNIST, trains the chosen model in the page and draws the energies, the accuracy and
// the generated digits as it goes. `?auto=1&model=…&solver=…&steps=…` starts a run on load (the browser test
// uses this and reads `window.wpcDemo`).
import * as wpc from '../../dist/browser.js';
import { MODELS, SOLVERS, createSession } from './session.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
/** What the page did, for people and for the browser test. */
const demo = (window.wpcDemo = {
  state: 'idle',
  adapter: null,
  steps: [],
  accuracy: [],
  error: null,
  maxFrameGapMs: 0,
  frames: 0,
  digits: false,
});

for (const [key, label] of Object.entries(MODELS)) $('model').add(new Option(label, key));
for (const [key, s] of Object.entries(SOLVERS)) $('solver').add(new Option(s.label, key));
for (const [param, id] of [
  ['model', 'model'],
  ['solver', 'solver'],
  ['steps', 'steps'],
  ['testEvery', 'test-every'],
  ['testImages', 'test-images'],
  ['seed', 'seed'],
]) {
  if (params.has(param)) $(id).value = params.get(param);
}

const status = (text) => ($('status').textContent = text);
function fail(e) {
  if (/no WebGPU adapter|navigator\.gpu is missing/.test(String(e?.message))) {
    $('no-webgpu').style.display = 'block';
    $('no-webgpu-reason').textContent = e.message;
  }
  demo.state = 'error';
  demo.error = String(e?.message ?? e);
  $('error').textContent = demo.error;
  status('');
}

// ---- charts (plain canvas) ----
const COLOURS = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02', '#a6761d', '#666'];

function axes(ctx, w, h, pad, xLabel) {
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = '#999';
  ctx.strokeRect(pad.l, pad.t, w - pad.l - pad.r, h - pad.t - pad.b);
  ctx.fillStyle = '#444';
  ctx.font = '11px sans-serif';
  ctx.textAlign = 'center';
  ctx.fillText(xLabel, pad.l + (w - pad.l - pad.r) / 2, h - 4);
}

function drawLines(canvas, series, { xLabel, log, yMin, yMax, names }) {
  const ctx = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  const pad = { l: 56, r: 10, t: 10, b: 30 };
  axes(ctx, w, h, pad, xLabel);
  const values = series.flatMap((s) => s.map((p) => p[1])).filter((v) => Number.isFinite(v) && (!log || v > 0));
  if (values.length === 0) return;
  let lo = yMin ?? Math.min(...values);
  let hi = yMax ?? Math.max(...values);
  if (log) [lo, hi] = [Math.log10(lo), Math.log10(hi)];
  if (hi - lo < 1e-9) [lo, hi] = [lo - 0.5, hi + 0.5];
  const xs = series.flatMap((s) => s.map((p) => p[0]));
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1);
  const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (w - pad.l - pad.r);
  const Y = (v) => pad.t + (1 - ((log ? Math.log10(v) : v) - lo) / (hi - lo)) * (h - pad.t - pad.b);
  ctx.textAlign = 'right';
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    const y = pad.t + (1 - k / 4) * (h - pad.t - pad.b);
    // Enough digits to tell the ticks apart, however narrow the range.
    const digits = Math.min(
      8,
      Math.max(3, 2 + Math.ceil(Math.log10(Math.max(Math.abs(lo), Math.abs(hi)) / (hi - lo)))),
    );
    ctx.fillText(log ? (10 ** v).toPrecision(2) : Number(v.toPrecision(digits)).toString(), pad.l - 4, y + 4);
  }
  series.forEach((s, i) => {
    ctx.strokeStyle = COLOURS[i % COLOURS.length];
    ctx.fillStyle = ctx.strokeStyle;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.forEach(([x, v], k) => (k === 0 ? ctx.moveTo(X(x), Y(v)) : ctx.lineTo(X(x), Y(v))));
    ctx.stroke();
    for (const [x, v] of s) ctx.fillRect(X(x) - 2, Y(v) - 2, 4, 4);
    if (names?.[i]) {
      ctx.textAlign = 'left';
      ctx.fillText(names[i], w - pad.r - 70, pad.t + 14 + 13 * i);
    }
  });
}

function drawEnergies(result) {
  if (result.layerEnergies === null && result.inference.length <= 2) {
    // One inference step (bPC): the energy after inference across training steps says more.
    drawLines($('energy-chart'), [demo.steps.map((s) => [s.step, s.energy])], {
      xLabel: 'training step',
      log: true,
      names: ['energy'],
    });
    return;
  }
  const rows = result.inference;
  const layers = rows[0].length;
  // JPC's record_layers order [E_L, E_2, …, E_{L−1}, E_1] → natural order E_1..E_L for the legend.
  const natural = layers === 1 ? [0] : [layers - 1, ...Array.from({ length: layers - 2 }, (_, k) => k + 1), 0];
  // Log scale: energies that start at zero (feedforward initialisation) are drawn at a floor 1e-6 of the largest.
  const floor = 1e-6 * Math.max(...rows.flat().filter(Number.isFinite), 1e-30);
  const series = natural.map((col) => rows.map((r, i) => [i, Math.max(r[col], floor)]));
  const names = layers === 1 ? ['total'] : natural.map((_, k) => `E_${k + 1}`);
  drawLines($('energy-chart'), series, { xLabel: 'inference iteration (recorded states)', log: true, names });
}

function drawAccuracy() {
  drawLines($('accuracy-chart'), [demo.accuracy.map((p) => [p.step, p.accuracy])], {
    xLabel: 'training step',
    yMin: 0,
    yMax: 100,
  });
}

function drawDigits(pixels) {
  const canvas = $('digits');
  const ctx = canvas.getContext('2d');
  const n = pixels.length / 784;
  const cols = 10;
  const scale = 1.5;
  const cell = Math.floor(28 * scale);
  canvas.width = cols * (cell + 2);
  canvas.height = Math.ceil(n / cols) * (cell + 2);
  const image = ctx.createImageData(28, 28);
  const tmp = document.createElement('canvas');
  tmp.width = 28;
  tmp.height = 28;
  for (let k = 0; k < n; k++) {
    // Undo the MNIST normalisation, clip to [0, 1].
    for (let p = 0; p < 784; p++) {
      const v = Math.min(1, Math.max(0, pixels[k * 784 + p] * wpc.MNIST_STD + wpc.MNIST_MEAN));
      image.data.set([255 * v, 255 * v, 255 * v, 255], 4 * p);
    }
    tmp.getContext('2d').putImageData(image, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, (k % cols) * (cell + 2), Math.floor(k / cols) * (cell + 2), cell, cell);
  }
  demo.digits = true;
}

// ---- data ----
let cached = null;
async function loadData() {
  const source = document.querySelector('input[name=source]:checked').value;
  if (source === 'server') {
    const base = params.get('data') ?? '/data/mnist/';
    if (cached?.key === base) return cached;
    status(`loading MNIST from ${base} …`);
    const [train, test] = await Promise.all([wpc.fetchDataset(base, 'train'), wpc.fetchDataset(base, 'test')]);
    return (cached = { key: base, train, test });
  }
  const files = [...$('files').files];
  const pick = (part) => {
    const f = files.find((x) => x.name.includes(part));
    if (!f) throw new Error(`pick the file ${part}… (got ${files.map((x) => x.name).join(', ') || 'no files'})`);
    return f;
  };
  status('reading your MNIST files …');
  const [train, test] = await Promise.all([
    wpc.datasetFromIdx('mnist-train', { images: pick('train-images'), labels: pick('train-labels') }),
    wpc.datasetFromIdx('mnist-test', { images: pick('t10k-images'), labels: pick('t10k-labels') }),
  ]);
  return (cached = { key: files.map((f) => f.name).join(), train, test });
}

// ---- the run ----
/** The whole number in the field `id` (set from the page or the query string), refused outside [min, max]. */
function whole(id, min, max) {
  const text = $(id).value;
  const v = Number(text);
  if (text.trim() === '' || !Number.isInteger(v) || v < min || v > max)
    throw new Error(`${id} must be a whole number in [${min}, ${max}], got ${JSON.stringify(text)}`);
  return v;
}

let runtime = null;
let stopRequested = false;

function watchFrames() {
  let last = performance.now();
  const tick = (now) => {
    if (demo.state !== 'running') return;
    demo.maxFrameGapMs = Math.max(demo.maxFrameGapMs, now - last);
    demo.frames++;
    last = now;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

async function run() {
  $('error').textContent = '';
  $('train').disabled = true;
  $('stop').disabled = false;
  stopRequested = false;
  Object.assign(demo, {
    state: 'running',
    steps: [],
    accuracy: [],
    error: null,
    maxFrameGapMs: 0,
    frames: 0,
    digits: false,
  });
  let session = null;
  try {
    const { train, test } = await loadData();
    runtime ??= await wpc.init();
    demo.adapter = runtime.adapter;
    const config = { model: $('model').value, solver: $('solver').value, seed: whole('seed', 0, 2 ** 31 - 1) };
    const steps = whole('steps', 1, 100000);
    const testEvery = whole('test-every', 1, 100000);
    const testImages = whole('test-images', 64, 10000);
    session = await createSession(wpc, runtime, config, train, test);
    $('energy-title').textContent =
      config.model === 'bidirectional'
        ? 'bPC energy after inference, per training step'
        : 'Energy during inference (latest step), per layer';
    $('digits-title').textContent =
      config.model !== 'generative' && config.model !== 'bidirectional'
        ? 'Generated digits (generative and bidirectional models only)'
        : 'Generated digits (label → image)';
    const test0 = await session.evaluate(testImages);
    demo.accuracy.push({ step: 0, accuracy: test0 });
    drawAccuracy();
    const started = performance.now();
    // The longest gap between animation frames while training (loading and parsing the data is not counted).
    watchFrames();
    for (let i = 1; i <= steps && !stopRequested; i++) {
      const [framesBefore, stepStart] = [demo.frames, performance.now()];
      const r = await session.step();
      // Animation frames drawn while the step ran: the page keeps drawing while the GPU works.
      demo.steps.push({
        step: r.step,
        energy: r.energy,
        layerEnergies: r.layerEnergies,
        ms: performance.now() - stepStart,
        frames: demo.frames - framesBefore,
      });
      drawEnergies(r);
      if (i % testEvery === 0 || i === steps) {
        demo.accuracy.push({ step: i, accuracy: await session.evaluate(testImages) });
        drawAccuracy();
        const digits = await session.digits();
        if (digits) drawDigits(digits);
      }
      const secs = (performance.now() - started) / 1000;
      const acc = demo.accuracy.at(-1);
      status(
        `step ${i}/${steps}: energy ${r.energy.toPrecision(4)} · test accuracy ${acc.accuracy.toFixed(2)}% at step ${acc.step} · ${(i / secs).toFixed(1)} steps/s · ${runtime.adapter.description || runtime.adapter.architecture}`,
      );
      // Let the page breathe between steps (the GPU work itself never blocks the main thread).
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    demo.state = 'done';
  } catch (e) {
    fail(e);
  } finally {
    session?.dispose();
    $('train').disabled = false;
    $('stop').disabled = true;
  }
}

$('train').addEventListener('click', () => void run());
$('stop').addEventListener('click', () => (stopRequested = true));

if (!navigator.gpu) {
  $('no-webgpu').style.display = 'block';
  $('no-webgpu-reason').textContent = 'navigator.gpu is missing in this browser or context.';
  $('train').disabled = true;
  demo.state = 'no-webgpu';
} else if (params.get('auto') === '1') {
  void run();
}
