"""`exact`: our chunked TF scorer (`keras_models.metrics.streaming.ChunkedRanker`)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tensorflow as tf

from keras_models.metrics import streaming
from search import backend_base
from search import configs
from tfrecords_builder import atomic_io

_RANKER: streaming.ChunkedRanker | None = None
# Scores held at once by the exact backend: the ranker's default [2048, 8192] block.
_SCORE_BLOCK = streaming.DEFAULT_QUERY_CHUNK_SIZE * streaming.DEFAULT_CHUNK_SIZE


def _shared_ranker() -> streaming.ChunkedRanker:
  """One ranker for every exact index, so its fold function is traced once per process."""
  global _RANKER
  if _RANKER is None:
    _RANKER = streaming.ChunkedRanker()
  return _RANKER


class ExactBackend(backend_base.Backend):
  """Exact search by our chunked TF scorer: matmul + top_k one gallery chunk at a time."""

  name = "exact"
  FILE = "features.npy"

  def __init__(self, params: dict[str, Any], features: np.ndarray) -> None:
    super().__init__(params)
    # The tensor is the backend's only copy of its rows (no NumPy copy beside it).
    self._gallery = tf.constant(np.asarray(features, np.float32))
    # NumPy, not tensors: the ranker reads categories and ids on the host every search.
    self._categories = np.ones(len(features), np.int32)
    self._rows = np.arange(len(features), dtype=np.int64)

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
    atomic_io.write_npy(os.path.join(folder, self.FILE), self._gallery.numpy())

  @classmethod
  def load(cls, folder: str, params: dict[str, Any]) -> ExactBackend:
    return cls(params, np.load(os.path.join(folder, cls.FILE)))
