/** The energy terms a workspace's tables are built for, set per call. */
/**
 * The terms of JPC's `pc_energy_fn` beyond the layer energies, set per call: the output energy's weight λ
 * (`output_energy_scaling`), and the regularisers (activity decay acts on the activities; weight decay and the
 * spectral penalty act on the weights only).
 */
export interface EnergyTerms {
  lambda: number;
  activityDecay: number;
  weightDecay: number;
  spectralPenalty: number;
}

export const PLAIN_ENERGY: Readonly<EnergyTerms> = Object.freeze({
  lambda: 1,
  activityDecay: 0,
  weightDecay: 0,
  spectralPenalty: 0,
});
