"""Checks keras_models.metrics.ranking against brute-force NumPy oracles."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_models.metrics import ranking

NUM_CATEGORIES = 4


def _problem(seed: int, num_queries: int = 24, gallery_size: int = 30, dim: int = 3):
  """Integer-valued features, so scores are exact and ties are frequent.

  Category 4 has gallery items but no queries; category 0 marks padding rows/queries.
  """
  rng = np.random.default_rng(seed)
  gallery = rng.integers(-1, 2, size=(gallery_size, dim)).astype(np.float32)
  gallery[1] = gallery[0]
  gallery[2] = gallery[0]
  gallery_categories = rng.integers(0, NUM_CATEGORIES + 1, size=gallery_size).astype(np.int32)
  gallery_categories[:3] = 1
  gallery_ids = rng.permutation(1000)[:gallery_size].astype(np.int64)
  eligible = np.flatnonzero((gallery_categories > 0) & (gallery_categories < NUM_CATEGORIES))
  rows = rng.choice(eligible, size=num_queries)
  rows[:2] = 0
  queries = rng.integers(-1, 2, size=(num_queries, dim)).astype(np.float32)
  queries[3] = gallery[rows[3]]
  query_categories = gallery_categories[rows].copy()
  query_categories[-3:] = 0
  return dict(
      queries=queries,
      query_categories=query_categories,
      positive_ids=gallery_ids[rows],
      positive_features=gallery[rows],
      gallery=gallery,
      gallery_categories=gallery_categories,
      gallery_ids=gallery_ids,
  )


def _oracle_ranks(p) -> np.ndarray:
  ranks = []
  for q, c, pos_id, pos in zip(
      p["queries"], p["query_categories"], p["positive_ids"], p["positive_features"]
  ):
    rank = 1
    if c > 0:
      positive_score = float(np.dot(q.astype(np.float64), pos))
      for g, gc, gid in zip(p["gallery"], p["gallery_categories"], p["gallery_ids"]):
        score = float(np.dot(q.astype(np.float64), g))
        if gc == c and (score > positive_score or (score == positive_score and gid != pos_id)):
          rank += 1
    ranks.append(rank)
  return np.array(ranks)


def _oracle_sizes(p) -> np.ndarray:
  return np.array(
      [0 if c == 0 else np.sum(p["gallery_categories"] == c) for c in p["query_categories"]]
  )


def _rank_counts(p):
  return ranking.rank_counts(
      p["queries"],
      tf.reduce_sum(p["queries"] * p["positive_features"], axis=1),
      p["query_categories"],
      p["positive_ids"],
      p["gallery"],
      p["gallery_categories"],
      p["gallery_ids"],
  )


class RankingTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(0, 1, 2)
  def test_rank_counts_match_oracle(self, seed):
    p = _problem(seed)
    num_greater, num_ties = tf.function(_rank_counts)(p)
    self.assertEqual(num_greater.dtype, tf.int32)
    self.assertAllEqual(1 + num_greater + num_ties, _oracle_ranks(p))
    self.assertGreater(int(tf.reduce_sum(num_ties)), 0)

  def test_padding_queries_count_nothing(self):
    p = _problem(0)
    num_greater, num_ties = _rank_counts(p)
    padding = p["query_categories"] == 0
    self.assertAllEqual(num_greater.numpy()[padding], np.zeros(padding.sum()))
    self.assertAllEqual(num_ties.numpy()[padding], np.zeros(padding.sum()))

  @parameterized.named_parameters(("zero_queries", 0.0), ("orthogonal_queries", 1.0))
  def test_constant_predictor_ranks_last(self, first_coordinate):
    p = _problem(1)
    # Every gallery vector gets first coordinate 0, so a query along that axis (or a
    # zero query) scores every item alike.
    p["gallery"][:, 0] = 0.0
    p["positive_features"][:, 0] = 0.0
    p["queries"] = np.zeros_like(p["queries"])
    p["queries"][:, 0] = first_coordinate
    num_greater, num_ties = _rank_counts(p)
    valid = p["query_categories"] > 0
    self.assertAllEqual((1 + num_greater + num_ties).numpy()[valid], _oracle_sizes(p)[valid])

  def test_gallery_sizes_for_queries(self):
    p = _problem(2)
    sizes = ranking.gallery_sizes_for_queries(
        p["query_categories"], p["gallery_categories"], NUM_CATEGORIES
    )
    self.assertAllEqual(sizes, _oracle_sizes(p))

  def test_l2_normalize(self):
    vectors = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    self.assertAllClose(ranking.l2_normalize(vectors), [[0.6, 0.8], [0.0, 0.0]])

  def test_top_percent_hits(self):
    rng = np.random.default_rng(3)
    sizes = np.concatenate([[1, 2, 100, 100, 7], rng.integers(1, 300, size=200)])
    ranks = np.array([rng.integers(1, s + 1) for s in sizes])
    ranks[2:4] = [29, 30]
    for percent in (1, 5, 10, 20, 29, 2.5):
      # Integer arithmetic in the oracle: the 29% case catches floor(0.29 * 100) == 28.
      cutoff = np.maximum(1, sizes * int(percent * 10) // 1000)
      expected = (ranks <= cutoff).astype(np.float32)
      self.assertAllEqual(ranking.top_percent_hits(ranks, sizes, percent), expected)

  def test_reciprocal_percentile_recall(self):
    ranks = np.array([1, 2, 5, 10, 11, 1])
    sizes = np.array([1, 10, 5, 19, 100, 3])
    self.assertAllClose(ranking.reciprocal_ranks(ranks), 1.0 / ranks)
    self.assertAllClose(
        ranking.percentile_ranks(ranks, sizes), (ranks - 1) / np.maximum(sizes - 1, 1)
    )
    for k in (1, 5, 10):
      self.assertAllEqual(ranking.recall_at_k(ranks, k), (ranks <= k).astype(np.float32))

  def test_average_precision_at_k_general(self):
    rng = np.random.default_rng(4)
    k = 6
    relevance = rng.integers(0, 2, size=(40, k)).astype(bool)
    num_relevant = relevance.sum(axis=1) + rng.integers(0, 4, size=40)
    num_relevant[:3] = 0
    expected = []
    for rel, r in zip(relevance, num_relevant):
      hits, total = 0, 0.0
      for i, is_relevant in enumerate(rel, start=1):
        if is_relevant:
          hits += 1
          total += hits / i
      expected.append(total / min(r, k) if r > 0 else 0.0)
    ap = ranking.average_precision_at_k(relevance, num_relevant)
    self.assertAllClose(ap, expected)
    self.assertAllEqual(ap[:3], np.zeros(3))

  def test_average_precision_from_ranks_matches_general(self):
    k = 5
    ranks = np.array([1, 2, 5, 6, 40])
    relevance = np.array([[rank == i for i in range(1, k + 1)] for rank in ranks])
    general = ranking.average_precision_at_k(relevance, np.ones_like(ranks))
    shortcut = ranking.average_precision_at_k_from_ranks(ranks, k)
    self.assertAllClose(shortcut, [1.0, 0.5, 0.2, 0.0, 0.0])
    self.assertAllClose(shortcut, general)

  def test_summarize_matches_oracle(self):
    rng = np.random.default_rng(5)
    num_queries = 60
    categories = rng.integers(0, NUM_CATEGORIES, size=num_queries)  # none in category 4
    sizes = np.array([3, 8, 40, 25, 12])[categories]
    ranks = np.array([rng.integers(1, s + 1) for s in sizes])
    result = ranking.summarize(ranks, sizes, categories, NUM_CATEGORIES, top_percents=(10, 25))

    per_query = {
        "top_10_percent": ranks <= np.maximum(1, sizes * 10 // 100),
        "top_25_percent": ranks <= np.maximum(1, sizes * 25 // 100),
        "mrr": 1.0 / ranks,
        "mean_percentile_rank": (ranks - 1) / np.maximum(sizes - 1, 1),
        "recall_at_1": ranks <= 1,
        "recall_at_5": ranks <= 5,
        "recall_at_10": ranks <= 10,
        "map_at_10": np.where(ranks <= 10, 1.0 / ranks, 0.0),
    }
    valid = categories > 0
    present = [c for c in range(1, NUM_CATEGORIES + 1) if np.any(categories == c)]
    self.assertLen(present, NUM_CATEGORIES - 1)
    percentiles = per_query["mean_percentile_rank"]
    per_query["median_percentile_rank"] = percentiles
    for name, values in per_query.items():
      values = np.asarray(values, np.float64)
      reduce = np.median if name.startswith("median") else np.mean
      per_category = [
          reduce(values[categories == c]) if c in present else np.nan
          for c in range(1, NUM_CATEGORIES + 1)
      ]
      self.assertAllClose(result[f"per_category/{name}"], per_category, msg=name)
      self.assertAllClose(result[f"micro/{name}"], reduce(values[valid]), msg=name)
      self.assertAllClose(
          result[f"macro/{name}"], np.mean([per_category[c - 1] for c in present]), msg=name
      )
    self.assertAllEqual(
        result["per_category/count"],
        [np.sum(categories == c) for c in range(1, NUM_CATEGORIES + 1)],
    )
    self.assertEqual(int(result["micro/count"]), valid.sum())

  def test_summarize_median_even_and_odd_counts(self):
    ranks = np.array([1, 3, 2, 5, 9, 4, 7])
    sizes = np.full(7, 11)
    categories = np.array([2, 2, 0, 1, 1, 1, 2])
    # Category 1 percentiles 0.4, 0.8, 0.3 -> 0.4; category 2: 0, 0.2, 0.6 -> 0.2;
    # micro over the six valid queries: (0.3 + 0.4) / 2. The top-10% cutoff is
    # max(1, floor(1.1)) = 1: hit rates 0 and 1/3, macro 1/6.
    summarize = tf.function(
        lambda r, s, c: ranking.summarize(r, s, c, 3, top_percents=(10,), recall_ks=(), map_ks=())
    )
    result = summarize(ranks, sizes, categories)
    self.assertAllClose(result["macro/top_10_percent"], 1 / 6)
    self.assertAllClose(result["per_category/median_percentile_rank"], [0.4, 0.2, np.nan])
    self.assertAllClose(result["macro/median_percentile_rank"], 0.3)
    self.assertAllClose(result["micro/median_percentile_rank"], 0.35)

  def test_summarize_without_valid_queries_is_nan(self):
    result = ranking.summarize([1, 2], [5, 5], [0, 0], 2)
    self.assertTrue(np.isnan(result["micro/mrr"].numpy()))
    self.assertTrue(np.isnan(result["macro/mrr"].numpy()))
    self.assertTrue(np.isnan(result["micro/median_percentile_rank"].numpy()))
    self.assertAllEqual(result["per_category/count"], [0, 0])


if __name__ == "__main__":
  tf.test.main()
