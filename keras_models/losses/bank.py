"""Static negative bank: InfoNCE against every train item of the target's category.

Our targets are fixed input features, so the whole category gallery of the training split
is an exact, never-stale negative bank (SPN4CIR's second stage, where the image side is
frozen, is the model). `build_bank` sorts the unique train features by category once;
`bank_infonce` scores each prediction against its own category's rows in chunks, with a
running logsumexp forward and a recomputing backward pass (`tf.custom_gradient`), so
memory per step is `[queries, chunk]` whatever the gallery size.

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


def _chunk_list(offsets: tf.Tensor, chunk_size: int):
  """Chunks of every category's rows: category `[T]`, first row `[T]`, end row `[T]`."""
  sizes = offsets[1:] - offsets[:-1]
  per_category = (sizes + chunk_size - 1) // chunk_size
  category = tf.repeat(tf.range(tf.size(sizes)), per_category)
  within = tf.range(tf.size(category)) - tf.gather(tf.cumsum(per_category, exclusive=True),
                                                    category)
  start = tf.gather(offsets[:-1], category) + within * chunk_size
  end = tf.minimum(start + chunk_size, tf.gather(offsets[1:], category))
  return category, start, end


def category_logsumexp(queries: tf.Tensor, query_categories: tf.Tensor,
                       bank_features: tf.Tensor, offsets: tf.Tensor,
                       temperature: float | tf.Tensor, chunk_size: int) -> tf.Tensor:
  """logsumexp_j (q . b_j / tau) over the bank rows of each query's category.

  Queries are sorted by category, so each chunk of a category's rows meets only that
  category's queries: the work is sum_c |queries of c| * |rows of c|, nothing padded. The
  backward pass recomputes each chunk's softmax from the saved logsumexp instead of keeping
  every chunk's logits, so memory does not grow with the gallery.

  Args:
    queries: `[num_queries, dim]` float.
    query_categories: `[num_queries]` int in 1..K, 0 = skip (result 0, no gradient).
    bank_features: `[num_rows, dim]` float32, constant (no gradient).
    offsets: `[K + 1]` int32 row offsets of the categories.
    temperature: tau > 0.
    chunk_size: bank rows scored at a time.

  Returns:
    `[num_queries]` float32; 0 for skipped queries and categories without rows.
  """
  offsets = tf.cast(offsets, tf.int32)
  query_categories = tf.cast(query_categories, tf.int32)
  bank_features = tf.stop_gradient(tf.cast(bank_features, tf.float32))
  inverse_tau = 1.0 / tf.cast(temperature, tf.float32)
  order = tf.argsort(query_categories, stable=True)
  bounds = tf.searchsorted(tf.gather(query_categories, order)[None],
                           tf.range(1, tf.size(offsets) + 1)[None], side="left")[0]
  chunk_category, chunk_start, chunk_end = _chunk_list(offsets, chunk_size)
  num_chunks = tf.size(chunk_category)

  def chunk(q, index):
    """(slots [n, 1] of the chunk's queries, their queries [n, dim], rows, logits)."""
    low, high = bounds[chunk_category[index]], bounds[chunk_category[index] + 1]
    rows = bank_features[chunk_start[index]:chunk_end[index]]
    segment = q[low:high]
    logits = tf.matmul(segment, rows, transpose_b=True) * inverse_tau
    return tf.range(low, high)[:, None], rows, logits

  @tf.custom_gradient
  def forward(q):
    def body(index, running_max, running_sum):
      slots, _, logits = chunk(q, index)
      old_max = tf.gather_nd(running_max, slots)
      new_max = tf.maximum(old_max, tf.reduce_max(logits, axis=-1))
      new_sum = (tf.gather_nd(running_sum, slots) * tf.exp(old_max - new_max)
                 + tf.reduce_sum(tf.exp(logits - new_max[:, None]), axis=-1))
      return (index + 1, tf.tensor_scatter_nd_update(running_max, slots, new_max),
              tf.tensor_scatter_nd_update(running_sum, slots, new_sum))

    start = tf.fill(tf.shape(q)[:1], tf.constant(set_ops.MASKED_LOGIT, tf.float32))
    _, running_max, running_sum = tf.while_loop(
        lambda index, *_: index < num_chunks, body,
        (tf.constant(0), start, tf.zeros_like(start)))
    scored = running_sum > 0
    result = tf.where(scored, running_max + tf.math.log(tf.where(scored, running_sum, 1.0)),
                      0.0)

    def gradient(upstream):
      def grad_body(index, total):
        slots, rows, logits = chunk(q, index)
        weights = tf.exp(logits - tf.gather_nd(result, slots)[:, None])
        return index + 1, tf.tensor_scatter_nd_add(total, slots, tf.matmul(weights, rows))

      _, expected = tf.while_loop(lambda index, _: index < num_chunks, grad_body,
                                  (tf.constant(0), tf.zeros_like(q)))
      return tf.convert_to_tensor(upstream)[:, None] * expected * inverse_tau

    return result, gradient

  sorted_lse = forward(tf.gather(tf.cast(queries, tf.float32), order))
  return tf.gather(sorted_lse, tf.math.invert_permutation(order))


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

  lse = tf.reshape(category_logsumexp(
      tf.reshape(query, [-1, tf.shape(query)[-1]]),
      tf.reshape(tf.where(valid, categories, 0), [-1]), bank_features, bank_offsets,
      temperature, chunk_size), tf.shape(categories))

  excluded = tf.reduce_sum(
      tf.where(sibling, tf.exp(sibling_logits - lse[..., None]), 0.0), axis=-1)
  # The positive row stays in the sum, so the remainder is >= exp(positive - lse) > 0;
  # the floor only guards float rounding.
  remainder = tf.maximum(1.0 - excluded, tf.exp(positive - lse))
  per_item = lse + tf.math.log(remainder) - positive
  loss_sum = tf.reduce_sum(tf.where(valid, per_item, 0.0))
  return loss_sum, tf.reduce_sum(tf.cast(valid, tf.float32))
