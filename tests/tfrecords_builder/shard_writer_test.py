"""Tests for the shard writer: manifest, shards, item tables, centers and atomic output."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest
import tensorflow as tf

from flags import builder_flags
from tfrecords_builder import __main__ as builder_main
from tfrecords_builder import atomic_io
from tfrecords_builder import build
from tfrecords_builder import config as config_lib
from tfrecords_builder import schema
from tfrecords_builder import shard_writer
from tfrecords_builder.sources import synthetic

SYNTHETIC = synthetic.SyntheticConfig(num_sets=60, num_categories=5, feature_dim=8,
                                      min_items=2, max_items=6, seed=3)
NUM_SHARDS = 3


def _config(output_dir, **changes):
  fields = dict(source="synthetic", output_dir=str(output_dir), num_shards=NUM_SHARDS,
                synthetic=SYNTHETIC)
  fields.update(changes)
  return config_lib.BuilderConfig(**fields)


def _sha256(path):
  with open(path, "rb") as stream:
    return hashlib.sha256(stream.read()).hexdigest()


def _snapshot(folder):
  """{relative path: sha256} of every file under `folder` (questions/ included)."""
  return {os.path.relpath(os.path.join(root, name), folder): _sha256(os.path.join(root, name))
          for root, _, names in os.walk(folder) for name in sorted(names)}


def _hidden_entries(*folders):
  return [os.path.join(f, n) for f in folders if os.path.isdir(f) for n in os.listdir(f)
          if n.startswith(".")]


def _read_manifest(folder):
  with open(os.path.join(folder, shard_writer.MANIFEST)) as stream:
    return json.load(stream)


def _count_records(paths):
  return int(tf.data.TFRecordDataset(paths).reduce(np.int64(0), lambda n, _: n + 1))


@pytest.fixture(scope="module")
def built_dir(tmp_path_factory):
  """Builds the small synthetic dataset once; returns (folder, manifest)."""
  folder = tmp_path_factory.mktemp("synthetic") / "out"
  return str(folder), build.run(_config(folder))


def test_manifest_header(built_dir):
  folder, manifest = built_dir
  assert _read_manifest(folder) == manifest
  assert manifest["format_version"] == shard_writer.FORMAT_VERSION
  assert manifest["source"] == "synthetic"
  assert manifest["synthetic"] is True
  assert manifest["feature_dim"] == 8
  assert manifest["num_categories"] == 5
  assert manifest["categories"] == ["cat01", "cat02", "cat03", "cat04", "cat05"]
  assert manifest["category_centers"] == shard_writer.CENTERS
  assert manifest["options"]["synthetic"]["num_sets"] == 60
  assert manifest["options"]["num_shards"] == NUM_SHARDS
  assert manifest["max_set_size"] == max(v["max_set_size"] for v in manifest["splits"].values())


def test_split_counts_match_records(built_dir):
  folder, manifest = built_dir
  assert sorted(manifest["splits"]) == ["test", "train", "val"]
  total = 0
  for split, info in manifest["splits"].items():
    paths = [os.path.join(folder, s["file"]) for s in info["shards"]]
    assert _count_records(paths) == info["sets"], split
    assert info["skipped_small_sets"] == 0
    total += info["sets"]
  assert total == SYNTHETIC.num_sets
  # The seeded 70/15/15 rule on 60 single-set groups: 42 / 9 / 9.
  assert {s: v["sets"] for s, v in manifest["splits"].items()} == {
      "train": 42, "val": 9, "test": 9}


def test_shards_names_counts_and_hashes(built_dir):
  folder, manifest = built_dir
  for split, info in manifest["splits"].items():
    shards = info["shards"]
    assert [s["file"] for s in shards] == [
        f"{split}-{i:05d}-of-{NUM_SHARDS:05d}.tfrecord" for i in range(NUM_SHARDS)]
    assert all(re.fullmatch(rf"{split}-0000\d-of-00003\.tfrecord", s["file"]) for s in shards)
    assert sum(s["records"] for s in shards) == info["sets"]
    for shard in shards:
      path = os.path.join(folder, shard["file"])
      assert _count_records([path]) == shard["records"]
      assert shard["records"] >= 1
      assert shard["sha256"] == _sha256(path)
      assert shard["bytes"] == os.path.getsize(path)


def test_num_shards_capped_at_num_sets(tmp_path):
  manifest = build.run(_config(tmp_path / "out", num_shards=50))
  for split, info in manifest["splits"].items():
    assert len(info["shards"]) == info["sets"], split
    assert info["shards"][-1]["file"] == (
        f"{split}-{info['sets'] - 1:05d}-of-{info['sets']:05d}.tfrecord")


def _raw_tables():
  """Normalised features and category ids of the generated items, by item id."""
  raw = synthetic.generate(SYNTHETIC)
  features = raw.features / np.linalg.norm(raw.features, axis=1, keepdims=True)
  vectors = dict(zip(raw.item_ids.tolist(), features))
  categories = {}
  for raw_set in raw.sets:
    for item_id, name in zip(raw_set.items, raw_set.categories):
      categories[str(item_id)] = raw.category_names.index(name) + 1
  return raw, vectors, categories


def _load_table(folder, split):
  with np.load(os.path.join(folder, f"items-{split}.npz"), allow_pickle=False) as data:
    return {key: data[key] for key in data.files}


def test_item_tables(built_dir):
  folder, manifest = built_dir
  raw, vectors, categories = _raw_tables()
  raw_items = {raw_set.set_id: [str(i) for i in raw_set.items] for raw_set in raw.sets}
  seen_sets, seen_items = [], []
  for split, info in manifest["splits"].items():
    assert info["item_table"] == f"items-{split}.npz"
    table = _load_table(folder, split)
    item_ids = table["item_ids"].astype(str).tolist()
    assert len(item_ids) == len(set(item_ids)) == info["items"]
    np.testing.assert_allclose(table["features"], np.stack([vectors[i] for i in item_ids]),
                               rtol=1e-6, atol=1e-7)
    assert table["features"].dtype == np.float32
    assert table["categories"].tolist() == [categories[i] for i in item_ids]
    assert table["images"].tolist() == [""] * len(item_ids)
    # CSR membership gives back each set's items in their generated order.
    offsets, members = table["set_offsets"], table["set_items"]
    assert offsets[0] == 0 and offsets[-1] == len(members) == info["item_occurrences"]
    set_ids = table["set_ids"].astype(str).tolist()
    assert len(set_ids) == info["sets"]
    for s, set_id in enumerate(set_ids):
      rows = members[offsets[s]:offsets[s + 1]]
      assert [item_ids[r] for r in rows] == raw_items[set_id]
    assert info["max_set_size"] == int(np.diff(offsets).max())
    seen_sets += set_ids
    seen_items += item_ids
  assert sorted(seen_sets) == sorted(raw_items)
  # Synthetic items belong to one set, so the tables partition the items.
  assert sorted(seen_items) == sorted(raw.item_ids.tolist())


def test_category_centers(built_dir):
  folder, manifest = built_dir
  table = _load_table(folder, "train")
  centers = np.load(os.path.join(folder, shard_writer.CENTERS))
  assert centers.shape == (5, 8)
  assert centers.dtype == np.float32
  expected = np.stack([table["features"][table["categories"] == c].astype(np.float64).mean(0)
                       for c in range(1, 6)])
  expected /= np.linalg.norm(expected, axis=1, keepdims=True)
  np.testing.assert_allclose(centers, expected, rtol=1e-5, atol=1e-6)


def test_records_match_item_table(built_dir):
  folder, manifest = built_dir
  info = manifest["splits"]["val"]
  table = _load_table(folder, "val")
  paths = [os.path.join(folder, s["file"]) for s in info["shards"]]
  set_ids = []
  for record in tf.data.TFRecordDataset(paths).as_numpy_iterator():
    example = tf.train.Example.FromString(record).features.feature
    set_ids.append(example[schema.SET_ID].bytes_list.value[0].decode())
    rows = np.asarray(example[schema.ITEM_INDEX].int64_list.value)
    assert [v.decode() for v in example[schema.ITEM_IDS].bytes_list.value] == (
        table["item_ids"][rows].tolist())
    assert list(example[schema.CATEGORIES].int64_list.value) == table["categories"][rows].tolist()
    features = np.frombuffer(example[schema.FEATURES].bytes_list.value[0], "<f4")
    np.testing.assert_array_equal(features.reshape(len(rows), 8), table["features"][rows])
  assert set_ids == table["set_ids"].astype(str).tolist()


def test_no_hidden_files_left(built_dir):
  folder, _ = built_dir
  assert not _hidden_entries(folder, os.path.dirname(folder))


def test_file_permissions_follow_umask(built_dir):
  folder, _ = built_dir
  mask = os.umask(0)
  os.umask(mask)
  assert stat.S_IMODE(os.stat(folder).st_mode) == 0o777 & ~mask
  for name in (shard_writer.MANIFEST, shard_writer.CENTERS, "items-train.npz"):
    assert stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode) == 0o666 & ~mask, name


def test_refuses_non_empty_output_without_overwrite(tmp_path):
  folder = tmp_path / "out"
  build.run(_config(folder))
  (folder / "notes.txt").write_text("keep me")
  before = _snapshot(folder)
  changed = _config(folder, synthetic=synthetic.SyntheticConfig(num_sets=30, feature_dim=4))
  with pytest.raises(FileExistsError, match=rf"{folder}: output folder is not empty; pass "
                                            r"--overwrite"):
    build.run(changed)
  assert _snapshot(folder) == before

  manifest = build.run(_config(folder, overwrite=True,
                               synthetic=synthetic.SyntheticConfig(num_sets=30, feature_dim=4)))
  assert manifest["feature_dim"] == 4
  assert "notes.txt" not in os.listdir(folder)
  assert sum(v["sets"] for v in manifest["splits"].values()) == 30
  assert not _hidden_entries(folder, tmp_path)


def test_empty_output_folder_is_used(tmp_path):
  folder = tmp_path / "out"
  folder.mkdir()
  build.run(_config(folder))
  assert shard_writer.MANIFEST in os.listdir(folder)
  assert not _hidden_entries(tmp_path)


def test_output_path_is_a_file(tmp_path):
  (tmp_path / "out").write_text("a file")
  with pytest.raises(FileExistsError, match=r"out: exists and is not a folder"):
    build.run(_config(tmp_path / "out", overwrite=True))
  assert (tmp_path / "out").read_text() == "a file"


def _fail_after(function, calls):
  """Wraps `function` to raise RuntimeError on call number `calls` + 1."""
  count = [0]

  def wrapper(*args, **kwargs):
    count[0] += 1
    if count[0] > calls:
      raise RuntimeError("simulated crash")
    return function(*args, **kwargs)
  return wrapper


@pytest.mark.parametrize("target, attribute, calls", [
    (schema, "encode_set", 5),  # Inside the first train shard.
    (schema, "encode_set", 50),  # In the val split, after the train item table.
    (atomic_io, "write_npz", 2),  # Third item table.
    (atomic_io, "write_json", 0),  # The manifest, last file.
])
def test_crash_keeps_previous_output(tmp_path, monkeypatch, target, attribute, calls):
  folder = tmp_path / "out"
  build.run(_config(folder))
  before = _snapshot(folder)
  monkeypatch.setattr(target, attribute, _fail_after(getattr(target, attribute), calls))
  with pytest.raises(RuntimeError, match="simulated crash"):
    build.run(_config(folder, overwrite=True, seed=9))
  assert _snapshot(folder) == before
  assert not _hidden_entries(folder, tmp_path)


def test_failed_swap_restores_previous_output(tmp_path, monkeypatch):
  folder = tmp_path / "out"
  build.run(_config(folder))
  before = _snapshot(folder)
  replace = os.replace

  def failing_replace(source, destination):
    name = os.path.basename(source)
    if (name.startswith(".out.building-") and not name.endswith(".old")
        and destination == str(folder)):
      raise OSError("simulated rename failure")
    return replace(source, destination)
  monkeypatch.setattr(os, "replace", failing_replace)
  with pytest.raises(OSError, match="simulated rename failure"):
    build.run(_config(folder, overwrite=True, seed=9))
  assert _snapshot(folder) == before
  assert not _hidden_entries(folder, tmp_path)


def test_crash_on_first_build_leaves_nothing(tmp_path, monkeypatch):
  monkeypatch.setattr(schema, "encode_set", _fail_after(schema.encode_set, 5))
  with pytest.raises(RuntimeError, match="simulated crash"):
    build.run(_config(tmp_path / "out"))
  assert os.listdir(tmp_path) == []


def test_atomic_write_text_failure_keeps_old_file(tmp_path, monkeypatch):
  path = tmp_path / "note.txt"
  atomic_io.write_text(str(path), "old text")

  def failing_fsync(descriptor):
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(os, "fsync", failing_fsync)
  with pytest.raises(OSError, match="No space left"):
    atomic_io.write_text(str(path), "new text " * 1000)
  assert path.read_text() == "old text"
  assert os.listdir(tmp_path) == ["note.txt"]


def test_atomic_open_exception_inside_block_keeps_old_file(tmp_path):
  path = tmp_path / "data.bin"
  atomic_io.write_bytes(str(path), b"old")
  with pytest.raises(ValueError, match="stop"):
    with atomic_io.atomic_open(str(path)) as stream:
      stream.write(b"partial new content")
      raise ValueError("stop")
  assert path.read_bytes() == b"old"
  assert os.listdir(tmp_path) == ["data.bin"]
  atomic_io.write_text(str(path), "new ✓")
  assert path.read_text(encoding="utf-8") == "new ✓"
  assert os.listdir(tmp_path) == ["data.bin"]


def test_entry_point_builds_from_flags(tmp_path):
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  with flagsaver.flagsaver(source="synthetic", output_dir=str(tmp_path / "out"), num_shards=2,
                           synthetic_num_sets=30, synthetic_feature_dim=4,
                           synthetic_num_categories=3, split_seed=2):
    config = builder_flags.builder_config_from_flags()
    assert config.seed == 2
    assert config.synthetic.num_sets == 30
    builder_main.main(["tfrecords_builder"])
  manifest = _read_manifest(tmp_path / "out")
  assert manifest["feature_dim"] == 4 and manifest["num_categories"] == 3
  assert manifest["options"]["seed"] == 2
  with flagsaver.flagsaver(source="nope", output_dir=str(tmp_path / "other")):
    with pytest.raises(ValueError, match=r"unknown --source 'nope'"):
      builder_flags.builder_config_from_flags()
