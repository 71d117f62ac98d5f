"""The interface every nearest-neighbour backend implements (and nothing else).

Every backend indexes the L2-normalised gallery vectors of ONE category and answers
maximum-inner-product (= cosine) top-k queries. Implementations (exact_backend.py,
faiss_backends.py, scann_backend.py) import this module; the registry that names them
(backends.py) imports the implementations. This module imports neither, so nothing
imports in a circle.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

from search import configs


class Backend(abc.ABC):
  """One category's index.

  Attributes:
    params: The effective build and search parameters (after automatic choices), recorded
      in the index manifest and passed back to `load`.
  """

  name: ClassVar[str]

  def __init__(self, params: dict[str, Any]) -> None:
    self.params = dict(params)

  @classmethod
  @abc.abstractmethod
  def build(cls, features: np.ndarray, config: configs.IndexConfig) -> Backend:
    """Indexes `features` `[n, dim]` float32 (unit rows) with the parameters of `config`."""

  @abc.abstractmethod
  def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Backend search; may return fewer than k columns or rows -1 for missing results."""

  @abc.abstractmethod
  def save(self, folder: str) -> None:
    """Writes the index into the existing, empty `folder`."""

  @classmethod
  @abc.abstractmethod
  def load(cls, folder: str, params: dict[str, Any]) -> Backend:
    """Reads an index written by `save` with the `params` it had."""

  def configure_search(self, config: configs.IndexConfig) -> None:
    """Applies the search-time parameters of `config` (a no-op for exact backends)."""
    del config

  def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k gallery rows by inner product.

    Args:
      queries: `[num_queries, dim]` float32 query vectors.
      k: results per query (>= 1); slots beyond the gallery size hold row -1.

    Returns:
      (scores, rows): `[num_queries, k]` float32 scores, descending, -inf in empty slots,
      and the `[num_queries, k]` int64 gallery rows that go with them.
    """
    if k < 1:
      raise ValueError(f"{self.name}: k must be >= 1, got {k}")
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    scores, rows = self._search(queries, k)
    return _pad(np.asarray(scores, np.float32), np.asarray(rows, np.int64), k)


def _pad(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
  """Cuts or pads results to `[Q, k]`, with -inf / -1 marking empty slots."""
  num_queries = scores.shape[0]
  scores, rows = scores[:, :k], rows[:, :k]
  if scores.shape[1] < k:
    missing = k - scores.shape[1]
    scores = np.concatenate([scores, np.full((num_queries, missing), -np.inf, np.float32)], 1)
    rows = np.concatenate([rows, np.full((num_queries, missing), -1, np.int64)], 1)
  empty = rows < 0
  return np.where(empty, np.float32(-np.inf), scores).astype(np.float32), np.where(empty, -1, rows)
