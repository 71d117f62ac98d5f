"""Tests for keras_models.losses.bank against a loop-based NumPy oracle."""

from __future__ import annotations

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from keras_models.losses import bank

TAU = 0.3
NUM_CATEGORIES = 4
DIM = 5

# Item table: category 4 is empty; items 2 and 5 are duplicates (same category and
# features), item 7 has item 0's features under another category (not a duplicate).
TABLE_CATEGORIES = np.array([1, 1, 2, 1, 3, 2, 1, 2, 3, 1, 2, 1], np.int32)
# Set 0 holds items 0 and 3 (category 1: each is the other's excluded sibling) and the
# duplicate pair 2/5 (category 2: same row, so not excluded); set 2 is all padding.
ITEM_INDEX = np.array([[0, 3, 2, 5],
                       [9, 4, 10, -1],
                       [-1, -1, -1, -1]], np.int32)


def _normalize(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def make_case(seed):
  rng = np.random.default_rng(seed)
  features = _normalize(rng.normal(size=(len(TABLE_CATEGORIES), DIM)))
  features[5] = features[2]
  features[7] = features[0]
  categories = np.where(ITEM_INDEX >= 0, TABLE_CATEGORIES[np.maximum(ITEM_INDEX, 0)], 0)
  predictions = rng.normal(size=(ITEM_INDEX.shape[0], NUM_CATEGORIES, DIM))
  return predictions.astype(np.float32), features.astype(np.float32), categories


def reference_loss_and_grad(predictions, features, categories, item_index, tau):
  """Per-item float64 loop; analytic gradient through the normalisation."""
  predictions = np.asarray(predictions, np.float64)
  features = np.asarray(features, np.float64)
  grad = np.zeros_like(predictions)
  loss_sum, count = 0.0, 0
  for b, s in zip(*np.nonzero(item_index >= 0)):
    c, own = categories[b, s], features[item_index[b, s]]
    siblings = {tuple(features[item_index[b, t]]) for t in range(item_index.shape[1])
                if t != s and item_index[b, t] >= 0 and categories[b, t] == c}
    siblings.discard(tuple(own))
    negatives = {tuple(f) for f, k in zip(features, TABLE_CATEGORIES) if k == c}
    bank_rows = np.array(sorted(negatives - siblings))
    raw = predictions[b, c - 1]
    p = raw / np.linalg.norm(raw)
    logits = bank_rows @ p / tau
    top = logits.max()
    loss_sum += top + np.log(np.exp(logits - top).sum()) - own @ p / tau
    count += 1
    softmax = np.exp(logits - top) / np.exp(logits - top).sum()
    d_p = (softmax @ bank_rows - own) / tau
    grad[b, c - 1] += (d_p - p * (p @ d_p)) / np.linalg.norm(raw)
  return loss_sum, count, grad


def tf_loss_and_grad(predictions, features, categories, item_index, tau, chunk_size,
                     mask=None):
  table = bank.build_bank(features, TABLE_CATEGORIES, NUM_CATEGORIES)
  predictions = tf.Variable(predictions)
  mask = item_index >= 0 if mask is None else mask
  with tf.GradientTape() as tape:
    loss_sum, count = bank.bank_infonce(
        predictions, categories, mask, item_index, table.item_rows, table.features,
        table.offsets, tau, chunk_size)
  return loss_sum.numpy(), count.numpy(), tape.gradient(loss_sum, predictions).numpy()


class BuildBankTest(tf.test.TestCase):

  def test_rows_are_unique_sorted_and_mapped(self):
    _, features, _ = make_case(0)
    table = bank.build_bank(features * 3.0, TABLE_CATEGORIES, NUM_CATEGORIES)
    # 12 items, one duplicate pair -> 11 rows; category sizes 6, 3 (4 items), 2, 0.
    self.assertAllEqual(table.offsets, [0, 6, 9, 11, 11])
    self.assertAllClose(table.features[table.item_rows], features, atol=1e-6)
    self.assertEqual(table.item_rows[2], table.item_rows[5])
    self.assertNotEqual(table.item_rows[0], table.item_rows[7])
    for c in range(1, NUM_CATEGORIES + 1):
      rows = table.item_rows[TABLE_CATEGORIES == c]
      self.assertTrue(np.all((rows >= table.offsets[c - 1]) & (rows < table.offsets[c])))

  def test_bad_category_names_the_item(self):
    with self.assertRaisesRegex(ValueError, r"bank: item 1 has category 5, not in 1..4"):
      bank.build_bank(np.ones((2, 3)), np.array([1, 5]), NUM_CATEGORIES)


class BankInfonceTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(1, 2, 3, 64)
  def test_value_and_gradient_match_reference_for_any_chunk(self, chunk_size):
    for seed in range(2):
      predictions, features, categories = make_case(seed)
      loss_sum, count, grad = tf_loss_and_grad(predictions, features, categories,
                                               ITEM_INDEX, TAU, chunk_size)
      want_sum, want_count, want_grad = reference_loss_and_grad(
          predictions, features, categories, ITEM_INDEX, TAU)
      self.assertEqual(count, want_count)
      self.assertEqual(count, 7)
      self.assertAllClose(loss_sum, want_sum, rtol=1e-5)
      self.assertAllClose(grad, want_grad, atol=1e-5, rtol=1e-4)

  def test_padding_and_unused_categories_get_nothing(self):
    predictions, features, categories = make_case(2)
    mask = ITEM_INDEX >= 0
    garbage = categories.copy()
    garbage[~mask] = 3
    first = tf_loss_and_grad(predictions, features, categories, ITEM_INDEX, TAU, 2)
    second = tf_loss_and_grad(predictions, features, garbage, ITEM_INDEX, TAU, 2, mask=mask)
    for a, b in zip(first, second):
      self.assertAllClose(a, b)
    grad = first[2]
    self.assertAllEqual(grad[2], np.zeros_like(grad[2]))  # the all-padding set
    self.assertAllEqual(grad[:, 3], np.zeros_like(grad[:, 3]))  # category 4, no items

  def test_duplicate_twin_is_not_a_negative(self):
    # Prediction equal to item 2's features: with its twin 5 sharing the row, the bank
    # holds 3 distinct category-2 rows and the loss is below log(3); the twin does not
    # add a fourth term equal to the positive.
    predictions, features, categories = make_case(3)
    predictions[0, 1] = features[2]
    item_index = np.array([[2, -1]], np.int32)
    loss_sum, count, _ = tf_loss_and_grad(predictions[:1], features, np.array([[2, 0]]),
                                          item_index, 0.01, 2)
    self.assertEqual(count, 1)
    self.assertLess(loss_sum, 1e-3)

  def test_large_gallery_is_finite_and_chunk_independent(self):
    rng = np.random.default_rng(4)
    categories = rng.integers(1, 3, size=3000).astype(np.int32)
    table = bank.build_bank(rng.normal(size=(3000, 8)), categories, 2)
    item_index = rng.integers(0, 3000, size=(6, 3)).astype(np.int32)
    batch_categories = categories[item_index]
    predictions = tf.constant(rng.normal(size=(6, 2, 8)).astype(np.float32))
    results = [bank.bank_infonce(predictions, batch_categories, item_index >= 0, item_index,
                                 table.item_rows, table.features, table.offsets, 0.05, chunk)
               for chunk in (97, 4096)]
    self.assertAllClose(results[0][0], results[1][0], rtol=1e-5)
    self.assertTrue(np.isfinite(results[0][0].numpy()))


if __name__ == "__main__":
  tf.test.main()
