"""Exact ranking and top-k over a large gallery, one gallery chunk at a time.

Follows tensorflow_recommenders' `Streaming` top-k: score a chunk of the gallery, fold it
into a running result, move on. Queries and gallery rows are first grouped by category,
so each query is scored only against its own category's rows (no [Q, G] category mask and
no matmul against other categories). Within a group, queries are processed in blocks and
each gallery chunk goes through one compiled fold (`input_signature` with `None` leading
dimensions, so the last, shorter chunk reuses the graph). The score matrix held at any
time is `[query_chunk_size, chunk_size]`, never `[Q, G]`, and a NumPy gallery is only
copied into TF one chunk at a time.
"""

from collections.abc import Iterator
import dataclasses

import numpy as np
import tensorflow as tf

from keras_models import configs
from keras_models.metrics import ranking

_MATRIX = tf.TensorSpec([None, None], tf.float32)
_SCORES = tf.TensorSpec([None], tf.float32)
_IDS = tf.TensorSpec([None], tf.int64)
_COUNTS = tf.TensorSpec([None], tf.int32)
_ID_MATRIX = tf.TensorSpec([None, None], tf.int64)

# Chosen by sweeps on a 2-core CPU (bench/README.md, "Exact search"): [2048, 8192] score
# blocks (64 MB) were fastest at 200k and 1M items; smaller blocks lose matmul rate.
DEFAULT_QUERY_CHUNK_SIZE = 2048
DEFAULT_CHUNK_SIZE = configs.GALLERY_CHUNK_SIZE
# Columns per group of the top-k pre-selection (`_chunk_top_k`).
_GROUP = 32

TensorLike = np.ndarray | tf.Tensor


@dataclasses.dataclass(frozen=True)
class _Group:
  """The queries of one category and where that category's gallery rows are."""

  queries: np.ndarray  # [n] query positions
  rows: np.ndarray  # [m] gallery positions, ascending
  contiguous: bool  # rows == range(rows[0], rows[-1] + 1)


def _category_groups(query_categories: np.ndarray,
                     gallery_categories: np.ndarray) -> Iterator[_Group]:
  """Yields one group per category > 0 that has both queries and gallery rows."""
  # A gallery already in category order (e.g. a one-category search index) needs no sort.
  in_order = bool(np.all(gallery_categories[1:] >= gallery_categories[:-1]))
  order = None if in_order else np.argsort(gallery_categories, kind="stable")
  sorted_categories = gallery_categories if in_order else gallery_categories[order]
  for category in np.unique(query_categories):
    if category <= 0:
      continue
    start, end = np.searchsorted(sorted_categories, [category, category + 1])
    if start == end:
      continue
    rows = np.arange(start, end) if in_order else np.sort(order[start:end])
    yield _Group(np.flatnonzero(query_categories == category), rows,
                 bool(rows[-1] - rows[0] + 1 == len(rows)))


def _chunk_top_k(scores: tf.Tensor, k: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Top k of each row of `scores` (ties: lower column first) from its best column groups.

  The best k items lie in the k groups of `_GROUP` columns with the highest maxima (a
  group outside them has k groups above it, each holding an item at least as good), so
  one vectorised max pass and a top_k over k * `_GROUP` candidates replace a top_k over
  the whole row, which TF's heap-based kernel runs 4x slower than the max pass.
  """
  rows, size = tf.shape(scores)[0], tf.shape(scores)[1]
  groups = (size + _GROUP - 1) // _GROUP
  padded = tf.pad(scores, [[0, 0], [0, groups * _GROUP - size]], constant_values=float("-inf"))
  blocks = tf.reshape(padded, [rows, groups, _GROUP])
  _, best = tf.math.top_k(tf.reduce_max(blocks, axis=2), k=tf.minimum(k, groups))
  best = tf.sort(best, axis=1)  # column order, so equal scores keep the lower column
  candidates = tf.reshape(tf.gather(blocks, best, batch_dims=1), [rows, -1])
  values, picked = tf.math.top_k(candidates, k=tf.minimum(k, size))
  return values, tf.gather(best, picked // _GROUP, batch_dims=1) * _GROUP + picked % _GROUP


def _fold_top_k(top_scores: tf.Tensor, top_ids: tf.Tensor, queries: tf.Tensor,
                chunk: tf.Tensor, chunk_ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Merges one gallery chunk into the running top k (`[Q, k]` scores and ids)."""
  scores = tf.matmul(queries, chunk, transpose_b=True)
  # Reduce the chunk to its own top k before merging: the merge touches [Q, 2k] values.
  # Both steps keep the lower position on ties, so the result is the same as one top_k
  # over the whole group.
  chunk_scores, positions = _chunk_top_k(scores, tf.shape(top_scores)[1])
  candidate_scores = tf.concat([top_scores, chunk_scores], axis=1)
  candidate_ids = tf.concat([top_ids, tf.gather(chunk_ids, positions)], axis=1)
  top_scores, kept = tf.math.top_k(candidate_scores, k=tf.shape(top_scores)[1])
  top_ids = tf.gather(candidate_ids, kept, batch_dims=1)
  # A -inf score (only from -inf features) must not carry a real id into an empty slot.
  return top_scores, tf.where(tf.math.is_inf(top_scores) & (top_scores < 0),
                              tf.constant(-1, tf.int64), top_ids)


def _fold_ranks(num_greater: tf.Tensor, num_ties: tf.Tensor, queries: tf.Tensor,
                positive_scores: tf.Tensor, positive_ids: tf.Tensor, chunk: tf.Tensor,
                chunk_ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Adds one gallery chunk's `ranking.rank_counts_within_category` to the running counts."""
  greater, ties = ranking.rank_counts_within_category(
      queries, positive_scores, positive_ids, chunk, chunk_ids)
  return num_greater + greater, num_ties + ties


def _chunks(gallery: TensorLike, group: _Group, gallery_ids: np.ndarray,
            chunk_size: int) -> Iterator[tuple[tf.Tensor, tf.Tensor]]:
  """Yields (float32 rows, ids) of a group's gallery, `chunk_size` rows at a time.

  A NumPy gallery is sliced (or fancy-indexed) one chunk at a time, so only the chunk is
  ever copied into TF; a TF gallery is sliced or gathered in place.
  """
  is_numpy = isinstance(gallery, np.ndarray)
  for start in range(0, len(group.rows), chunk_size):
    rows = group.rows[start:start + chunk_size]
    if group.contiguous:
      rows = slice(int(rows[0]), int(rows[-1]) + 1)  # views, not copies
      chunk = gallery[rows]
    else:
      chunk = gallery[rows] if is_numpy else tf.gather(gallery, rows)
    yield _floats(chunk), tf.constant(gallery_ids[rows])


def _floats(values: TensorLike) -> tf.Tensor:
  """float32 tensor of `values`; tf.constant copies NumPy 3x faster than convert_to_tensor."""
  if isinstance(values, np.ndarray):
    return tf.constant(np.asarray(values, np.float32))
  return tf.cast(values, tf.float32)


def _check_positive(name: str, value: int) -> None:
  if int(value) < 1:
    raise ValueError(f"ChunkedRanker: {name} must be >= 1, got {value}")


class ChunkedRanker:
  """Exact per-category ranks and top-k with memory bounded by two chunk sizes.

  Scores are plain dot products; pass L2-normalised vectors for cosine similarity. Ranks
  follow `ranking.rank_counts` (pessimistic ties, category 0 = padding).
  """

  def __init__(self, query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE) -> None:
    """Builds the compiled folds.

    Args:
      query_chunk_size: queries scored together against one gallery chunk.

    Raises:
      ValueError: if `query_chunk_size` < 1.
    """
    _check_positive("query_chunk_size", query_chunk_size)
    self.query_chunk_size = int(query_chunk_size)
    self._fold_top_k = tf.function(
        _fold_top_k, input_signature=[_MATRIX, _ID_MATRIX, _MATRIX, _MATRIX, _IDS])
    self._fold_ranks = tf.function(
        _fold_ranks, input_signature=[_COUNTS, _COUNTS, _MATRIX, _SCORES, _IDS, _MATRIX, _IDS])

  def tracing_counts(self) -> dict[str, int]:
    """Returns how often each compiled fold was traced (at most 1 each)."""
    return {"top_k": self._fold_top_k.experimental_get_tracing_count(),
            "ranks": self._fold_ranks.experimental_get_tracing_count()}

  def _blocks(self, group: _Group) -> list[np.ndarray]:
    """The group's query positions in blocks of `query_chunk_size`."""
    return [group.queries[start:start + self.query_chunk_size]
            for start in range(0, len(group.queries), self.query_chunk_size)]

  def ranks(
      self,
      queries: TensorLike,
      query_categories: TensorLike,
      positive_ids: TensorLike,
      positive_features: TensorLike,
      gallery: TensorLike,
      gallery_categories: TensorLike,
      gallery_ids: TensorLike,
      chunk_size: int = DEFAULT_CHUNK_SIZE,
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
    queries, positive_features = _floats(queries), _floats(positive_features)
    positive_ids, gallery_ids = (np.asarray(v, np.int64) for v in (positive_ids, gallery_ids))
    ranks = np.ones(int(queries.shape[0]), np.int32)
    for group in _category_groups(np.asarray(query_categories, np.int64),
                                  np.asarray(gallery_categories, np.int64)):
      blocks = self._blocks(group)
      block_queries = [tf.gather(queries, block) for block in blocks]
      positive_scores = [tf.reduce_sum(q * tf.gather(positive_features, block), axis=1)
                         for q, block in zip(block_queries, blocks)]
      block_positive_ids = [tf.constant(positive_ids[block]) for block in blocks]
      counts = [(tf.zeros([len(block)], tf.int32),) * 2 for block in blocks]
      # Gallery chunks outside, query blocks inside: each chunk enters TF once.
      for chunk, chunk_ids in _chunks(gallery, group, gallery_ids, chunk_size):
        counts = [self._fold_ranks(*count, q, scores, ids, chunk, chunk_ids)
                  for count, q, scores, ids in zip(counts, block_queries, positive_scores,
                                                   block_positive_ids)]
      for block, (num_greater, num_ties) in zip(blocks, counts):
        ranks[block] = (1 + num_greater + num_ties).numpy()
    return ranks

  def top_k(
      self,
      queries: TensorLike,
      query_categories: TensorLike,
      gallery: TensorLike,
      gallery_categories: TensorLike,
      gallery_ids: TensorLike,
      k: int,
      chunk_size: int = DEFAULT_CHUNK_SIZE,
  ) -> tuple[np.ndarray, np.ndarray]:
    """Highest-scoring k gallery items of each query's own category.

    Items of other categories and padding rows are never returned; when a category has
    fewer than k items, the remaining slots hold score -inf and id -1. Equal scores keep
    gallery order.

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
    queries = _floats(queries)
    num_queries = int(queries.shape[0])
    top_scores = np.full([num_queries, k], -np.inf, np.float32)
    top_ids = np.full([num_queries, k], -1, np.int64)
    gallery_ids = np.asarray(gallery_ids, np.int64)
    for group in _category_groups(np.asarray(query_categories, np.int64),
                                  np.asarray(gallery_categories, np.int64)):
      blocks = self._blocks(group)
      block_queries = [tf.gather(queries, block) for block in blocks]
      found = [(tf.fill([len(block), k], float("-inf")),
                tf.fill([len(block), k], tf.constant(-1, tf.int64))) for block in blocks]
      # Gallery chunks outside, query blocks inside: each chunk enters TF once.
      for chunk, chunk_ids in _chunks(gallery, group, gallery_ids, chunk_size):
        found = [self._fold_top_k(*best, q, chunk, chunk_ids)
                 for best, q in zip(found, block_queries)]
      for block, (scores, ids) in zip(blocks, found):
        top_scores[block], top_ids[block] = scores.numpy(), ids.numpy()
    return top_scores, top_ids
