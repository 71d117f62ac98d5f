"""FAISS backends: flat (exact), IVF (inverted lists) and HNSW (graph), inner product.

Indexes are stored with `faiss.serialize_index` as one `index.faiss` file. The search-time
knobs (IVF `nprobe`, HNSW `efSearch`) are part of `params` and re-applied on load.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from search import backend_base
from search import configs
from tfrecords_builder import atomic_io

FILE = "index.faiss"
# FAISS's k-means warns below 39 training points per centroid.
MIN_POINTS_PER_LIST = 39


def import_faiss():
  """The faiss module, or an ImportError that says what to install."""
  try:
    import faiss  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ImportError("the faiss_* backends need faiss-cpu: pip install 'faiss-cpu>=1.8,<2' "
                      f"({error})") from None
  return faiss


class _FaissBackend(backend_base.Backend):
  """Shared storage and search of the FAISS indexes."""

  def __init__(self, params: dict[str, Any], index) -> None:
    super().__init__(params)
    self.index = index
    self._apply_search_params()

  def _apply_search_params(self) -> None:
    """Sets the index's search-time knobs from `params`."""

  def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores, rows = self.index.search(queries, k)
    return scores, rows

  def save(self, folder: str) -> None:
    data = import_faiss().serialize_index(self.index)
    atomic_io.write_bytes(os.path.join(folder, FILE), np.asarray(data).tobytes())

  @classmethod
  def load(cls, folder: str, params: dict[str, Any]) -> backend_base.Backend:
    data = np.fromfile(os.path.join(folder, FILE), dtype=np.uint8)
    return cls(params, import_faiss().deserialize_index(data))


class FaissFlatBackend(_FaissBackend):
  """`IndexFlatIP`: exact brute force in FAISS's BLAS kernels."""

  name = "faiss_flat"

  @classmethod
  def build(cls, features: np.ndarray, config: configs.IndexConfig) -> FaissFlatBackend:
    faiss = import_faiss()
    index = faiss.IndexFlatIP(features.shape[1])
    index.add(np.ascontiguousarray(features, np.float32))
    return cls({}, index)


def ivf_num_lists(num_items: int, requested: int) -> int:
  """Lists of an IVF index over `num_items`: `requested`, or 4 sqrt(n), capped at n / 39."""
  wanted = requested or round(4 * math.sqrt(num_items))
  return int(max(1, min(wanted, num_items // MIN_POINTS_PER_LIST)))


class FaissIVFBackend(_FaissBackend):
  """`IndexIVFFlat`: k-means lists; a query scans the `nprobe` nearest lists exactly."""

  name = "faiss_ivf"

  def _apply_search_params(self) -> None:
    self.index.nprobe = int(self.params["nprobe"])

  def configure_search(self, config: configs.IndexConfig) -> None:
    self.params["nprobe"] = min(config.ivf_nprobe, self.params["nlist"])
    self._apply_search_params()

  @classmethod
  def build(cls, features: np.ndarray, config: configs.IndexConfig) -> FaissIVFBackend:
    faiss = import_faiss()
    features = np.ascontiguousarray(features, np.float32)
    nlist = ivf_num_lists(len(features), config.ivf_nlist)
    quantizer = faiss.IndexFlatIP(features.shape[1])
    index = faiss.IndexIVFFlat(quantizer, features.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(features)
    index.add(features)
    return cls({"nlist": nlist, "nprobe": min(config.ivf_nprobe, nlist)}, index)


class FaissHNSWBackend(_FaissBackend):
  """`IndexHNSWFlat`: a navigable small-world graph over the raw vectors."""

  name = "faiss_hnsw"

  def _apply_search_params(self) -> None:
    self.index.hnsw.efSearch = int(self.params["ef_search"])

  def configure_search(self, config: configs.IndexConfig) -> None:
    self.params["ef_search"] = config.hnsw_ef_search
    self._apply_search_params()

  @classmethod
  def build(cls, features: np.ndarray, config: configs.IndexConfig) -> FaissHNSWBackend:
    faiss = import_faiss()
    index = faiss.IndexHNSWFlat(features.shape[1], config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = config.hnsw_ef_construction
    index.add(np.ascontiguousarray(features, np.float32))
    return cls({"m": config.hnsw_m, "ef_construction": config.hnsw_ef_construction,
                "ef_search": config.hnsw_ef_search}, index)
