"""Leave-one-out outfit score and ROC AUC against direct NumPy oracles."""

from __future__ import annotations

import numpy as np
import pytest

from keras_models.metrics import compatibility


def _pair_count_auc(scores, labels):
  """The definition: over every (positive, negative) pair, 1 if ordered right, 1/2 if tied."""
  positives = [s for s, y in zip(scores, labels) if y == 1]
  negatives = [s for s, y in zip(scores, labels) if y == 0]
  total = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
  return total / (len(positives) * len(negatives))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_pair_count_with_ties(seed):
  rng = np.random.default_rng(seed)
  scores = rng.integers(0, 6, 200) / 5.0  # few distinct values: many ties
  labels = rng.integers(0, 2, 200)
  assert compatibility.roc_auc(scores, labels) == pytest.approx(
      _pair_count_auc(scores, labels), abs=1e-12)


def test_auc_known_values():
  assert compatibility.roc_auc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
  assert compatibility.roc_auc([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]) == 0.0
  assert compatibility.roc_auc([0.5, 0.5, 0.5], [1, 0, 0]) == 0.5
  # Pairs: (0.8 > 0.3), (0.8 > 0.5), (0.4 > 0.3), (0.4 < 0.5) -> 3 / 4.
  assert compatibility.roc_auc([0.8, 0.4, 0.3, 0.5], [1, 1, 0, 0]) == 0.75


@pytest.mark.parametrize("scores, labels, message", [
    ([0.1, 0.2], [1, 1], "needs positives and negatives, got 2 and 0"),
    ([0.1, np.nan], [1, 0], "1 scores are NaN"),
    ([0.1, 0.2], [1, 2], "labels must be 0 or 1"),
    ([0.1, 0.2, 0.3], [1, 0], r"scores \(3,\) and labels \(2,\) must be \[N\]"),
])
def test_auc_refuses_bad_input(scores, labels, message):
  with pytest.raises(ValueError, match=message):
    compatibility.roc_auc(np.array(scores), np.array(labels))


def test_midranks():
  np.testing.assert_array_equal(compatibility.midranks([3.0, 1.0, 3.0, 2.0, 3.0]),
                                [4.0, 1.0, 4.0, 2.0, 4.0])


def test_leave_one_out_index_arrays():
  outfit_of, left_out, members = compatibility.leave_one_out(np.array([3, 2]))
  np.testing.assert_array_equal(outfit_of, [0, 0, 0, 1, 1])
  np.testing.assert_array_equal(left_out, [0, 1, 2, 0, 1])
  np.testing.assert_array_equal(members, [[1, 2], [0, 2], [0, 1], [1, -1], [0, -1]])
  with pytest.raises(ValueError, match="outfit 1 has 1 item"):
    compatibility.leave_one_out(np.array([3, 1]))


def test_outfit_scores_match_a_loop_oracle():
  """score(O) = mean_i cos(p(O minus x_i, c_i), x_i) with a toy predictor."""
  rng = np.random.default_rng(3)
  sizes = np.array([2, 4, 3])
  items = [rng.normal(size=(n, 5)) for n in sizes]
  weights = rng.normal(size=(5, 5))

  def predictor(others):  # any deterministic function of the other items
    return np.tanh(others.sum(axis=0) @ weights)

  expected = []
  for outfit in items:
    cosines = []
    for i in range(len(outfit)):
      p = predictor(np.delete(outfit, i, axis=0))
      cosines.append(p @ outfit[i] / np.linalg.norm(p) / np.linalg.norm(outfit[i]))
    expected.append(np.mean(cosines))

  outfit_of, left_out, members = compatibility.leave_one_out(sizes)
  predictions = np.stack([predictor(items[o][m[m >= 0]]) for o, m in zip(outfit_of, members)])
  targets = np.stack([items[o][i] for o, i in zip(outfit_of, left_out)])
  similarities = compatibility.cosine(predictions, targets)
  np.testing.assert_allclose(compatibility.outfit_scores(similarities, outfit_of, 3), expected,
                             atol=1e-12)
  scores = compatibility.outfit_scores(np.array([0.5]), np.array([1]), 3)
  assert np.isnan(scores[0]) and scores[1] == 0.5 and np.isnan(scores[2])
