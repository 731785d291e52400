/**
 * The JPC paper's Figure 2 (Figure 7 on Fashion-MNIST), after JPC's experiments/library_paper/
 * test_theory_energies.py: a deep linear network (10 hidden layers of width 300, no bias) trained with PC,
 * batch 64, Adam 1e-3, 100 iterations, once for each inference limit T ∈ {10, 20, 50, 100, 200} (Heun + PID,
 * from the same initial weights). Before every step the theoretical equilibrium energy F* (linearEquilibEnergy)
 * is computed for the batch, and the step's inference ends at the numerical energy (the layer energies at t = T,
 * summed); every `testEvery` iterations the test accuracy is measured. As T grows the numerical energy should
 * approach the theoretical one.
 */
import { batches, type Dataset } from '../../data/dataset.js';
import type { Runtime } from '../../runtime/runtime.js';
import { linearEquilibEnergy } from '../../pc/linear-theory.js';
import { makeMlp } from '../../pc/model.js';
import { adam } from '../../pc/optim.js';
import { makePcStep } from '../../pc/train.js';
import { testSetMetrics } from './test-set.js';

export const THEORY_MAX_T1 = [10, 20, 50, 100, 200] as const;

interface TheoryStudyOptions {
  dataset: string;
  train: Dataset;
  test: Dataset;
  maxT1s: readonly number[];
  /** Training iterations per T. Default 100. */
  iters: number;
  /** Test every N iterations. Default 10. */
  testEvery: number;
  width: number;
  hidden: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** Test on at most this many test images (default: all). */
  testImages?: number;
  onProgress?: (done: number, total: number, maxT1: number) => void;
  onTest?: (row: TheoryRow) => void;
}

export interface TheoryRow {
  dataset: string;
  maxT1: number;
  /** 1-based training iteration. */
  iter: number;
  /** F* of the batch with the weights inference ran with. */
  theoryEnergy: number;
  /** Σ layer energies at the end of the step's inference. */
  numericalEnergy: number;
  /** %, at test points; NaN elsewhere. */
  testAccuracy: number;
}

export async function runTheoryStudy(runtime: Runtime, o: TheoryStudyOptions): Promise<TheoryRow[]> {
  const rows: TheoryRow[] = [];
  const total = o.maxT1s.length * o.iters;
  let done = 0;
  for (const maxT1 of o.maxT1s) {
    // Same initial weights and batch order for every T, as JPC's script (one key, one loader seed).
    const model = makeMlp(runtime, {
      seed: o.seed,
      inputDim: o.train.inputDim,
      width: o.width,
      depth: o.hidden + 1,
      outputDim: 10,
      actFn: 'linear',
      useBias: false,
    });
    const optim = adam({ lr: o.lr });
    const optState = optim.init(model);
    let iter = 0;
    try {
      for (const b of batches(o.train, { batchSize: o.batchSize, shuffle: true, seed: o.seed })) {
        if (iter >= o.iters) break;
        iter++;
        const { energy: theoryEnergy } = await linearEquilibEnergy(model, b.x, b.y);
        const step = await makePcStep(model, optim, optState, b.y, { input: b.x, maxT1 });
        const layerEnergies = await step.energies.toArray();
        step.energies.dispose();
        step.loss.dispose();
        const numericalEnergy = layerEnergies.reduce((s, v) => s + v, 0);
        const tested = iter % o.testEvery === 0 || iter === o.iters;
        const row: TheoryRow = {
          dataset: o.dataset,
          maxT1,
          iter,
          theoryEnergy,
          numericalEnergy,
          testAccuracy: tested
            ? (await testSetMetrics(model, o.test, { limit: o.testImages ?? o.test.count })).accuracy
            : NaN,
        };
        rows.push(row);
        if (tested) o.onTest?.(row);
        o.onProgress?.(++done, total, maxT1);
      }
    } finally {
      model.dispose();
      optState.dispose();
    }
  }
  return rows;
}

export function theoryCsv(rows: readonly TheoryRow[]): string {
  const cols: (keyof TheoryRow)[] = ['dataset', 'maxT1', 'iter', 'theoryEnergy', 'numericalEnergy', 'testAccuracy'];
  const cell = (v: unknown) => (typeof v === 'number' ? (Number.isNaN(v) ? '' : String(v)) : String(v));
  return `${cols.join(',')}\n${rows.map((r) => cols.map((c) => cell(r[c])).join(',')).join('\n')}\n`;
}

/**
 * Figure 2 as SVG: left, the energy per training iteration — the theoretical F* (dashed, from the run with the
 * largest T, as JPC plots it) and the numerical energy at the end of inference for every T; right, the test
 * accuracy at the test points for every T.
 */
export function theoryFigureSvg(rows: readonly TheoryRow[], title: string): string {
  const ts = [...new Set(rows.map((r) => r.maxT1))].sort((a, b) => a - b);
  const longest = ts[ts.length - 1]!;
  const iters = Math.max(...rows.map((r) => r.iter));
  const energies = rows.flatMap((r) => [r.theoryEnergy, r.numericalEnergy]).filter(Number.isFinite);
  const eMax = Math.max(...energies) * 1.05;
  const eMin = Math.min(0, ...energies);
  const accs = rows.map((r) => r.testAccuracy).filter(Number.isFinite);
  const aMin = accs.length ? Math.max(0, Math.floor(Math.min(...accs) / 10) * 10) : 0;
  const aMax = 100;
  const panelW = 300;
  const panelH = 230;
  const left = 64;
  const gap = 90;
  const top = 44;
  const W = left + 2 * panelW + gap + 130;
  const H = top + panelH + 56;
  // Light to dark green as T grows (JPC's colour scale), theory in the darkest.
  const shade = (i: number) => {
    const f = ts.length === 1 ? 1 : i / (ts.length - 1);
    const g = Math.round(200 - 130 * f);
    return `rgb(${Math.round(170 - 160 * f)},${g},${Math.round(150 - 120 * f)})`;
  };
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const px = (x0: number, it: number) => x0 + ((it - 1) / Math.max(1, iters - 1)) * panelW;
  const pyE = (v: number) => top + panelH - ((v - eMin) / (eMax - eMin || 1)) * panelH;
  const pyA = (v: number) => top + panelH - ((v - aMin) / (aMax - aMin || 1)) * panelH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  const x1 = left + panelW + gap;
  for (const [x0, label, lo, hi, py] of [
    [left, 'energy', eMin, eMax, pyE],
    [x1, 'test accuracy (%)', aMin, aMax, pyA],
  ] as const) {
    parts.push(`<rect x="${x0}" y="${top}" width="${panelW}" height="${panelH}" fill="none" stroke="#888"/>`);
    for (let k = 0; k <= 4; k++) {
      const v = lo + ((hi - lo) * k) / 4;
      const yy = py(v);
      parts.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${yy}" y2="${yy}" stroke="#eee"/>`);
      parts.push(`<text x="${x0 - 6}" y="${yy + 4}" text-anchor="end">${Number(v.toPrecision(3))}</text>`);
    }
    for (const it of [1, Math.round(iters / 2), iters])
      parts.push(`<text x="${px(x0, it)}" y="${top + panelH + 16}" text-anchor="middle">${it}</text>`);
    parts.push(`<text x="${x0 + panelW / 2}" y="${top + panelH + 34}" text-anchor="middle">training iteration</text>`);
    parts.push(
      `<text transform="translate(${x0 - 44} ${top + panelH / 2}) rotate(-90)" text-anchor="middle">${label}</text>`,
    );
  }
  const line = (pts: [number, number][], colour: string, extra = '') =>
    `<polyline fill="none" stroke="${colour}" stroke-width="2" ${extra} points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}"/>`;
  ts.forEach((t, i) => {
    const run = rows.filter((r) => r.maxT1 === t).sort((a, b) => a.iter - b.iter);
    parts.push(
      line(
        run.map((r) => [px(left, r.iter), pyE(r.numericalEnergy)]),
        shade(i),
      ),
    );
    const tested = run.filter((r) => Number.isFinite(r.testAccuracy));
    parts.push(
      line(
        tested.map((r) => [px(x1, r.iter), pyA(r.testAccuracy)]),
        shade(i),
      ),
    );
    for (const r of tested)
      parts.push(
        `<circle cx="${px(x1, r.iter).toFixed(1)}" cy="${pyA(r.testAccuracy).toFixed(1)}" r="3" fill="${shade(i)}"><title>T = ${t}, iteration ${r.iter}: ${r.testAccuracy.toFixed(2)}%</title></circle>`,
      );
  });
  const theory = rows.filter((r) => r.maxT1 === longest).sort((a, b) => a.iter - b.iter);
  parts.push(
    line(
      theory.map((r) => [px(left, r.iter), pyE(r.theoryEnergy)]),
      '#000',
      'stroke-dasharray="6 4"',
    ),
  );
  const lx = x1 + panelW + 16;
  parts.push(
    `<line x1="${lx}" x2="${lx + 24}" y1="${top + 8}" y2="${top + 8}" stroke="#000" stroke-width="2" stroke-dasharray="6 4"/><text x="${lx + 30}" y="${top + 12}">theory</text>`,
  );
  ts.forEach((t, i) => {
    const yy = top + 28 + 18 * i;
    parts.push(
      `<line x1="${lx}" x2="${lx + 24}" y1="${yy}" y2="${yy}" stroke="${shade(i)}" stroke-width="2"/><text x="${lx + 30}" y="${yy + 4}">T = ${t}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
