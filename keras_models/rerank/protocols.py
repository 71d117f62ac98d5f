"""ICFRR applied to a set-retrieval evaluation, under two relevance protocols, on shortlists.

Each query's initial list is its exact top-T gallery items (T = `IcfrrConfig.shortlist`,
found by the streaming ranker, so no [Q, G] score matrix is ever held); ICFRR re-orders
those T items and every item beyond them keeps its initial rank. With T >= G this is ICFRR
over the whole list, exactly. Memory is O(block * T + G * K_G).

- **task**: our retrieval as evaluated everywhere else. Each prediction p(X, c) ranks
  the gallery G_c of its own category c, in which exactly one item (the missing one) is
  relevant. Every category's gallery is re-ranked on its own (its own neighbour table,
  alpha with G = |G_c|). The positive's rank is its position in the re-ranked shortlist
  when it is in it, else the evaluator's rank (pessimistic ties, > T). Reported per
  iteration as the evaluator's Top-K% and MRR (with one relevant item mAP@all = MRR).
  Shortlist ranks are list positions, so exact float ties are broken by gallery order
  instead of counting against the model; otherwise iteration 0 equals the plain evaluation.
- **category_level**: class-level relevance where ICFRR's metrics mean something. The
  same predictions rank the whole gallery of the split across categories and a gallery
  item is relevant when its category is the query's c. The evaluated list is the top
  L = max(T, 200) items (clipped to G), of which the top T are re-ranked; metrics are
  `list_metrics.per_query`'s, with `map_all_truncated` in place of `map_all` when L < G.
  MRR is exact: a query with no relevant item in its list gets the initial rank of its
  best item of category c (the streaming ranker's count, pessimistic ties).
"""

from __future__ import annotations

import time
from typing import Iterator

from absl import logging
import numpy as np

from keras_models import configs
from keras_models import evaluator as evaluator_lib
from keras_models.metrics import streaming
from keras_models.rerank import icfrr
from keras_models.rerank import list_metrics

# Queries whose shortlists are fetched and re-ranked together ([block, T] arrays).
QUERY_BLOCK_SIZE = 4096
# Lists are long (k = T or K_G + 1), and the ranker's group pre-selection only cuts the
# top_k work when a gallery chunk holds many more than 32 * k items: fewer queries per
# block and wider gallery chunks, for the evaluator's score-block size (2048 * chunk).
LIST_QUERY_CHUNK_SIZE = 512
MAP_CUTOFF = 200
PRECISION_KS = (25, 100, 200)


def list_ranker(chunk_size: int) -> tuple[streaming.ChunkedRanker, int]:
  """(ranker, gallery chunk size) for long lists, scoring blocks of 2048 * `chunk_size`."""
  scale = streaming.DEFAULT_QUERY_CHUNK_SIZE // LIST_QUERY_CHUNK_SIZE
  return streaming.ChunkedRanker(LIST_QUERY_CHUNK_SIZE), chunk_size * scale


def initial_lists(ranker: streaming.ChunkedRanker, queries: np.ndarray,
                  gallery: np.ndarray, length: int, score: str,
                  chunk_size: int = configs.GALLERY_CHUNK_SIZE
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Each query's exact top-`length` gallery items by s0, best first.

  Args:
    ranker: the exact streaming top-k.
    queries: `[B, D]` L2-normalised query vectors.
    gallery: `[G, D]` L2-normalised gallery vectors (length <= G).
    length: items kept per query.
    score: `IcfrrConfig.score`, applied to the cosines.
    chunk_size: gallery rows scored per fold.

  Returns:
    (values, items): `[B, length]` float32 s0 sorted descending and `[B, length]` int32
    gallery positions; equal s0 keep gallery order, as a stable sort of the full row would.
  """
  cosine, items = ranker.top_k(
      queries, np.ones(len(queries), np.int32), gallery, np.ones(len(gallery), np.int32),
      np.arange(len(gallery), dtype=np.int64), length, chunk_size)
  values = icfrr.scores_from_cosine(cosine, score)
  order = np.lexsort((items, -values), axis=1)
  return (np.take_along_axis(values, order, axis=1),
          np.take_along_axis(items, order, axis=1).astype(np.int32))


def reranked_lists(values: np.ndarray, items: np.ndarray, neighbours: np.ndarray,
                   config: configs.IcfrrConfig) -> Iterator[np.ndarray]:
  """`icfrr.rerank` of the top `config.shortlist` of each list; the rest keeps its place.

  Args:
    values, items: `[B, L]` from `initial_lists`.
    neighbours: `[G, K_G]` neighbour table of the gallery the lists rank.
    config: ICFRR settings.

  Yields:
    `[B, L]` int32 gallery positions per iteration (index 0 = before re-ranking).
  """
  head = min(config.shortlist, items.shape[1])
  for order in icfrr.rerank(values[:, :head], items[:, :head], neighbours, config):
    yield np.concatenate([order, items[:, head:]], axis=1)


def task_ranks(evaluator: evaluator_lib.Evaluator, vectors: np.ndarray,
               initial_ranks: np.ndarray, config: configs.IcfrrConfig) -> list[np.ndarray]:
  """Ranks of each query's positive before and after every iteration.

  Args:
    evaluator: the split's evaluator (targets, gallery rows, features, categories).
    vectors: `[Q, D]` L2-normalised predictions in `evaluator.targets` order.
    initial_ranks: `[Q]` the evaluator's ranks of `vectors`, kept for positives outside
      the shortlist.
    config: ICFRR settings.

  Returns:
    iterations + 1 arrays `[Q]` int64 of 1-based ranks of the positive.

  Raises:
    ValueError: if a positive is missing from its category's gallery.
  """
  targets = evaluator.targets
  ranker, chunk_size = list_ranker(evaluator.chunk_size)
  ranks = [np.asarray(initial_ranks, np.int64).copy() for _ in range(config.iterations + 1)]
  for category in np.unique(targets.categories):
    start_time = time.perf_counter()
    queries = np.flatnonzero(targets.categories == category)
    in_gallery = evaluator.gallery_categories == category
    rows = evaluator.gallery_rows[in_gallery]
    positives = np.searchsorted(rows, targets.positive_rows[queries])
    if np.any(rows[np.minimum(positives, len(rows) - 1)] != targets.positive_rows[queries]):
      raise ValueError(f"category {category}: a positive is missing from the gallery")
    gallery = evaluator.gallery_features[in_gallery]
    neighbours = icfrr.neighbour_table(gallery, config.k_g, ranker, chunk_size)
    length = min(config.shortlist, len(rows))
    for start in range(0, len(queries), QUERY_BLOCK_SIZE):
      block = queries[start:start + QUERY_BLOCK_SIZE]
      values, items = initial_lists(ranker, vectors[block], gallery, length, config.score,
                                    chunk_size)
      wanted = positives[start:start + QUERY_BLOCK_SIZE, np.newaxis]
      for iteration, order in enumerate(reranked_lists(values, items, neighbours, config)):
        match = order == wanted
        found = match.any(axis=1)
        ranks[iteration][block[found]] = 1 + np.argmax(match[found], axis=1)
    logging.info("ICFRR task protocol, category %d: %d queries, gallery %d, %.1f s",
                 category, len(queries), len(rows), time.perf_counter() - start_time)
  return ranks


def task_summaries(evaluator: evaluator_lib.Evaluator, vectors: np.ndarray,
                   initial_ranks: np.ndarray,
                   config: configs.IcfrrConfig) -> list[dict[str, float]]:
  """Micro Top-K% and MRR of the task protocol per iteration (index 0 = before)."""
  summaries = []
  for ranks in task_ranks(evaluator, vectors, initial_ranks, config):
    summary = evaluator.summarize(ranks)
    summaries.append({key.split("/", 1)[1]: value for key, value in summary.items()
                      if key.startswith("micro/") and key != "micro/count"})
  return summaries


def first_relevant_ranks(ranker: streaming.ChunkedRanker, queries: np.ndarray,
                         query_categories: np.ndarray, gallery: np.ndarray,
                         gallery_categories: np.ndarray,
                         chunk_size: int = configs.GALLERY_CHUNK_SIZE) -> np.ndarray:
  """Rank over the whole gallery of each query's best item of its own category.

  Args:
    ranker: the exact streaming ranker.
    queries: `[B, D]` L2-normalised query vectors.
    query_categories: `[B]` int category of each query.
    gallery: `[G, D]` L2-normalised gallery vectors.
    gallery_categories: `[G]` int category of each gallery item.
    chunk_size: gallery rows scored per fold.

  Returns:
    `[B]` int64 ranks (1 + items scoring higher + other items scoring the same); 0 when
    the gallery has no item of the query's category.
  """
  size = len(gallery)
  ids = np.arange(size, dtype=np.int64)
  _, best = ranker.top_k(queries, query_categories, gallery, gallery_categories, ids, 1,
                         chunk_size)
  best = best[:, 0]
  ranks = ranker.ranks(queries, np.ones(len(queries), np.int32), np.maximum(best, 0),
                       gallery[np.maximum(best, 0)], gallery, np.ones(size, np.int32), ids,
                       chunk_size)
  return np.where(best >= 0, ranks, 0).astype(np.int64)


def class_level_summaries(ranker: streaming.ChunkedRanker, vectors: np.ndarray,
                          query_categories: np.ndarray, gallery: np.ndarray,
                          gallery_categories: np.ndarray, config: configs.IcfrrConfig,
                          chunk_size: int = configs.GALLERY_CHUNK_SIZE
                          ) -> list[dict[str, float]]:
  """ICFRR list metrics per iteration with relevance = same category, over a whole gallery.

  Args:
    ranker: the exact streaming ranker.
    vectors: `[Q, D]` L2-normalised query vectors.
    query_categories: `[Q]` int category of each query.
    gallery: `[G, D]` L2-normalised gallery vectors (all categories).
    gallery_categories: `[G]` int category of each gallery item.
    config: ICFRR settings.
    chunk_size: gallery rows scored per fold.

  Returns:
    iterations + 1 dicts of mean `list_metrics.per_query` values (index 0 = before).
  """
  size = len(gallery)
  length = min(size, max(config.shortlist, MAP_CUTOFF, *PRECISION_KS))
  neighbours = icfrr.neighbour_table(gallery, config.k_g, ranker, chunk_size)
  relevant = None
  if length < size:
    relevant = np.bincount(gallery_categories, minlength=query_categories.max() + 1)[
        query_categories]
  totals = [{} for _ in range(config.iterations + 1)]
  start_time = time.perf_counter()
  for start in range(0, len(vectors), QUERY_BLOCK_SIZE):
    block = slice(start, start + QUERY_BLOCK_SIZE)
    values, items = initial_lists(ranker, vectors[block], gallery, length, config.score,
                                  chunk_size)
    wanted = query_categories[block, np.newaxis]
    # The lists hold the same items at every iteration (only the top T moves).
    missing = ~np.any(gallery_categories[items] == wanted, axis=1)
    beyond = np.zeros(len(items), np.int64)
    if relevant is not None and missing.any():
      beyond[missing] = first_relevant_ranks(ranker, vectors[block][missing],
                                             query_categories[block][missing], gallery,
                                             gallery_categories, chunk_size)
    for iteration, order in enumerate(reranked_lists(values, items, neighbours, config)):
      metrics = list_metrics.per_query(
          gallery_categories[order] == wanted, MAP_CUTOFF, PRECISION_KS,
          None if relevant is None else relevant[block])
      metrics["mrr"] = np.where(beyond > 0, 1.0 / np.maximum(beyond, 1), metrics["mrr"])
      for name, per_query in metrics.items():
        totals[iteration][name] = totals[iteration].get(name, 0.0) + float(
            np.sum(per_query, dtype=np.float64))
    logging.info("ICFRR category-level protocol: %d of %d queries, gallery %d, %.1f s",
                 min(start + QUERY_BLOCK_SIZE, len(vectors)), len(vectors), size,
                 time.perf_counter() - start_time)
  return [{name: total / max(len(vectors), 1) for name, total in row.items()}
          for row in totals]


def category_level_summaries(evaluator: evaluator_lib.Evaluator, vectors: np.ndarray,
                             config: configs.IcfrrConfig) -> list[dict[str, float]]:
  """`class_level_summaries` of the predictions `vectors` [Q, D] over the split's gallery."""
  ranker, chunk_size = list_ranker(evaluator.chunk_size)
  return class_level_summaries(ranker, vectors, evaluator.targets.categories,
                               evaluator.gallery_features, evaluator.gallery_categories,
                               config, chunk_size)
