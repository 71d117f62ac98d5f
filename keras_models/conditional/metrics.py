"""Conditional retrieval (exact streaming cosine top-k with exclusions) and its two metrics.

- `condition_precision_at_k` = (1/Q) sum_q (1/k) sum_{r <= k} [class(ret_{q,r}) = c_q]:
  the figure Backward Search calls "mAP@10" (it is mean precision@10, not an AP).
- `context_preservation` = (1/Q) sum_q mean_{r <= k} cos(z0_q, ret_{q,r}): how close the
  retrieved items stay to the query item (Backward Search's own context measure, mSIM@10,
  needs tags we do not have).

Empty slots (a filtered gallery with fewer than k items) count as non-relevant in the
precision and are left out of the context mean.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_models import configs
from keras_models.metrics import streaming


def retrieve(queries: np.ndarray, excluded_rows: np.ndarray, only_category: np.ndarray,
             gallery: np.ndarray | tf.Tensor, gallery_categories: np.ndarray, k: int,
             ranker: streaming.ChunkedRanker | None = None,
             chunk_size: int = configs.GALLERY_CHUNK_SIZE) -> tuple[np.ndarray, np.ndarray]:
  """Cosine top-k of each query over the gallery, with per-query exclusions.

  The exact streaming top-(k + 1) (`streaming.ChunkedRanker`), so memory is bounded by its
  [query chunk, gallery chunk] score blocks, never [Q, G]: queries restricted to a
  category are ranked against that category's rows only, the others against the whole
  gallery, and the excluded row is dropped from the k + 1 found (or the last of them).
  Equal scores keep gallery order.

  Args:
    queries: `[Q, D]` float32 query vectors (normalised inside).
    excluded_rows: `[Q]` int gallery row never returned (the query item), -1 for none.
    only_category: `[Q]` int category (> 0) the results must have, -1 for any.
    gallery: `[G, D]` float32 L2-normalised gallery vectors.
    gallery_categories: `[G]` int categories (> 0).
    k: results per query.
    ranker: the exact streaming top-k; a default one when None.
    chunk_size: gallery rows scored per fold.

  Returns:
    (rows, valid): `[Q, k]` int32 gallery rows best first (0 in empty slots) and `[Q, k]`
    bool, False for empty slots (a category with fewer than k items).
  """
  ranker = ranker or streaming.ChunkedRanker()
  queries = tf.math.l2_normalize(tf.constant(queries, tf.float32), axis=1)
  excluded_rows = np.asarray(excluded_rows, np.int64)
  only_category = np.asarray(only_category, np.int64)
  gallery_categories = np.asarray(gallery_categories, np.int64)
  ids = np.arange(len(gallery_categories), dtype=np.int64)
  found = np.full([len(excluded_rows), k + 1], -1, np.int64)
  # Unrestricted queries rank every row (one shared category); restricted ones their own.
  unrestricted = only_category < 0
  for selected, query_categories, categories in (
      (unrestricted, np.ones_like(only_category), np.ones_like(gallery_categories)),
      (~unrestricted, only_category, gallery_categories)):
    if selected.any():
      block = np.flatnonzero(selected)
      _, found[block] = ranker.top_k(tf.gather(queries, block), query_categories[block],
                                     gallery, categories, ids, k + 1, chunk_size)
  kept = np.argsort(found == excluded_rows[:, np.newaxis], axis=1, kind="stable")[:, :k]
  found = np.take_along_axis(found, kept, axis=1)
  valid = found >= 0
  return np.where(valid, found, 0).astype(np.int32), valid


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
