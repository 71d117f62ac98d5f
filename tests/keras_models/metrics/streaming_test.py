"""Checks streaming.ChunkedRanker against brute-force NumPy ranking and search."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_models.metrics import ranking
from keras_models.metrics import streaming

GALLERY_SIZE = 30
NUM_QUERIES = 21


def _problem(seed: int, integer_features: bool = True):
  """Gallery of categories 0..3 (0 = padding); queries of categories 0..3.

  Integer-valued features make scores exact so ties happen; float features give
  well-separated scores for checking the order of top-k ids.
  """
  rng = np.random.default_rng(seed)
  if integer_features:
    gallery = rng.integers(-1, 2, size=(GALLERY_SIZE, 3)).astype(np.float32)
    gallery[4:8] = gallery[3]
  else:
    gallery = rng.normal(size=(GALLERY_SIZE, 8)).astype(np.float32)
  gallery_categories = rng.integers(0, 4, size=GALLERY_SIZE).astype(np.int32)
  gallery_categories[3:8] = 2
  gallery_ids = (rng.permutation(GALLERY_SIZE) * 3 + 100).astype(np.int64)
  rows = rng.choice(np.flatnonzero(gallery_categories > 0), size=NUM_QUERIES)
  rows[:3] = 3
  if integer_features:
    queries = rng.integers(-1, 2, size=(NUM_QUERIES, 3)).astype(np.float32)
  else:
    queries = rng.normal(size=(NUM_QUERIES, 8)).astype(np.float32)
  query_categories = gallery_categories[rows].copy()
  query_categories[-2:] = 0
  return dict(
      queries=queries,
      query_categories=query_categories,
      positive_ids=gallery_ids[rows],
      positive_features=gallery[rows],
      gallery=gallery,
      gallery_categories=gallery_categories,
      gallery_ids=gallery_ids,
  )


def _oracle_scores(p) -> np.ndarray:
  return p["queries"].astype(np.float64) @ p["gallery"].astype(np.float64).T


def _oracle_ranks(p) -> np.ndarray:
  scores = _oracle_scores(p)
  ranks = np.ones(NUM_QUERIES, np.int64)
  for i in range(NUM_QUERIES):
    c = p["query_categories"][i]
    if c == 0:
      continue
    positive_score = float(np.dot(p["queries"][i].astype(np.float64), p["positive_features"][i]))
    for j in range(GALLERY_SIZE):
      if p["gallery_categories"][j] != c:
        continue
      if scores[i, j] > positive_score or (
          scores[i, j] == positive_score and p["gallery_ids"][j] != p["positive_ids"][i]
      ):
        ranks[i] += 1
  return ranks


def _oracle_top_k(p, k: int):
  scores = _oracle_scores(p)
  top_scores = np.full((NUM_QUERIES, k), -np.inf)
  top_ids = np.full((NUM_QUERIES, k), -1, np.int64)
  for i in range(NUM_QUERIES):
    c = p["query_categories"][i]
    candidates = [j for j in range(GALLERY_SIZE) if c > 0 and p["gallery_categories"][j] == c]
    candidates.sort(key=lambda j: -scores[i, j])
    for slot, j in enumerate(candidates[:k]):
      top_scores[i, slot] = scores[i, j]
      top_ids[i, slot] = p["gallery_ids"][j]
  return top_scores, top_ids


def _ranks(ranker: streaming.ChunkedRanker, p, chunk_size: int) -> np.ndarray:
  return ranker.ranks(
      p["queries"], p["query_categories"], p["positive_ids"], p["positive_features"],
      p["gallery"], p["gallery_categories"], p["gallery_ids"], chunk_size=chunk_size,
  )


def _top_k(ranker: streaming.ChunkedRanker, p, k: int, chunk_size: int):
  return ranker.top_k(
      p["queries"], p["query_categories"], p["gallery"], p["gallery_categories"],
      p["gallery_ids"], k=k, chunk_size=chunk_size,
  )


class ChunkedRankerTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # One ranker for the whole class: tracing dominates the run time, and every test's
    # tracing-count check then also covers the calls made by the tests before it.
    cls.ranker = streaming.ChunkedRanker(query_chunk_size=8)

  def test_ranks_match_oracle_and_one_shot_without_retracing(self):
    p = _problem(0)
    expected = _oracle_ranks(p)
    num_greater, num_ties = ranking.rank_counts(
        p["queries"], np.sum(p["queries"] * p["positive_features"], axis=1),
        p["query_categories"], p["positive_ids"], p["gallery"], p["gallery_categories"],
        p["gallery_ids"],
    )
    self.assertAllEqual(1 + num_greater + num_ties, expected)
    for chunk_size in (1, 7, GALLERY_SIZE, 100):
      ranks = _ranks(self.ranker, p, chunk_size)
      self.assertEqual(ranks.shape, (NUM_QUERIES,))
      self.assertAllEqual(ranks, expected, msg=f"chunk_size={chunk_size}")
    self.assertEqual(self.ranker.tracing_counts()["ranks"], 1)

  def test_ranks_with_float_features_do_not_count_the_positive(self):
    p = _problem(1, integer_features=False)
    scores = _oracle_scores(p)
    # The fixture is only meaningful if no two scores of a query are within rounding.
    gaps = np.diff(np.sort(scores, axis=1), axis=1)
    self.assertGreater(gaps.min(), 1e-4)
    for chunk_size in (4, 100):
      self.assertAllEqual(_ranks(self.ranker, p, chunk_size), _oracle_ranks(p))

  def test_constant_predictor_ranks_last(self):
    p = _problem(2)
    p["queries"] = np.zeros_like(p["queries"])
    sizes = ranking.gallery_sizes_for_queries(p["query_categories"], p["gallery_categories"], 3)
    valid = p["query_categories"] > 0
    ranks = _ranks(self.ranker, p, chunk_size=6)
    self.assertAllEqual(ranks[valid], sizes.numpy()[valid])

  def test_accepts_float64_and_int64_numpy_inputs(self):
    p = _problem(3)
    cast = {key: value.astype(np.float64 if value.dtype == np.float32 else np.int64)
            for key, value in p.items()}
    ranks = _ranks(self.ranker, cast, chunk_size=8)
    self.assertAllEqual(ranks, _oracle_ranks(p))

  @parameterized.parameters((3, 1), (3, 7), (50, 11), (50, 100))
  def test_top_k_scores_match_oracle(self, k, chunk_size):
    p = _problem(4)
    expected_scores, expected_ids = _oracle_top_k(p, k)
    scores, ids = _top_k(self.ranker, p, k, chunk_size)
    self.assertEqual(scores.shape, (NUM_QUERIES, k))
    self.assertEqual(ids.dtype, np.int64)
    self.assertAllEqual(scores, expected_scores)
    self.assertAllEqual(ids == -1, expected_ids == -1)
    rows = p["query_categories"] == 2
    same_category = np.isin(ids[rows], p["gallery_ids"][p["gallery_categories"] == 2])
    self.assertTrue(np.all(same_category | (ids[rows] == -1)))
    self.assertEqual(self.ranker.tracing_counts()["top_k"], 1)

  @parameterized.parameters((1, 1), (5, 9), (40, 7), (40, 100))
  def test_top_k_ids_match_oracle_without_ties(self, k, chunk_size):
    p = _problem(5, integer_features=False)
    expected_scores, expected_ids = _oracle_top_k(p, k)
    scores, ids = _top_k(self.ranker, p, k, chunk_size)
    self.assertAllEqual(ids, expected_ids)
    self.assertAllClose(scores, expected_scores, atol=1e-5)
    self.assertEqual(self.ranker.tracing_counts()["top_k"], 1)

  @parameterized.product(chunk_size=(1, 4, 100), as_tensor=(False, True))
  def test_contiguous_categories_are_sliced_and_match_oracle(self, chunk_size, as_tensor):
    # Sorting the gallery by category makes every category's rows contiguous (sliced);
    # a padding row put inside category 2 makes it the one group whose rows are gathered.
    p = _problem(8)
    order = np.argsort(p["gallery_categories"], kind="stable")
    p.update(gallery=p["gallery"][order], gallery_categories=p["gallery_categories"][order],
             gallery_ids=p["gallery_ids"][order])
    two = np.flatnonzero(p["gallery_categories"] == 2)
    p["gallery_categories"][two[len(two) // 2]] = 0
    inputs = dict(p, gallery=tf.constant(p["gallery"])) if as_tensor else p
    ranker = streaming.ChunkedRanker(query_chunk_size=4)
    self.assertAllEqual(_ranks(ranker, inputs, chunk_size), _oracle_ranks(p))
    expected_scores, _ = _oracle_top_k(p, 5)
    self.assertAllEqual(_top_k(ranker, inputs, 5, chunk_size)[0], expected_scores)
    self.assertEqual(ranker.tracing_counts(), dict(top_k=1, ranks=1))

  @parameterized.parameters((1, 64), (5, 100), (40, 500), (12, 33))
  def test_top_k_breaks_ties_by_gallery_order_across_column_groups(self, k, chunk_size):
    # 500 items with 3 distinct values per coordinate: every score is tied many times,
    # and chunks span several 32-column groups of the pre-selection.
    rng = np.random.default_rng(9)
    gallery = rng.integers(-1, 2, size=(500, 2)).astype(np.float32)
    queries = rng.integers(-1, 2, size=(6, 2)).astype(np.float32)
    ids = np.arange(1000, 1500, dtype=np.int64)
    scores = queries @ gallery.T
    order = np.lexsort((np.broadcast_to(np.arange(500), scores.shape), -scores), axis=1)[:, :k]
    got_scores, got_ids = self.ranker.top_k(queries, np.ones(6), gallery, np.ones(500), ids,
                                            k=k, chunk_size=chunk_size)
    self.assertAllEqual(got_ids, ids[order])
    self.assertAllEqual(got_scores, np.take_along_axis(scores, order, axis=1))

  def test_top_k_tie_prefers_lower_column_over_the_group_with_the_higher_maximum(self):
    # Columns 0-31 hold 5 and 3, columns 32-63 hold 9 and 3: the second group ranks first
    # by its maximum, yet the first group's 3 (column 1) must come before column 33's.
    gallery = np.zeros((64, 1), np.float32)
    gallery[[0, 1, 32, 33], 0] = [5, 3, 9, 3]
    _, ids = self.ranker.top_k(np.ones((1, 1)), np.ones(1), gallery, np.ones(64),
                               np.arange(64), k=3, chunk_size=64)
    self.assertAllEqual(ids, [[32, 0, 1]])

  def test_one_category_gallery_serves_only_its_queries(self):
    gallery = np.eye(4, dtype=np.float32)
    queries = np.array([[0, 0, 1, 0]] * 3, np.float32)
    scores, ids = self.ranker.top_k(queries, [1, 0, 2], gallery, np.ones(4), np.arange(4) + 7,
                                    k=2, chunk_size=3)
    self.assertAllEqual(ids, [[9, 7], [-1, -1], [-1, -1]])
    self.assertAllEqual(scores[0], [1, 0])
    ranks = self.ranker.ranks(queries, [1, 0, 2], [7, 7, 7], gallery[[0, 0, 0]], gallery,
                              np.ones(4), np.arange(4) + 7, chunk_size=3)
    self.assertAllEqual(ranks, [4, 1, 1])  # 1 + one higher + two pessimistic ties

  def test_padding_queries_get_no_items(self):
    p = _problem(6)
    scores, ids = _top_k(self.ranker, p, k=4, chunk_size=5)
    padding = p["query_categories"] == 0
    self.assertAllEqual(ids[padding], np.full((padding.sum(), 4), -1))
    self.assertTrue(np.all(np.isneginf(scores[padding])))

  def test_empty_inputs(self):
    p = _problem(7)
    query_keys = ("queries", "query_categories", "positive_ids", "positive_features")
    no_queries = {key: value[:0] if key in query_keys else value for key, value in p.items()}
    self.assertEqual(_ranks(self.ranker, no_queries, 4).shape, (0,))
    self.assertEqual(_top_k(self.ranker, no_queries, 3, 4)[1].shape, (0, 3))
    no_gallery = {key: value[:0] if key.startswith("gallery") else value
                  for key, value in p.items()}
    self.assertAllEqual(_ranks(self.ranker, no_gallery, 4), np.ones(NUM_QUERIES))
    self.assertAllEqual(_top_k(self.ranker, no_gallery, 2, 4)[1], np.full((NUM_QUERIES, 2), -1))

  def test_rejects_bad_sizes(self):
    p = _problem(0)
    with self.assertRaisesRegex(ValueError, "ChunkedRanker: chunk_size must be >= 1, got 0"):
      _ranks(streaming.ChunkedRanker(), p, chunk_size=0)
    with self.assertRaisesRegex(ValueError, "ChunkedRanker: k must be >= 1, got 0"):
      _top_k(streaming.ChunkedRanker(), p, k=0, chunk_size=3)
    with self.assertRaisesRegex(ValueError, "ChunkedRanker: query_chunk_size must be >= 1"):
      streaming.ChunkedRanker(query_chunk_size=0)


if __name__ == "__main__":
  tf.test.main()
