"""ICFRR (top-K_G storage, both forms) against a full-rank-matrix NumPy oracle."""

from __future__ import annotations

import numpy as np
import pytest

from keras_models import configs
from keras_models.rerank import icfrr


def _unit(rng, rows, dim=6):
  vectors = rng.normal(size=(rows, dim))
  return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _oracle(s0, gallery, k_g, k_q, beta, iterations, mode):
  """The formulas with the whole [G, G] rank matrix R, in float64."""
  size = len(gallery)
  cosine = gallery.astype(np.float64) @ gallery.T.astype(np.float64)
  ranks = np.empty((size, size), np.int64)
  for a in range(size):
    others = [g for g in np.argsort(-cosine[a], kind="stable") if g != a]
    ranks[a, a] = -1
    ranks[a, others] = np.arange(size - 1)
  alpha = np.where((ranks >= 0) & (ranks < k_g), 1.0 - ranks / (size - 1), 0.0)
  k_q = min(k_q, size)
  s0 = s0.astype(np.float64)
  order = np.argsort(-s0, axis=1, kind="stable")
  values = np.take_along_axis(s0, order, axis=1)
  scores = s0.copy()
  orders = [order]
  for _ in range(iterations):
    delta = alpha[order[:, :k_q]].mean(axis=1)  # [Q, G]: mean_k alpha(R[pi(k), g])
    if mode == "positional":
      updated = values + beta * np.take_along_axis(delta, order, axis=1)
      order = np.take_along_axis(order, np.argsort(-updated, axis=1, kind="stable"), axis=1)
    else:
      scores = scores + beta * delta
      order = np.argsort(-scores, axis=1, kind="stable")
    orders.append(order)
  return orders


@pytest.mark.parametrize("mode", ["positional", "accumulate"])
@pytest.mark.parametrize("k_g, k_q, beta, score", [
    (5, 7, 0.5, "neg_euclidean"), (12, 3, 2.0, "cosine"), (100, 100, 0.3, "neg_euclidean")])
def test_rerank_matches_full_rank_oracle(mode, k_g, k_q, beta, score):
  rng = np.random.default_rng(k_g + k_q)
  gallery, queries = _unit(rng, 30), _unit(rng, 9)
  config = configs.IcfrrConfig(k_g=k_g, k_q=k_q, beta=beta, iterations=6, mode=mode,
                               score=score)
  s0 = icfrr.initial_scores(queries, gallery, score)
  neighbours = icfrr.neighbour_table(gallery, k_g, chunk_size=7)
  assert neighbours.shape == (30, min(k_g, 29))
  got = list(icfrr.rerank(s0, neighbours, config, query_block_size=4))
  expected = _oracle(s0, gallery, k_g, k_q, beta, 6, mode)
  assert len(got) == 7
  for iteration, (order, want) in enumerate(zip(got, expected)):
    np.testing.assert_array_equal(order, want, err_msg=f"iteration {iteration}")
  # The votes do change the lists (otherwise the comparison above proves little).
  assert not np.array_equal(got[0], got[-1])


def test_forms_differ_and_beta_zero_keeps_the_order():
  rng = np.random.default_rng(3)
  gallery, queries = _unit(rng, 40), _unit(rng, 12)
  s0 = icfrr.initial_scores(queries, gallery, "neg_euclidean")
  neighbours = icfrr.neighbour_table(gallery, 10)
  finals = {}
  for mode in ("positional", "accumulate"):
    config = configs.IcfrrConfig(k_g=10, k_q=15, beta=0.5, iterations=20, mode=mode)
    finals[mode] = list(icfrr.rerank(s0, neighbours, config))[-1]
  assert not np.array_equal(finals["positional"], finals["accumulate"])
  still = configs.IcfrrConfig(k_g=10, k_q=15, beta=0.0, iterations=3)
  orders = list(icfrr.rerank(s0, neighbours, still))
  for order in orders[1:]:
    np.testing.assert_array_equal(order, orders[0])


def test_votes_equal_the_rank_matrix_formula():
  rng = np.random.default_rng(5)
  gallery = _unit(rng, 25)
  neighbours = icfrr.neighbour_table(gallery, 8)
  cosine = gallery @ gallery.T
  np.fill_diagonal(cosine, -np.inf)
  np.testing.assert_array_equal(neighbours, np.argsort(-cosine, axis=1, kind="stable")[:, :8])
  order = np.stack([rng.permutation(25) for _ in range(4)]).astype(np.int32)
  delta = icfrr.votes(order, neighbours, icfrr.rank_weights(25, 8), 6).numpy()
  expected = np.zeros((4, 25))
  for q in range(4):
    for a in order[q, :6]:
      for r, g in enumerate(neighbours[a]):
        expected[q, g] += (1 - r / 24) / 6
  np.testing.assert_allclose(delta, expected, atol=1e-6)


def test_initial_scores_and_errors():
  rng = np.random.default_rng(0)
  gallery, queries = _unit(rng, 5), _unit(rng, 2)
  distances = np.linalg.norm(queries[:, None] - gallery[None], axis=-1)
  np.testing.assert_allclose(icfrr.initial_scores(queries, gallery, "neg_euclidean"),
                             -distances, atol=1e-5)
  with pytest.raises(ValueError, match="unknown icfrr score 'dot'"):
    icfrr.initial_scores(queries, gallery, "dot")
  with pytest.raises(ValueError, match="neighbour table has 4 rows, scores 5 columns"):
    next(icfrr.rerank(np.zeros((2, 5)), np.zeros((4, 2), np.int32), configs.IcfrrConfig()))
  with pytest.raises(ValueError, match="icfrr mode must be one of"):
    configs.IcfrrConfig(mode="paper").validate()
  assert icfrr.neighbour_table(gallery[:1], 5).shape == (1, 0)
