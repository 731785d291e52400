// One training session of the demo, written against WPC's public API only and parameterised by the `wpc`
// module, so the page (dist/browser.js) and the Node test (dist/node.js) run exactly the same procedure.
//
//   const config = { model: 'discriminative', solver: 'heun', seed: 0 };   // or model: 'cnn', 'generative', …
//   const session = await createSession(wpc, runtime, config, train, test);
//   const r = await session.step();   // { step, energy, layerEnergies, inference }
//   const acc = await session.evaluate(1000);
//   const digits = await session.digits();   // Float32Array [10, 784] or null

export const MODELS = {
  discriminative: 'Discriminative PC: 784 → 300 → 300 → 10 (relu), Adam 1e-3',
  generative: 'Supervised generative PC: label → image, 10 → 300 → 300 → 784 (relu), Adam 1e-3',
  bidirectional: 'Bidirectional PC: 10 → 256 → 784 top-down, 784 → 256 → 10 bottom-up (relu), α_f = 1e-3',
  cnn: 'Discriminative PC CNN: conv 8×3×3 → avg pool 2 → conv 16×3×3 → avg pool 2 → dense 10 (relu), Adam 1e-3',
};

/** The CNN choice's layers (makeModel's list; the builders come from the `wpc` module the session is given). */
function cnnLayers(wpc) {
  return [
    wpc.conv(8, 3, { padding: 1 }),
    wpc.avgPool(2),
    wpc.conv(16, 3, { padding: 1 }),
    wpc.avgPool(2),
    wpc.flatten(),
    wpc.dense(10),
  ];
}

export const SOLVERS = {
  heun: { label: 'Heun + PID (rtol = atol = 1e-3), T = 20', options: { solver: 'heun', maxT1: 20 } },
  euler: {
    label: 'Euler, dt = 0.5, T = 20',
    options: { solver: 'euler', maxT1: 20, dt: 0.5, stepsizeController: 'constant' },
  },
  sgd: { label: 'Discrete: 20 SGD steps of lr 0.5·B', options: null },
};

/** One-hot rows for labels 0..9 (twice), the generated-digit grid's inputs. */
function digitLabels() {
  const labels = new Float32Array(20 * 10);
  for (let i = 0; i < 20; i++) labels[i * 10 + (i % 10)] = 1;
  return labels;
}

function* endlessBatches(wpc, dataset, batchSize, seed) {
  for (let epoch = 0; ; epoch++) yield* wpc.batches(dataset, { batchSize, shuffle: true, seed: seed * 1000 + epoch });
}

/**
 * @param wpc the WPC module
 * @param runtime a Runtime
 * @param config { model, solver, seed, batchSize }
 */
export async function createSession(wpc, runtime, config, train, test) {
  const model = config.model ?? 'discriminative';
  const solver = config.solver ?? 'heun';
  const seed = config.seed ?? 0;
  const batchSize = config.batchSize ?? 64;
  // Own keys only: a query string's "constructor" or "__proto__" is no model.
  if (typeof model !== 'string' || !Object.hasOwn(MODELS, model))
    throw new Error(`unknown model ${String(model)}; pick one of ${Object.keys(MODELS).join(', ')}`);
  if (typeof solver !== 'string' || !Object.hasOwn(SOLVERS, solver))
    throw new Error(`unknown solver ${String(solver)}; pick one of ${Object.keys(SOLVERS).join(', ')}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer, got ${String(seed)}`);
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > 1024)
    throw new Error(`batchSize must be an integer in [1, 1024], got ${String(batchSize)}`);
  const data = endlessBatches(wpc, train, batchSize, seed);
  const owned = [];
  const keep = (x) => {
    owned.push(x);
    return x;
  };
  let step = 0;

  if (model === 'bidirectional') {
    const topDown = keep(
      wpc.makeMlp(runtime, { seed: 2 * seed, inputDim: 10, width: 256, depth: 2, outputDim: 784, actFn: 'relu' }),
    );
    const bottomUp = keep(
      wpc.makeMlp(runtime, { seed: 2 * seed + 1, inputDim: 784, width: 256, depth: 2, outputDim: 10, actFn: 'relu' }),
    );
    const activityOptim = wpc.sgd({ lr: 0.5 });
    const optims = [wpc.adam({ lr: 1e-3 }), wpc.adam({ lr: 1e-3 })];
    const optStates = [keep(optims[0].init(topDown)), keep(optims[1].init(bottomUp))];
    const options = { forwardEnergyWeight: 1e-3 };
    return {
      model,
      solver: 'one SGD step of 0.5 on the shared activity',
      async step() {
        const { x: image, y: label } = data.next().value;
        const start = await wpc.initBpcActivities(topDown, bottomUp, image);
        const state = activityOptim.init(start);
        const inferred = await wpc.updateBpcActivities(topDown, bottomUp, start, activityOptim, state, image, {
          input: label,
          ...options,
        });
        const before = await inferred.energy.item();
        const after = await wpc.bpcEnergy(topDown, bottomUp, inferred.activities, image, { input: label, ...options });
        const energy = await after.item();
        after.dispose();
        await wpc.updateBpcParams(topDown, bottomUp, inferred.activities, optims, optStates, image, {
          input: label,
          ...options,
        });
        for (const t of [...start, ...inferred.activities, inferred.energy]) t.dispose();
        state.dispose();
        step++;
        // The "inference" trace of bPC is its one step: the energy before and after it.
        return { step, energy, layerEnergies: null, inference: [[before], [energy]] };
      },
      async evaluate(limit) {
        return classifierAccuracy(wpc, bottomUp, test, limit);
      },
      async digits() {
        const acts = await wpc.initActivitiesWithFfwd(topDown, digitLabels());
        const out = await acts.at(-1).toArray();
        for (const a of acts) a.dispose();
        return out;
      },
      dispose() {
        for (const x of owned) x.dispose();
      },
    };
  }

  const generative = model === 'generative';
  const net = keep(
    model === 'cnn'
      ? wpc.makeModel(runtime, { seed, inputShape: [1, 28, 28], layers: cnnLayers(wpc), actFn: 'relu', useBias: true })
      : generative
        ? wpc.makeMlp(runtime, {
            seed,
            inputDim: 10,
            width: 300,
            depth: 3,
            outputDim: 784,
            actFn: 'relu',
            useBias: true,
          })
        : wpc.makeMlp(runtime, {
            seed,
            inputDim: 784,
            width: 300,
            depth: 3,
            outputDim: 10,
            actFn: 'relu',
            useBias: true,
          }),
  );
  const optim = wpc.adam({ lr: 1e-3 });
  const optState = keep(optim.init(net));
  const solverOptions = SOLVERS[solver].options;
  return {
    model,
    solver: SOLVERS[solver].label,
    async step() {
      const { x: image, y: label } = data.next().value;
      const [input, output] = generative ? [label, image] : [image, label];
      if (solverOptions === null) {
        // Discrete inference: 20 SGD steps on the activities (lr 0.5·B undoes JPC's 1/B), then one weight step.
        let acts = await wpc.initActivitiesWithFfwd(net, input);
        const activityOptim = wpc.sgd({ lr: 0.5 * batchSize });
        const state = activityOptim.init(acts);
        const trace = [];
        for (let k = 0; k < 20; k++) {
          const r = await wpc.updatePcActivities(net, acts, activityOptim, state, output, { input });
          trace.push(r.energy);
          for (const a of acts) a.dispose();
          acts = r.activities;
        }
        const energies = await Promise.all(trace.map((t) => t.item()));
        trace.forEach((t) => t.dispose());
        const final = await wpc.pcEnergy(net, acts, output, { input });
        const energy = await final.item();
        final.dispose();
        await wpc.updatePcParams(net, acts, optim, optState, output, { input });
        for (const a of acts) a.dispose();
        state.dispose();
        step++;
        return { step, energy, layerEnergies: null, inference: [...energies, energy].map((e) => [e]) };
      }
      const r = await wpc.makePcStep(net, optim, optState, output, { input, ...solverOptions, recordIters: true });
      const layerEnergies = Array.from(await r.energies.toArray());
      const rows = await r.recording.energies.toArray();
      const L = layerEnergies.length;
      const inference = [];
      for (let i = 0; i <= r.recording.tMax; i++) inference.push(Array.from(rows.subarray(i * L, (i + 1) * L)));
      for (const t of [r.loss, r.energies, r.recording.energies]) t.dispose();
      step++;
      return { step, energy: layerEnergies.reduce((s, v) => s + v, 0), layerEnergies, inference };
    },
    async evaluate(limit) {
      // A CNN's activities are wider than the MLP's: its test batches are smaller, so that they fit any adapter.
      if (!generative) return classifierAccuracy(wpc, net, test, limit, model === 'cnn' ? 250 : 1000);
      // Labels inferred from the images (the output clamped), as testGenerativePc: costly, so a smaller set.
      let correct = 0;
      let n = 0;
      for (const b of wpc.batches(wpc.subset(test, Math.min(limit, test.count)), { batchSize: 64, shuffle: false })) {
        const r = await wpc.testGenerativePc(net, b.x, b.y, { seed: n, maxT1: 100 });
        r.preds.dispose();
        correct += r.acc * b.size;
        n += b.size;
      }
      return n === 0 ? NaN : correct / n;
    },
    async digits() {
      if (!generative) return null;
      const acts = await wpc.initActivitiesWithFfwd(net, digitLabels());
      const out = await acts.at(-1).toArray();
      for (const a of acts) a.dispose();
      return out;
    },
    dispose() {
      for (const x of owned) x.dispose();
    },
  };
}

async function classifierAccuracy(wpc, net, test, limit, chunk = 1000) {
  const count = Math.min(limit, test.count);
  let correct = 0;
  for (let start = 0; start < count; start += chunk) {
    const m = Math.min(chunk, count - start);
    const y = wpc.oneHot(test.labels.subarray(start, start + m));
    const r = await wpc.testDiscriminativePc(
      net,
      y,
      test.images.subarray(start * test.inputDim, (start + m) * test.inputDim),
    );
    correct += (r.acc / 100) * m;
  }
  return (100 * correct) / count;
}
