"""The items an index is built over: one split's item table, all splits, or a features file.

Categories always come from the shard builder's item tables (the generic `features.npz`
has ids and vectors only), so a features file may only hold items of the chosen split(s).
Vectors are L2-normalised: every backend ranks by inner product, which is then cosine.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from keras_models import data_files
from search import configs
from tfrecords_builder import feature_table

SPLIT_ORDER = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Gallery:
  """Items to index.

  Attributes:
    item_ids: [N] str, unique.
    categories: [N] int32 in 1..K.
    features: [N, D] float32 unit rows.
    category_names: K names, category c is category_names[c - 1].
    source: Where the items came from (recorded in the index manifest).
    synthetic: Whether the data is synthetic.
  """

  item_ids: np.ndarray
  categories: np.ndarray
  features: np.ndarray
  category_names: tuple[str, ...]
  source: dict[str, Any]
  synthetic: bool


def _normalize(features: np.ndarray, item_ids: np.ndarray, origin: str) -> np.ndarray:
  feature_table.check_finite(features, item_ids, origin)
  norms = np.linalg.norm(features, axis=1, keepdims=True)
  zero = np.flatnonzero(norms[:, 0] == 0)
  if len(zero):
    raise ValueError(f"{origin}: feature of item {str(item_ids[zero[0]])!r} (row {zero[0]}) "
                     "has norm 0 and no direction to rank by")
  return (features / norms).astype(np.float32)


def load_gallery(config: configs.IndexConfig) -> Gallery:
  """Loads, deduplicates and normalises the gallery named by `config`."""
  manifest = data_files.load_manifest(config.data_dir)
  splits = SPLIT_ORDER if config.split == "all" else (config.split,)
  missing = [s for s in splits if s not in manifest.splits]
  if config.split != "all" and missing:
    raise ValueError(f"{config.data_dir}/{data_files.MANIFEST}: no split '{config.split}'; "
                     f"have {sorted(manifest.splits)}")
  tables = [data_files.load_item_table(manifest, s) for s in splits if s not in missing]
  item_ids = np.concatenate([t.item_ids for t in tables])
  categories = np.concatenate([t.categories for t in tables])
  features = np.concatenate([t.features for t in tables])
  # An item in several splits keeps its first row (train, val, test order).
  _, first = np.unique(item_ids, return_index=True)
  keep = np.sort(first)
  item_ids, categories, features = item_ids[keep], categories[keep], features[keep]
  source = {"data_dir": config.data_dir, "split": config.split, "features": config.features}
  origin = f"{config.data_dir} ({config.split})"
  if config.features:
    file_ids, file_features = feature_table.load_npz(config.features)
    if file_features.shape[1] != manifest.feature_dim:
      raise ValueError(f"{config.features}: 'features' have dim {file_features.shape[1]}, "
                       f"the data in {config.data_dir} has {manifest.feature_dim}")
    row_of = {item_id: row for row, item_id in enumerate(item_ids)}
    rows = np.array([row_of.get(i, -1) for i in file_ids], np.int64)
    if (rows < 0).any():
      bad = int(np.flatnonzero(rows < 0)[0])
      raise ValueError(f"{config.features}: item_id {str(file_ids[bad])!r} (row {bad}) is not "
                       f"an item of {origin}, so it has no category")
    item_ids, categories, features = file_ids, categories[rows], file_features
    origin = config.features
  return Gallery(item_ids=item_ids, categories=categories.astype(np.int32),
                 features=_normalize(features, item_ids, origin),
                 category_names=manifest.categories, source=source,
                 synthetic=manifest.synthetic)
