"""A set's own photo (the room, the outfit): sets.jsonl "image", --set_image_dir, item tables."""

from __future__ import annotations

import os

import numpy as np
import pytest

from keras_models import data_files
from tests.tfrecords_builder.generic_fixtures import SETS
from tests.tfrecords_builder.generic_fixtures import _replace_line
from tests.tfrecords_builder.generic_fixtures import _write_dataset
from tfrecords_builder import build
from tfrecords_builder import config as config_lib
from tfrecords_builder.sources import generic


def _photo_sets() -> list[dict]:
  """SETS with a set-level photo on s1 (relative) and s3 (absolute)."""
  sets = [dict(s) for s in SETS]
  sets[0]["image"] = "rooms/s1.jpg"
  sets[2]["image"] = "/abs/room3.png"
  return sets


def test_set_image_field_is_relative_to_the_sets_folder(tmp_path, monkeypatch):
  _write_dataset(tmp_path / "data", sets=_photo_sets())
  monkeypatch.chdir(tmp_path)
  dataset = generic.load(os.path.join("data", "sets.jsonl"))
  assert [s.image for s in dataset.sets] == [
      os.path.join(str(tmp_path), "data", "rooms", "s1.jpg"), "", "/abs/room3.png", "", ""]


def test_set_image_of_the_wrong_type_names_the_line(tmp_path):
  _write_dataset(tmp_path, sets=_replace_line(2, dict(SETS[1], image=17)))
  with pytest.raises(ValueError, match=r"sets\.jsonl:2 \(set 's2'\): field 'image' must be a "
                                       r"string, got int"):
    generic.load(str(tmp_path))


def test_set_image_dir_matches_set_ids_with_or_without_extension(tmp_path):
  sets = [dict(s) for s in SETS]
  sets[1]["set_id"] = "room-2.jpg"  # IKEA's set ids are the photo's file name
  sets[2]["image"] = "own/s3.png"   # an explicit photo is kept
  _write_dataset(tmp_path / "data", sets=sets)
  photos = tmp_path / "scenes"
  photos.mkdir()
  for name in ("s1.jpg", "room-2.jpg", "s3.jpg", "s4.txt", "unrelated.png"):
    (photos / name).write_bytes(b"photo")
  dataset = generic.load(str(tmp_path / "data"), set_image_dir=str(photos))
  assert [s.image for s in dataset.sets] == [
      str(photos / "s1.jpg"), str(photos / "room-2.jpg"),
      str(tmp_path / "data" / "own" / "s3.png"), "", ""]
  with pytest.raises(FileNotFoundError, match=r"nowhere: image folder not found"):
    generic.load(str(tmp_path / "data"), set_image_dir=str(tmp_path / "nowhere"))


def test_item_tables_carry_the_set_photos_in_set_order(tmp_path):
  _write_dataset(tmp_path / "data")
  photos = tmp_path / "scenes"
  photos.mkdir()
  for name in ("s1.png", "s4.jpg"):
    (photos / name).write_bytes(b"photo")
  written = build.run(config_lib.BuilderConfig(
      source="generic", input=str(tmp_path / "data"), set_image_dir=str(photos),
      num_shards=1, output_dir=str(tmp_path / "out")))
  assert written["options"]["set_image_dir"] == str(photos)
  manifest = data_files.load_manifest(str(tmp_path / "out"))
  expected = {"train": {"s1": str(photos / "s1.png"), "s2": ""}, "val": {"s3": ""},
              "test": {"s4": str(photos / "s4.jpg"), "5": ""}}
  for split, photos_by_set in expected.items():
    table = data_files.load_item_table(manifest, split)
    assert dict(zip(table.set_ids.tolist(), table.set_images.tolist())) == photos_by_set


def test_tables_written_before_set_photos_read_as_no_photo(tmp_path):
  _write_dataset(tmp_path / "data")
  out = tmp_path / "out"
  build.run(config_lib.BuilderConfig(source="generic", input=str(tmp_path / "data"),
                                     num_shards=1, output_dir=str(out)))
  path = out / "items-val.npz"
  with np.load(path) as data:
    older = {key: data[key] for key in data.files if key != "set_images"}
  np.savez(path, **older)
  manifest = data_files.load_manifest(str(out))
  assert data_files.load_item_table(manifest, "val").set_images.tolist() == [""]
  columns = data_files.load_table_columns(manifest, "val", ("set_ids", "set_images"))
  assert sorted(columns) == ["set_ids", "set_images"]
  assert columns["set_images"].tolist() == [""]
  with pytest.raises(ValueError, match=r"items-val\.npz: item table has no array 'nope'"):
    data_files.load_table_columns(manifest, "val", ("set_ids", "nope"))


def test_set_image_dir_is_only_for_the_generic_source(tmp_path):
  config = config_lib.BuilderConfig(source="synthetic", output_dir=str(tmp_path),
                                    set_image_dir=str(tmp_path))
  with pytest.raises(ValueError, match=r"--set_image_dir is only used by --source=generic, "
                                       r"not synthetic"):
    config.validate()
