"""Round trip of every source: raw arrays -> shards -> input pipeline -> the same sets.

For each split the fixed (evaluation) X/Y split is read back, and the union of each set's
two halves must give back the set's items: ids (through item_index and the split's item
table), categories and L2-normalised features.
"""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from keras_models import data_files
from keras_models import input_pipeline
from tfrecords_builder import build
from tfrecords_builder import config as config_lib
from tfrecords_builder.sources import synthetic

IKEA_DIR = "/work/shared/data/ikea"
SPLITS = ("train", "val", "test")


def _normalised(vector):
  vector = np.asarray(vector, np.float64)
  return vector / np.linalg.norm(vector)


def _read_back(data_dir, split, batch_size=4, seed=0):
  """{set_id: [(item ids, categories, features) of the query half, same of the target]}."""
  manifest = data_files.load_manifest(data_dir)
  table = data_files.load_item_table(manifest, split)
  dataset = input_pipeline.make_dataset(manifest, split, batch_size, training=False, seed=seed)
  halves = {}
  for batch in dataset.as_numpy_iterator():
    for b, set_id in enumerate(batch["set_id"].tolist()):
      sides = []
      for prefix in ("query", "target"):
        mask = batch[f"{prefix}_mask"][b]
        index = batch[f"{prefix}_item_index"][b][mask]
        sides.append((table.item_ids[index].tolist(), batch[f"{prefix}_categories"][b][mask],
                      batch[f"{prefix}_features"][b][mask]))
      assert set_id.decode() not in halves, f"{split}: set {set_id!r} read twice"
      halves[set_id.decode()] = sides
  return manifest, halves


def _check_round_trip(data_dir, expected_sets, features, category_ids, splits=SPLITS):
  """Checks every set of `splits` against the original data.

  Args:
    data_dir: Built shards.
    expected_sets: {split: {set_id: [(item id, category name), ...]}}.
    features: {item id: raw feature vector}.
    category_ids: {category name: id}.
    splits: Splits to read back.
  """
  for split in splits:
    manifest, halves = _read_back(data_dir, split)
    assert manifest.num_sets(split) == len(expected_sets[split]), split
    assert sorted(halves) == sorted(expected_sets[split]), split
    for set_id, items in expected_sets[split].items():
      where = f"{split} set {set_id!r}"
      (query_ids, query_cats, query_feats), (target_ids, target_cats, target_feats) = (
          halves[set_id])
      assert len(query_ids) == len(items) // 2, where
      assert len(target_ids) == len(items) - len(items) // 2, where
      read = sorted(zip(query_ids + target_ids,
                        np.concatenate([query_cats, target_cats]).tolist(),
                        list(query_feats) + list(target_feats)), key=lambda r: r[0])
      assert [r[0] for r in read] == sorted(i for i, _ in items), where
      category_of = dict(items)
      for item_id, category, vector in read:
        assert category == category_ids[category_of[item_id]], f"{where} item {item_id}"
        np.testing.assert_allclose(vector, _normalised(features[item_id]), rtol=1e-5,
                                   atol=1e-6, err_msg=f"{where} item {item_id}")


def test_generic_round_trip(tmp_path):
  rng = np.random.default_rng(1)
  names = ["sofa", "lamp", "bed", "rug"]
  sets, expected = [], {split: {} for split in SPLITS}
  item_ids = [f"item{i}" for i in range(40)]
  for s, split in enumerate(["train"] * 5 + ["val"] * 3 + ["test"] * 3):
    size = 2 + s % 6
    chosen = rng.choice(len(item_ids), size=size, replace=False)
    items = [(item_ids[i], names[i % 4]) for i in chosen]
    sets.append({"set_id": f"set{s}", "split": split,
                 "items": [{"item_id": i, "category": c} for i, c in items]})
    expected[split][f"set{s}"] = items
  features = (rng.standard_normal((len(item_ids), 6)) + 0.2).astype(np.float16)
  with open(tmp_path / "sets.jsonl", "w") as stream:
    stream.write("\n".join(json.dumps(s) for s in sets) + "\n")
  np.savez(tmp_path / "features.npz", item_ids=np.asarray(item_ids), features=features)
  build.run(config_lib.BuilderConfig(source="generic", input=str(tmp_path / "sets.jsonl"),
                                     output_dir=str(tmp_path / "out"), num_shards=2))
  category_ids = {name: i + 1 for i, name in enumerate(sorted(names))}
  _check_round_trip(str(tmp_path / "out"), expected,
                    dict(zip(item_ids, features.astype(np.float32))), category_ids)


def test_synthetic_round_trip(tmp_path):
  config = synthetic.SyntheticConfig(num_sets=60, num_categories=4, feature_dim=8,
                                     min_items=2, max_items=7, seed=5)
  build.run(config_lib.BuilderConfig(source="synthetic", output_dir=str(tmp_path),
                                     num_shards=2, synthetic=config))
  raw = synthetic.generate(config)
  all_sets = {s.set_id: [(str(i), c) for i, c in zip(s.items, s.categories)]
              for s in raw.sets}
  manifest = data_files.load_manifest(str(tmp_path))
  expected = {}
  for split in SPLITS:
    set_ids = data_files.load_item_table(manifest, split).set_ids.tolist()
    expected[split] = {set_id: all_sets[set_id] for set_id in set_ids}
  assert sorted(sum((list(v) for v in expected.values()), [])) == sorted(all_sets)
  category_ids = {synthetic.category_name(c): c for c in range(1, 5)}
  _check_round_trip(str(tmp_path), expected, dict(zip(raw.item_ids.tolist(), raw.features)),
                    category_ids)


# Reference pickles: per split, rows of (scene id, query items, target items); an item is
# (id, category) and None leaves its slot empty. "shared" appears in train and test.
_PICKLE_ROWS = {
    "train": [("r0", [("a", 1), ("b", 2)], [("c", 3)]),
              ("r1", [("shared", 2), None, ("d", 4)], [("e", 1), ("f", 5)]),
              ("r2", [("g", 3)], [("h", 3)])],
    "val": [("v0", [("i", 1), ("j", 2)], [("k", 4), ("l", 5)]),
            ("v1", [("m", 2)], [("n", 1)])],
    "test": [("t0", [("shared", 2), ("o", 1)], [("p", 5)]),
             ("t1", [("q", 4), ("r", 3), ("s", 2)], [("t", 1), ("u", 2), ("v", 3)])],
}


def _write_pickles(folder, pad=5, dim=6):
  """Writes train/validation/test.pkl; returns the expected sets and the features by id."""
  rng = np.random.default_rng(2)
  vectors, expected = {}, {}
  for split, rows in _PICKLE_ROWS.items():
    n = len(rows)
    features = np.zeros((2, n, pad, dim), np.float32)
    categories = np.zeros((2, n, pad), np.int64)
    item_ids = np.full((2, n, pad), "", dtype=object)
    expected[split] = {}
    for row, (scene, *sides) in enumerate(rows):
      expected[split][scene] = []
      for side, items in enumerate(sides):
        for slot, item in enumerate(items):
          if item is None:
            continue
          item_id, category = item
          vector = vectors.setdefault(item_id, rng.standard_normal(dim).astype(np.float32))
          features[side, row, slot] = vector
          categories[side, row, slot] = category
          item_ids[side, row, slot] = item_id
          expected[split][scene].append((item_id, str(category)))
    record = (features[0], features[1], np.array([r[0] for r in rows], dtype=object),
              categories[0], categories[1], np.zeros(n, np.int64), item_ids[0], item_ids[1])
    name = {"train": "train.pkl", "val": "validation.pkl", "test": "test.pkl"}[split]
    with open(os.path.join(folder, name), "wb") as stream:
      pickle.dump(record, stream)
  return expected, vectors


def test_reference_pickles_round_trip(tmp_path):
  os.makedirs(tmp_path / "in")
  expected, vectors = _write_pickles(str(tmp_path / "in"))
  manifest = build.run(config_lib.BuilderConfig(
      source="reference_pickles", input=str(tmp_path / "in"), output_dir=str(tmp_path / "out"),
      num_shards=2))
  assert manifest["source"] == "reference_pickles"
  assert manifest["categories"] == ["1", "2", "3", "4", "5"]
  _check_round_trip(str(tmp_path / "out"), expected, vectors,
                    {str(c): c for c in range(1, 6)})
  # Each split has its own item table, so the shared item is in train and test.
  loaded = data_files.load_manifest(str(tmp_path / "out"))
  for split in ("train", "test"):
    assert "shared" in data_files.load_item_table(loaded, split).item_ids.tolist()


@pytest.mark.skipif(not os.path.isdir(IKEA_DIR), reason=f"IKEA data not found at {IKEA_DIR}")
def test_ikea_round_trip(tmp_path):
  manifest = build.run(config_lib.BuilderConfig(
      source="generic", input=IKEA_DIR, output_dir=str(tmp_path), num_shards=2))
  expected = {split: {} for split in SPLITS}
  with open(os.path.join(IKEA_DIR, "sets.jsonl"), encoding="utf-8") as stream:
    for line in stream:
      record = json.loads(line)
      expected[record["split"]][record["set_id"]] = [
          (i["item_id"], i["category"]) for i in record["items"]]
  with np.load(os.path.join(IKEA_DIR, "features_effnetlite0.npz")) as data:
    features = dict(zip(data["item_ids"].tolist(), data["features"].astype(np.float32)))
  assert {s: v["sets"] for s, v in manifest["splits"].items()} == {
      "train": 410, "val": 46, "test": 91}
  assert manifest["feature_dim"] == 1280
  assert manifest["num_categories"] == 14
  names = sorted({c for sets in expected.values() for items in sets.values() for _, c in items})
  assert manifest["categories"] == names
  assert manifest["synthetic"] is False
  _check_round_trip(str(tmp_path), expected, features,
                    {name: i + 1 for i, name in enumerate(names)})
