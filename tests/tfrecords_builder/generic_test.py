"""Tests for the generic source (`sets.jsonl` + `features.npz`) and its dataset build."""

from __future__ import annotations

import collections
import os

import numpy as np
import pytest

from tests.tfrecords_builder.generic_fixtures import DIM
from tests.tfrecords_builder.generic_fixtures import ITEM_IDS
from tests.tfrecords_builder.generic_fixtures import NAMES
from tests.tfrecords_builder.generic_fixtures import SETS
from tests.tfrecords_builder.generic_fixtures import _normalised
from tests.tfrecords_builder.generic_fixtures import _replace_line
from tests.tfrecords_builder.generic_fixtures import _write_dataset
from tfrecords_builder import build
from tfrecords_builder import config as config_lib
from tfrecords_builder import dataset_builder
from tfrecords_builder.sources import generic


def test_parse_sets_and_features(tmp_path):
  features = _write_dataset(tmp_path)
  dataset = generic.load(str(tmp_path))
  assert dataset.name == "generic"
  assert dataset.synthetic is False
  assert dataset.features_origin == os.path.join(str(tmp_path), "features.npz")
  assert [s.set_id for s in dataset.sets] == ["s1", "s2", "s3", "s4", "5"]
  assert [s.split for s in dataset.sets] == ["train", "train", "val", "test", "test"]
  assert dataset.sets[0].group == "room1"
  assert dataset.sets[1].group is None
  assert dataset.sets[0].items == ("a1", "a2", "a3")
  assert dataset.sets[0].categories == ("sofa", "lamp", "chair")
  assert dataset.sets[2].origin.startswith(os.path.join(str(tmp_path), "sets.jsonl") + ":3")
  assert dataset.item_ids.tolist() == ITEM_IDS
  # float16 on disk, float32 in memory, same values.
  assert dataset.features.dtype == np.float32
  np.testing.assert_array_equal(dataset.features, features.astype(np.float32))


def test_image_paths_relative_to_sets_folder(tmp_path, monkeypatch):
  _write_dataset(tmp_path / "data")
  monkeypatch.chdir(tmp_path)
  dataset = generic.load(os.path.join("data", "sets.jsonl"))
  assert dataset.sets[0].images == (
      os.path.join(str(tmp_path), "data", "img", "a1.jpg"), "", "/abs/a3.png")
  # A set with no image at all stores None.
  assert dataset.sets[1].images is None


def test_explicit_features_path_and_sets_file_input(tmp_path):
  _write_dataset(tmp_path, name="other.npz")
  (tmp_path / "unrelated.npz").write_bytes(b"")
  with pytest.raises(FileNotFoundError, match=r"expected features\.npz or exactly one "
                                              r"\.npz file, found 2; pass --features"):
    generic.load(str(tmp_path))
  dataset = generic.load(str(tmp_path / "sets.jsonl"), str(tmp_path / "other.npz"))
  assert len(dataset.sets) == len(SETS)


def test_build_vocabulary_tables_and_features(tmp_path):
  features = _write_dataset(tmp_path)
  built = dataset_builder.build(generic.load(str(tmp_path)), seed=0)
  assert built.category_names == NAMES
  assert built.feature_dim == DIM
  category_id = {name: i + 1 for i, name in enumerate(sorted(NAMES))}
  normalised = dict(zip(ITEM_IDS, _normalised(features)))
  expected_sets = {"train": ["s1", "s2"], "val": ["s3"], "test": ["s4", "5"]}
  for split, data in built.splits.items():
    assert data.set_ids == expected_sets[split]
    raw_sets = {str(s["set_id"]): s for s in SETS}
    for set_id, rows in zip(data.set_ids, data.set_items):
      raw_items = raw_sets[set_id]["items"]
      assert data.item_ids[rows].tolist() == [i["item_id"] for i in raw_items]
      assert data.categories[rows].tolist() == [category_id[i["category"]] for i in raw_items]
    # Each split's table holds every item of its sets once.
    assert len(set(data.item_ids.tolist())) == len(data.item_ids)
    np.testing.assert_allclose(
        data.features, np.stack([normalised[i] for i in data.item_ids]), rtol=1e-6)
  # "a2" appears in two train sets but once in the table.
  assert built.splits["train"].item_ids.tolist() == ["a1", "a2", "a3", "b1"]
  assert built.splits["train"].images.tolist() == [
      os.path.join(str(tmp_path), "img", "a1.jpg"), "", "/abs/a3.png", ""]


def _grouped_sets(num_groups=30):
  """Sets without a split field; group g holds 1 + g % 3 sets."""
  sets, item_ids = [], []
  for g in range(num_groups):
    for k in range(1 + g % 3):
      set_id = f"g{g}-s{k}"
      items = [f"{set_id}-i{j}" for j in range(3)]
      item_ids += items
      sets.append({"set_id": set_id, "group": f"group{g}",
                   "items": [{"item_id": i, "category": "c"} for i in items]})
  return sets, item_ids


def _split_of_sets(folder, seed):
  built = dataset_builder.build(generic.load(str(folder)), seed=seed)
  return {set_id: split for split, data in built.splits.items() for set_id in data.set_ids}


def test_split_by_group_seeded_70_15_15(tmp_path):
  sets, item_ids = _grouped_sets()
  _write_dataset(tmp_path, sets=sets, item_ids=item_ids)
  split_of = _split_of_sets(tmp_path, seed=4)
  assert set(split_of) == {s["set_id"] for s in sets}
  splits_of_group = collections.defaultdict(set)
  for s in sets:
    splits_of_group[s["group"]].add(split_of[s["set_id"]])
  assert all(len(v) == 1 for v in splits_of_group.values()), splits_of_group
  # 60 sets, groups of at most 3: train is filled while fewer than 42 sets are assigned,
  # val while fewer than 51, so each count is within one group (3 sets) of 42, 9, 9.
  counts = collections.Counter(split_of.values())
  assert 42 <= counts["train"] <= 44, counts
  assert 51 <= counts["train"] + counts["val"] <= 53, counts
  assert counts["test"] >= 7, counts
  # Deterministic by seed; another seed moves some groups.
  assert _split_of_sets(tmp_path, seed=4) == split_of
  assert any(_split_of_sets(tmp_path, seed=s) != split_of for s in (5, 6, 7))


def test_explicit_split_kept_beside_assigned_ones(tmp_path):
  sets, item_ids = _grouped_sets(num_groups=12)
  sets[0] = dict(sets[0], split="test")
  _write_dataset(tmp_path, sets=sets, item_ids=item_ids)
  for seed in range(3):
    assert _split_of_sets(tmp_path, seed)[sets[0]["set_id"]] == "test"


def test_small_sets_skipped_and_counted(tmp_path):
  sets = SETS + [
      {"set_id": "tiny-train", "split": "train", "items": [{"item_id": "a1", "category": "sofa"}]},
      {"set_id": "tiny-val", "split": "val", "items": [{"item_id": "c1", "category": "chair"}]},
      {"set_id": "tiny-val2", "split": "val", "items": [{"item_id": "c2", "category": "sofa"}]},
  ]
  _write_dataset(tmp_path / "in", sets=sets)
  manifest = build.run(config_lib.BuilderConfig(
      source="generic", input=str(tmp_path / "in"), output_dir=str(tmp_path / "out")))
  assert {s: v["skipped_small_sets"] for s, v in manifest["splits"].items()} == {
      "train": 1, "val": 2, "test": 0}
  assert {s: v["sets"] for s, v in manifest["splits"].items()} == {
      "train": 2, "val": 1, "test": 2}
  assert manifest["source"] == "generic"
  assert manifest["synthetic"] is False
  assert manifest["categories"] == list(NAMES)


def test_min_set_size_option(tmp_path):
  lines = _replace_line(4, dict(SETS[3], items=SETS[3]["items"] + [
      {"item_id": "d3", "category": "sofa"}]))
  _write_dataset(tmp_path / "in", sets=lines)
  manifest = build.run(config_lib.BuilderConfig(
      source="generic", input=str(tmp_path / "in"), output_dir=str(tmp_path / "out"),
      min_set_size=3))
  # s2 and set 5 have 2 items.
  assert {s: (v["sets"], v["skipped_small_sets"]) for s, v in manifest["splits"].items()} == {
      "train": (1, 1), "val": (1, 0), "test": (1, 1)}
  with pytest.raises(ValueError, match=r"min_set_size must be >= 2"):
    dataset_builder.build(generic.load(str(tmp_path / "in")), min_set_size=1)


# (lines of sets.jsonl, regex after "sets.jsonl:").
_LINE_ERRORS = {
    "invalid_json": (
        _replace_line(3, '{"set_id": "s3", "items": [}'), r"3: not valid JSON"),
    "not_an_object": (
        _replace_line(2, "[1, 2]"), r"2: a set must be a JSON object, got list"),
    "missing_set_id": (
        _replace_line(2, {"items": SETS[1]["items"]}), r"2: missing field 'set_id'"),
    "empty_set_id": (
        _replace_line(2, dict(SETS[1], set_id="")), r"2: field 'set_id' is empty"),
    "missing_items": (
        _replace_line(4, {"set_id": "s4", "split": "test"}),
        r"4 \(set 's4'\): field 'items' must be a list"),
    "item_missing_category": (
        _replace_line(3, dict(SETS[2], items=[{"item_id": "c1", "category": "chair"},
                                              {"item_id": "c2"}])),
        r"3 \(set 's3'\) item 1: item is missing field 'category'"),
    "item_not_an_object": (
        _replace_line(3, dict(SETS[2], items=["c1", "c2"])),
        r"3 \(set 's3'\) item 0: item must be an object, got str"),
    "bad_split": (
        _replace_line(2, dict(SETS[1], split="training")),
        r"2 \(set 's2'\): field 'split' is 'training', expected one of"),
    "duplicate_set_id": (
        SETS + [dict(SETS[0], items=SETS[1]["items"])],
        r"6: duplicate set_id 's1' \(first on line 1\)"),
    "duplicate_item_in_set": (
        _replace_line(2, dict(SETS[1], items=SETS[1]["items"] * 2)),
        r"2 \(set 's2'\): item 'b1' appears twice in the set"),
    "blank_lines_counted": (
        SETS[:2] + ["", "  ", "{"], r"5: not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(_LINE_ERRORS))
def test_sets_file_errors(tmp_path, case):
  lines, pattern = _LINE_ERRORS[case]
  _write_dataset(tmp_path, sets=lines)
  with pytest.raises(ValueError, match=r"sets\.jsonl:" + pattern):
    generic.load(str(tmp_path))


def test_sets_file_not_utf8(tmp_path):
  _write_dataset(tmp_path)
  with open(tmp_path / "sets.jsonl", "ab") as stream:
    stream.write(b'{"set_id": "\xff"}\n')
  with pytest.raises(ValueError, match=r"sets\.jsonl:6: line is not valid UTF-8"):
    generic.load(str(tmp_path))


def test_missing_sets_file(tmp_path):
  _write_dataset(tmp_path)
  os.remove(tmp_path / "sets.jsonl")
  with pytest.raises(FileNotFoundError, match=r"sets\.jsonl: sets file not found"):
    generic.load(str(tmp_path))


def test_empty_sets_file(tmp_path):
  _write_dataset(tmp_path, sets=["", ""])
  with pytest.raises(ValueError, match=r"sets\.jsonl: no sets in file"):
    generic.load(str(tmp_path))


def test_empty_split_after_build(tmp_path):
  # No test sets at all.
  _write_dataset(tmp_path / "none", sets=SETS[:3])
  with pytest.raises(ValueError, match=(r"features\.npz: split 'test' is empty "
                                        r"\(0 sets skipped as too small\)")):
    dataset_builder.build(generic.load(str(tmp_path / "none")))
  # The only val set is too small.
  lines = _replace_line(3, dict(SETS[2], items=SETS[2]["items"][:1]))
  _write_dataset(tmp_path / "small", sets=lines)
  with pytest.raises(ValueError, match=(r"features\.npz: split 'val' is empty "
                                        r"\(1 sets skipped as too small\)")):
    build.run(config_lib.BuilderConfig(source="generic", input=str(tmp_path / "small"),
                                       output_dir=str(tmp_path / "out")))
  assert not os.path.exists(tmp_path / "out")


def test_unknown_source(tmp_path):
  config = config_lib.BuilderConfig(source="nope", output_dir=str(tmp_path))
  with pytest.raises(ValueError, match=(r"unknown --source 'nope'; known: deepfurniture, "
                                        r"generic, iqon3000, polyvore_outfits, "
                                        r"reference_pickles, synthetic")):
    config.validate()
  with pytest.raises(ValueError, match=r"unknown --source 'nope'"):
    build.run(config)


@pytest.mark.parametrize("changes, pattern", [
    ({"input": ""}, r"--input is required for --source=generic"),
    ({"output_dir": ""}, r"--output_dir is required"),
    ({"num_shards": 0}, r"--num_shards must be >= 1, got 0"),
])
def test_config_validation(tmp_path, changes, pattern):
  fields = dict(source="generic", input=str(tmp_path), output_dir=str(tmp_path / "out"))
  fields.update(changes)
  with pytest.raises(ValueError, match=pattern):
    config_lib.BuilderConfig(**fields).validate()


def test_missing_input_is_named_as_missing(tmp_path):
  # Not as "/no/such: expected features.npz ..." (the folder above it) or the working folder.
  for missing in ("/no/such/dir", str(tmp_path / "sets.jsonl")):
    with pytest.raises(FileNotFoundError, match=rf"^{missing}: no such file or directory$"):
      generic.load(missing)
