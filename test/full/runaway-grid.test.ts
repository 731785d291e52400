// The runaway check's whole grid (test/support/runaway-grid.ts): every activation × task × optimiser, the cases the
// quick tier's sample (test/pc/train-runaway.test.ts) leaves out.
import { describe, expect, it } from 'vitest';
import { useRuntime } from '../support/helpers.js';
import { checkRunawayCases, RUNAWAY_CASES } from '../support/runaway-grid.js';

const runtime = useRuntime();

describe('runaway check: large learning rates are caught and rolled back (the whole grid)', () => {
  const rest = RUNAWAY_CASES.filter((c) => !c.sample);
  const evident = new Map<string, number>();
  // Three tests, one per task, so that none runs long.
  for (const task of ['discriminative', 'generative', 'unsupervised'] as const) {
    const cases = rest.filter((c) => c.task === task);
    it(`${task}: ${cases.length} combinations stopped at the runaway with the last good state restored`, async () => {
      evident.set(task, await checkRunawayCases(runtime, cases));
    });
  }

  it('the grid is not vacuous: most combinations really run away without the check', () => {
    // Counted over the grid, not per task: far from every unsupervised case runs away.
    expect([...evident.keys()]).toEqual(['discriminative', 'generative', 'unsupervised']);
    const total = [...evident.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan((rest.length * 2) / 3);
  });
});
