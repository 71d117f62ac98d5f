"""Frozen, validated configurations of index builds and of the query service.

flags/index_flags.py and flags/serve_flags.py convert flags into these; library code and
tests build them directly.
"""

from __future__ import annotations

import dataclasses
import os

from keras_models import configs as model_configs

BACKENDS = ("exact", "faiss_flat", "faiss_ivf", "faiss_hnsw", "scann")
GALLERY_SPLITS = ("train", "val", "test", "all")


def default_index_dir(model_dir: str, backend: str) -> str:
  """Where an index lives "next to the model": <model_dir>/index/<backend>."""
  return os.path.join(model_dir, "index", backend)


@dataclasses.dataclass(frozen=True)
class IndexConfig:
  """One index build: which gallery, which backend and its parameters.

  Attributes:
    data_dir: Shards folder whose manifest gives categories and item tables.
    output_dir: Index folder (built under a temporary name, then renamed into place).
    backend: One of BACKENDS.
    split: Gallery items: one split's item table, or "all" (every split, deduplicated by
      item id, first split wins in train, val, test order).
    features: Optional generic `features.npz` (`item_ids`, `features`) whose vectors
      replace the item tables'; every id must be an item of the chosen split(s), which
      give its category.
    overwrite: Replace an existing index folder.
    model_dir: The model the index is meant for (recorded in the index manifest).
    exact_chunk_size: Gallery rows per compiled call of the exact scorer; widened for
      small query batches so that queries x rows stays near 2048 x 8192.
    ivf_nlist: IVF lists per category; 0 = round(4 * sqrt(n)), at most n / 39 (FAISS
      wants >= 39 training points per list).
    ivf_nprobe: IVF lists visited per query.
    hnsw_m: HNSW links per node.
    hnsw_ef_construction: HNSW candidate list size while building.
    hnsw_ef_search: HNSW candidate list size while searching.
    scann_num_leaves: ScaNN partitions; 0 = round(sqrt(n)). Categories with fewer than
      scann_min_partitioned items use ScaNN's brute force.
    scann_leaves_to_search: Partitions visited per query; 0 = max(1, num_leaves / 10).
    scann_reorder: Candidates re-scored exactly after asymmetric hashing.
    scann_min_partitioned: Smallest category that gets a partitioned ScaNN index.
  """

  data_dir: str
  output_dir: str
  backend: str = "exact"
  split: str = "all"
  features: str = ""
  overwrite: bool = False
  model_dir: str = ""
  exact_chunk_size: int = model_configs.GALLERY_CHUNK_SIZE
  ivf_nlist: int = 0
  ivf_nprobe: int = 16
  hnsw_m: int = 32
  hnsw_ef_construction: int = 80
  hnsw_ef_search: int = 64
  scann_num_leaves: int = 0
  scann_leaves_to_search: int = 0
  scann_reorder: int = 100
  scann_min_partitioned: int = 2000

  def validate(self) -> None:
    if self.backend not in BACKENDS:
      raise ValueError(f"unknown backend '{self.backend}'; known: {', '.join(BACKENDS)}")
    if self.split not in GALLERY_SPLITS:
      raise ValueError(f"split must be one of {GALLERY_SPLITS}, got '{self.split}'")
    if not self.data_dir:
      raise ValueError("data_dir is required")
    if not self.output_dir:
      raise ValueError("output_dir is required (or model_dir, to write next to the model)")
    positive = ("exact_chunk_size", "ivf_nprobe", "hnsw_m", "hnsw_ef_construction",
                "hnsw_ef_search", "scann_reorder", "scann_min_partitioned")
    for name in positive:
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    for name in ("ivf_nlist", "scann_num_leaves", "scann_leaves_to_search"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be >= 0 (0 = automatic), got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class ServeConfig:
  """The query service: what it serves and the bounds it enforces on every request.

  Attributes:
    data_dir: Shards folder of the model's data (feature dim, categories, max set size).
    model_dir: Trained model folder.
    index_dir: Index folder written by index_main.py.
    model: Architecture of the trained encoder.
    weights: Encoder weights; default <model_dir>/best.weights.h5.
    host: Interface to listen on.
    port: TCP port.
    max_body_bytes: Larger request bodies get 413 (by Content-Length or as streamed).
    max_items: Most query items per request; the model input is padded to this size.
    max_k: Largest k a request may ask for.
    request_timeout_s: A request that waits longer for a free worker gets 503, one whose
      model and index work takes longer gets 504.
    max_concurrent: Requests computed at the same time; the others wait.
    saved_model: Optional SavedModel version folder written by export_main.py; when set,
      the encoder and the gallery search come from it (index_dir, weights and model
      unused), and data_dir and model_dir, which only feed the browser page, default to
      the folders the export records.
  """

  data_dir: str
  model_dir: str
  index_dir: str
  model: model_configs.ModelConfig = model_configs.ModelConfig()
  weights: str = ""
  host: str = "127.0.0.1"
  port: int = 8000
  max_body_bytes: int = 1 << 20
  max_items: int = 64
  max_k: int = 100
  request_timeout_s: float = 10.0
  max_concurrent: int = 2
  saved_model: str = ""

  def validate(self) -> None:
    self.model.validate()
    for name in () if self.saved_model else ("data_dir", "model_dir", "index_dir"):
      if not getattr(self, name):
        raise ValueError(f"{name} is required (or saved_model)")
    if not 0 <= self.port <= 65535:
      raise ValueError(f"port must be in 0..65535, got {self.port}")
    for name in ("max_body_bytes", "max_items", "max_k", "max_concurrent"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.request_timeout_s <= 0:
      raise ValueError(f"request_timeout_s must be > 0, got {self.request_timeout_s}")


def next_export_dir(model_dir: str) -> str:
  """<model_dir>/export/<1 + the highest numbered version there>, as TF Serving numbers."""
  base = os.path.join(model_dir, "export")
  versions = [int(n) for n in os.listdir(base) if n.isdigit()] if os.path.isdir(base) else []
  return os.path.join(base, str(max(versions, default=0) + 1))


@dataclasses.dataclass(frozen=True)
class ExportConfig:
  """One SavedModel export: the trained encoder plus a gallery (as index builds choose it).

  Attributes:
    data_dir: Shards folder of the model's data (feature dim, categories, item tables).
    model_dir: Trained model folder.
    export_dir: The version folder written, e.g. <model_dir>/export/3 (built under a
      temporary name, then renamed into place, so TF Serving never sees half an export).
    model: Architecture of the trained encoder.
    weights: Encoder weights; default <model_dir>/best.weights.h5.
    split: Gallery items, as IndexConfig.split.
    features: Optional generic features.npz, as IndexConfig.features.
    chunk_size: Gallery rows scored per step of the in-graph search.
    max_k: Largest k the exported functions accept.
    overwrite: Replace an existing export_dir.
  """

  data_dir: str
  model_dir: str
  export_dir: str
  model: model_configs.ModelConfig = model_configs.ModelConfig()
  weights: str = ""
  split: str = "all"
  features: str = ""
  chunk_size: int = 16384
  max_k: int = 1000
  overwrite: bool = False

  def gallery_config(self) -> IndexConfig:
    """The gallery choice as gallery.load_gallery reads it."""
    return IndexConfig(data_dir=self.data_dir, output_dir=self.export_dir, split=self.split,
                       features=self.features, model_dir=self.model_dir)

  def validate(self) -> None:
    self.model.validate()
    for name in ("data_dir", "model_dir", "export_dir"):
      if not getattr(self, name):
        raise ValueError(f"{name} is required")
    if self.split not in GALLERY_SPLITS:
      raise ValueError(f"split must be one of {GALLERY_SPLITS}, got '{self.split}'")
    for name in ("chunk_size", "max_k"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
