"""Both ICFRR protocols on shortlists against the dense NumPy maths (`icfrr_oracle`)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from keras_models import configs
from keras_models.metrics import streaming
from keras_models.rerank import protocols
from tests.keras_models.rerank import icfrr_oracle

NOT_USED = 10**6  # An initial rank that must never be reported when T >= G.


def _evaluator(rng, gallery_categories, query_categories):
  """A stand-in Evaluator: the attributes the protocols read, with tiny chunks."""
  size = len(gallery_categories)
  rows = np.arange(0, 2 * size, 2, dtype=np.int64)  # Sorted item-table rows, not 0..G-1.
  positives = np.array([rng.choice(rows[gallery_categories == c]) for c in query_categories])
  return types.SimpleNamespace(
      targets=types.SimpleNamespace(categories=query_categories, positive_rows=positives),
      gallery_rows=rows, gallery_features=icfrr_oracle.unit(rng, size),
      gallery_categories=gallery_categories, chunk_size=5,
      ranker=streaming.ChunkedRanker(query_chunk_size=3))


def _oracle_task_ranks(evaluator, vectors, config, initial_ranks):
  """Per category: the dense lists of the category's gallery, re-ranked (top T)."""
  ranks = [np.array(initial_ranks, np.int64) for _ in range(config.iterations + 1)]
  for category in np.unique(evaluator.targets.categories):
    queries = np.flatnonzero(evaluator.targets.categories == category)
    in_gallery = evaluator.gallery_categories == category
    gallery = evaluator.gallery_features[in_gallery]
    positives = np.searchsorted(evaluator.gallery_rows[in_gallery],
                                evaluator.targets.positive_rows[queries])
    s0 = icfrr_oracle.initial_scores(vectors[queries], gallery, config.score)
    orders = icfrr_oracle.rerank(s0, gallery, config.k_g, config.k_q, config.beta,
                                 config.iterations, config.mode, config.shortlist)
    for iteration, order in enumerate(orders):
      for query, positive, row in zip(queries, positives, order):
        if positive in row:
          ranks[iteration][query] = 1 + list(row).index(positive)
  return ranks


@pytest.mark.parametrize("mode", ["positional", "accumulate"])
def test_task_ranks_with_the_whole_gallery_are_the_dense_results(mode):
  rng = np.random.default_rng(1)
  evaluator = _evaluator(rng, rng.integers(1, 4, size=45), rng.integers(1, 4, size=16))
  vectors = icfrr_oracle.unit(rng, 16)
  config = configs.IcfrrConfig(k_g=5, k_q=4, beta=1.0, iterations=3, mode=mode,
                               shortlist=1000)
  initial = np.full(16, NOT_USED)
  got = protocols.task_ranks(evaluator, vectors, initial, config)
  expected = _oracle_task_ranks(evaluator, vectors, config, initial)
  for iteration, (ranks, want) in enumerate(zip(got, expected)):
    np.testing.assert_array_equal(ranks, want, err_msg=f"iteration {iteration}")
  assert (got[-1] < NOT_USED).all() and not np.array_equal(got[0], got[-1])


def test_task_ranks_outside_the_shortlist_keep_the_initial_rank():
  rng = np.random.default_rng(2)
  evaluator = _evaluator(rng, rng.integers(1, 3, size=60), rng.integers(1, 3, size=30))
  vectors = icfrr_oracle.unit(rng, 30)
  config = configs.IcfrrConfig(k_g=6, k_q=3, beta=2.0, iterations=3, shortlist=8)
  # The evaluator's ranks, brute force: 1 + items of the category scoring higher.
  initial = np.empty(30, np.int64)
  for q, (category, row) in enumerate(zip(evaluator.targets.categories,
                                          evaluator.targets.positive_rows)):
    scores = evaluator.gallery_features @ vectors[q]
    positive = scores[np.searchsorted(evaluator.gallery_rows, row)]
    initial[q] = 1 + np.sum((evaluator.gallery_categories == category) & (scores > positive))
  got = protocols.task_ranks(evaluator, vectors, initial, config)
  expected = _oracle_task_ranks(evaluator, vectors, config, initial)
  for iteration, (ranks, want) in enumerate(zip(got, expected)):
    np.testing.assert_array_equal(ranks, want, err_msg=f"iteration {iteration}")
  outside = initial > 8
  assert outside.any() and (~outside).any()
  for ranks in got:
    np.testing.assert_array_equal(ranks[outside], initial[outside])
    assert (ranks[~outside] <= 8).all()
  np.testing.assert_array_equal(got[0], initial)  # Random floats: no ties.
  assert not np.array_equal(got[0], got[-1])


def _oracle_list_metrics(hits, relevant, first_relevant):
  """Means of AP (over the list, / R), AP within the top 200, P@k and RR, in NumPy."""
  rows = []
  for row, total, first in zip(hits, relevant, first_relevant):
    positions = np.flatnonzero(row) + 1
    precisions = np.arange(1, len(positions) + 1) / positions
    top = positions[positions <= 200]
    rows.append([precisions.sum() / total,
                 np.mean(np.arange(1, len(top) + 1) / top) if len(top) else 0.0,
                 row[:25].sum() / 25, row[:100].sum() / 100, row[:200].sum() / 200,
                 1.0 / (positions[0] if len(positions) else first)])
  return np.mean(rows, axis=0)


NAMES = ("map_200_within_top", "precision_at_25", "precision_at_100", "precision_at_200",
         "mrr")


@pytest.mark.parametrize("mode", ["positional", "accumulate"])
def test_category_level_with_the_whole_gallery_is_the_dense_result(mode):
  rng = np.random.default_rng(3)
  categories = rng.integers(1, 4, size=50)
  evaluator = _evaluator(rng, categories, rng.integers(1, 4, size=12))
  vectors = icfrr_oracle.unit(rng, 12)
  config = configs.IcfrrConfig(k_g=6, k_q=5, beta=1.0, iterations=2, mode=mode)
  got = protocols.category_level_summaries(evaluator, vectors, config)
  s0 = icfrr_oracle.initial_scores(vectors, evaluator.gallery_features, config.score)
  orders = icfrr_oracle.rerank(s0, evaluator.gallery_features, 6, 5, 1.0, 2, mode)
  wanted = evaluator.targets.categories[:, None]
  relevant = np.bincount(categories)[evaluator.targets.categories]
  for iteration, order in enumerate(orders):
    expected = _oracle_list_metrics(categories[order] == wanted, relevant,
                                    np.full(12, np.inf))
    assert set(got[iteration]) == {"map_all", *NAMES}
    np.testing.assert_allclose([got[iteration][n] for n in ("map_all", *NAMES)], expected,
                               atol=1e-6, err_msg=f"iteration {iteration}")
  assert got[0]["map_all"] != got[-1]["map_all"]


def test_category_level_beyond_the_list_is_truncated_and_mrr_stays_exact():
  rng = np.random.default_rng(4)
  categories = np.concatenate([rng.integers(1, 4, size=257), [4, 4, 4]])
  gallery = icfrr_oracle.unit(rng, 260)
  vectors = icfrr_oracle.unit(rng, 8)
  query_categories = np.array([1, 2, 3, 1, 2, 3, 1, 4])
  # Category 4's three items lie close together and the last query points away from
  # them: none of them is in its top 200.
  cluster = gallery[257] + 0.05 * rng.normal(size=(3, 6))
  gallery[257:] = cluster / np.linalg.norm(cluster, axis=1, keepdims=True)
  vectors[7] = -gallery[257]
  config = configs.IcfrrConfig(k_g=10, k_q=6, beta=1.0, iterations=2, shortlist=20)
  got = protocols.class_level_summaries(streaming.ChunkedRanker(query_chunk_size=3), vectors,
                                        query_categories, gallery, categories, config, 64)
  s0 = icfrr_oracle.initial_scores(vectors, gallery, config.score)
  full = np.argsort(-s0, axis=1, kind="stable")
  heads = icfrr_oracle.rerank(s0, gallery, 10, 6, 1.0, 2, "positional", shortlist=20)
  wanted = query_categories[:, None]
  first = 1 + np.argmax(categories[full] == wanted, axis=1)
  assert first[7] > 200
  relevant = np.bincount(categories)[query_categories]
  for iteration, head in enumerate(heads):
    listed = np.concatenate([head, full[:, 20:200]], axis=1)  # L = max(T, 200)
    expected = _oracle_list_metrics(categories[listed] == wanted, relevant, first)
    assert set(got[iteration]) == {"map_all_truncated", *NAMES}
    np.testing.assert_allclose([got[iteration][n] for n in ("map_all_truncated", *NAMES)],
                               expected, atol=1e-6, err_msg=f"iteration {iteration}")
  assert got[0]["map_all_truncated"] != got[-1]["map_all_truncated"]
