"""Tests for the reader of the original code's split pickles, on tiny hand-made files."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest

from tfrecords_builder.sources import reference_pickles

PAD = 10
DIM = 6

# (scene id, query items, target items); an item is (stored id, category), None = empty slot.
# Train follows DeepFurniture: '' padding, zero set sizes, 8 elements.
TRAIN_ROWS = [
    ("scene-a", [("a1", 1), ("a2", 2)], [("a3", 3), ("a4", 10)]),
    ("scene-dup", [("", 4), ("", 5)], [("", 6)]),  # Ids lost: all synthesised.
    ("scene-c", [("shared", 2), None, ("c2", 7)], [("c3", 11)]),  # Gap at query slot 1.
]
# Validation follows IQON3000: '0' padding, true set sizes, a 9th element.
VAL_ROWS = [
    ("u1/100", [("i1", 8), ("i2", 9)], [("i3", 1), ("i4", 2)]),
    ("u1/101", [("i5", 3), ("i6", 4)], [("i7", 5)]),
    ("u2/200", [("i8", 6), ("i9", 7)], [("i10", 9), ("0", 9)]),  # Stored '0': synthesised.
]
# Test scene ids are mixed types; "scene-dup" sits at row 1 as in train.
TEST_ROWS = [
    (501, [("shared", 2), ("t1", 3)], [("t2", 4)]),
    ("scene-dup", [("t3", 1), ("t4", 2)], [("t5", 3), ("t6", 5)]),
    (502, [("t7", 1), ("t8", 4)], [("t9", 2)]),
]


def _elements(rows, pad_id, rng, shared):
  """Returns the 8 tuple elements for `rows` and, per row, its features in merged order."""
  n = len(rows)
  features = np.zeros((2, n, PAD, DIM), np.float32)
  categories = np.zeros((2, n, PAD), np.int32)
  item_ids = np.full((2, n, PAD), pad_id, dtype=object)
  merged = []
  for row, (_, *sides) in enumerate(rows):
    merged.append([])
    for side, items in enumerate(sides):
      for slot, item in enumerate(items):
        if item is None:
          continue
        stored_id, category = item
        vector = rng.standard_normal(DIM).astype(np.float32)
        if stored_id == "shared":
          vector = shared.setdefault(stored_id, vector)
        features[side, row, slot] = vector
        categories[side, row, slot] = category
        item_ids[side, row, slot] = stored_id
        merged[-1].append(vector)
  scene_ids = np.array([r[0] for r in rows], dtype=object)
  sizes = np.array([sum(i is not None for i in q + t) for _, q, t in rows])
  elements = [features[0], features[1], scene_ids, categories[0], categories[1], sizes,
              item_ids[0], item_ids[1]]
  return elements, merged


def _write(path, elements):
  with open(path, "wb") as stream:
    pickle.dump(tuple(elements), stream)


@pytest.fixture
def dataset_dir(tmp_path):
  """Writes the three splits; returns (folder, {split: (elements, merged features)})."""
  rng = np.random.default_rng(0)
  shared = {}
  written = {}
  train, merged = _elements(TRAIN_ROWS, "", rng, shared)
  train[5] = np.zeros(len(TRAIN_ROWS), np.int32)
  written["train"] = (train, merged)
  val, merged = _elements(VAL_ROWS, "0", rng, shared)
  written["val"] = (val + [{"mean": np.zeros(DIM)}], merged)
  written["test"] = _elements(TEST_ROWS, "", rng, shared)
  for split, name in (("train", "train.pkl"), ("val", "validation.pkl"), ("test", "test.pkl")):
    _write(tmp_path / name, written[split][0])
  return tmp_path, written


def _sets_by_split(dataset):
  return {split: [s for s in dataset.sets if s.split == split]
          for split in ("train", "val", "test")}


def test_sets_per_split_and_metadata(dataset_dir):
  folder, _ = dataset_dir
  dataset = reference_pickles.load(str(folder))
  assert {k: len(v) for k, v in _sets_by_split(dataset).items()} == {
      "train": 3, "val": 3, "test": 3}
  assert dataset.name == "reference_pickles"
  assert dataset.synthetic is False
  assert dataset.features_origin == str(folder)


def test_merged_items_ids_and_categories(dataset_dir):
  folder, _ = dataset_dir
  sets = _sets_by_split(reference_pickles.load(str(folder)))
  assert sets["train"][0].items == ("a1", "a2", "a3", "a4")
  assert sets["train"][0].categories == ("1", "2", "3", "10")
  assert sets["train"][1].items == ("train/1/q0", "train/1/q1", "train/1/t0")
  assert sets["train"][2].items == ("shared", "c2", "c3")
  assert sets["train"][2].categories == ("2", "7", "11")
  assert sets["val"][2].items == ("i8", "i9", "i10", "val/2/t1")
  assert sets["val"][2].categories == ("6", "7", "9", "9")
  assert sets["test"][0].items == ("shared", "t1", "t2")


def test_set_ids_unique_with_suffix_for_repeated_scenes(dataset_dir):
  folder, _ = dataset_dir
  sets = _sets_by_split(reference_pickles.load(str(folder)))
  assert [s.set_id for s in sets["train"]] == ["scene-a", "scene-dup#train/1", "scene-c"]
  assert [s.set_id for s in sets["val"]] == ["u1/100", "u1/101", "u2/200"]
  assert [s.set_id for s in sets["test"]] == ["501", "scene-dup#test/1", "502"]


def test_features_round_trip(dataset_dir):
  folder, written = dataset_dir
  dataset = reference_pickles.load(str(folder))
  assert dataset.features.shape == (len(dataset.item_ids), DIM)
  assert len(set(dataset.item_ids)) == len(dataset.item_ids)
  # 10 train, 11 val, 10 test item slots; "shared" is stored once.
  assert len(dataset.item_ids) == 10 + 11 + 10 - 1
  table = dict(zip(dataset.item_ids.tolist(), dataset.features))
  for split, split_sets in _sets_by_split(dataset).items():
    for raw_set, vectors in zip(split_sets, written[split][1]):
      assert len(raw_set.items) == len(vectors)
      for item_id, vector in zip(raw_set.items, vectors):
        np.testing.assert_array_equal(table[item_id], vector, err_msg=f"{split} {item_id}")


def test_vocabulary_in_id_order(dataset_dir):
  folder, _ = dataset_dir
  dataset = reference_pickles.load(str(folder))
  assert dataset.category_names == tuple(str(i) for i in range(1, 12))
  assert dataset.category_names[8:10] == ("9", "10")


def test_shared_item_within_tolerance_is_accepted(dataset_dir):
  folder, written = dataset_dir
  test = written["test"][0]
  test[0] = test[0] + np.float32(1e-6) * (test[3] > 0)[..., None]
  _write(folder / "test.pkl", test)
  assert "shared" in reference_pickles.load(str(folder)).item_ids


def test_category_centers_dim_checked(dataset_dir):
  folder, _ = dataset_dir
  with gzip.open(folder / "category_centers.pkl.gz", "wb") as stream:
    pickle.dump({k: [0.0] * DIM for k in range(1, 12)}, stream)
  reference_pickles.load(str(folder))
  with gzip.open(folder / "category_centers.pkl.gz", "wb") as stream:
    pickle.dump({1: [0.0] * (DIM + 1)}, stream)
  with pytest.raises(ValueError, match=r"category_centers\.pkl\.gz: category 1: .*\(7,\)"):
    reference_pickles.load(str(folder))


def test_missing_split_file(dataset_dir):
  folder, _ = dataset_dir
  os.remove(folder / "validation.pkl")
  with pytest.raises(FileNotFoundError, match=r"validation\.pkl: split file not found"):
    reference_pickles.load(str(folder))


def test_not_a_pickle(dataset_dir):
  folder, _ = dataset_dir
  (folder / "train.pkl").write_bytes(b"not a pickle")
  with pytest.raises(ValueError, match=r"train\.pkl: not a readable pickle"):
    reference_pickles.load(str(folder))


def test_short_tuple(dataset_dir):
  folder, written = dataset_dir
  _write(folder / "test.pkl", written["test"][0][:5])
  with pytest.raises(ValueError, match=r"test\.pkl: tuple has 5 elements, expected at least 8"):
    reference_pickles.load(str(folder))


def test_wrong_shape(dataset_dir):
  folder, written = dataset_dir
  test = written["test"][0]
  test[4] = test[4][:, :9]
  _write(folder / "test.pkl", test)
  with pytest.raises(ValueError, match=(r"test\.pkl: element 4 \(target categories\) has "
                                        r"shape \(3, 9\), expected \(3, 10\)")):
    reference_pickles.load(str(folder))


def test_inconsistent_row_count(dataset_dir):
  folder, written = dataset_dir
  val = written["val"][0]
  val[6] = val[6][:2]
  _write(folder / "validation.pkl", val)
  with pytest.raises(ValueError, match=r"validation\.pkl: element 6 \(query item ids\)"):
    reference_pickles.load(str(folder))


def test_feature_dim_differs_between_files(dataset_dir):
  folder, written = dataset_dir
  test = written["test"][0]
  test[0], test[1] = test[0][..., :4], test[1][..., :4]
  _write(folder / "test.pkl", test)
  with pytest.raises(ValueError, match=r"test\.pkl: element 0 \(query features\) has dim 4"):
    reference_pickles.load(str(folder))


def test_inconsistent_features_of_shared_item(dataset_dir):
  folder, written = dataset_dir
  test = written["test"][0]
  test[0][0, 0] += 1e-3  # Test row 0, query slot 0 is "shared".
  _write(folder / "test.pkl", test)
  with pytest.raises(ValueError, match=(r"test\.pkl: row 0 query slot 0: item 'shared' .*"
                                        r"train\.pkl: row 2 query slot 0")):
    reference_pickles.load(str(folder))


@pytest.mark.parametrize("bad_value", [-1, 2.5, "chair", None])
def test_bad_category(dataset_dir, bad_value):
  folder, written = dataset_dir
  train = written["train"][0]
  categories = train[3].astype(object)
  categories[1, 1] = bad_value
  train[3] = categories
  _write(folder / "train.pkl", train)
  with pytest.raises(ValueError, match=r"train\.pkl: row 1 query slot 1: category .* not an"):
    reference_pickles.load(str(folder))


def test_bad_float_category(dataset_dir):
  folder, written = dataset_dir
  train = written["train"][0]
  train[4] = train[4].astype(np.float64)
  train[4][2, 0] = np.nan
  _write(folder / "train.pkl", train)
  with pytest.raises(ValueError, match=r"train\.pkl: row 2 target slot 0: category nan"):
    reference_pickles.load(str(folder))


def test_nan_feature(dataset_dir):
  folder, written = dataset_dir
  train = written["train"][0]
  train[1][0, 1, 3] = np.nan
  train[1][0, 9, 0] = np.inf  # Padding slot: ignored.
  _write(folder / "train.pkl", train)
  with pytest.raises(ValueError, match=r"train\.pkl: row 0 target slot 1: feature has NaN"):
    reference_pickles.load(str(folder))


def test_whole_float_categories_accepted(dataset_dir):
  folder, written = dataset_dir
  train = written["train"][0]
  train[3] = train[3].astype(np.float32)
  _write(folder / "train.pkl", train)
  sets = _sets_by_split(reference_pickles.load(str(folder)))
  assert sets["train"][0].categories == ("1", "2", "3", "10")


def test_features_not_three_dimensional(dataset_dir):
  folder, written = dataset_dir
  train = written["train"][0]
  train[0] = train[0][..., 0]
  _write(folder / "train.pkl", train)
  with pytest.raises(ValueError, match=(r"train\.pkl: element 0 \(query features\) has "
                                        r"shape \(3, 10\), expected \(3, 10, any\)")):
    reference_pickles.load(str(folder))
