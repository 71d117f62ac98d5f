"""Tests for keras_models.losses.tpaneg against loop-based NumPy oracles."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_models.losses import negative_table
from keras_models.losses import tpaneg

TAU = 0.5


def _normalize(x):
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def reference_tpaneg(predictions, features, categories, mask, negatives, negative_mask,
                     gamma, epsilon, tau, fixed_keep=None):
  """Plain-loop TPaNeg in float64; returns (loss_sum, num_valid, kept_sum, keep)."""
  batch, set_size, num_negatives = negative_mask.shape
  keep = np.zeros((batch, set_size, num_negatives), bool)
  loss_sum, num_valid, kept_sum = 0.0, 0, 0
  for b in range(batch):
    for s in range(set_size):
      c = categories[b, s]
      if not mask[b, s] or c == 0:
        continue
      p = _normalize(predictions[b, c - 1])
      y = _normalize(features[b, s])
      positive = p @ y
      for n in range(num_negatives):
        neg = _normalize(negatives[b, s, n])
        if fixed_keep is not None:
          keep[b, s, n] = fixed_keep[b, s, n]
        else:
          keep[b, s, n] = (negative_mask[b, s, n] and neg @ y >= gamma
                           and p @ neg >= positive - epsilon)
      kept = [p @ _normalize(negatives[b, s, n]) for n in range(num_negatives)
              if keep[b, s, n]]
      kept_sum += len(kept)
      if not kept:
        continue
      logits = np.array([positive] + kept) / tau
      top = logits.max()
      loss_sum += top + np.log(np.exp(logits - top).sum()) - positive / tau
      num_valid += 1
  return loss_sum, num_valid, kept_sum, keep


def make_batch(seed, batch=4, set_size=3, num_categories=3, dim=5, num_negatives=4):
  """Random batch with padding slots, one all-padding set, and near-target negatives."""
  rng = np.random.default_rng(seed)
  categories = rng.integers(1, num_categories + 1, size=(batch, set_size)).astype(np.int32)
  categories[0, -1] = 0
  categories[-1, :] = 0
  mask = categories > 0
  predictions = rng.normal(size=(batch, num_categories, dim)).astype(np.float32)
  features = rng.normal(size=(batch, set_size, dim)).astype(np.float32)
  negatives = (features[:, :, None, :]
               + rng.normal(size=(batch, set_size, num_negatives, dim))).astype(np.float32)
  negative_mask = rng.random((batch, set_size, num_negatives)) < 0.8
  negatives[~negative_mask] = 0.0
  return predictions, features, categories, mask, negatives, negative_mask


def loss_and_grad(predictions, *args, **kwargs):
  predictions = tf.Variable(predictions)
  with tf.GradientTape() as tape:
    outputs = tpaneg.tpaneg_loss(predictions, *args, **kwargs)
  grad = tape.gradient(outputs[0], predictions).numpy()
  return tuple(o.numpy() for o in outputs) + (grad,)


def unit(angle_degrees):
  angle = np.deg2rad(angle_degrees)
  return np.array([np.cos(angle), np.sin(angle)], np.float32)


class TpanegLossTest(tf.test.TestCase):

  def test_matches_reference(self):
    gamma, epsilon = 0.6, 0.3
    counted, valid = 0, 0
    for seed in range(4):
      batch = make_batch(seed)
      got = loss_and_grad(*batch, gamma=gamma, epsilon=epsilon, temperature=TAU)
      want_sum, want_count, want_kept, keep = reference_tpaneg(*batch, gamma, epsilon, TAU)
      self.assertAllClose(got[0], want_sum, rtol=1e-5)
      self.assertEqual(got[1], want_count)
      self.assertEqual(got[2], want_kept)
      # Both filters and the "no surviving negative" rule are exercised.
      _, _, no_gamma, _ = reference_tpaneg(*batch, -2.0, epsilon, TAU)
      _, _, no_epsilon, _ = reference_tpaneg(*batch, gamma, 10.0, TAU)
      self.assertGreater(no_gamma, want_kept)
      self.assertGreater(no_epsilon, want_kept)
      self.assertTrue(np.all(np.isfinite(got[3])))
      counted += want_count
      valid += batch[3].sum()
    self.assertLess(counted, valid)

  def test_hand_built_filters(self):
    # y at 0 deg, p at 30 deg: s(p, y) = cos 30 = 0.866, so with epsilon = 0.2 a
    # negative needs s(p, n) >= 0.666, and with gamma = 0.5 it needs s(y, n) >= 0.5.
    #   20 deg: s(y) = 0.94, s(p) = 0.98 -> kept
    #   70 deg: s(y) = 0.34 < gamma        -> dropped by gamma only (s(p) = 0.77)
    #  -40 deg: s(p) = 0.34 < 0.666        -> dropped by epsilon only (s(y) = 0.77)
    #   25 deg: masked out                 -> dropped
    # The second item (category 2) only has a negative failing both filters.
    predictions = np.stack([unit(30), unit(0)])[None]
    features = np.stack([unit(0), unit(0)])[None]
    categories = np.array([[1, 2]], np.int32)
    mask = np.array([[True, True]])
    negatives = np.zeros((1, 2, 4, 2), np.float32)
    negatives[0, 0] = [unit(20), unit(70), unit(-40), unit(25)]
    negatives[0, 1, 0] = unit(120)
    negative_mask = np.array([[[True, True, True, False], [True, False, False, False]]])
    loss_sum, num_valid, kept, _ = loss_and_grad(
        predictions, features, categories, mask, negatives, negative_mask,
        gamma=0.5, epsilon=0.2, temperature=TAU)
    logits = np.array([np.cos(np.deg2rad(30)), np.cos(np.deg2rad(10))]) / TAU
    self.assertAllClose(loss_sum, np.log(np.exp(logits).sum()) - logits[0], rtol=1e-5)
    self.assertEqual(num_valid, 1)
    self.assertEqual(kept, 1)

  def test_gamma_variable_updates_without_retracing(self):
    predictions = np.stack([unit(30)])[None]
    features = unit(0)[None, None]
    categories = np.array([[1]], np.int32)
    mask = np.array([[True]])
    negatives = np.stack([unit(20), unit(70)])[None, None]
    negative_mask = np.array([[[True, True]]])
    gamma = tf.Variable(0.5, trainable=False)
    compiled = tf.function(lambda *args: tpaneg.tpaneg_loss(
        *args, gamma=gamma, epsilon=0.2, temperature=TAU))
    args = (predictions, features, categories, mask, negatives, negative_mask)
    self.assertEqual(compiled(*args)[2].numpy(), 1)
    gamma.assign(0.3)
    self.assertEqual(compiled(*args)[2].numpy(), 2)
    self.assertEqual(compiled.experimental_get_tracing_count(), 1)

  def test_gradient_matches_finite_differences(self):
    gamma, epsilon = 0.6, 0.3
    batch = make_batch(11)
    _, _, _, keep = reference_tpaneg(*batch, gamma, epsilon, TAU)
    *_, grad = loss_and_grad(*batch, gamma=gamma, epsilon=epsilon, temperature=TAU)
    # The selection is a constant of the step, so differentiate with it frozen.
    predictions = batch[0].astype(np.float64)
    want = np.zeros_like(predictions)
    step = 1e-4
    for index in np.ndindex(*predictions.shape):
      plus, minus = predictions.copy(), predictions.copy()
      plus[index] += step
      minus[index] -= step
      want[index] = (
          reference_tpaneg(plus, *batch[1:], gamma, epsilon, TAU, fixed_keep=keep)[0]
          - reference_tpaneg(minus, *batch[1:], gamma, epsilon, TAU, fixed_keep=keep)[0]
      ) / (2 * step)
    self.assertAllClose(grad, want, atol=2e-3, rtol=1e-3)

  def test_nothing_kept_is_zero_without_nan(self):
    batch = make_batch(12)
    loss_sum, num_valid, kept, grad = loss_and_grad(*batch, gamma=2.0, epsilon=0.2,
                                                    temperature=TAU)
    self.assertEqual((loss_sum, num_valid, kept), (0.0, 0.0, 0.0))
    self.assertAllEqual(grad, np.zeros_like(grad))


class GatherNegativesTest(tf.test.TestCase):

  def test_matches_numpy_indexing(self):
    rng = np.random.default_rng(0)
    item_features = rng.normal(size=(6, 5)).astype(np.float32)
    table = np.array([[1, 2, -1], [0, -1, -1], [5, 4, 3], [-1, -1, -1], [2, 1, 0],
                      [4, -1, -1]], np.int32)
    item_index = np.array([[2, 0, -1], [3, 5, 4]], np.int32)
    features, mask = tpaneg.gather_negatives(
        tf.constant(item_index), tf.constant(table), tf.constant(item_features))
    want_features = np.zeros((2, 3, 3, 5), np.float32)
    want_mask = np.zeros((2, 3, 3), bool)
    for b in range(2):
      for s in range(3):
        if item_index[b, s] < 0:
          continue
        for n, row in enumerate(table[item_index[b, s]]):
          if row >= 0:
            want_mask[b, s, n] = True
            want_features[b, s, n] = item_features[row]
    self.assertAllEqual(mask, want_mask)
    self.assertAllClose(features, want_features)


def reference_table(features, categories, num_negatives, min_similarity, set_ids):
  """Brute-force table: full similarity matrix and a sort per item."""
  unit_features = _normalize(features)
  similarity = unit_features @ unit_features.T
  table = np.full((len(features), num_negatives), -1, np.int32)
  for i in range(len(features)):
    candidates = [j for j in range(len(features))
                  if j != i and categories[j] == categories[i]
                  and (set_ids is None or set_ids[j] != set_ids[i])
                  and similarity[i, j] >= min_similarity]
    chosen = sorted(candidates, key=lambda j: (-similarity[i, j], j))[:num_negatives]
    table[i, :len(chosen)] = chosen
  return table


class BuildNegativeTableTest(tf.test.TestCase):

  def test_matches_brute_force(self):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(40, 6)).astype(np.float32)
    categories = rng.integers(1, 4, size=40)
    set_ids = np.arange(40) // 4
    for num_negatives, min_similarity, sets, chunk_size in [
        (5, 0.1, set_ids, 7), (5, 0.1, set_ids, 4096), (20, 0.0, set_ids, 3),
        (4, -1.0, None, 5), (60, 0.2, None, 16)]:
      got = negative_table.build_negative_table(features, categories, num_negatives,
                                        min_similarity, sets, chunk_size=chunk_size)
      want = reference_table(features, categories, num_negatives, min_similarity, sets)
      self.assertEqual(got.dtype, np.int32)
      self.assertAllEqual(got, want)
    self.assertTrue(np.any(got == -1))

  def test_same_set_items_are_excluded(self):
    rng = np.random.default_rng(2)
    features = rng.normal(size=(12, 4)).astype(np.float32)
    categories = np.ones(12, np.int64)
    set_ids = np.arange(12) // 3
    table = negative_table.build_negative_table(features, categories, 11, -1.0, set_ids,
                                        chunk_size=5)
    without_sets = negative_table.build_negative_table(features, categories, 11, -1.0, None)
    for i in range(12):
      chosen = table[i][table[i] >= 0]
      self.assertLen(chosen, 9)
      self.assertNotIn(i // 3, set_ids[chosen])
    self.assertAllEqual(np.sum(without_sets >= 0, axis=1), np.full(12, 11))

  def test_bad_shapes_raise(self):
    with self.assertRaisesRegex(ValueError, "must be \\[N, D\\] and \\[N\\]"):
      negative_table.build_negative_table(np.zeros((4, 2)), np.zeros(3), 2, 0.0)
    with self.assertRaisesRegex(ValueError, "num_negatives=0"):
      negative_table.build_negative_table(np.zeros((4, 2)), np.zeros(4), 0, 0.0)


class CurriculumGammaTest(tf.test.TestCase):

  def test_linear_then_constant(self):
    # 0.2 + 0.2 * e / 10, capped at 0.4 from epoch 10.
    got = [float(tpaneg.curriculum_gamma(e, 0.2, 0.4, 10)) for e in (0, 5, 10, 15)]
    self.assertAllClose(got, [0.2, 0.3, 0.4, 0.4])
    self.assertAllClose(tpaneg.curriculum_gamma(3, 0.2, 0.4, 0), 0.4)

  def test_follows_epoch_variable_in_compiled_function(self):
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    compiled = tf.function(lambda: tpaneg.curriculum_gamma(epoch, 0.0, 0.2, 50))
    self.assertAllClose(compiled(), 0.0)
    epoch.assign(25)
    self.assertAllClose(compiled(), 0.1)
    epoch.assign(80)
    self.assertAllClose(compiled(), 0.2)
    self.assertEqual(compiled.experimental_get_tracing_count(), 1)


if __name__ == "__main__":
  tf.test.main()
