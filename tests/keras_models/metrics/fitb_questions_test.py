"""FITB accuracy over question files against a per-question NumPy oracle."""

from __future__ import annotations

import numpy as np
import pytest

from keras_models.metrics import fitb_questions


def _oracle(scores, correct):
  """A hit needs the correct answer strictly above every other answer that has a score."""
  hits = []
  for row, k in zip(scores, correct):
    others = [s for a, s in enumerate(row) if a != k and not np.isnan(s)]
    hits.append(float(all(row[k] > s for s in others)))
  return np.array(hits, np.float32)


def test_hits_match_oracle_with_ties_and_missing_answers():
  rng = np.random.default_rng(0)
  scores = rng.integers(0, 4, (300, 4)).astype(float)  # many ties
  scores[rng.random((300, 4)) < 0.1] = np.nan
  correct = rng.integers(0, 4, 300)
  scores[np.arange(300), correct] = rng.integers(0, 4, 300)
  np.testing.assert_array_equal(fitb_questions.hits(scores, correct), _oracle(scores, correct))


def test_tie_counts_against():
  scores = np.array([[0.5, 0.5, 0.1, 0.0], [0.9, 0.5, 0.1, 0.0], [0.1, 0.9, 0.2, 0.3]])
  np.testing.assert_array_equal(fitb_questions.hits(scores, np.array([0, 0, 3])), [0, 1, 0])


@pytest.mark.parametrize("scores, correct, message", [
    (np.zeros((2, 4)), np.array([0, 4]), r"correct answer indices must be in 0\.\.3"),
    (np.array([[np.nan, 1, 2, 3]]), np.array([0]), "question 0: the correct answer has no "
     "score"),
    (np.zeros(4), np.array([0]), r"must be \[Q, A\]"),
])
def test_bad_input(scores, correct, message):
  with pytest.raises(ValueError, match=message):
    fitb_questions.hits(scores, correct)
