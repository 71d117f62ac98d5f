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
# Rows normalised at a time.
_BLOCK_ROWS = 65536


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
  """`features` as float32 unit rows, normalised in place block by block (no full copy)."""
  features = np.asarray(features, np.float32)
  feature_table.check_finite(features, item_ids, origin)
  for start in range(0, len(features), _BLOCK_ROWS):
    block = features[start:start + _BLOCK_ROWS]
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if len(zero):
      row = start + zero[0]
      raise ValueError(f"{origin}: feature of item {str(item_ids[row])!r} (row {row}) "
                       "has norm 0 and no direction to rank by")
    block /= norms
  return features


def load_gallery(config: configs.IndexConfig) -> Gallery:
  """Loads, deduplicates and normalises the gallery named by `config`."""
  manifest = data_files.load_manifest(config.data_dir)
  splits = SPLIT_ORDER if config.split == "all" else (config.split,)
  missing = [s for s in splits if s not in manifest.splits]
  if config.split != "all" and missing:
    raise ValueError(f"{config.data_dir}/{data_files.MANIFEST}: no split '{config.split}'; "
                     f"have {sorted(manifest.splits)}")
  splits = [s for s in splits if s not in missing]
  tables = [data_files.load_table_columns(manifest, s, ("item_ids", "categories"))
            for s in splits]
  item_ids = np.concatenate([t["item_ids"].astype(str) for t in tables])
  categories = np.concatenate([t["categories"] for t in tables])
  # An item in several splits keeps its first row (train, val, test order).
  _, first = np.unique(item_ids, return_index=True)
  keep = np.sort(first)
  item_ids, categories = item_ids[keep], categories[keep]
  # Features are read one split at a time into the kept rows: the gallery is held once,
  # not once per split and again concatenated (GBs at 10^6 items).
  features = np.empty((len(keep), manifest.feature_dim), np.float32)
  bounds = np.cumsum([0] + [len(t["item_ids"]) for t in tables])
  for split, low, high in zip(splits, bounds[:-1], bounds[1:]):
    inside = (keep >= low) & (keep < high)
    split_features = data_files.load_table_columns(manifest, split, ("features",))["features"]
    features[inside] = split_features[keep[inside] - low]
    del split_features
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
