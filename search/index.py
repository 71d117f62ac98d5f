"""Per-category indexes: build from a gallery, write atomically, load and query.

An index folder holds
  index_manifest.json   backend, build parameters, per-category effective parameters and
                        build times, the gallery's source, D and the category vocabulary;
  items.npz             item_ids [N] str, categories [N] int32 (1..K), features [N, D]
                        float32 (unit rows): the gallery, shared by every backend;
  category-<id>/        one backend index per category over that category's rows.
The folder is built under a temporary name and renamed into place (as the shard builder
does), so an interrupted build never leaves a folder that looks valid.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from typing import Any

from absl import logging
import numpy as np

from keras_models import data_files
from search import backend_base
from search import backends
from search import configs
from search import gallery as gallery_lib
from search import id_lookup
from tfrecords_builder import atomic_io

INDEX_MANIFEST = "index_manifest.json"
ITEMS = "items.npz"
FORMAT_VERSION = 1


def category_folder(category_id: int) -> str:
  return f"category-{category_id:03d}"


def build(config: configs.IndexConfig) -> dict[str, Any]:
  """Builds the per-category index of `config` into `config.output_dir`.

  Returns:
    The index manifest that was written.

  Raises:
    FileExistsError: `output_dir` is not empty and `config.overwrite` is False.
    ValueError, FileNotFoundError: bad configuration or gallery, naming file and field.
  """
  config.validate()
  backend_class = backends.get_backend_class(config.backend)
  output_dir = os.path.abspath(config.output_dir)
  if os.path.isdir(output_dir) and os.listdir(output_dir) and not config.overwrite:
    raise FileExistsError(f"{output_dir}: index folder is not empty; pass --overwrite to "
                          "replace it")
  gallery = gallery_lib.load_gallery(config)
  os.makedirs(os.path.dirname(output_dir), exist_ok=True)
  start = time.perf_counter()
  with atomic_io.staged_dir(output_dir) as staging:
    atomic_io.write_npz(os.path.join(staging, ITEMS), item_ids=gallery.item_ids,
                        categories=gallery.categories, features=gallery.features)
    categories = {}
    for category_id, name in enumerate(gallery.category_names, start=1):
      rows = np.flatnonzero(gallery.categories == category_id)
      entry = {"id": category_id, "items": int(len(rows))}
      if len(rows):
        category_start = time.perf_counter()
        backend = backend_class.build(gallery.features[rows], config)
        entry["build_seconds"] = round(time.perf_counter() - category_start, 4)
        folder = os.path.join(staging, category_folder(category_id))
        os.makedirs(folder)
        backend.save(folder)
        entry.update(folder=category_folder(category_id), params=backend.params)
      categories[name] = entry
    manifest = {
        "format_version": FORMAT_VERSION, "backend": config.backend,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": dataclasses.asdict(config), "source": gallery.source,
        "synthetic": gallery.synthetic, "feature_dim": int(gallery.features.shape[1]),
        "num_items": int(len(gallery.item_ids)), "categories": categories,
        "build_seconds": round(time.perf_counter() - start, 3)}
    atomic_io.write_json(os.path.join(staging, INDEX_MANIFEST), manifest)
  logging.info("built %s index of %d items in %d categories in %.1f s: %s", config.backend,
               manifest["num_items"], sum(1 for c in categories.values() if c["items"]),
               manifest["build_seconds"], output_dir)
  return manifest


class SearchIndex:
  """A loaded index folder: the gallery plus one backend per non-empty category.

  Attributes:
    manifest: The parsed index manifest.
    backend: Backend name.
    category_names: ("name of category 1", ...), in id order.
    item_ids: [N] str; categories: [N] int32; features: [N, D] float32 unit rows.
  """

  def __init__(self, index_dir: str) -> None:
    self.index_dir = index_dir
    path = os.path.join(index_dir, INDEX_MANIFEST)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path}: not found; build the index with index_main.py")
    try:
      with open(path, encoding="utf-8") as stream:
        self.manifest = json.load(stream)
    except json.JSONDecodeError as error:
      raise ValueError(f"{path}: not valid JSON ({error.msg})") from None
    for field in ("format_version", "backend", "categories", "feature_dim"):
      if field not in self.manifest:
        raise ValueError(f"{path}: missing field '{field}'")
    if self.manifest["format_version"] != FORMAT_VERSION:
      raise ValueError(f"{path}: format_version {self.manifest['format_version']}, this code "
                       f"reads {FORMAT_VERSION}; rebuild the index")
    self.backend = self.manifest["backend"]
    backend_class = backends.get_backend_class(self.backend)
    with np.load(os.path.join(index_dir, ITEMS), allow_pickle=False) as items:
      self.item_ids = items["item_ids"].astype(str)
      self.categories = items["categories"].astype(np.int32)
      self.features = items["features"].astype(np.float32)
    self.category_names = tuple(self.manifest["categories"])
    self._lookup = id_lookup.IdLookup(self.item_ids)
    self._rows: dict[int, np.ndarray] = {}
    self._backends: dict[int, backend_base.Backend] = {}
    for entry in self.manifest["categories"].values():
      if entry["items"]:
        folder = os.path.join(index_dir, entry["folder"])
        self._backends[entry["id"]] = backend_class.load(folder, entry["params"])
        self._rows[entry["id"]] = np.flatnonzero(self.categories == entry["id"])
        if len(self._rows[entry["id"]]) != entry["items"]:
          raise ValueError(f"{path}: category {entry['id']} lists {entry['items']} items, "
                           f"{ITEMS} has {len(self._rows[entry['id']])}")

  @property
  def feature_dim(self) -> int:
    return int(self.manifest["feature_dim"])

  def category_size(self, category_id: int) -> int:
    return len(self._rows.get(category_id, ()))

  def row_of(self, item_id: str) -> int | None:
    """Gallery row of `item_id`, None when it is not in the gallery."""
    return self._lookup.row(item_id)

  def feature(self, row: int) -> np.ndarray:
    """`[D]` unit feature of a gallery row."""
    return self.features[row]

  def search(self, category_id: int, queries: np.ndarray,
             k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items of one category.

    Args:
      category_id: 1..K.
      queries: `[num_queries, dim]` float32 unit query vectors.
      k: results per query.

    Returns:
      (scores, rows): `[num_queries, k]` similarities (descending, -inf when the category
      has fewer than k items) and gallery rows (-1 in those slots).
    """
    queries = np.asarray(queries, np.float32)
    if category_id not in self._backends:
      return (np.full((len(queries), k), -np.inf, np.float32),
              np.full((len(queries), k), -1, np.int64))
    scores, local = self._backends[category_id].search(queries, k)
    rows = np.where(local >= 0, self._rows[category_id][np.maximum(local, 0)], -1)
    return scores, rows


def gallery_label(manifest: dict[str, Any]) -> str:
  """Names the gallery in reports; synthetic data is always labelled as such."""
  name = os.path.basename(os.path.normpath(manifest["source"]["data_dir"]))
  return f"{name} (SYNTHETIC)" if manifest.get("synthetic") else name


def check_against_data(manifest_path: str, index: SearchIndex,
                       data: data_files.Manifest) -> None:
  """Raises ValueError when an index does not fit the model's data (D, categories)."""
  if index.feature_dim != data.feature_dim:
    raise ValueError(f"{manifest_path}: index feature_dim {index.feature_dim}, the model's "
                     f"data has {data.feature_dim}")
  if index.category_names != tuple(data.categories):
    raise ValueError(f"{manifest_path}: index categories {list(index.category_names)} differ "
                     f"from the data's {list(data.categories)}")
