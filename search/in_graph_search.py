"""Exact per-category top-k over a gallery variable, in core TF ops only (for SavedModels).

The gallery is stored sorted by category, so category c is the contiguous row range
`offsets[c - 1]:offsets[c]`. Each query walks its own category's range in `chunk_size`
rows with a `tf.while_loop`, folding every chunk into a running `[1, k]` top-k with the
same fold as `keras_models.metrics.streaming.ChunkedRanker` (so ties keep the lower row
and slots beyond a category's size stay empty). The score block held at any time is
`[1, chunk_size]` and each chunk is a slice of the variable's value, not a copy of the
gallery, so a 1M x 512 gallery needs no more than the variable itself.

Empty slots (k larger than what the category holds after exclusion) have score -inf and
row -1; `item_ids` maps them to the empty string.
"""

from __future__ import annotations

import tensorflow as tf

from keras_models.metrics import streaming

NEGATIVE_INFINITY = float("-inf")


def _query_top_k(gallery: tf.Tensor, start: tf.Tensor, end: tf.Tensor, query: tf.Tensor,
                 k: tf.Tensor, chunk_size: int) -> tuple[tf.Tensor, tf.Tensor]:
  """Top k of rows `start:end` of `gallery` `[N, D]` for one `query` `[D]`: `[k]`, `[k]`."""
  queries = query[tf.newaxis]

  def fold(position, top_scores, top_rows):
    chunk_end = tf.minimum(position + chunk_size, end)
    chunk = tf.slice(gallery, tf.stack([position, 0]), tf.stack([chunk_end - position, -1]))
    # Same fold as ChunkedRanker.top_k: identical tie order and empty-slot handling.
    top_scores, top_rows = streaming._fold_top_k(  # pylint: disable=protected-access
        top_scores, top_rows, queries, chunk, tf.range(position, chunk_end))
    return chunk_end, top_scores, top_rows

  initial = (start, tf.fill(tf.stack([1, k]), NEGATIVE_INFINITY),
             tf.fill(tf.stack([1, k]), tf.constant(-1, tf.int64)))
  _, scores, rows = tf.while_loop(
      lambda position, *_: position < end, fold, initial,
      shape_invariants=(start.shape, tf.TensorShape([1, None]), tf.TensorShape([1, None])))
  return scores[0], rows[0]


def category_top_k(gallery: tf.Tensor, offsets: tf.Tensor, queries: tf.Tensor,
                   categories: tf.Tensor, k: tf.Tensor, exclude_rows: tf.Tensor,
                   chunk_size: int) -> tuple[tf.Tensor, tf.Tensor]:
  """Exact top-k of each query within its category's gallery rows, minus excluded rows.

  Args:
    gallery: `[N, D]` float32 unit rows sorted by category.
    offsets: `[K + 1]` int64; category c holds rows `offsets[c - 1]:offsets[c]`.
    queries: `[m, D]` float32 query vectors.
    categories: `[m]` int32 category id of each query, in 1..K (checked by the caller).
    k: int32 scalar >= 1.
    exclude_rows: `[e]` int64 gallery rows that must not be returned (-1 entries ignored).
    chunk_size: gallery rows scored per step.

  Returns:
    (scores, rows): `[m, k]` float32 inner products, descending (ties: lower row first),
    -inf in empty slots, and `[m, k]` int64 gallery rows, -1 in empty slots.
  """
  exclude_rows = tf.reshape(exclude_rows, [-1])  # hash-table lookups have unknown rank
  exclude_rows = tf.boolean_mask(exclude_rows, exclude_rows >= 0)
  fetched = k + tf.size(exclude_rows)
  starts = tf.gather(offsets, categories - 1)
  ends = tf.gather(offsets, categories)

  def one(arguments):
    query, start, end = arguments
    return _query_top_k(gallery, start, end, query, fetched, chunk_size)

  scores, rows = tf.map_fn(
      one, (queries, starts, ends),
      fn_output_signature=(tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int64)))
  # Fetch k + e, drop the excluded rows, keep the best k: top_k is stable on ties.
  excluded = tf.reduce_any(rows[:, :, tf.newaxis] == exclude_rows[tf.newaxis, tf.newaxis],
                           axis=2)
  scores = tf.where(excluded, NEGATIVE_INFINITY, scores)
  scores, kept = tf.math.top_k(scores, k=k)
  rows = tf.gather(rows, kept, batch_dims=1)
  return scores, tf.where(tf.math.is_inf(scores), tf.constant(-1, tf.int64), rows)


def item_ids(gallery_item_ids: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
  """`[m, k]` string ids of gallery `rows` `[m, k]`, "" where the row is -1."""
  return tf.where(rows >= 0, tf.gather(gallery_item_ids, tf.maximum(rows, 0)), "")
