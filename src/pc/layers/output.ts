/**
 * Output kinds: the energy term of the network's last layer, JPC's `loss`. With λ the output energy's weight and
 * B the batch:
 *
 *   mse   E_L = λ/(2B) Σ_b ‖y_b − μ_L,b‖²            (the error e_L = y − μ_L, as for hidden layers)
 *   ce    E_L = −λ/B Σ_b ⟨y_b, log_softmax(μ_L,b)⟩     (JPC's cross-entropy; e_L = y − softmax(μ_L)·Σy_b)
 *
 * The engine asks an output kind how the output layer's error job ends, which kernel (if any) finishes the error,
 * and where its energy's partial sums are; it never tests for a particular loss.
 */
export const LOSSES = ['mse', 'ce'] as const;
export type Loss = (typeof LOSSES)[number];

/** The finishing kernels of every output kind (compiled by each training workspace). */
export const FINISH_ENTRIES = ['ce_errors'] as const;

/** Where a workspace keeps the output layer's partial sums. */
export interface OutputSite {
  /** The output layer's error tiles: the first partial quad and how many. */
  errorPart: number;
  errorTiles: number;
  /** One partial quad per row, written by the finishing kernel. */
  rowPart: number;
  rows: number;
}

/** A reduction over partial quads: `count` of them from `off`, `stride` floats apart, times `scale`. */
interface EnergyTerm {
  off: number;
  count: number;
  stride: number;
  scale: number;
}

interface OutputKind {
  readonly loss: Loss;
  /** The output layer's error job leaves the logits (the finishing kernel makes them the error). */
  readonly logits: boolean;
  /** The output kernel (output.wgsl) that finishes the error and its per-row energies, run after the error jobs. */
  readonly finish: (typeof FINISH_ENTRIES)[number] | null;
  /** The flag of kernels that handle both outputs in one body (output.wgsl loss_rows, fused-solve.wgsl). */
  readonly kernelFlag: boolean;
  /** The output layer's energy as a reduction term: its partials and their scale (λ and 1/B included). */
  energyTerm(site: OutputSite, lambda: number): EnergyTerm;
}

const mse: OutputKind = {
  loss: 'mse',
  logits: false,
  finish: null,
  kernelFlag: false,
  energyTerm: (site, lambda) => ({
    off: site.errorPart,
    count: site.errorTiles,
    stride: 4,
    scale: (0.5 * lambda) / site.rows,
  }),
};

const ce: OutputKind = {
  loss: 'ce',
  logits: true,
  finish: 'ce_errors',
  kernelFlag: true,
  energyTerm: (site, lambda) => ({ off: site.rowPart, count: site.rows, stride: 4, scale: lambda / site.rows }),
};

const OUTPUTS: { readonly [L in Loss]: OutputKind } = { mse, ce };

/** The output kind of `loss`. */
export function outputKind(loss: Loss): OutputKind {
  return OUTPUTS[loss];
}
