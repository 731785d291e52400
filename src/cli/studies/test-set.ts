/**
 * Test-set loss and accuracy of a classifier (JPC's test_discriminative_pc), over the first `limit` test examples
 * in chunks of 2,000, or fewer where a wide network's evaluation workspace would not fit the device. Shared by
 * `wpc train` and the paper studies.
 */
import { oneHot, type Dataset } from '../../data/dataset.js';
import { testDiscriminativePc } from '../../pc/evaluate.js';
import type { Model } from '../../pc/model.js';
import { type Loss, maxWorkspaceRows } from '../../pc/workspace.js';

const CHUNK = 2000;

export async function testSetMetrics(
  model: Model,
  test: Dataset,
  options: { loss?: Loss; limit?: number } = {},
): Promise<{ loss: number; accuracy: number }> {
  const count = Math.min(options.limit ?? test.count, test.count);
  let lossSum = 0;
  let correct = 0;
  const chunk = Math.max(1, Math.min(CHUNK, maxWorkspaceRows(model.runtime, model, 'eval', 'supervised')));
  for (let start = 0; start < count; start += chunk) {
    const n = Math.min(chunk, count - start);
    const x = test.images.subarray(start * test.inputDim, (start + n) * test.inputDim);
    const y = oneHot(test.labels.subarray(start, start + n), test.numClasses);
    const r = await testDiscriminativePc(model, y, x, { loss: options.loss ?? 'mse' });
    lossSum += r.loss * n;
    correct += (r.acc / 100) * n;
  }
  return { loss: lossSum / count, accuracy: (100 * correct) / count };
}
