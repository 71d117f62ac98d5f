"""Static negative bank: InfoNCE against every train item of the target's category.

Our targets are fixed input features, so the whole category gallery of the training split
is an exact, never-stale negative bank (SPN4CIR's second stage, where the image side is
frozen, is the model). `build_bank` sorts the unique train features by category once;
`bank_infonce` scores each prediction against its own category's rows in chunks, with a
running logsumexp forward and a recomputing backward pass (`tf.custom_gradient`), so
memory per step is `[num_categories, queries, chunk]` whatever the gallery size.

Duplicates: items of one category with identical features share one bank row (as SPN4CIR
de-duplicates its bank), so a duplicate never acts as a negative of its own twin; the
positive is found through `item_index`, never by matching features.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from keras_models.losses import set_ops


@dataclasses.dataclass(frozen=True)
class Bank:
  """Unique train features sorted by category.

  Attributes:
    features: `[num_rows, dim]` float32 unit vectors; rows of category c are
      `offsets[c - 1]:offsets[c]`.
    offsets: `[num_categories + 1]` int32 row offsets.
    item_rows: `[num_items]` int32, the bank row of every item-table row.
  """

  features: np.ndarray
  offsets: np.ndarray
  item_rows: np.ndarray


def build_bank(features: np.ndarray, categories: np.ndarray, num_categories: int) -> Bank:
  """De-duplicates (category, feature) pairs and sorts them by category.

  Args:
    features: `[num_items, dim]` item features (normalised here).
    categories: `[num_items]` int in 1..num_categories.
    num_categories: K.

  Raises:
    ValueError: if a category is outside 1..num_categories.
  """
  categories = np.asarray(categories, np.int64)
  bad = np.flatnonzero((categories < 1) | (categories > num_categories))
  if bad.size:
    raise ValueError(f"bank: item {bad[0]} has category {categories[bad[0]]}, not in "
                     f"1..{num_categories}")
  unit = np.asarray(set_ops.l2_normalize(np.asarray(features, np.float32)))
  # Lexicographic unique on [category, features] sorts rows by category first.
  keyed = np.concatenate([categories[:, None].astype(np.float64), unit.astype(np.float64)],
                         axis=1)
  unique, inverse = np.unique(keyed, axis=0, return_inverse=True)
  counts = np.bincount(unique[:, 0].astype(np.int64), minlength=num_categories + 1)
  offsets = np.concatenate([[0], np.cumsum(counts[1:])]).astype(np.int32)
  return Bank(features=unique[:, 1:].astype(np.float32), offsets=offsets,
              item_rows=inverse.reshape(-1).astype(np.int32))


def _chunk_rows(bank_features, offsets, index, chunk_size):
  """Rows `[K, chunk, dim]` of chunk `index` of every category and their mask `[K, chunk]`."""
  sizes = offsets[1:] - offsets[:-1]
  position = index * chunk_size + tf.range(chunk_size)
  in_category = position[None, :] < sizes[:, None]
  rows = tf.where(in_category, offsets[:-1, None] + position[None, :], 0)
  return tf.gather(bank_features, rows), in_category


def category_logsumexp(queries: tf.Tensor, bank_features: tf.Tensor, offsets: tf.Tensor,
                       temperature: float | tf.Tensor, chunk_size: int) -> tf.Tensor:
  """logsumexp_j (q . b_j / tau) over the bank rows of each query's category.

  The backward pass recomputes each chunk's softmax from the saved logsumexp instead of
  keeping every chunk's logits, so memory does not grow with the gallery.

  Args:
    queries: `[K, queries_per_category, dim]`; row k holds queries of category k + 1.
    bank_features: `[num_rows, dim]` float32, constant (no gradient).
    offsets: `[K + 1]` int32 row offsets of the categories.
    temperature: tau > 0.
    chunk_size: bank rows scored per category at a time.

  Returns:
    `[K, queries_per_category]` float32; -1e9 + log(chunk) for an empty category.
  """
  offsets = tf.cast(offsets, tf.int32)
  bank_features = tf.stop_gradient(tf.cast(bank_features, tf.float32))
  inverse_tau = 1.0 / tf.cast(temperature, tf.float32)
  num_chunks = (tf.reduce_max(offsets[1:] - offsets[:-1]) + chunk_size - 1) // chunk_size

  def chunk_logits(q, index):
    rows, in_category = _chunk_rows(bank_features, offsets, index, chunk_size)
    logits = tf.matmul(q, rows, transpose_b=True) * inverse_tau
    return tf.where(in_category[:, None, :], logits, set_ops.MASKED_LOGIT), rows, in_category

  @tf.custom_gradient
  def forward(q):
    def body(index, running_max, running_sum):
      logits, _, _ = chunk_logits(q, index)
      new_max = tf.maximum(running_max, tf.reduce_max(logits, axis=-1))
      running_sum = (running_sum * tf.exp(running_max - new_max)
                     + tf.reduce_sum(tf.exp(logits - new_max[..., None]), axis=-1))
      return index + 1, new_max, running_sum

    start = tf.fill(tf.shape(q)[:2], tf.constant(set_ops.MASKED_LOGIT, tf.float32))
    _, running_max, running_sum = tf.while_loop(
        lambda index, *_: index < num_chunks, body,
        (tf.constant(0), start, tf.zeros_like(start)))
    result = running_max + tf.math.log(running_sum)

    def gradient(upstream):
      def grad_body(index, total):
        logits, rows, in_category = chunk_logits(q, index)
        weights = tf.where(in_category[:, None, :],
                           tf.exp(logits - result[..., None]), 0.0)
        return index + 1, total + tf.matmul(weights, rows)

      _, expected = tf.while_loop(lambda index, _: index < num_chunks, grad_body,
                                  (tf.constant(0), tf.zeros_like(q)))
      return upstream[..., None] * expected * inverse_tau

    return result, gradient

  return forward(tf.cast(queries, tf.float32))


def _group_by_category(categories: tf.Tensor, valid: tf.Tensor, num_categories: tf.Tensor):
  """Slots of flat queries in a `[K, max_per_category]` layout.

  Returns:
    index: `[K, max_per_category]` int32 flat query index, -1 = empty slot.
    slot: `[num_queries, 2]` int32 (category - 1, rank) of each query (0, 0 if invalid).
  """
  one_hot = tf.one_hot(tf.maximum(categories - 1, 0), num_categories, dtype=tf.int32)
  one_hot *= tf.cast(valid, tf.int32)[:, None]
  rank = tf.reduce_sum((tf.cumsum(one_hot, axis=0) - 1) * one_hot, axis=1)
  slot = tf.stack([tf.where(valid, categories - 1, 0), rank], axis=1)
  width = tf.maximum(tf.reduce_max(tf.reduce_sum(one_hot, axis=0)), 1)
  index = tf.scatter_nd(tf.boolean_mask(slot, valid),
                        tf.boolean_mask(tf.range(tf.shape(categories)[0]) + 1, valid),
                        tf.stack([num_categories, width])) - 1
  return index, slot


def bank_infonce(predictions: tf.Tensor, target_categories: tf.Tensor,
                 target_mask: tf.Tensor, target_item_index: tf.Tensor,
                 item_rows: tf.Tensor, bank_features: tf.Tensor, bank_offsets: tf.Tensor,
                 temperature: float | tf.Tensor, chunk_size: int
                 ) -> tuple[tf.Tensor, tf.Tensor]:
  """Sum of bank InfoNCE losses over target items, and their count.

  For a valid target item y in set b, category c, bank row r(y), p = predictions[b, c - 1]
  normalised and b_j the bank rows of category c:

    loss_y = -log( exp(p . b_r(y) / tau) / sum_{j in B_c \\ S(y)} exp(p . b_j / tau) )

  where S(y) are the rows of y's other same-category items in set b (other than r(y)):
  they are matches of the same set, so not negatives, as in `infonce.category_infonce`.
  Every valid item counts; the caller divides by the count summed over replicas.

  Args:
    predictions: `[batch, K, dim]` one vector per category.
    target_categories: `[batch, set_size]` int in 1..K, 0 = pad.
    target_mask: `[batch, set_size]` bool.
    target_item_index: `[batch, set_size]` int rows of the train item table, -1 = pad.
    item_rows: `[num_items]` int32 bank row of each item-table row (`Bank.item_rows`).
    bank_features: `[num_rows, dim]` float32 unit bank rows sorted by category.
    bank_offsets: `[K + 1]` int32 category row offsets.
    temperature: tau > 0.
    chunk_size: bank rows scored per category at a time.

  Returns:
    loss_sum: scalar float32; num_valid: scalar float32.
  """
  categories = tf.cast(target_categories, tf.int32)
  item_index = tf.cast(target_item_index, tf.int32)
  valid = tf.cast(target_mask, tf.bool) & (categories > 0) & (item_index >= 0)
  bank_features = tf.cast(bank_features, tf.float32)
  rows = tf.where(valid, tf.gather(tf.cast(item_rows, tf.int32), tf.maximum(item_index, 0)), -1)
  query = set_ops.l2_normalize(set_ops.gather_category_predictions(predictions, categories))
  inverse_tau = 1.0 / tf.cast(temperature, tf.float32)
  own_rows = tf.gather(bank_features, tf.maximum(rows, 0))
  positive = tf.reduce_sum(query * own_rows, axis=-1) * inverse_tau

  # [batch, s, t]: item t's row is excluded from item s's denominator.
  set_size = tf.shape(categories)[1]
  row_t = rows[:, None, :]
  earlier_same_row = tf.reduce_any(
      (rows[:, :, None] == rows[:, None, :]) & (tf.range(set_size)[:, None] < tf.range(set_size)),
      axis=1)
  sibling = (valid[:, :, None] & valid[:, None, :]
             & (categories[:, :, None] == categories[:, None, :])
             & (rows[:, :, None] != row_t) & ~earlier_same_row[:, None, :])
  sibling_logits = tf.einsum("bsd,btd->bst", query, own_rows) * inverse_tau

  flat_valid = tf.reshape(valid, [-1])
  flat_query = tf.reshape(query, [-1, tf.shape(query)[-1]])
  index, slot = _group_by_category(tf.reshape(categories, [-1]), flat_valid,
                                   tf.shape(predictions)[1])
  grouped = tf.where((index >= 0)[..., None], tf.gather(flat_query, tf.maximum(index, 0)), 0.0)
  grouped_lse = category_logsumexp(grouped, bank_features, bank_offsets, temperature,
                                   chunk_size)
  lse = tf.reshape(tf.gather_nd(grouped_lse, slot), tf.shape(categories))

  excluded = tf.reduce_sum(
      tf.where(sibling, tf.exp(sibling_logits - lse[..., None]), 0.0), axis=-1)
  # The positive row stays in the sum, so the remainder is >= exp(positive - lse) > 0;
  # the floor only guards float rounding.
  remainder = tf.maximum(1.0 - excluded, tf.exp(positive - lse))
  per_item = lse + tf.math.log(remainder) - positive
  loss_sum = tf.reduce_sum(tf.where(valid, per_item, 0.0))
  return loss_sum, tf.reduce_sum(tf.cast(valid, tf.float32))
