"""Reads what the shard builder wrote: manifest, item tables, category centers and means,
shard paths."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from typing import Iterator

from absl import logging
import numpy as np
import tensorflow as tf

from tfrecords_builder import dataset_builder

MANIFEST = "manifest.json"
CATEGORY_MEANS = "category_means.npy"
ITEM_TABLE_ARRAYS = ("item_ids", "categories", "features", "images", "set_ids",
                     "set_offsets", "set_items", "set_images")


@dataclasses.dataclass(frozen=True)
class Manifest:
  """The parts of `manifest.json` that training and evaluation need."""

  data_dir: str
  source: str
  synthetic: bool
  feature_dim: int
  num_categories: int
  categories: tuple[str, ...]
  max_set_size: int
  splits: dict

  @property
  def half_size(self) -> int:
    """Padded length of each half (query X, target Y) of a set: ceil(max_set_size / 2)."""
    return (self.max_set_size + 1) // 2

  def shard_paths(self, split: str) -> list[str]:
    if split not in self.splits:
      raise ValueError(f"{self.data_dir}/{MANIFEST}: no split '{split}'; have {sorted(self.splits)}")
    paths = [os.path.join(self.data_dir, s["file"]) for s in self.splits[split]["shards"]]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
      raise FileNotFoundError(f"{missing[0]}: shard listed in {MANIFEST} is missing")
    return paths

  def num_sets(self, split: str) -> int:
    return int(self.splits[split]["sets"])

  def data_label(self) -> str:
    """Names the data in reports; synthetic data is always labelled as such."""
    name = os.path.basename(os.path.normpath(self.data_dir))
    return f"{name} (SYNTHETIC)" if self.synthetic else name


def load_manifest(data_dir: str) -> Manifest:
  """Loads `<data_dir>/manifest.json`, raising errors that name the file and field."""
  path = os.path.join(data_dir, MANIFEST)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: not found; build shards first with "
                            "`python -m tfrecords_builder --output_dir=...`")
  try:
    with open(path, encoding="utf-8") as stream:
      raw = json.load(stream)
  except json.JSONDecodeError as error:
    raise ValueError(f"{path}: not valid JSON ({error.msg})") from None
  for field in ("source", "feature_dim", "num_categories", "categories", "max_set_size", "splits"):
    if field not in raw:
      raise ValueError(f"{path}: missing field '{field}'")
  return Manifest(
      data_dir=data_dir, source=raw["source"], synthetic=bool(raw.get("synthetic", False)),
      feature_dim=int(raw["feature_dim"]), num_categories=int(raw["num_categories"]),
      categories=tuple(raw["categories"]), max_set_size=int(raw["max_set_size"]),
      splits=raw["splits"])


def verify_shards(manifest: Manifest, split: str) -> None:
  """Checks every shard of `split` against the sha256 in the manifest."""
  manifest.shard_paths(split)  # Names a missing shard.
  for shard in manifest.splits[split]["shards"]:
    path = os.path.join(manifest.data_dir, shard["file"])
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
      for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
    if digest.hexdigest() != shard["sha256"]:
      raise ValueError(f"{path}: sha256 {digest.hexdigest()[:12]}... does not match the "
                       f"manifest ({shard['sha256'][:12]}...); the shard is corrupt or truncated")


def locate_data_loss(manifest: Manifest, split: str) -> str:
  """'<shard>: record <i>: <reason>' for the first unreadable record of `split`, or ''."""
  for path in manifest.shard_paths(split):
    count = 0
    try:
      for _ in tf.data.TFRecordDataset(path):
        count += 1
    except tf.errors.DataLossError as error:
      return f"{path}: record {count}: {error.message}"
  return ""


@contextlib.contextmanager
def shards_named_on_data_loss(manifest: Manifest, splits: tuple[str, ...]) -> Iterator[None]:
  """Turns a tf.data DataLossError (which names no file) into one naming shard and record."""
  try:
    yield
  except tf.errors.DataLossError as error:
    for split in splits:
      where = locate_data_loss(manifest, split)
      if where:
        raise ValueError(f"{where}; the shard is corrupt or truncated: rebuild the shards "
                         "(--verify_shards checks every shard's sha256 before work)") from error
    raise


@dataclasses.dataclass(frozen=True)
class ItemTable:
  """All items of one split: the retrieval gallery and the TPaNeg negative pool.

  Attributes:
    item_ids: [N] str.
    categories: [N] int32 in 1..K.
    features: [N, D] float32.
    images: [N] str image paths ("" when unknown).
    first_set: [N] int32, index of the first set holding each item.
    set_ids: [num_sets] str.
    set_offsets: [num_sets + 1] int64 CSR offsets of the sets into `set_items`.
    set_items: [total] int64 item rows of every set's members.
    set_images: [num_sets] str path of each set's own photo ("" when none; all "" in
      tables written before set photos existed).
  """

  item_ids: np.ndarray
  categories: np.ndarray
  features: np.ndarray
  images: np.ndarray
  first_set: np.ndarray
  set_ids: np.ndarray
  set_offsets: np.ndarray
  set_items: np.ndarray
  set_images: np.ndarray | None = None


def load_table_columns(manifest: Manifest, split: str,
                       names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
  """Reads only the `names` arrays (default: all) of `items-<split>.npz`.

  An `.npz` is read array by array, so a caller that shows ids and images never loads the
  `[N, D]` features. `set_images` is filled with "" for tables written before it existed.
  """
  path = os.path.join(manifest.data_dir, manifest.splits[split]["item_table"])
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: item table listed in {MANIFEST} is missing")
  with np.load(path, allow_pickle=False) as data:
    wanted = data.files if names is None else names
    missing = [n for n in wanted if n not in data.files and n != "set_images"]
    if missing:
      raise ValueError(f"{path}: item table has no array '{missing[0]}'")
    table = {key: data[key] for key in wanted if key in data.files}
    if "set_images" in wanted and "set_images" not in table:
      table["set_images"] = np.full(len(data["set_ids"]), "")
  return table


def load_item_table(manifest: Manifest, split: str) -> ItemTable:
  """Loads `items-<split>.npz` and checks it against the manifest."""
  path = os.path.join(manifest.data_dir, manifest.splits[split]["item_table"])
  table = load_table_columns(manifest, split, ITEM_TABLE_ARRAYS)
  features = table["features"].astype(np.float32)
  if features.ndim != 2 or features.shape[1] != manifest.feature_dim:
    raise ValueError(f"{path}: features have shape {features.shape}, manifest says dim "
                     f"{manifest.feature_dim}")
  offsets, members = table["set_offsets"], table["set_items"]
  first_set = np.full(len(features), -1, np.int32)
  owners = np.repeat(np.arange(len(offsets) - 1, dtype=np.int32), np.diff(offsets))
  # Reversed assignment leaves the smallest set index for items in several sets.
  first_set[members[::-1]] = owners[::-1]
  return ItemTable(item_ids=table["item_ids"].astype(str), categories=table["categories"].astype(np.int32),
                   features=features, images=table["images"].astype(str), first_set=first_set,
                   set_ids=table["set_ids"].astype(str),
                   set_offsets=offsets.astype(np.int64), set_items=members.astype(np.int64),
                   set_images=table["set_images"].astype(str))


def _load_category_array(manifest: Manifest, name: str) -> np.ndarray:
  """[K, D] float32 array `name` of the data folder, checked against the manifest."""
  path = os.path.join(manifest.data_dir, name)
  values = np.load(path).astype(np.float32)
  if values.shape != (manifest.num_categories, manifest.feature_dim):
    raise ValueError(f"{path}: shape {values.shape}, expected "
                     f"({manifest.num_categories}, {manifest.feature_dim})")
  return values


def load_centers(manifest: Manifest) -> np.ndarray:
  """[K, D] category centers written by the builder (unit length: CST's seeds)."""
  return _load_category_array(manifest, "category_centers.npy")


def load_category_means(manifest: Manifest) -> np.ndarray:
  """[K, D] mean of the L2-normalised train items per category (not re-normalised).

  The baselines' centres (`dataset_builder.category_means`). Read from
  `category_means.npy`; a folder built before that file existed gets the same values
  computed from the train item table, which holds the same rows.
  """
  if os.path.isfile(os.path.join(manifest.data_dir, CATEGORY_MEANS)):
    return _load_category_array(manifest, CATEGORY_MEANS)
  logging.info("%s: no %s (built before it existed); computing it from the train item "
               "table", manifest.data_dir, CATEGORY_MEANS)
  table = load_table_columns(manifest, "train", ("categories", "features"))
  return dataset_builder.category_means(table["features"], table["categories"],
                                        manifest.num_categories)
