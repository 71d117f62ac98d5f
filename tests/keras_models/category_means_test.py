"""The baselines' category means m_c: written by the builder, or computed for older folders.

The oracle starts from the raw items written here (un-normalised features, an item in
three train sets, a category with no train item) and knows nothing of the builder.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from keras_models import data_files
from tfrecords_builder import build
from tfrecords_builder import config as builder_config

DIM = 4
# Category ids follow sorted names: bed 1, chair 2, lamp 3, sofa 4 (sofa: test only).
SETS = [
    {"set_id": "t1", "split": "train", "items": [
        {"item_id": "a", "category": "chair"}, {"item_id": "b", "category": "lamp"}]},
    {"set_id": "t2", "split": "train", "items": [
        {"item_id": "a", "category": "chair"}, {"item_id": "c", "category": "bed"},
        {"item_id": "d", "category": "lamp"}]},
    {"set_id": "t3", "split": "train", "items": [
        {"item_id": "a", "category": "chair"}, {"item_id": "e", "category": "chair"},
        {"item_id": "f", "category": "bed"}]},
    {"set_id": "v1", "split": "val", "items": [
        {"item_id": "g", "category": "chair"}, {"item_id": "h", "category": "bed"}]},
    {"set_id": "s1", "split": "test", "items": [
        {"item_id": "i", "category": "sofa"}, {"item_id": "b", "category": "lamp"}]},
]
ITEM_IDS = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]


def _raw_features() -> np.ndarray:
  """Rows of very different norms, so normalising before averaging matters."""
  rng = np.random.default_rng(5)
  scales = np.array([10.0, 0.2, 3.0, 1.0, 0.5, 7.0, 1.0, 2.0, 4.0])[:, None]
  return (rng.standard_normal((len(ITEM_IDS), DIM)) * scales).astype(np.float32)


def _oracle(features: np.ndarray) -> np.ndarray:
  """Mean over the unique train items of each category of x / ||x||; zeros if none."""
  names = ["bed", "chair", "lamp", "sofa"]
  members = {name: set() for name in names}
  for line in SETS:
    if line["split"] == "train":
      for item in line["items"]:
        members[item["category"]].add(item["item_id"])
  means = np.zeros((len(names), DIM))
  for c, name in enumerate(names):
    rows = [features[ITEM_IDS.index(i)].astype(np.float64) for i in sorted(members[name])]
    if rows:
      means[c] = np.mean([r / np.linalg.norm(r) for r in rows], axis=0)
  return means


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("means")
  raw = root / "raw"
  raw.mkdir()
  with open(raw / "sets.jsonl", "w", encoding="utf-8") as stream:
    stream.writelines(json.dumps(line) + "\n" for line in SETS)
  features = _raw_features()
  np.savez(raw / "features.npz", item_ids=np.asarray(ITEM_IDS), features=features)
  output = str(root / "shards")
  build.run(builder_config.BuilderConfig(source="generic", input=str(raw),
                                         output_dir=output, num_shards=1))
  return output, features


def test_builder_writes_the_means_of_unit_train_items(built):
  output, features = built
  expected = _oracle(features)
  with open(os.path.join(output, "manifest.json"), encoding="utf-8") as stream:
    assert json.load(stream)["category_means"] == "category_means.npy"
  written = np.load(os.path.join(output, "category_means.npy"))
  assert written.dtype == np.float32
  np.testing.assert_allclose(written, expected, atol=1e-6)
  manifest = data_files.load_manifest(output)
  np.testing.assert_allclose(data_files.load_category_means(manifest), expected, atol=1e-6)
  # Sofa has no train item: zeros, where the unit centres hold a random unit vector.
  np.testing.assert_array_equal(written[3], np.zeros(DIM))
  # Unique items, not occurrences: item a (in three train sets) counts once.
  chair_rows = [features[ITEM_IDS.index(i)] for i in ("a", "a", "a", "e")]
  occurrences = np.mean([r / np.linalg.norm(r) for r in chair_rows], axis=0)
  assert np.abs(written[1] - occurrences).max() > 1e-2


def test_folder_built_before_the_file_gets_the_same_means(built, tmp_path):
  output, features = built
  old = str(tmp_path / "old")
  shutil.copytree(output, old)
  os.remove(os.path.join(old, "category_means.npy"))
  manifest = data_files.load_manifest(old)
  np.testing.assert_allclose(data_files.load_category_means(manifest), _oracle(features),
                             atol=1e-6)


def test_wrong_shape_names_the_file(built, tmp_path):
  output, _ = built
  copy = str(tmp_path / "copy")
  shutil.copytree(output, copy)
  np.save(os.path.join(copy, "category_means.npy"), np.zeros((2, DIM), np.float32))
  with pytest.raises(ValueError, match=r"category_means\.npy: shape \(2, 4\), expected \(4, 4\)"):
    data_files.load_category_means(data_files.load_manifest(copy))
