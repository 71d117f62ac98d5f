"""Checks the Keras retrieval metrics against NumPy running means."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_models.metrics import keras_metrics


def _top_10_percent(ranks: np.ndarray, sizes: np.ndarray) -> np.ndarray:
  return (ranks <= np.maximum(1, sizes * 10 // 100)).astype(np.float64)


def _reciprocal(ranks: np.ndarray, sizes: np.ndarray) -> np.ndarray:
  del sizes
  return 1.0 / ranks


def _percentile(ranks: np.ndarray, sizes: np.ndarray) -> np.ndarray:
  return (ranks - 1) / np.maximum(sizes - 1, 1)


_CASES = (
    ("top_percent", lambda: keras_metrics.TopPercentAccuracy(10), _top_10_percent),
    ("mrr", keras_metrics.MeanReciprocalRank, _reciprocal),
    ("percentile", keras_metrics.MeanPercentileRank, _percentile),
)


def _batches(seed: int):
  rng = np.random.default_rng(seed)
  sizes = [rng.integers(1, 60, size=n) for n in (13, 8)]
  ranks = [np.array([rng.integers(1, s + 1) for s in batch]) for batch in sizes]
  return ranks, sizes


class KerasMetricsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*_CASES)
  def test_two_updates_give_the_mean(self, make_metric, oracle):
    ranks, sizes = _batches(0)
    metric = make_metric()
    for batch_ranks, batch_sizes in zip(ranks, sizes):
      metric.update_state(batch_ranks, batch_sizes)
    expected = np.mean(oracle(np.concatenate(ranks), np.concatenate(sizes)))
    self.assertAllClose(metric.result(), expected)

  @parameterized.named_parameters(*_CASES)
  def test_sample_weight_is_a_weighted_mean(self, make_metric, oracle):
    ranks, sizes = _batches(1)
    weights = [np.random.default_rng(2).integers(0, 3, size=len(r)).astype(np.float32)
               for r in ranks]
    metric = make_metric()
    for batch_ranks, batch_sizes, batch_weights in zip(ranks, sizes, weights):
      metric.update_state(batch_ranks, batch_sizes, sample_weight=batch_weights)
    values = oracle(np.concatenate(ranks), np.concatenate(sizes))
    expected = np.average(values, weights=np.concatenate(weights))
    self.assertAllClose(metric.result(), expected)

  @parameterized.named_parameters(*_CASES)
  def test_reset_state(self, make_metric, oracle):
    ranks, sizes = _batches(3)
    metric = make_metric()
    metric.update_state(ranks[0], sizes[0])
    metric.reset_state()
    self.assertAllClose(metric.result(), 0.0)
    metric.update_state(ranks[1], sizes[1])
    self.assertAllClose(metric.result(), np.mean(oracle(ranks[1], sizes[1])))

  def test_update_inside_tf_function(self):
    metric = keras_metrics.MeanReciprocalRank()
    update = tf.function(lambda r: metric.update_state(r))
    update(tf.constant([1, 2]))
    update(tf.constant([4]))
    self.assertAllClose(metric.result(), (1 + 0.5 + 0.25) / 3)

  def test_names_and_config(self):
    self.assertEqual(keras_metrics.TopPercentAccuracy(10).name, "retrieval/top_10_percent")
    self.assertEqual(keras_metrics.TopPercentAccuracy(2.5).name, "retrieval/top_2.5_percent")
    self.assertEqual(keras_metrics.MeanReciprocalRank().name, "retrieval/mrr")
    self.assertEqual(
        keras_metrics.MeanPercentileRank().name, "retrieval/mean_percentile_rank"
    )
    metric = keras_metrics.TopPercentAccuracy(20, name="val/top_20")
    clone = keras_metrics.TopPercentAccuracy.from_config(metric.get_config())
    self.assertEqual((clone.percent, clone.name), (20.0, "val/top_20"))

  def test_missing_gallery_sizes(self):
    with self.assertRaisesRegex(
        ValueError, "retrieval/top_10_percent: update_state needs gallery_sizes"
    ):
      keras_metrics.TopPercentAccuracy(10).update_state([1, 2])


if __name__ == "__main__":
  tf.test.main()
