"""Tests for keras_models.losses.set_ops against NumPy indexing."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_models.losses import set_ops


class GatherCategoryPredictionsTest(tf.test.TestCase):

  def test_matches_numpy_and_zeros_padding(self):
    rng = np.random.default_rng(0)
    predictions = rng.normal(size=(3, 4, 5)).astype(np.float32)
    categories = np.array([[1, 4, 0], [2, 2, 3], [0, 0, 0]], np.int32)
    expected = np.zeros((3, 3, 5), np.float32)
    for b in range(3):
      for s in range(3):
        if categories[b, s] > 0:
          expected[b, s] = predictions[b, categories[b, s] - 1]
    got = set_ops.gather_category_predictions(predictions, categories)
    self.assertAllClose(got, expected)

  def test_padding_sends_no_gradient(self):
    predictions = tf.Variable(np.ones((2, 3, 4), np.float32))
    categories = tf.constant([[3, 0], [0, 0]], tf.int32)
    with tf.GradientTape() as tape:
      total = tf.reduce_sum(set_ops.gather_category_predictions(predictions, categories))
    grad = tape.gradient(total, predictions).numpy()
    expected = np.zeros((2, 3, 4), np.float32)
    expected[0, 2] = 1.0
    self.assertAllClose(grad, expected)


class L2NormalizeTest(tf.test.TestCase):

  def test_unit_rows_and_zero_rows_finite(self):
    x = tf.Variable([[3.0, 4.0], [0.0, 0.0]])
    with tf.GradientTape() as tape:
      y = set_ops.l2_normalize(x)
      total = tf.reduce_sum(y * tf.constant([[1.0, 2.0], [0.0, 0.0]]))
    self.assertAllClose(y, [[0.6, 0.8], [0.0, 0.0]])
    self.assertTrue(np.all(np.isfinite(tape.gradient(total, x).numpy())))


class MaskedSoftmaxCrossEntropyTest(tf.test.TestCase):

  def test_matches_numpy_and_all_masked_row_is_finite(self):
    logits = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], np.float32)
    allowed = np.array([[True, False, True], [False, False, False]])
    positive = np.array([[True, False, False], [True, False, False]])
    got = set_ops.masked_softmax_cross_entropy(
        tf.constant(logits), tf.constant(allowed), tf.constant(positive)).numpy()
    self.assertAllClose(got[0], np.log(np.exp(1.0) + np.exp(3.0)) - 1.0, rtol=1e-6)
    self.assertTrue(np.isfinite(got[1]))


if __name__ == "__main__":
  tf.test.main()
