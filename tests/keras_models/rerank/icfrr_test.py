"""ICFRR (top-K_G storage, both forms, shortlists) against a full-rank-matrix NumPy oracle."""

from __future__ import annotations

import numpy as np
import pytest

from keras_models import configs
from keras_models.rerank import icfrr
from tests.keras_models.rerank import icfrr_oracle


def _lists(s0: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
  """Top-`length` initial lists of s0 [Q, G], by a stable NumPy sort of every row."""
  order = np.argsort(-s0, axis=1, kind="stable")[:, :length]
  return np.take_along_axis(s0, order, axis=1).astype(np.float32), order


@pytest.mark.parametrize("mode", ["positional", "accumulate"])
@pytest.mark.parametrize("k_g, k_q, beta, score", [
    (5, 7, 0.5, "neg_euclidean"), (12, 3, 2.0, "cosine"), (100, 100, 0.3, "neg_euclidean")])
def test_full_shortlist_matches_full_rank_oracle(mode, k_g, k_q, beta, score):
  rng = np.random.default_rng(k_g + k_q)
  gallery, queries = icfrr_oracle.unit(rng, 30), icfrr_oracle.unit(rng, 9)
  config = configs.IcfrrConfig(k_g=k_g, k_q=k_q, beta=beta, iterations=6, mode=mode,
                               score=score)
  s0 = icfrr_oracle.initial_scores(queries, gallery, score)
  neighbours = icfrr.neighbour_table(gallery, k_g, chunk_size=7)
  assert neighbours.shape == (30, min(k_g, 29))
  got = list(icfrr.rerank(*_lists(s0, 30), neighbours, config, query_block_size=4))
  expected = icfrr_oracle.rerank(s0, gallery, k_g, k_q, beta, 6, mode)
  assert len(got) == 7
  for iteration, (order, want) in enumerate(zip(got, expected)):
    np.testing.assert_array_equal(order, want, err_msg=f"iteration {iteration}")
  # The votes do change the lists (otherwise the comparison above proves little).
  assert not np.array_equal(got[0], got[-1])


@pytest.mark.parametrize("mode", ["positional", "accumulate"])
def test_short_lists_rerank_only_their_items(mode):
  rng = np.random.default_rng(11)
  gallery, queries = icfrr_oracle.unit(rng, 40), icfrr_oracle.unit(rng, 10)
  config = configs.IcfrrConfig(k_g=8, k_q=20, beta=1.0, iterations=4, mode=mode)
  s0 = icfrr_oracle.initial_scores(queries, gallery, config.score)
  values, items = _lists(s0, 12)
  got = list(icfrr.rerank(values, items, icfrr.neighbour_table(gallery, 8), config,
                          query_block_size=3))
  # G = 40 in alpha and the table; K_Q = 20 is clipped to T = 12.
  expected = icfrr_oracle.rerank(s0, gallery, 8, 20, 1.0, 4, mode, shortlist=12)
  for iteration, (order, want) in enumerate(zip(got, expected)):
    assert order.shape == (10, 12)
    np.testing.assert_array_equal(order, want, err_msg=f"iteration {iteration}")
    np.testing.assert_array_equal(np.sort(order, axis=1), np.sort(items, axis=1))
  assert not np.array_equal(got[0], got[-1])


def test_forms_differ_and_beta_zero_keeps_the_order():
  rng = np.random.default_rng(3)
  gallery, queries = icfrr_oracle.unit(rng, 40), icfrr_oracle.unit(rng, 12)
  lists = _lists(icfrr_oracle.initial_scores(queries, gallery, "neg_euclidean"), 40)
  neighbours = icfrr.neighbour_table(gallery, 10)
  finals = {}
  for mode in ("positional", "accumulate"):
    config = configs.IcfrrConfig(k_g=10, k_q=15, beta=0.5, iterations=20, mode=mode)
    finals[mode] = list(icfrr.rerank(*lists, neighbours, config))[-1]
  assert not np.array_equal(finals["positional"], finals["accumulate"])
  still = configs.IcfrrConfig(k_g=10, k_q=15, beta=0.0, iterations=3)
  orders = list(icfrr.rerank(*lists, neighbours, still))
  for order in orders[1:]:
    np.testing.assert_array_equal(order, orders[0])


def test_neighbour_table_and_votes_equal_the_rank_matrix_formula():
  rng = np.random.default_rng(5)
  gallery = icfrr_oracle.unit(rng, 25)
  gallery[7] = gallery[3]  # A duplicate: ties keep gallery order, self is still dropped.
  neighbours = icfrr.neighbour_table(gallery, 8, chunk_size=6)
  cosine = gallery.astype(np.float64) @ gallery.T.astype(np.float64)
  for a in range(25):
    others = [g for g in np.argsort(-cosine[a], kind="stable") if g != a]
    np.testing.assert_array_equal(neighbours[a], others[:8], err_msg=f"item {a}")
  voters = np.stack([rng.permutation(25)[:6] for _ in range(4)]).astype(np.int32)
  delta = icfrr.votes(voters, neighbours, icfrr.rank_weights(25, 8)).numpy()
  alpha = icfrr_oracle.alpha_matrix(gallery, 8)
  np.testing.assert_allclose(delta, alpha[voters].mean(axis=1), atol=1e-6)


def test_scores_and_errors():
  rng = np.random.default_rng(0)
  gallery, queries = icfrr_oracle.unit(rng, 5), icfrr_oracle.unit(rng, 2)
  distances = np.linalg.norm(queries[:, None] - gallery[None], axis=-1)
  np.testing.assert_allclose(icfrr.scores_from_cosine(queries @ gallery.T, "neg_euclidean"),
                             -distances, atol=1e-5)
  with pytest.raises(ValueError, match="unknown icfrr score 'dot'"):
    icfrr.scores_from_cosine(queries @ gallery.T, "dot")
  with pytest.raises(ValueError, match=r"shortlist items must be in \[0, 4\)"):
    next(icfrr.rerank(np.zeros((2, 5)), np.tile(np.arange(5), (2, 1)),
                      np.zeros((4, 2), np.int32), configs.IcfrrConfig()))
  with pytest.raises(ValueError, match=r"values \(2, 5\) and items \(2, 4\) differ"):
    next(icfrr.rerank(np.zeros((2, 5)), np.zeros((2, 4)), np.zeros((4, 2), np.int32),
                      configs.IcfrrConfig()))
  with pytest.raises(ValueError, match="icfrr mode must be one of"):
    configs.IcfrrConfig(mode="paper").validate()
  with pytest.raises(ValueError, match="icfrr shortlist must be >= 1, got 0"):
    configs.IcfrrConfig(shortlist=0).validate()
  assert icfrr.neighbour_table(gallery[:1], 5).shape == (1, 0)
