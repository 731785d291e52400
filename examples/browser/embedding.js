// Embedding WPC in an app that already renders with WebGPU. The app creates the device; WPC borrows it
// (initFromDevice never destroys it or touches its error handlers) and exposes its tensors as plain GPUBuffers,
// which the app binds straight into its own render pipeline (zero-copy).
//
// ?steps=N       training steps (default 40)
// ?present=copy  render into an app-owned texture and show it through a 2D canvas instead of presenting a
//                WebGPU canvas: headless Chromium with SwiftShader (the CI browser) loses the device as soon as a
//                WebGPU canvas is configured, so the browser test uses this; a desktop browser wants the default.
import * as wpc from '../../dist/browser.js';

const params = new URLSearchParams(location.search);
const steps = Number(params.get('steps') ?? 40);
const present = params.get('present') === 'copy' ? 'copy' : 'canvas';
const report = (window.wpcEmbedding = {
  state: 'running',
  present,
  frames: 0,
  litPixels: 0,
  deviceUsableAfterDispose: false,
  appErrors: [],
  error: null,
});
const status = (t) => (document.getElementById('status').textContent = t);

// ---- the app: its device, canvas and render pipeline ----
const adapter = await navigator.gpu?.requestAdapter();
if (!adapter) {
  report.state = 'no-webgpu';
  status('WebGPU is not available in this browser.');
  throw new Error('WebGPU is not available in this browser');
}
const device = await adapter.requestDevice();
device.addEventListener('uncapturederror', (e) => report.appErrors.push(e.error.message)); // the app's own handler
const canvas = document.getElementById('canvas');
const format = present === 'canvas' ? navigator.gpu.getPreferredCanvasFormat() : 'rgba8unorm';
let context = null;
let target = null;
if (present === 'canvas') {
  context = canvas.getContext('webgpu');
  context.configure({
    device,
    format,
    usage: GPUTextureUsage.RENDER_ATTACHMENT | GPUTextureUsage.COPY_SRC,
    alphaMode: 'opaque',
  });
} else {
  target = device.createTexture({
    size: [canvas.width, canvas.height],
    format,
    usage: GPUTextureUsage.RENDER_ATTACHMENT | GPUTextureUsage.COPY_SRC,
  });
}

// A full-screen triangle; the fragment shader looks the activity up: x = unit, y = sample.
const shader = device.createShaderModule({
  code: /* wgsl */ `
    struct View { offset: u32, rows: u32, cols: u32, scale: f32 }
    @group(0) @binding(0) var<storage, read> acts: array<f32>;
    @group(0) @binding(1) var<uniform> view: View;
    @vertex fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4f {
      let p = array(vec2f(-1, -1), vec2f(3, -1), vec2f(-1, 3));
      return vec4f(p[i], 0, 1);
    }
    @fragment fn fs(@builtin(position) pos: vec4f) -> @location(0) vec4f {
      let col = u32(pos.x / ${canvas.width}.0 * f32(view.cols));
      let row = u32(pos.y / ${canvas.height}.0 * f32(view.rows));
      let v = clamp(acts[view.offset + row * view.cols + col] * view.scale, -1.0, 1.0);
      return vec4f(max(v, 0.0), 0.15, max(-v, 0.0), 1.0);
    }`,
});
const pipeline = device.createRenderPipeline({
  layout: 'auto',
  vertex: { module: shader, entryPoint: 'vs' },
  fragment: { module: shader, entryPoint: 'fs', targets: [{ format }] },
  primitive: { topology: 'triangle-list' },
});
const viewUniform = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });

/**
 * Draws a [rows, cols] matrix that lives in any GPUBuffer of this device (`{ buffer, byteOffset, shape }`, which
 * a WPC Tensor is) and, with `readPixels` or in copy mode, reads the frame back: returns how many pixels are lit.
 */
async function draw(matrix, scale, readPixels = false) {
  const [rows, cols] = matrix.shape;
  const words = new ArrayBuffer(16);
  new Uint32Array(words, 0, 3).set([matrix.byteOffset / 4, rows, cols]);
  new Float32Array(words, 12, 1)[0] = scale;
  device.queue.writeBuffer(viewUniform, 0, words);
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: matrix.buffer } },
      { binding: 1, resource: { buffer: viewUniform } },
    ],
  });
  const texture = context ? context.getCurrentTexture() : target;
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginRenderPass({
    colorAttachments: [{ view: texture.createView(), loadOp: 'clear', storeOp: 'store', clearValue: [0, 0, 0, 1] }],
  });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.draw(3);
  pass.end();
  const bytesPerRow = Math.ceil((canvas.width * 4) / 256) * 256;
  const read = readPixels || present === 'copy';
  const readback = read
    ? device.createBuffer({
        size: bytesPerRow * canvas.height,
        usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
      })
    : null;
  if (readback)
    encoder.copyTextureToBuffer({ texture }, { buffer: readback, bytesPerRow }, [canvas.width, canvas.height]);
  device.queue.submit([encoder.finish()]);
  report.frames++;
  if (!readback) return 0;
  await readback.mapAsync(GPUMapMode.READ);
  const px = new Uint8Array(readback.getMappedRange());
  let lit = 0;
  for (let i = 0; i < px.length; i += 4) if (px[i] > 40 || px[i + 2] > 40) lit++; // red or blue (either channel order)
  if (present === 'copy') {
    const image = new ImageData(canvas.width, canvas.height);
    for (let y = 0; y < canvas.height; y++)
      image.data.set(px.subarray(y * bytesPerRow, y * bytesPerRow + canvas.width * 4), y * canvas.width * 4);
    canvas.getContext('2d').putImageData(image, 0, 0);
  }
  readback.unmap();
  readback.destroy();
  return lit;
}

try {
  // ---- WPC on the app's device ----
  const runtime = wpc.initFromDevice({ device, adapterInfo: adapter.info });
  status('loading MNIST …');
  const data = await wpc.fetchDataset(params.get('data') ?? '/data/mnist/', 'test'); // the small split is enough here
  const model = wpc.makeMlp(runtime, { seed: 0, inputDim: 784, width: 64, depth: 3, outputDim: 10, actFn: 'tanh' });
  const optim = wpc.adam({ lr: 1e-3 });
  const optState = optim.init(model);
  let step = 0;
  for (const b of wpc.batches(data, { batchSize: 32, shuffle: true, seed: 0 })) {
    if (step++ >= steps) break;
    // Infer, draw the equilibrium's first hidden layer (32 samples × 64 units) straight from WPC's buffer, then
    // learn from it.
    const start = await wpc.initActivitiesWithFfwd(model, b.x);
    const { activities } = await wpc.solveInference(model, start, b.y, { input: b.x, maxT1: 20 });
    report.litPixels = await draw(activities[0], 1, step === steps);
    await wpc.updatePcParams(model, activities, optim, optState, b.y, { input: b.x });
    for (const t of [...start, ...activities]) t.dispose();
    status(
      `step ${step}/${steps}: drew z_1 (${activities[0].shape.join(' × ')}) from WPC's GPU buffer with the app's pipeline`,
    );
    await new Promise((r) => requestAnimationFrame(r));
  }
  // ---- WPC leaves; the app's device carries on ----
  runtime.dispose();
  const own = device.createBuffer({ size: 32 * 64 * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(
    own,
    0,
    new Float32Array(32 * 64).map((_, i) => Math.sin(i / 7)),
  );
  device.pushErrorScope('validation');
  const lit = await draw({ shape: [32, 64], byteOffset: 0, buffer: own }, 1, true);
  const error = await device.popErrorScope();
  await device.queue.onSubmittedWorkDone();
  report.deviceUsableAfterDispose = error === null && lit > 0;
  own.destroy();
  report.state = 'done';
  status(`done: ${steps} steps; WPC disposed, and the app's device still draws (${lit} lit pixels)`);
} catch (e) {
  report.state = 'error';
  report.error = String(e?.message ?? e);
  document.getElementById('error').textContent = report.error;
}
