"""Conditional retrieval (cosine top-k with exclusions) and its two metrics, pure functions.

- `condition_precision_at_k` = (1/Q) sum_q (1/k) sum_{r <= k} [class(ret_{q,r}) = c_q]:
  the figure Backward Search calls "mAP@10" (it is mean precision@10, not an AP).
- `context_preservation` = (1/Q) sum_q mean_{r <= k} cos(z0_q, ret_{q,r}): how close the
  retrieved items stay to the query item (Backward Search's own context measure, mSIM@10,
  needs tags we do not have).

Empty slots (a filtered gallery with fewer than k items) count as non-relevant in the
precision and are left out of the context mean.
"""

from __future__ import annotations

import tensorflow as tf


@tf.function(input_signature=[
    tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32),
    tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)])
def retrieve(queries, excluded_rows, only_category, gallery, gallery_categories, k):
  """Cosine top-k of each query over the gallery, with per-query exclusions.

  Args:
    queries: `[Q, D]` float32 query vectors (normalised inside).
    excluded_rows: `[Q]` int32 gallery row never returned (the query item), -1 for none.
    only_category: `[Q]` int32 category the results must have, -1 for any.
    gallery: `[G, D]` float32 L2-normalised gallery vectors.
    gallery_categories: `[G]` int32.
    k: results per query.

  Returns:
    (rows, valid): `[Q, k]` int32 gallery rows best first and `[Q, k]` bool, False for
    empty slots.
  """
  scores = tf.matmul(tf.math.l2_normalize(queries, axis=1), gallery, transpose_b=True)
  columns = tf.range(tf.shape(gallery)[0])[tf.newaxis, :]
  masked = tf.equal(columns, excluded_rows[:, tf.newaxis]) | (
      (only_category[:, tf.newaxis] >= 0)
      & tf.not_equal(gallery_categories[tf.newaxis, :], only_category[:, tf.newaxis]))
  top = tf.math.top_k(tf.where(masked, float("-inf"), scores), k=k)
  return top.indices, tf.math.is_finite(top.values)


def condition_precision_at_k(retrieved_categories: tf.Tensor, valid: tf.Tensor,
                             conditions: tf.Tensor) -> tf.Tensor:
  """Mean precision@k with relevance = retrieved category equals the condition.

  Args:
    retrieved_categories: `[Q, k]` int categories of the results.
    valid: `[Q, k]` bool, False for empty slots.
    conditions: `[Q]` int condition c of each query.

  Returns:
    float32 scalar ("mAP@10" in Backward Search's sense when k = 10).
  """
  relevant = valid & tf.equal(retrieved_categories, conditions[:, tf.newaxis])
  return tf.reduce_mean(tf.reduce_mean(tf.cast(relevant, tf.float32), axis=1))


def context_preservation(z0: tf.Tensor, retrieved: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
  """Mean over queries of the mean cosine between z0 and its valid results.

  Args:
    z0: `[Q, D]` float query vectors (normalised inside).
    retrieved: `[Q, k, D]` float L2-normalised result vectors.
    valid: `[Q, k]` bool.

  Returns:
    float32 scalar; queries with no valid result are left out.
  """
  cosine = tf.einsum("qd,qkd->qk", tf.math.l2_normalize(z0, axis=1), retrieved)
  weights = tf.cast(valid, tf.float32)
  counts = tf.reduce_sum(weights, axis=1)
  per_query = tf.math.divide_no_nan(tf.reduce_sum(cosine * weights, axis=1), counts)
  has_any = counts > 0
  return tf.reduce_mean(tf.boolean_mask(per_query, has_any))
