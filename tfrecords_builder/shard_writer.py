"""Writes a BuiltDataset as sharded TFRecords, item tables, centers and a manifest.

Layout of the output folder:
  <split>-00000-of-000NN.tfrecord   one tf.train.Example per set (see schema.py)
  items-<split>.npz                 item table: item_ids, categories, features, images,
                                    set_ids, set_offsets/set_items (set membership, CSR),
                                    set_images (each set's own photo, "" when none)
  category_centers.npy              [K, D] normalised train mean per category
  category_means.npy                [K, D] train mean of the normalised items per category
  manifest.json                     source, dims, vocabulary, counts, shards with sha256
  questions/                        FITB and compatibility questions of val and test, in
                                    the Polyvore Outfits format (question_writer.py)
The whole folder is built under a temporary name and renamed into place, so a crash
never leaves a half-built dataset that looks complete.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import time
from typing import Any, Callable

from absl import logging
import numpy as np
import tensorflow as tf
import tqdm

from tfrecords_builder import atomic_io
from tfrecords_builder import dataset_builder
from tfrecords_builder import schema

MANIFEST = "manifest.json"
CENTERS = "category_centers.npy"
MEANS = "category_means.npy"
FORMAT_VERSION = 1


def shard_name(split: str, index: int, count: int) -> str:
  return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def item_table_name(split: str) -> str:
  return f"items-{split}.npz"


def _write_split(folder: str, split: str, data: dataset_builder.SplitData,
                 num_shards: int) -> list[dict[str, Any]]:
  count = max(1, min(num_shards, len(data.set_ids)))
  bounds = np.linspace(0, len(data.set_ids), count + 1).astype(int)
  shards = []
  progress = tqdm.tqdm(total=len(data.set_ids), desc=f"{split} sets", unit="set",
                       disable=None, leave=False)
  for index in range(count):
    name = shard_name(split, index, count)
    path = os.path.join(folder, name)
    digest = hashlib.sha256()
    with tf.io.TFRecordWriter(path) as writer:
      for s in range(bounds[index], bounds[index + 1]):
        rows = data.set_items[s]
        writer.write(schema.encode_set(
            data.set_ids[s], data.item_ids[rows].tolist(), data.categories[rows], rows,
            data.features[rows]))
        progress.update(1)
    with open(path, "rb") as stream:
      for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
    shards.append({"file": name, "records": int(bounds[index + 1] - bounds[index]),
                   "bytes": os.path.getsize(path), "sha256": digest.hexdigest()})
  progress.close()
  offsets = np.concatenate([[0], np.cumsum([len(r) for r in data.set_items])]).astype(np.int64)
  atomic_io.write_npz(
      os.path.join(folder, item_table_name(split)), item_ids=data.item_ids,
      categories=data.categories, features=data.features, images=data.images,
      set_ids=np.asarray(data.set_ids), set_offsets=offsets,
      set_items=np.concatenate(data.set_items).astype(np.int32),
      set_images=(data.set_images if data.set_images is not None
                  else np.full(len(data.set_ids), "")))
  return shards


def write(built: dataset_builder.BuiltDataset, output_dir: str, *, source: str,
          synthetic: bool, num_shards: int, overwrite: bool,
          options: dict[str, Any],
          extras: dict[str, Callable[[str], Any]] | None = None) -> dict[str, Any]:
  """Writes `built` into `output_dir` and returns the manifest.

  `extras` write more files into the staged folder (e.g. the questions/ folder): each is
  called with the staging path, and what it returns is kept in the manifest under its key.

  Raises:
    FileExistsError: `output_dir` is not empty and `overwrite` is False.
  """
  output_dir = os.path.abspath(output_dir)
  if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
    raise FileExistsError(f"{output_dir}: output folder is not empty; pass --overwrite to "
                          "replace it")
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise FileExistsError(f"{output_dir}: exists and is not a folder")
  parent = os.path.dirname(output_dir)
  os.makedirs(parent, exist_ok=True)
  start = time.time()
  with atomic_io.staged_dir(output_dir) as staging:
    splits = {}
    for split, data in built.splits.items():
      shards = _write_split(staging, split, data, num_shards)
      splits[split] = {
          "sets": len(data.set_ids), "items": len(data.item_ids),
          "item_occurrences": int(sum(len(r) for r in data.set_items)),
          "max_set_size": data.max_set_size,
          "skipped_small_sets": built.skipped_small_sets.get(split, 0),
          "item_table": item_table_name(split), "shards": shards}
    atomic_io.write_npy(os.path.join(staging, CENTERS), built.centers)
    train = built.splits["train"]
    atomic_io.write_npy(os.path.join(staging, MEANS), dataset_builder.category_means(
        train.features, train.categories, len(built.category_names)))
    manifest = {
        "format_version": FORMAT_VERSION, "source": source, "synthetic": synthetic,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "feature_dim": built.feature_dim, "num_categories": len(built.category_names),
        "categories": list(built.category_names),
        "max_set_size": max(s["max_set_size"] for s in splits.values()),
        "category_centers": CENTERS, "category_means": MEANS, "options": options,
        "splits": splits,
        "build_seconds": round(time.time() - start, 3)}
    for key, write_extra in (extras or {}).items():
      manifest[key] = write_extra(staging)
    atomic_io.write_json(os.path.join(staging, MANIFEST), manifest)
  logging.info("wrote %s in %.1f s: %s", output_dir, time.time() - start,
               {s: (v["sets"], v["items"]) for s, v in splits.items()})
  return manifest
