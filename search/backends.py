"""Nearest-neighbour backends behind one interface, and the registry that names them.

Every backend indexes the L2-normalised gallery vectors of ONE category and answers
maximum-inner-product (= cosine) top-k queries. `exact` is our chunked TF scorer
(`keras_models.metrics.streaming.ChunkedRanker`); `faiss_flat` is exact too; `faiss_ivf`,
`faiss_hnsw` and `scann` are approximate. A backend that cannot be imported fails with an
error saying what to install, never silently falls back to another.
"""

from __future__ import annotations

import abc
import os
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from keras_models.metrics import streaming
from search import configs
from tfrecords_builder import atomic_io


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


_RANKER: streaming.ChunkedRanker | None = None
# Scores held at once by the exact backend: the ranker's default [2048, 8192] block.
_SCORE_BLOCK = streaming.DEFAULT_QUERY_CHUNK_SIZE * streaming.DEFAULT_CHUNK_SIZE


def _shared_ranker() -> streaming.ChunkedRanker:
  """One ranker for every exact index, so its fold function is traced once per process."""
  global _RANKER
  if _RANKER is None:
    _RANKER = streaming.ChunkedRanker()
  return _RANKER


class ExactBackend(Backend):
  """Exact search by our chunked TF scorer: matmul + top_k one gallery chunk at a time."""

  name = "exact"
  FILE = "features.npy"

  def __init__(self, params: dict[str, Any], features: np.ndarray) -> None:
    super().__init__(params)
    self.features = np.asarray(features, np.float32)
    self._gallery = tf.constant(self.features)
    # NumPy, not tensors: the ranker reads categories and ids on the host every search.
    self._categories = np.ones(len(self.features), np.int32)
    self._rows = np.arange(len(self.features), dtype=np.int64)

  @classmethod
  def build(cls, features: np.ndarray, config: configs.IndexConfig) -> ExactBackend:
    return cls({"chunk_size": config.exact_chunk_size}, features)

  def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    # Few queries: widen the chunk so the score block still holds about _SCORE_BLOCK
    # entries; per-fold dispatch (about 1 ms) otherwise dominates a 1-query search.
    chunk_size = max(self.params["chunk_size"], _SCORE_BLOCK // max(1, len(queries)))
    return _shared_ranker().top_k(queries, np.ones(len(queries), np.int32), self._gallery,
                                  self._categories, self._rows, k, chunk_size)

  def save(self, folder: str) -> None:
    atomic_io.write_npy(os.path.join(folder, self.FILE), self.features)

  @classmethod
  def load(cls, folder: str, params: dict[str, Any]) -> ExactBackend:
    return cls(params, np.load(os.path.join(folder, cls.FILE)))


def _registry() -> dict[str, type[Backend]]:
  from search import faiss_backends  # pylint: disable=g-import-not-at-top
  from search import scann_backend  # pylint: disable=g-import-not-at-top
  classes = (ExactBackend, faiss_backends.FaissFlatBackend, faiss_backends.FaissIVFBackend,
             faiss_backends.FaissHNSWBackend, scann_backend.ScannBackend)
  return {backend.name: backend for backend in classes}


def get_backend_class(name: str) -> type[Backend]:
  """The backend registered as `name`; unknown names fail listing the known ones."""
  registry = _registry()
  if name not in registry:
    raise ValueError(f"unknown backend '{name}'; known: {', '.join(registry)}")
  return registry[name]
