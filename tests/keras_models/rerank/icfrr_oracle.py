"""Plain NumPy ICFRR with the whole [G, G] rank matrix: the oracle of the re-ranking tests.

This is the dense maths the library used before shortlists (every [Q, G] list re-ranked),
written out in float64 with no code from the library, plus the shortlist rule: only the
top-T of the initial list moves, with G and alpha still those of the whole gallery.
"""

from __future__ import annotations

import numpy as np


def unit(rng: np.random.Generator, rows: int, dim: int = 6) -> np.ndarray:
  """[rows, dim] float32 random unit vectors."""
  vectors = rng.normal(size=(rows, dim))
  return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def initial_scores(queries: np.ndarray, gallery: np.ndarray, score: str) -> np.ndarray:
  """[Q, G] s0: cosine, or -Euclidean distance of the unit vectors."""
  cosine = queries.astype(np.float64) @ gallery.T.astype(np.float64)
  return cosine if score == "cosine" else -np.sqrt(np.maximum(2.0 - 2.0 * cosine, 0.0))


def alpha_matrix(gallery: np.ndarray, k_g: int) -> np.ndarray:
  """[G, G] alpha(R[a, g]) with R the rank of g in a's list (self -1, nearest other 0)."""
  size = len(gallery)
  cosine = gallery.astype(np.float64) @ gallery.T.astype(np.float64)
  ranks = np.empty((size, size), np.int64)
  for a in range(size):
    others = [g for g in np.argsort(-cosine[a], kind="stable") if g != a]
    ranks[a, a] = -1
    ranks[a, others] = np.arange(size - 1)
  return np.where((ranks >= 0) & (ranks < k_g), 1.0 - ranks / max(size - 1, 1), 0.0)


def rerank(s0: np.ndarray, gallery: np.ndarray, k_g: int, k_q: int, beta: float,
           iterations: int, mode: str, shortlist: int | None = None) -> list[np.ndarray]:
  """[Q, T] orders (gallery indices) before and after every iteration.

  The top-T items of argsort(-s0) are re-ranked; T = G when `shortlist` is None.
  """
  alpha = alpha_matrix(gallery, k_g)
  size = s0.shape[1]
  length = size if shortlist is None else min(shortlist, size)
  k_q = min(k_q, length)
  order = np.argsort(-s0, axis=1, kind="stable")[:, :length]
  values = np.take_along_axis(s0, order, axis=1)
  scores = s0.copy()
  members = np.sort(order, axis=1)  # each shortlist in gallery order, for stable ties
  orders = [order]
  for _ in range(iterations):
    delta = alpha[order[:, :k_q]].mean(axis=1)  # [Q, G]: mean_k alpha(R[pi(k), g])
    if mode == "positional":
      updated = values + beta * np.take_along_axis(delta, order, axis=1)
      order = np.take_along_axis(order, np.argsort(-updated, axis=1, kind="stable"), axis=1)
    else:
      scores = scores + beta * delta
      ranked = np.argsort(-np.take_along_axis(scores, members, axis=1), axis=1, kind="stable")
      order = np.take_along_axis(members, ranked, axis=1)
    orders.append(order)
  return orders
