"""Checks keras_models.metrics.fitb against brute-force NumPy oracles."""

import numpy as np
import pytest

from keras_models.metrics import fitb
from keras_models.metrics import ranking

# Gallery: category 1 has 6 items, category 2 has 3 (short for FITB-4), category 3 has 1.
GALLERY_CATEGORIES = np.array([1, 2, 1, 1, 3, 2, 1, 1, 2, 1])


def _queries(num_queries=400, seed=0):
  rng = np.random.default_rng(seed)
  positives = rng.integers(0, len(GALLERY_CATEGORIES), size=num_queries)
  categories = GALLERY_CATEGORIES[positives].copy()
  categories[:5] = 0  # padding queries
  return categories, positives


def test_distractors_are_distinct_same_category_items_other_than_the_positive():
  categories, positives = _queries()
  drawn = fitb.draw_distractors(categories, positives, GALLERY_CATEGORIES, 3, seed=7)
  assert drawn.shape == (len(categories), 3)
  for category, positive, row in zip(categories, positives, drawn):
    if category == 0:
      assert (row == -1).all()
      continue
    others = set(np.flatnonzero(GALLERY_CATEGORIES == category)) - {positive}
    expected = min(3, len(others))
    picked = row[row >= 0]
    assert len(picked) == expected and (row[expected:] == -1).all()
    assert len(set(picked)) == expected and set(picked) <= others
  assert fitb.short_queries(categories, drawn) == int(np.sum(GALLERY_CATEGORIES[
      positives[categories > 0]] > 1))  # every category 2 or 3 query is short


def test_draw_is_reproducible_and_depends_on_the_seed():
  categories, positives = _queries()
  first = fitb.draw_distractors(categories, positives, GALLERY_CATEGORIES, 3, seed=3)
  np.testing.assert_array_equal(
      first, fitb.draw_distractors(categories, positives, GALLERY_CATEGORIES, 3, seed=3))
  assert not np.array_equal(
      first, fitb.draw_distractors(categories, positives, GALLERY_CATEGORIES, 3, seed=4))


def test_draw_is_uniform_over_ordered_choices():
  # Category 1 (6 items), positive at gallery position 2: 5 others, 5*4*3 = 60 ordered
  # triples, each with probability 1/60.
  num_queries = 60_000
  categories = np.ones(num_queries, np.int64)
  positives = np.full(num_queries, 2)
  drawn = fitb.draw_distractors(categories, positives, GALLERY_CATEGORIES, 3, seed=11)
  _, counts = np.unique(drawn, axis=0, return_counts=True)
  assert len(counts) == 60
  # 1000 expected per triple, binomial std ~31.5: 5 std.
  assert np.abs(counts - 1000).max() < 160


def test_positive_outside_its_category_gallery_is_named():
  with pytest.raises(ValueError, match=r"query 1: positive gallery position 1 is not in the "
                                       r"gallery of its category 1"):
    fitb.draw_distractors(np.array([1, 1]), np.array([0, 1]), GALLERY_CATEGORIES, 3, seed=0)
  with pytest.raises(ValueError, match="num_distractors must be >= 1"):
    fitb.draw_distractors(np.array([1]), np.array([0]), GALLERY_CATEGORIES, 0, seed=0)


def _oracle_hits(queries, positives, distractors, gallery):
  hits = []
  for q, p, row in zip(queries, positives, distractors):
    positive_score = float(np.dot(q.astype(np.float64), gallery[p]))
    rivals = [float(np.dot(q.astype(np.float64), gallery[d])) for d in row if d >= 0]
    hits.append(all(positive_score > r for r in rivals))
  return np.array(hits, np.float32)


def test_hits_match_oracle_with_ties_counting_against():
  rng = np.random.default_rng(1)
  # Integer features: exact scores and frequent ties; rows 0 and 2 are identical items.
  gallery = rng.integers(-1, 2, size=(len(GALLERY_CATEGORIES), 3)).astype(np.float32)
  gallery[2] = gallery[0]
  categories, positives = _queries(300, seed=2)
  queries = rng.integers(-1, 2, size=(len(categories), 3)).astype(np.float32)
  drawn = fitb.draw_distractors(categories, positives, GALLERY_CATEGORIES, 3, seed=5)
  result = fitb.hits(queries, positives, drawn, gallery)
  np.testing.assert_array_equal(result, _oracle_hits(queries, positives, drawn, gallery))
  # A query equal to the positive, facing its duplicate, ties and misses.
  assert fitb.hits(gallery[:1], np.array([0]), np.array([[2, -1, -1]]), gallery)[0] == 0.0
  assert fitb.hits(gallery[:1], np.array([0]), np.array([[-1, -1, -1]]), gallery)[0] == 1.0


def test_random_hits_rate_is_one_over_candidates():
  full = np.zeros((40_000, 3), np.int64)
  short = np.full((40_000, 3), -1, np.int64)
  short[:, 0] = 0
  assert fitb.random_hits(full, seed=0).mean() == pytest.approx(0.25, abs=0.01)
  assert fitb.random_hits(short, seed=0).mean() == pytest.approx(0.5, abs=0.01)


def test_summarize_averages_extra_per_query_values():
  ranks = np.array([1, 2, 3, 1, 5])
  sizes = np.full(5, 10)
  categories = np.array([1, 1, 1, 2, 0])
  hits = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
  result = ranking.summarize(ranks, sizes, categories, 2, extra={"fitb_4": hits})
  # Category 1: 1/3, category 2: 1/1; micro 2/4 (the padding query is ignored), macro 2/3.
  np.testing.assert_allclose(result["per_category/fitb_4"], [1 / 3, 1.0])
  assert float(result["micro/fitb_4"]) == pytest.approx(0.5)
  assert float(result["macro/fitb_4"]) == pytest.approx(2 / 3)
