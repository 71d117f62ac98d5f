"""List metrics on hand-worked cases and against a NumPy oracle."""

from __future__ import annotations

import numpy as np
import pytest

from keras_models.rerank import list_metrics

# Rows: relevant at positions 1 and 3; at 4 only; none.
HITS = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]], bool)


def test_hand_worked_values():
  # (1/1 + 2/3) / 2; 1/4; no relevant item -> 0.
  np.testing.assert_allclose(list_metrics.average_precision_all(HITS).numpy(),
                             [5 / 6, 0.25, 0.0], atol=1e-6)
  # Within the top 2 only position 1 counts, normalised by the 1 relevant item there.
  np.testing.assert_allclose(list_metrics.average_precision_within_top(HITS, 2).numpy(),
                             [1.0, 0.0, 0.0], atol=1e-6)
  np.testing.assert_allclose(list_metrics.precision_at_k(HITS, 2).numpy(), [0.5, 0, 0])
  # The denominator stays k when the list is shorter than k.
  np.testing.assert_allclose(list_metrics.precision_at_k(HITS, 10).numpy(), [0.2, 0.1, 0])
  np.testing.assert_allclose(list_metrics.reciprocal_rank(HITS).numpy(), [1.0, 0.25, 0.0])


def test_truncated_ap_uses_the_relevant_items_within_the_top():
  hits = np.zeros((1, 300), bool)
  hits[0, [0, 250]] = True
  assert list_metrics.average_precision_all(hits).numpy()[0] == pytest.approx(
      (1 + 2 / 251) / 2)
  assert list_metrics.average_precision_within_top(hits, 200).numpy()[0] == pytest.approx(1.0)


def test_summary_matches_numpy_oracle():
  rng = np.random.default_rng(0)
  hits = rng.random((20, 250)) < 0.1

  def ap(row):
    positions = np.flatnonzero(row) + 1
    return np.mean(np.arange(1, len(positions) + 1) / positions) if len(positions) else 0.0

  summary = list_metrics.summarize(hits, map_cutoff=200, precision_ks=(25, 100))
  assert set(summary) == {"map_all", "map_200_within_top", "precision_at_25",
                          "precision_at_100", "mrr"}
  assert summary["map_all"] == pytest.approx(np.mean([ap(r) for r in hits]), abs=1e-6)
  assert summary["map_200_within_top"] == pytest.approx(
      np.mean([ap(r[:200]) for r in hits]), abs=1e-6)
  assert summary["precision_at_25"] == pytest.approx(hits[:, :25].mean(), abs=1e-6)
  assert summary["mrr"] == pytest.approx(
      np.mean([1 / (1 + np.argmax(r)) if r.any() else 0 for r in hits]), abs=1e-6)


def test_truncated_ap_divides_by_the_relevant_items_of_the_whole_gallery():
  # Row 1: (1/1 + 2/3) over R = 4 relevant in the gallery; row 2: 1/4 over R = 1; row 3: 0.
  np.testing.assert_allclose(
      list_metrics.average_precision_truncated(HITS, np.array([4, 1, 3])).numpy(),
      [(1 + 2 / 3) / 4, 0.25, 0.0], atol=1e-6)
  values = list_metrics.per_query(HITS, map_cutoff=2, precision_ks=(2,),
                                  relevant_counts=np.array([2, 1, 0]))
  assert set(values) == {"map_all_truncated", "map_2_within_top", "precision_at_2", "mrr"}
  # With R equal to the relevant items in the list it is map_all.
  np.testing.assert_allclose(values["map_all_truncated"],
                             list_metrics.average_precision_all(HITS).numpy(), atol=1e-6)
