"""Tests for keras_models.losses.negative_table against brute-force NumPy oracles."""

from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf

from keras_models.losses import negative_table


def _unit(x):
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def eligible_candidates(features, categories, pairs, low, high):
  """For every item, the set of items it may take as negatives."""
  similarity = _unit(features) @ _unit(features).T
  excluded = {tuple(p) for p in pairs}
  return [{j for j in range(len(features))
           if j != i and categories[j] == categories[i] and (i, j) not in excluded
           and low <= similarity[i, j] <= high}
          for i in range(len(features))], similarity


# Four sets over 10 items; items 0 and 3 recur in two sets each.
SET_OFFSETS = np.array([0, 3, 6, 8, 11])
SET_ITEMS = np.array([0, 1, 2, 3, 4, 0, 5, 6, 3, 7, 8])


class CoMemberPairsTest(tf.test.TestCase):

  def test_pairs_of_every_set(self):
    want = set()
    for s in range(len(SET_OFFSETS) - 1):
      members = SET_ITEMS[SET_OFFSETS[s]:SET_OFFSETS[s + 1]]
      want |= {(int(a), int(b)) for a, b in itertools.permutations(members, 2)}
    got = negative_table.co_member_pairs(SET_OFFSETS, SET_ITEMS)
    self.assertEqual(got.dtype, np.int64)
    self.assertEqual({tuple(p) for p in got.tolist()}, want)
    self.assertLen(got, len(want))
    # Item 0 pairs with its partners in both of its sets, not only the first.
    self.assertIn((0, 4), want)
    self.assertIn((0, 1), want)

  def test_no_sets_of_two(self):
    self.assertEqual(negative_table.co_member_pairs(np.array([0, 1, 2]),
                                                    np.array([4, 5])).shape, (0, 2))


class BuildNegativeTableTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(3)
    self.features = rng.normal(size=(30, 5)).astype(np.float32)
    self.features[7] = self.features[2] + 1e-3  # a near duplicate of item 2
    self.categories = rng.integers(1, 3, size=30)
    self.categories[7] = self.categories[2]
    offsets = np.arange(0, 31, 3)
    self.pairs = negative_table.co_member_pairs(offsets, rng.permutation(30))

  def test_nearest_pool_with_exclusions_and_max_similarity(self):
    for num_negatives, low, high, chunk_size in [(4, 0.0, 0.95, 7), (40, -1.0, 0.9, 4096),
                                                 (3, 0.2, 1.0, 2)]:
      got = negative_table.build_negative_table(
          self.features, self.categories, num_negatives, low, chunk_size=chunk_size,
          exclude_pairs=self.pairs, max_similarity=high)
      eligible, similarity = eligible_candidates(self.features, self.categories, self.pairs,
                                                 low, high)
      for i, allowed in enumerate(eligible):
        want = sorted(allowed, key=lambda j: (-similarity[i, j], j))[:num_negatives]
        self.assertAllEqual(got[i][got[i] >= 0], want)
    # The near duplicate passes cos 1.0 but not 0.95.
    loose = negative_table.build_negative_table(self.features, self.categories, 40, -1.0)
    tight = negative_table.build_negative_table(self.features, self.categories, 40, -1.0,
                                                max_similarity=0.95)
    self.assertIn(7, loose[2])
    self.assertNotIn(7, tight[2])

  def test_random_pool_is_a_seeded_uniform_subset(self):
    low, high, num_negatives = -1.0, 0.95, 3
    eligible, _ = eligible_candidates(self.features, self.categories, self.pairs, low, high)
    draws = {}
    for seed in [(0, 0), (0, 1), (0, 0)]:
      table = negative_table.build_negative_table(
          self.features, self.categories, num_negatives, low, chunk_size=4,
          exclude_pairs=self.pairs, max_similarity=high, pool="random", seed=seed)
      for i, allowed in enumerate(eligible):
        chosen = table[i][table[i] >= 0]
        self.assertLen(chosen, min(num_negatives, len(allowed)))
        self.assertLen(set(chosen.tolist()), len(chosen))
        self.assertContainsSubset(set(chosen.tolist()), allowed)
      draws.setdefault(seed, []).append(table)
    self.assertAllEqual(draws[(0, 0)][0], draws[(0, 0)][1])
    self.assertNotAllEqual(draws[(0, 0)][0], draws[(0, 1)][0])

  def test_random_pool_frequencies_are_uniform(self):
    # One item with 6 equally eligible candidates, 2 drawn per table: each candidate is
    # chosen with probability 1/3.
    features = np.eye(7, dtype=np.float32) + 0.5
    categories = np.ones(7, np.int64)
    counts = np.zeros(7)
    trials = 120
    for trial in range(trials):
      table = negative_table.build_negative_table(features, categories, 2, -1.0,
                                                  pool="random", seed=(1, trial))
      counts[table[0]] += 1
    self.assertEqual(counts[0], 0)
    # Binomial(120, 1/3): mean 40, std 5.2; 5 std either side.
    self.assertAllInRange(counts[1:], 14, 66)

  def test_bad_pool_raises(self):
    with self.assertRaisesRegex(ValueError, "pool must be one of"):
      negative_table.build_negative_table(self.features, self.categories, 2, 0.0,
                                          pool="hardest")


if __name__ == "__main__":
  tf.test.main()
