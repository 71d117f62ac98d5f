"""Tests for keras_models.losses.infonce against a loop-based NumPy oracle."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_models.losses import infonce

TAU = 0.5

# Set 0 holds two category-1 items (same-set exclusion matters) and the batch's
# only category-3 item (not counted); set 1 has a padding slot; set 4 is all
# padding. Category 4 never occurs. Counted items: 3 + 3 + 2 + 4 + 0 = 12.
CATEGORIES = np.array([[1, 1, 2, 3],
                       [1, 2, 2, 0],
                       [2, 1, 0, 0],
                       [1, 2, 1, 2],
                       [0, 0, 0, 0]], np.int32)
EXPECTED_COUNT = 12


def _normalize(x):
  norm = np.linalg.norm(x, axis=-1, keepdims=True)
  return x / np.maximum(norm, 1e-12)


def reference_infonce(predictions, features, categories, mask, tau, cand_features=None,
                      cand_categories=None, cand_mask=None, offset=0,
                      exclude_same_set=True, item_ids=None, cand_item_ids=None):
  """Plain-loop InfoNCE in float64; returns (loss_sum, num_valid).

  Each valid target lists its negatives one by one: valid candidates of its category
  in another set (any set but its own slot when not `exclude_same_set`) and, with item
  ids, holding another item. A target with no negative is not counted.
  """
  if cand_features is None:
    cand_features, cand_categories, cand_mask = features, categories, mask
    cand_item_ids = item_ids
  predictions = np.asarray(predictions, np.float64)
  cand_features = _normalize(np.asarray(cand_features, np.float64))
  num_sets, set_size = cand_categories.shape
  loss_sum, num_valid = 0.0, 0
  for b in range(categories.shape[0]):
    for s in range(categories.shape[1]):
      c = categories[b, s]
      if not mask[b, s] or c == 0:
        continue
      positive = (b + offset, s)
      negatives = []
      for m in range(num_sets):
        for t in range(set_size):
          if (m, t) == positive or not cand_mask[m, t] or cand_categories[m, t] != c:
            continue
          if exclude_same_set and m == b + offset:
            continue
          if item_ids is not None and cand_item_ids[m, t] == item_ids[b, s]:
            continue
          negatives.append((m, t))
      if not negatives:
        continue
      p = _normalize(predictions[b, c - 1])
      positive_logit = p @ cand_features[positive] / tau
      logits = np.array([positive_logit] + [p @ cand_features[m, t] / tau
                                            for m, t in negatives])
      top = logits.max()
      loss_sum += top + np.log(np.exp(logits - top).sum()) - positive_logit
      num_valid += 1
  return loss_sum, num_valid


def reference_gradient(predictions, *args, step=1e-4, **kwargs):
  """Central finite differences of the reference loss sum w.r.t. predictions."""
  predictions = np.asarray(predictions, np.float64)
  grad = np.zeros_like(predictions)
  for index in np.ndindex(*predictions.shape):
    plus, minus = predictions.copy(), predictions.copy()
    plus[index] += step
    minus[index] -= step
    grad[index] = (reference_infonce(plus, *args, **kwargs)[0]
                   - reference_infonce(minus, *args, **kwargs)[0]) / (2 * step)
  return grad


def make_batch(seed, categories=CATEGORIES, num_categories=4, dim=6, pad_value=None):
  """Random predictions and features; padding features are garbage unless pad_value."""
  rng = np.random.default_rng(seed)
  batch, set_size = categories.shape
  predictions = rng.normal(size=(batch, num_categories, dim)).astype(np.float32)
  features = rng.normal(size=(batch, set_size, dim)).astype(np.float32)
  mask = categories > 0
  if pad_value is not None:
    features[~mask] = pad_value
  return predictions, features, categories, mask


def loss_and_grad(predictions, *args, **kwargs):
  predictions = tf.Variable(predictions)
  with tf.GradientTape() as tape:
    loss_sum, num_valid = infonce.category_infonce(predictions, *args, **kwargs)
  return loss_sum.numpy(), num_valid.numpy(), tape.gradient(loss_sum, predictions).numpy()


class CategoryInfonceTest(tf.test.TestCase):

  def test_matches_reference_and_counts(self):
    for seed in range(3):
      predictions, features, categories, mask = make_batch(seed)
      loss_sum, num_valid, _ = loss_and_grad(predictions, features, categories, mask, TAU)
      want_sum, want_count = reference_infonce(predictions, features, categories, mask, TAU)
      self.assertEqual(num_valid, EXPECTED_COUNT)
      self.assertEqual(want_count, EXPECTED_COUNT)
      self.assertAllClose(loss_sum, want_sum, rtol=1e-5)

  def test_same_set_exclusion_changes_the_value(self):
    predictions, features, categories, mask = make_batch(1)
    loss_sum, _, _ = loss_and_grad(predictions, features, categories, mask, TAU)
    included, _ = reference_infonce(predictions, features, categories, mask, TAU,
                                    exclude_same_set=False)
    self.assertGreater(abs(loss_sum - included), 1e-2)

  def test_single_item_category_is_not_counted(self):
    categories = np.array([[1, 2], [1, 0]], np.int32)
    predictions, features, categories, mask = make_batch(3, categories=categories)
    loss_sum, num_valid, grad = loss_and_grad(predictions, features, categories, mask, TAU)
    self.assertEqual(num_valid, 2)
    self.assertAllClose(loss_sum, reference_infonce(
        predictions, features, categories, mask, TAU)[0], rtol=1e-5)
    # Category 2 (row 1) appears once, so its prediction gets no gradient.
    self.assertAllEqual(grad[0, 1], np.zeros_like(grad[0, 1]))

  def test_target_without_negatives_is_not_counted(self):
    # Set 0's two category-1 items only meet each other (same set): no negatives.
    # Category 2: item 5 sits in sets 0 and 1, item 6 in set 1. Without item ids the
    # three category-2 targets have a negative; with them, set 1's item 5 has none
    # (its only other-set candidate is item 5 itself), so 2 targets count.
    categories = np.array([[1, 1, 2], [2, 2, 0]], np.int32)
    item_ids = np.array([[0, 1, 5], [5, 6, -1]], np.int32)
    predictions, features, categories, mask = make_batch(10, categories=categories)
    features[1, 0] = features[0, 2]
    for ids, want_count in ((None, 3), (item_ids, 2)):
      loss_sum, num_valid, grad = loss_and_grad(predictions, features, categories, mask,
                                                TAU, target_item_index=ids)
      want_sum, oracle_count = reference_infonce(predictions, features, categories, mask,
                                                 TAU, item_ids=ids)
      self.assertEqual(oracle_count, want_count)
      self.assertEqual(num_valid, want_count)
      self.assertAllClose(loss_sum, want_sum, rtol=1e-5)
      # Set 0's category-1 prediction has no loss term, hence no gradient.
      self.assertAllEqual(grad[0, 0], np.zeros_like(grad[0, 0]))

  def test_padding_values_do_not_matter(self):
    predictions, features, categories, mask = make_batch(4)
    zeros = features.copy()
    zeros[~mask] = 0.0
    garbage = features.copy()
    garbage[~mask] = 1e6
    first = loss_and_grad(predictions, zeros, categories, mask, TAU)
    second = loss_and_grad(predictions, garbage, categories, mask, TAU)
    for a, b in zip(first, second):
      self.assertAllClose(a, b)

  def test_gradient_matches_finite_differences(self):
    predictions, features, categories, mask = make_batch(5, pad_value=0.0)
    _, _, grad = loss_and_grad(predictions, features, categories, mask, TAU)
    want = reference_gradient(predictions, features, categories, mask, TAU)
    self.assertAllClose(grad, want, atol=2e-3, rtol=1e-3)
    self.assertTrue(np.all(np.isfinite(grad)))

  def test_fully_padded_batch_is_zero_without_nan(self):
    categories = np.zeros((3, 3), np.int32)
    predictions, features, categories, mask = make_batch(6, categories=categories,
                                                         pad_value=0.0)
    loss_sum, num_valid, grad = loss_and_grad(predictions, features, categories, mask, TAU)
    self.assertEqual(loss_sum, 0.0)
    self.assertEqual(num_valid, 0.0)
    self.assertAllEqual(grad, np.zeros_like(grad))

  def test_two_replica_split_adds_up(self):
    predictions, features, categories, mask = make_batch(7, categories=CATEGORIES[:4])
    full_sum, full_count, full_grad = loss_and_grad(predictions, features, categories,
                                                    mask, TAU)
    sums, counts, grads = [], [], []
    for replica in range(2):
      part = slice(2 * replica, 2 * replica + 2)
      loss_sum, num_valid, grad = loss_and_grad(
          predictions[part], features[part], categories[part], mask[part], TAU,
          candidate_features=features, candidate_categories=categories,
          candidate_mask=mask, batch_offset=2 * replica)
      want_sum, want_count = reference_infonce(
          predictions[part], features[part], categories[part], mask[part], TAU,
          features, categories, mask, offset=2 * replica)
      self.assertAllClose(loss_sum, want_sum, rtol=1e-5)
      self.assertEqual(num_valid, want_count)
      sums.append(loss_sum)
      counts.append(num_valid)
      grads.append(grad)
    self.assertAllClose(sum(sums), full_sum, rtol=1e-5)
    self.assertEqual(sum(counts), full_count)
    self.assertAllClose(np.concatenate(grads), full_grad, atol=1e-6)
    # Without the gathered candidates a replica sees fewer negatives.
    local_sum, _, _ = loss_and_grad(predictions[:2], features[:2], categories[:2],
                                    mask[:2], TAU)
    self.assertGreater(abs(local_sum - sums[0]), 1e-3)

  def test_traces_once_for_varying_shapes(self):
    spec = [tf.TensorSpec([None, None, None], tf.float32),
            tf.TensorSpec([None, None, None], tf.float32),
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None, None], tf.bool)]
    compiled = tf.function(lambda p, f, c, m: infonce.category_infonce(p, f, c, m, TAU),
                           input_signature=spec)
    for categories in (CATEGORIES, CATEGORIES[:3, :3]):
      predictions, features, categories, mask = make_batch(8, categories=categories)
      got = compiled(predictions, features, categories, mask)
      want = infonce.category_infonce(predictions, features, categories, mask, TAU)
      self.assertAllClose(got, want)
    self.assertEqual(compiled.experimental_get_tracing_count(), 1)

  def test_accidental_hits_are_removed(self):
    # Item 7 sits in sets 0 and 3, item 9 in sets 1 and 2 (both category 2 there).
    item_ids = np.array([[7, 1, 2, 3],
                         [4, 9, 5, -1],
                         [9, 6, -1, -1],
                         [7, 8, 10, 11],
                         [-1, -1, -1, -1]], np.int32)
    categories = CATEGORIES.copy()
    categories[3, 0] = 1
    for seed in range(3):
      predictions, features, _, mask = make_batch(seed, categories=categories)
      # The same item has the same feature wherever it occurs.
      features[3, 0] = features[0, 0]
      features[2, 0] = features[1, 1]
      loss_sum, num_valid, _ = loss_and_grad(predictions, features, categories, mask, TAU,
                                             target_item_index=item_ids)
      want_sum, want_count = reference_infonce(predictions, features, categories, mask, TAU,
                                               item_ids=item_ids)
      kept_sum, _ = reference_infonce(predictions, features, categories, mask, TAU)
      self.assertAllClose(loss_sum, want_sum, rtol=1e-5)
      self.assertEqual(num_valid, want_count)
      self.assertGreater(abs(want_sum - kept_sum), 1e-3)
      # Given as candidates (the two-replica path) the result is the same.
      gathered = loss_and_grad(predictions, features, categories, mask, TAU,
                               candidate_features=features, candidate_categories=categories,
                               candidate_mask=mask, target_item_index=item_ids,
                               candidate_item_index=item_ids)
      self.assertAllClose(gathered[0], want_sum, rtol=1e-5)

  def test_item_index_without_candidate_item_index_raises(self):
    predictions, features, categories, mask = make_batch(9)
    with self.assertRaisesRegex(ValueError, "target_item_index and candidate_item_index"):
      infonce.category_infonce(predictions, features, categories, mask, TAU,
                               candidate_features=features, candidate_categories=categories,
                               candidate_mask=mask, target_item_index=np.zeros_like(categories))

  def test_partial_candidates_raise(self):
    predictions, features, categories, mask = make_batch(9)
    with self.assertRaisesRegex(ValueError, "must be given together"):
      infonce.category_infonce(predictions, features, categories, mask, TAU,
                               candidate_features=features)


if __name__ == "__main__":
  tf.test.main()
