"""Rank-based retrieval metrics as pure TensorFlow functions.

Protocol: a query q of category c has one positive gallery item. Its gallery G_c is the
gallery items of category c, scored by s(g) = <q, g> (cosine similarity when the caller
passes L2-normalised vectors, see `l2_normalize`). Ties are counted pessimistically:

    rank = 1 + #{g in G_c : s(g) > s(pos)} + #{g in G_c, id(g) != id(pos) : s(g) == s(pos)}

so a predictor that scores every item alike gets rank |G_c| and cannot look good.
Category ids are 1..K; 0 marks padding (queries or gallery rows) and is ignored.

Every function traces under `tf.function` and has no Python loop over queries or
categories.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf


def l2_normalize(vectors: tf.Tensor) -> tf.Tensor:
  """Scales rows to unit L2 norm so that dot products become cosine similarities.

  Args:
    vectors: `[num_vectors, dim]` float tensor.

  Returns:
    `[num_vectors, dim]` float tensor; all-zero rows stay zero.
  """
  return tf.math.l2_normalize(vectors, axis=-1)


def gallery_sizes_for_queries(
    query_categories: tf.Tensor, gallery_categories: tf.Tensor, num_categories: int
) -> tf.Tensor:
  """Returns |G_c| for each query's category c (0 for padding queries).

  Args:
    query_categories: `[num_queries]` int category ids, 0 = padding.
    gallery_categories: `[gallery_size]` int category ids, 0 = padding row.
    num_categories: K, the largest category id.

  Returns:
    `[num_queries]` int32 gallery sizes.
  """
  gallery_categories = tf.cast(gallery_categories, tf.int32)
  valid = (gallery_categories > 0) & (gallery_categories <= num_categories)
  sizes = tf.math.unsorted_segment_sum(
      tf.cast(valid, tf.int32), tf.where(valid, gallery_categories, 0), num_categories + 1
  )
  query_categories = tf.cast(query_categories, tf.int32)
  in_range = (query_categories >= 0) & (query_categories <= num_categories)
  return tf.gather(sizes, tf.where(in_range, query_categories, 0))


def rank_counts(
    queries: tf.Tensor,
    positive_scores: tf.Tensor,
    query_categories: tf.Tensor,
    positive_ids: tf.Tensor,
    gallery: tf.Tensor,
    gallery_categories: tf.Tensor,
    gallery_ids: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
  """Counts same-category gallery items scored above or equal to each positive.

  The positive itself (matched by id) is left out of both counts. Mathematically it can
  never beat its own score, but its matmul score may differ from `positive_scores` by
  rounding, and counting it would shift ranks by one. Ties are exact float equality.
  Counts from gallery chunks add up, which `streaming.ChunkedRanker` relies on.

  Args:
    queries: `[num_queries, dim]` float query vectors.
    positive_scores: `[num_queries]` float s(pos) for each query.
    query_categories: `[num_queries]` int category ids, 0 = padding (counts are 0).
    positive_ids: `[num_queries]` int64 gallery id of each query's positive.
    gallery: `[gallery_size, dim]` float gallery vectors.
    gallery_categories: `[gallery_size]` int category ids, 0 = padding row.
    gallery_ids: `[gallery_size]` int64 gallery ids.

  Returns:
    (num_greater, num_ties): `[num_queries]` int32 each, so that
    rank = 1 + num_greater + num_ties.
  """
  scores = tf.matmul(queries, gallery, transpose_b=True)
  query_categories = tf.cast(query_categories, tf.int32)[:, tf.newaxis]
  gallery_categories = tf.cast(gallery_categories, tf.int32)[tf.newaxis, :]
  candidate = (
      tf.equal(query_categories, gallery_categories)
      & (gallery_categories > 0)
      & _not_positive(positive_ids, gallery_ids)
  )
  return _count_above(scores, positive_scores, candidate)


def rank_counts_within_category(
    queries: tf.Tensor,
    positive_scores: tf.Tensor,
    positive_ids: tf.Tensor,
    gallery: tf.Tensor,
    gallery_ids: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
  """`rank_counts` for queries and gallery rows all of one category: no category mask.

  `streaming.ChunkedRanker` groups queries and gallery by category and calls this on each
  group, which skips the [Q, G] category comparison and the other categories' matmul.

  Args:
    queries: `[num_queries, dim]` float query vectors.
    positive_scores: `[num_queries]` float s(pos) for each query.
    positive_ids: `[num_queries]` int64 gallery id of each query's positive.
    gallery: `[gallery_size, dim]` float gallery vectors of the queries' category.
    gallery_ids: `[gallery_size]` int64 gallery ids.

  Returns:
    (num_greater, num_ties): `[num_queries]` int32 each.
  """
  scores = tf.matmul(queries, gallery, transpose_b=True)
  return _count_above(scores, positive_scores, _not_positive(positive_ids, gallery_ids))


def _not_positive(positive_ids: tf.Tensor, gallery_ids: tf.Tensor) -> tf.Tensor:
  return tf.not_equal(
      tf.cast(positive_ids, tf.int64)[:, tf.newaxis],
      tf.cast(gallery_ids, tf.int64)[tf.newaxis, :],
  )


def _count_above(
    scores: tf.Tensor, positive_scores: tf.Tensor, candidate: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
  positive_scores = tf.cast(positive_scores, scores.dtype)[:, tf.newaxis]
  greater = candidate & (scores > positive_scores)
  ties = candidate & tf.equal(scores, positive_scores)
  return (
      tf.reduce_sum(tf.cast(greater, tf.int32), axis=1),
      tf.reduce_sum(tf.cast(ties, tf.int32), axis=1),
  )


def top_percent_hits(ranks: tf.Tensor, gallery_sizes: tf.Tensor, percent: float) -> tf.Tensor:
  """Top-K% hit: rank <= max(1, floor(K / 100 * |G_c|)).

  The cutoff is computed as floor(K * |G_c| / 100) in float64: multiplying first keeps
  integer products exact, where floor(0.29 * 100) would give 28.

  Args:
    ranks: `[num_queries]` int ranks (1 = best).
    gallery_sizes: `[num_queries]` int |G_c| of each query's category.
    percent: K, in percent.

  Returns:
    `[num_queries]` float32 1.0 for a hit, else 0.0.
  """
  sizes = tf.cast(gallery_sizes, tf.float64)
  cutoff = tf.maximum(tf.floor(float(percent) * sizes / 100.0), 1.0)
  return tf.cast(tf.cast(ranks, tf.float64) <= cutoff, tf.float32)


def reciprocal_ranks(ranks: tf.Tensor) -> tf.Tensor:
  """Reciprocal rank 1 / rank; its mean is the MRR.

  Args:
    ranks: `[num_queries]` int ranks (1 = best).

  Returns:
    `[num_queries]` float32.
  """
  return 1.0 / tf.cast(ranks, tf.float32)


def percentile_ranks(ranks: tf.Tensor, gallery_sizes: tf.Tensor) -> tf.Tensor:
  """Percentile rank (rank - 1) / max(|G_c| - 1, 1): 0 = best, 1 = worst, 0.5 = random.

  Args:
    ranks: `[num_queries]` int ranks (1 = best).
    gallery_sizes: `[num_queries]` int |G_c| of each query's category.

  Returns:
    `[num_queries]` float32 in [0, 1].
  """
  denominator = tf.maximum(tf.cast(gallery_sizes, tf.float32) - 1.0, 1.0)
  return (tf.cast(ranks, tf.float32) - 1.0) / denominator


def recall_at_k(ranks: tf.Tensor, k: int) -> tf.Tensor:
  """Recall@k hit for one positive: rank <= k; its mean is Recall@k.

  Args:
    ranks: `[num_queries]` int ranks (1 = best).
    k: absolute cutoff.

  Returns:
    `[num_queries]` float32 1.0 for a hit, else 0.0.
  """
  return tf.cast(tf.cast(ranks, tf.int64) <= k, tf.float32)


def average_precision_at_k(relevance: tf.Tensor, num_relevant: tf.Tensor) -> tf.Tensor:
  """AP@k = (1 / min(R, k)) * sum_{i <= k} P@i * rel_i, and 0 when R == 0.

  P@i = (1 / i) * sum_{j <= i} rel_j. The mean over queries is mAP@k.

  Args:
    relevance: `[num_queries, k]` bool or 0/1, relevance of the top-k ranked items.
    num_relevant: `[num_queries]` int R, relevant items in the whole gallery.

  Returns:
    `[num_queries]` float32.
  """
  relevance = tf.cast(relevance, tf.float32)
  k = tf.shape(relevance)[1]
  positions = tf.cast(tf.range(1, k + 1), tf.float32)
  precision = tf.cumsum(relevance, axis=1) / positions
  denominator = tf.minimum(tf.cast(num_relevant, tf.float32), tf.cast(k, tf.float32))
  return tf.math.divide_no_nan(tf.reduce_sum(precision * relevance, axis=1), denominator)


def average_precision_at_k_from_ranks(ranks: tf.Tensor, k: int) -> tf.Tensor:
  """AP@k with one relevant item (R = 1): 1 / rank if rank <= k, else 0.

  Args:
    ranks: `[num_queries]` int ranks (1 = best).
    k: cutoff.

  Returns:
    `[num_queries]` float32.
  """
  return recall_at_k(ranks, k) * reciprocal_ranks(ranks)


def _segment_medians(values: tf.Tensor, segment_ids: tf.Tensor, num_segments: int) -> tf.Tensor:
  """Median (mean of the two middle values when even) per segment; NaN when empty."""
  # Two stable sorts give the order by (segment, value), so each segment is a contiguous
  # sorted run whose middle sits at a known offset.
  order = tf.argsort(values, stable=True)
  order = tf.gather(order, tf.argsort(tf.gather(segment_ids, order), stable=True))
  # A trailing NaN gives empty segments (and empty inputs) something to gather.
  sorted_values = tf.concat([tf.gather(values, order), [float("nan")]], axis=0)
  counts = tf.math.unsorted_segment_sum(tf.ones_like(segment_ids), segment_ids, num_segments)
  starts = tf.cumsum(counts, exclusive=True)
  last = tf.shape(values)[0]
  low = tf.clip_by_value(starts + (counts - 1) // 2, 0, last)
  high = tf.clip_by_value(starts + counts // 2, 0, last)
  medians = 0.5 * (tf.gather(sorted_values, low) + tf.gather(sorted_values, high))
  return tf.where(counts > 0, medians, float("nan"))


def summarize(
    ranks: tf.Tensor,
    gallery_sizes: tf.Tensor,
    categories: tf.Tensor,
    num_categories: int,
    top_percents: Sequence[float] = (5, 10, 20),
    recall_ks: Sequence[int] = (1, 5, 10),
    map_ks: Sequence[int] = (10,),
    extra: Mapping[str, tf.Tensor] | None = None,
) -> Mapping[str, tf.Tensor]:
  """Micro, macro and per-category averages of every rank metric.

  micro = mean over valid queries; per_category[c] = mean over queries of category c
  (NaN when c has none); macro = mean of per_category over categories with >= 1 query.
  median_percentile_rank uses medians instead of means (macro = mean of the medians).
  Queries with category 0 (or outside 1..K) are ignored. With no valid query, micro and
  macro are NaN.

  Args:
    ranks: `[num_queries]` int ranks (1 = best).
    gallery_sizes: `[num_queries]` int |G_c| of each query's category.
    categories: `[num_queries]` int category ids in 1..K, 0 = padding.
    num_categories: K.
    top_percents: K values for `top_{K}_percent` (fractions in [0, 1]).
    recall_ks: k values for `recall_at_{k}`.
    map_ks: k values for `map_at_{k}`.
    extra: more per-query metrics, name -> `[num_queries]` float values (e.g. `fitb_4`
      hits from `fitb.hits`), averaged like the others.

  Returns:
    Dict with keys `micro/<metric>` and `macro/<metric>` (float32 scalars) and
    `per_category/<metric>` (`[num_categories]` float32, index c - 1 for category c),
    for metrics top_{K}_percent, mrr, mean_percentile_rank, median_percentile_rank,
    recall_at_{k}, map_at_{k} and the `extra` names; plus `per_category/count` (`[num_categories]` int32)
    and `micro/count` (int32 scalar), the valid queries.
  """
  categories = tf.cast(categories, tf.int32)
  valid = (categories > 0) & (categories <= num_categories)
  segments = tf.where(valid, categories, 0)
  num_segments = num_categories + 1
  percentiles = percentile_ranks(ranks, gallery_sizes)

  per_query = {}
  for percent in top_percents:
    per_query[f"top_{percent:g}_percent"] = top_percent_hits(ranks, gallery_sizes, percent)
  per_query["mrr"] = reciprocal_ranks(ranks)
  per_query["mean_percentile_rank"] = percentiles
  for k in recall_ks:
    per_query[f"recall_at_{k}"] = recall_at_k(ranks, k)
  for k in map_ks:
    per_query[f"map_at_{k}"] = average_precision_at_k_from_ranks(ranks, k)
  for name, values in (extra or {}).items():
    per_query[name] = tf.cast(values, tf.float32)

  counts = tf.math.unsorted_segment_sum(tf.ones_like(percentiles), segments, num_segments)[1:]
  has_queries = counts > 0
  num_queries = tf.reduce_sum(counts)
  num_active = tf.reduce_sum(tf.cast(has_queries, tf.float32))

  def macro(per_category: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.where(has_queries, per_category, 0.0)) / num_active

  results = {}
  for name, values in per_query.items():
    sums = tf.math.unsorted_segment_sum(values, segments, num_segments)[1:]
    per_category = sums / counts
    results[f"micro/{name}"] = tf.reduce_sum(sums) / num_queries
    results[f"macro/{name}"] = macro(per_category)
    results[f"per_category/{name}"] = per_category
  medians = _segment_medians(percentiles, segments, num_segments)[1:]
  results["micro/median_percentile_rank"] = _segment_medians(
      percentiles, tf.cast(valid, tf.int32), 2
  )[1]
  results["macro/median_percentile_rank"] = macro(medians)
  results["per_category/median_percentile_rank"] = medians
  results["per_category/count"] = tf.cast(counts, tf.int32)
  results["micro/count"] = tf.cast(num_queries, tf.int32)
  return results
