"""Exact ranking and top-k over a large gallery, one gallery chunk at a time.

Follows tensorflow_recommenders' `Streaming` top-k: score a chunk of the gallery, fold it
into a running result, move on. Queries are processed in blocks as well, so the score
matrix held at any time is `[query_chunk_size, gallery_chunk_size]`, never `[Q, G]`.
Each fold is a `tf.function` with an `input_signature` whose leading dimensions are
`None`, so the last, shorter chunk reuses the same graph.
"""

import numpy as np
import tensorflow as tf

from keras_models.metrics import ranking

_MATRIX = tf.TensorSpec([None, None], tf.float32)
_SCORES = tf.TensorSpec([None], tf.float32)
_CATEGORIES = tf.TensorSpec([None], tf.int32)
_IDS = tf.TensorSpec([None], tf.int64)
_COUNTS = tf.TensorSpec([None], tf.int32)
_ID_MATRIX = tf.TensorSpec([None, None], tf.int64)

TensorLike = np.ndarray | tf.Tensor


def _positive_scores(queries: tf.Tensor, positive_features: tf.Tensor) -> tf.Tensor:
  return tf.reduce_sum(queries * positive_features, axis=1)


def _fold_rank_counts(
    num_greater: tf.Tensor,
    num_ties: tf.Tensor,
    queries: tf.Tensor,
    positive_scores: tf.Tensor,
    query_categories: tf.Tensor,
    positive_ids: tf.Tensor,
    gallery: tf.Tensor,
    gallery_categories: tf.Tensor,
    gallery_ids: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
  greater, ties = ranking.rank_counts(
      queries, positive_scores, query_categories, positive_ids,
      gallery, gallery_categories, gallery_ids,
  )
  return num_greater + greater, num_ties + ties


def _fold_top_k(
    top_scores: tf.Tensor,
    top_ids: tf.Tensor,
    queries: tf.Tensor,
    query_categories: tf.Tensor,
    gallery: tf.Tensor,
    gallery_categories: tf.Tensor,
    gallery_ids: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
  scores = tf.matmul(queries, gallery, transpose_b=True)
  allowed = tf.equal(query_categories[:, tf.newaxis], gallery_categories[tf.newaxis, :]) & (
      gallery_categories[tf.newaxis, :] > 0
  )
  scores = tf.where(allowed, scores, float("-inf"))
  # Reduce the chunk to its own top k before merging: the merge then touches [Q, 2k]
  # values instead of broadcasting int64 ids over the whole [Q, chunk] score block.
  # top_k keeps the lower position on ties in both steps, so the result is unchanged.
  k = tf.shape(top_scores)[1]
  chunk_scores, chunk_positions = tf.math.top_k(scores, k=tf.minimum(k, tf.shape(scores)[1]))
  candidate_scores = tf.concat([top_scores, chunk_scores], axis=1)
  candidate_ids = tf.concat([top_ids, tf.gather(gallery_ids, chunk_positions)], axis=1)
  top_scores, positions = tf.math.top_k(candidate_scores, k=k)
  top_ids = tf.gather(candidate_ids, positions, batch_dims=1)
  # Masked items score -inf like the padding slots; their ids must not fill those slots.
  empty = tf.equal(top_scores, float("-inf"))
  top_ids = tf.where(empty, tf.constant(-1, tf.int64), top_ids)
  return top_scores, top_ids


def _floats(values: TensorLike) -> tf.Tensor:
  return tf.cast(tf.convert_to_tensor(values), tf.float32)


def _ints(values: TensorLike, dtype: tf.DType) -> tf.Tensor:
  return tf.cast(tf.convert_to_tensor(values), dtype)


def _check_positive(name: str, value: int) -> None:
  if int(value) < 1:
    raise ValueError(f"ChunkedRanker: {name} must be >= 1, got {value}")


class ChunkedRanker:
  """Exact per-category ranks and top-k with memory bounded by two chunk sizes.

  Scores are plain dot products; pass L2-normalised vectors for cosine similarity. Ranks
  follow `ranking.rank_counts` (pessimistic ties, category 0 = padding).
  """

  def __init__(self, query_chunk_size: int = 4096) -> None:
    """Builds the traced fold functions.

    Args:
      query_chunk_size: queries scored together against one gallery chunk.

    Raises:
      ValueError: if `query_chunk_size` < 1.
    """
    _check_positive("query_chunk_size", query_chunk_size)
    self.query_chunk_size = int(query_chunk_size)
    self._positive_scores = tf.function(_positive_scores, input_signature=[_MATRIX, _MATRIX])
    self._fold_rank_counts = tf.function(
        _fold_rank_counts,
        input_signature=[
            _COUNTS, _COUNTS, _MATRIX, _SCORES, _CATEGORIES, _IDS, _MATRIX, _CATEGORIES, _IDS
        ],
    )
    self._fold_top_k = tf.function(
        _fold_top_k,
        input_signature=[_MATRIX, _ID_MATRIX, _MATRIX, _CATEGORIES, _MATRIX, _CATEGORIES, _IDS],
    )

  def tracing_counts(self) -> dict[str, int]:
    """Returns how often each traced function was traced (1 each once used)."""
    return {
        "positive_scores": self._positive_scores.experimental_get_tracing_count(),
        "fold_rank_counts": self._fold_rank_counts.experimental_get_tracing_count(),
        "fold_top_k": self._fold_top_k.experimental_get_tracing_count(),
    }

  def ranks(
      self,
      queries: TensorLike,
      query_categories: TensorLike,
      positive_ids: TensorLike,
      positive_features: TensorLike,
      gallery: TensorLike,
      gallery_categories: TensorLike,
      gallery_ids: TensorLike,
      chunk_size: int,
  ) -> np.ndarray:
    """Rank of each query's positive within its category's gallery.

    rank = 1 + #{g in G_c : s(g) > s(pos)} + #{g in G_c, id(g) != id(pos) : s(g) == s(pos)}
    with s(pos) = sum(q * positive_features).

    Args:
      queries: `[num_queries, dim]` float query vectors.
      query_categories: `[num_queries]` int category ids, 0 = padding (rank 1).
      positive_ids: `[num_queries]` int64 gallery id of each positive.
      positive_features: `[num_queries, dim]` float gallery vector of each positive.
      gallery: `[gallery_size, dim]` float gallery vectors.
      gallery_categories: `[gallery_size]` int category ids, 0 = padding row.
      gallery_ids: `[gallery_size]` int64 gallery ids.
      chunk_size: gallery rows scored per fold.

    Returns:
      `[num_queries]` int32 ranks.

    Raises:
      ValueError: if `chunk_size` < 1.
    """
    _check_positive("chunk_size", chunk_size)
    queries, positive_features, gallery = map(_floats, (queries, positive_features, gallery))
    query_categories = _ints(query_categories, tf.int32)
    gallery_categories = _ints(gallery_categories, tf.int32)
    positive_ids, gallery_ids = _ints(positive_ids, tf.int64), _ints(gallery_ids, tf.int64)
    num_queries, gallery_size = int(queries.shape[0]), int(gallery.shape[0])
    blocks = [np.zeros([0], np.int32)]
    for start in range(0, num_queries, self.query_chunk_size):
      block = slice(start, start + self.query_chunk_size)
      block_queries, block_categories = queries[block], query_categories[block]
      block_positive_ids = positive_ids[block]
      positive_scores = self._positive_scores(block_queries, positive_features[block])
      num_greater = tf.zeros_like(block_categories)
      num_ties = tf.zeros_like(block_categories)
      for gallery_start in range(0, gallery_size, chunk_size):
        chunk = slice(gallery_start, gallery_start + chunk_size)
        num_greater, num_ties = self._fold_rank_counts(
            num_greater, num_ties, block_queries, positive_scores, block_categories,
            block_positive_ids, gallery[chunk], gallery_categories[chunk], gallery_ids[chunk],
        )
      blocks.append((1 + num_greater + num_ties).numpy())
    return np.concatenate(blocks)

  def top_k(
      self,
      queries: TensorLike,
      query_categories: TensorLike,
      gallery: TensorLike,
      gallery_categories: TensorLike,
      gallery_ids: TensorLike,
      k: int,
      chunk_size: int,
  ) -> tuple[np.ndarray, np.ndarray]:
    """Highest-scoring k gallery items of each query's own category.

    Items of other categories and padding rows score -inf and are never returned; when a
    category has fewer than k items, the remaining slots hold score -inf and id -1.

    Args:
      queries: `[num_queries, dim]` float query vectors.
      query_categories: `[num_queries]` int category ids, 0 = padding (all slots -1).
      gallery: `[gallery_size, dim]` float gallery vectors.
      gallery_categories: `[gallery_size]` int category ids, 0 = padding row.
      gallery_ids: `[gallery_size]` int64 gallery ids.
      k: number of items kept per query.
      chunk_size: gallery rows scored per fold.

    Returns:
      (scores, ids): `[num_queries, k]` float32 scores sorted descending and the
      `[num_queries, k]` int64 ids that go with them.

    Raises:
      ValueError: if `k` or `chunk_size` < 1.
    """
    _check_positive("k", k)
    _check_positive("chunk_size", chunk_size)
    queries, gallery = _floats(queries), _floats(gallery)
    query_categories = _ints(query_categories, tf.int32)
    gallery_categories = _ints(gallery_categories, tf.int32)
    gallery_ids = _ints(gallery_ids, tf.int64)
    num_queries, gallery_size = int(queries.shape[0]), int(gallery.shape[0])
    score_blocks = [np.zeros([0, k], np.float32)]
    id_blocks = [np.zeros([0, k], np.int64)]
    for start in range(0, num_queries, self.query_chunk_size):
      block = slice(start, start + self.query_chunk_size)
      block_queries, block_categories = queries[block], query_categories[block]
      block_size = int(block_queries.shape[0])
      top_scores = tf.fill([block_size, k], float("-inf"))
      top_ids = tf.fill([block_size, k], tf.constant(-1, tf.int64))
      for gallery_start in range(0, gallery_size, chunk_size):
        chunk = slice(gallery_start, gallery_start + chunk_size)
        top_scores, top_ids = self._fold_top_k(
            top_scores, top_ids, block_queries, block_categories,
            gallery[chunk], gallery_categories[chunk], gallery_ids[chunk],
        )
      score_blocks.append(top_scores.numpy())
      id_blocks.append(top_ids.numpy())
    return np.concatenate(score_blocks), np.concatenate(id_blocks)
