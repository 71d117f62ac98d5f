"""ScaNN backend: k-means partitions, anisotropic hashing, exact re-ranking of candidates.

Only ScaNN's pybind searcher is used. The `scann` package's `__init__` also loads its
TensorFlow custom-op library, which is built against another TensorFlow and fails to load
beside TF 2.21 (tf.errors.NotFoundError: undefined absl symbol); `import_scann` registers
an empty module in that op library's place before importing, so the pybind searcher, which
needs no TensorFlow, loads. Categories smaller than `scann_min_partitioned` get ScaNN's
brute force, since partitioning a few hundred vectors gains nothing.
"""

from __future__ import annotations

import math
import os
import sys
import types
from typing import Any

import numpy as np

from search import backend_base
from search import configs

_OPS_MODULE = "scann.scann_ops.py.scann_ops"
FOLDER = "scann"


def import_scann():
  """ScaNN's `scann_ops_pybind` module, or an ImportError that says what failed."""
  if "scann" not in sys.modules:
    sys.modules.setdefault(_OPS_MODULE, types.ModuleType(_OPS_MODULE))
  try:
    from scann.scann_ops.py import scann_ops_pybind  # pylint: disable=g-import-not-at-top
  except Exception as error:  # pylint: disable=broad-except
    raise ImportError("the scann backend needs a working ScaNN: pip install 'scann>=1.4.2,<1.5' "
                      f"on x86-64 Linux with AVX2 ({type(error).__name__}: {error})") from None
  return scann_ops_pybind


def partition_params(num_items: int, config: configs.IndexConfig) -> dict[str, Any]:
  """The effective ScaNN parameters for a category of `num_items` items."""
  if num_items < config.scann_min_partitioned:
    return {"mode": "brute_force"}
  leaves = config.scann_num_leaves or round(math.sqrt(num_items))
  leaves = int(max(2, min(leaves, num_items // 10)))
  to_search = config.scann_leaves_to_search or max(1, leaves // 10)
  return {"mode": "partitioned", "num_leaves": leaves,
          "leaves_to_search": int(min(to_search, leaves)), "reorder": config.scann_reorder}


class ScannBackend(backend_base.Backend):
  """ScaNN searcher with dot-product similarity."""

  name = "scann"

  def __init__(self, params: dict[str, Any], searcher) -> None:
    super().__init__(params)
    self.searcher = searcher

  @classmethod
  def build(cls, features: np.ndarray, config: configs.IndexConfig) -> ScannBackend:
    scann = import_scann()
    features = np.ascontiguousarray(features, np.float32)
    params = partition_params(len(features), config)
    builder = scann.builder(features, 10, "dot_product")
    if params["mode"] == "brute_force":
      searcher = builder.score_brute_force().build()
    else:
      searcher = builder.tree(
          num_leaves=params["num_leaves"], num_leaves_to_search=params["leaves_to_search"],
          training_sample_size=min(len(features), 250_000)).score_ah(
              2, anisotropic_quantization_threshold=0.2).reorder(params["reorder"]).build()
    return cls(params, searcher)

  def configure_search(self, config: configs.IndexConfig) -> None:
    if self.params["mode"] == "partitioned":
      to_search = config.scann_leaves_to_search or max(1, self.params["num_leaves"] // 10)
      self.params["leaves_to_search"] = int(min(to_search, self.params["num_leaves"]))
      self.params["reorder"] = config.scann_reorder

  def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    options = {"final_num_neighbors": k}
    if self.params["mode"] == "partitioned":
      options.update(leaves_to_search=self.params["leaves_to_search"],
                     pre_reorder_num_neighbors=max(k, self.params["reorder"]))
    if len(queries) > 64:
      rows, scores = self.searcher.search_batched_parallel(queries, **options)
    else:
      rows, scores = self.searcher.search_batched(queries, **options)
    scores, rows = np.asarray(scores, np.float32), np.asarray(rows, np.int64)
    # ScaNN fills slots beyond the gallery size with row 0 and a NaN score.
    return scores, np.where(np.isnan(scores), -1, rows)

  def save(self, folder: str) -> None:
    target = os.path.join(folder, FOLDER)
    os.makedirs(target)
    # Relative paths inside the assets, so the index folder can be renamed into place.
    self.searcher.serialize(target, relative_path=True)

  @classmethod
  def load(cls, folder: str, params: dict[str, Any]) -> ScannBackend:
    return cls(params, import_scann().load_searcher(os.path.join(folder, FOLDER)))
