"""Tests for the DeepFurniture source on tiny raw trees written by the tests."""

from __future__ import annotations

import collections
import json
import os
import sys
import types

import numpy as np
from PIL import Image
import pytest

import tfrecords_builder
from tfrecords_builder import build
from tfrecords_builder import config as config_lib
from tfrecords_builder.sources import deepfurniture
from tfrecords_builder.sources import image_features

DIM = 6


def _jpeg(path, seed=0):
  path.parent.mkdir(parents=True, exist_ok=True)
  color = tuple(int(v) for v in np.random.default_rng(seed).integers(0, 255, 3))
  Image.new("RGB", (4, 4), color).save(path, "JPEG")


def _scene(root, scene_id, instances, task=None, **extra):
  """Writes scenes/<scene_id>/annotation.json; `instances` are (identityID, categoryID)."""
  record = {"instances": [{"identityID": i, "categoryID": c} for i, c in instances], **extra}
  if task is not None:
    record["scene"] = {"sceneTaskID": task}
  folder = root / "scenes" / scene_id
  folder.mkdir(parents=True, exist_ok=True)
  (folder / "annotation.json").write_text(json.dumps(record))


def _features(root, item_ids, name="features.npz"):
  rng = np.random.default_rng(1)
  path = root / name
  np.savez(path, item_ids=np.asarray(item_ids),
           features=(rng.standard_normal((len(item_ids), DIM)) + 0.5).astype(np.float32))
  return str(path)


def _options(features="", **kwargs):
  return image_features.FeatureOptions(features=features, **kwargs)


def _raw_tree(root):
  """Scenes that exercise every rule; returns the features path (items with a feature)."""
  _scene(root, "s01", [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)])
  _scene(root, "s02", [("a", 1), ("b", 2), ("c", 3), ("d", 4)])  # Strict subset of s01.
  # Same set as s01 (kept: s01 sorts first); "a" with another category is a conflict.
  _scene(root, "s03", [("e", 5), ("d", 4), ("c", 3), ("b", 2), ("a", 2)])
  # Three instances of "f": one item.
  _scene(root, "s04", [("f", 6), ("g", 7), ("f", 6), ("h", 8), ("i", 9), ("f", 6)], task=77)
  _scene(root, "s05", [("j", 10), ("k", 11), ("l", 1), ("m", 2), ("nofeat", 3)])
  _scene(root, "s06", [("n", 1), ("o", 2), ("p", 3), ("nofeat", 3)])  # 3 left: too small.
  _scene(root, "s07", [(f"big{k}", 1 + k % 11) for k in range(21)])  # Too large.
  _scene(root, "s08", [("f", 6), ("q", 1), ("r", 2), ("s", 3)], task=77)
  (root / "scenes" / "s09").mkdir()  # No annotation.json.
  item_ids = [*"abcdefghijklmnopqrs"] + [f"big{k}" for k in range(21)]
  for k, item in enumerate(item_ids):
    folder = root / "furnitures" / ("sub" if k % 2 else "")
    _jpeg(folder / f"{item}.jpg", seed=k)
  return _features(root, item_ids)


def test_sets_filters_and_counts(tmp_path):
  features = _raw_tree(tmp_path)
  dataset, counts = deepfurniture.load_with_counts(str(tmp_path), _options(features))
  assert dataset.name == "deepfurniture"
  assert dataset.features_origin == features
  assert [s.set_id for s in dataset.sets] == ["s01", "s04", "s05", "s08"]
  sets = {s.set_id: s for s in dataset.sets}
  assert sets["s01"].items == ("a", "b", "c", "d", "e")
  assert sets["s04"].items == ("f", "g", "h", "i")
  assert sets["s05"].items == ("j", "k", "l", "m")
  # Group: the sceneTaskID, else the scene id; the builder draws the split.
  assert [s.group for s in dataset.sets] == ["s01", "77", "s05", "77"]
  assert all(s.split is None for s in dataset.sets)
  # Categories: first instance's id, names of the guessed table in id order.
  assert sets["s01"].categories == ("cabinet_shelf", "table", "chair_stool", "lamp", "door")
  assert sets["s05"].categories == ("curtain", "home_appliance", "cabinet_shelf", "table")
  assert dataset.category_names == tuple(deepfurniture.GUESSED_CATEGORY_NAMES.values())
  # Images found anywhere under furnitures/.
  assert sets["s04"].images == tuple(
      os.path.join(str(tmp_path), "furnitures", sub, f"{i}.jpg")
      for i, sub in zip("fghi", ("sub", "", "sub", "")))
  assert sorted(dataset.item_ids.tolist()) == sorted([*"abcdefghijklm", "q", "r", "s"])
  assert counts == {
      "scenes_read": 8, "scenes_without_annotation": 1, "instances": 54,
      "duplicate_instances": 2, "items": 41, "category_conflicts": 1,
      "items_no_feature": 1, "scenes_too_small": 1, "scenes_too_large": 1,
      "scenes_strict_subset": 1, "scenes_duplicate": 1, "scenes_kept": 4, "items_kept": 16}


def test_features_rows_follow_item_ids(tmp_path):
  features = _raw_tree(tmp_path)
  dataset = deepfurniture.load(str(tmp_path), _options(features))
  with np.load(features) as table:
    row_of = {i: r for r, i in enumerate(table["item_ids"].tolist())}
    expected = table["features"][[row_of[i] for i in dataset.item_ids.tolist()]]
  np.testing.assert_array_equal(dataset.features, expected)


def _brute_force_kept(item_sets, set_ids):
  """O(N^2) oracle: drop a set inside another one, or equal to one with a smaller id."""
  kept = []
  for i, items in enumerate(item_sets):
    if not any(j != i and (items < other or (items == other and set_ids[j] < set_ids[i]))
               for j, other in enumerate(item_sets)):
      kept.append(i)
  return kept


@pytest.mark.parametrize("seed", range(5))
def test_remove_subsets_matches_brute_force(seed):
  rng = np.random.default_rng(seed)
  item_sets = [frozenset(rng.choice(10, size=rng.integers(1, 7), replace=False).tolist())
               for _ in range(150)]
  # Copies of the largest sets, which no set can contain strictly: certain duplicates.
  item_sets += sorted(item_sets, key=len)[-3:]
  set_ids = [f"scene{k:03d}" for k in rng.permutation(len(item_sets))]
  kept, strict, duplicate = deepfurniture.remove_subsets(item_sets, set_ids)
  expected = _brute_force_kept(item_sets, set_ids)
  assert kept == expected
  # Copies of a kept set are duplicates; everything else dropped lies inside a kept set.
  multiplicity = collections.Counter(item_sets)
  assert duplicate == sum(multiplicity[item_sets[i]] - 1 for i in expected)
  assert strict == len(item_sets) - len(expected) - duplicate
  assert strict > 0 and duplicate > 0


def test_category_names_from_metadata(tmp_path):
  for k in range(3):
    _scene(tmp_path, f"s{k}", [(f"x{k}{j}", 1 + j) for j in range(4)])
  # categoryName in the annotations names category 4; categories.json (first) names 1, 2.
  _scene(tmp_path, "s3", [("x00", 1), ("x01", 2), ("x02", 3), ("x03", 4), ("x13", 4)])
  annotation = tmp_path / "scenes" / "s3" / "annotation.json"
  record = json.loads(annotation.read_text())
  record["instances"][3]["categoryName"] = "Lamp "
  record["instances"][0]["categoryName"] = "ignored"
  annotation.write_text(json.dumps(record))
  (tmp_path / "metadata").mkdir()
  (tmp_path / "metadata" / "categories.json").write_text(json.dumps(
      [{"id": 1, "name": "Cabinet/Shelf"}, {"categoryID": 2, "categoryName": "Table"}]))
  _features(tmp_path, [f"x{k}{j}" for k in range(3) for j in range(4)])
  dataset = deepfurniture.load(str(tmp_path), _options(str(tmp_path / "features.npz")))
  # Category 3 has no name in the metadata: the guessed table names it.
  assert dataset.category_names == ("Cabinet/Shelf", "Table", "chair_stool", "Lamp")
  assert all(s.images is None for s in dataset.sets)  # No furnitures/ folder.
  (tmp_path / "metadata" / "categories.json").write_text(json.dumps({"1": "sofa", "2": "sofa"}))
  with pytest.raises(ValueError, match=r"category name 'sofa' is used by several category "
                                       r"ids \(\[1, 2\]\)"):
    deepfurniture.load(str(tmp_path), _options(str(tmp_path / "features.npz")))


def test_furnitures_jsonl_filters_items(tmp_path):
  for k in range(2):
    _scene(tmp_path, f"s{k}", [(f"x{k}{j}", 1 + j) for j in range(5)])
  features = _features(tmp_path, [f"x{k}{j}" for k in range(2) for j in range(5)])
  (tmp_path / "metadata").mkdir()
  listed = [f"x0{j}" for j in range(5)] + ["x10", "x11", "x12"]
  (tmp_path / "metadata" / "furnitures.jsonl").write_text("\n".join(
      json.dumps({"furniture_id": i, "category_id": 1}) for i in listed) + "\n\n")
  dataset, counts = deepfurniture.load_with_counts(str(tmp_path), _options(features))
  assert [s.set_id for s in dataset.sets] == ["s0"]
  assert counts["items_not_in_furnitures_jsonl"] == 2
  assert counts["scenes_too_small"] == 1


def _fake_encoder(monkeypatch, calls):
  """Installs a stand-in `tfrecords_builder.encoders` (the real one needs model weights)."""
  def encode_images(paths, spec, path, batch_size, skip_bad_images):
    calls.append(dict(paths=list(paths), spec=spec, path=path, batch_size=batch_size))
    bad = [p for p in paths if os.path.basename(p).startswith("bad")]
    if bad and not skip_bad_images:
      raise ValueError(f"unreadable images: {bad}")
    good = [p for p in paths if p not in bad]
    features = np.stack([np.full(DIM, 1.0 + k) for k in range(len(good))]).astype(np.float32)
    return features / np.linalg.norm(features, axis=1, keepdims=True), bad
  module = types.ModuleType("tfrecords_builder.encoders")
  module.encode_images = encode_images
  monkeypatch.setitem(sys.modules, "tfrecords_builder.encoders", module)
  monkeypatch.setattr(tfrecords_builder, "encoders", module, raising=False)


def test_encoder_embeds_only_items_with_images(tmp_path, monkeypatch):
  _scene(tmp_path, "s0", [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("noimage", 5)])
  _scene(tmp_path, "s1", [("e", 1), ("f", 2), ("g", 3), ("bad1", 4)])
  _scene(tmp_path, "s2", [("h", 1), ("i", 2), ("j", 3)])  # Too small: never encoded.
  for k, item in enumerate([*"abcdefghij", "bad1"]):
    _jpeg(tmp_path / "furnitures" / f"{item}.jpg", seed=k)
  calls = []
  _fake_encoder(monkeypatch, calls)
  options = _options(encoder="clip", encoder_path="/presets/clip", batch_size=7,
                     skip_bad_images=True)
  dataset, counts = deepfurniture.load_with_counts(str(tmp_path), options)
  assert [os.path.basename(p) for p in calls[0]["paths"]] == [
      "a.jpg", "b.jpg", "bad1.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg", "g.jpg"]
  assert (calls[0]["spec"], calls[0]["path"], calls[0]["batch_size"]) == (
      "clip", "/presets/clip", 7)
  assert [s.set_id for s in dataset.sets] == ["s0"]
  assert dataset.sets[0].items == ("a", "b", "c", "d")
  assert counts["items_no_image"] == 1 and counts["items_unreadable_image"] == 1
  assert dataset.features.shape == (4, DIM)
  assert dataset.features_origin == f"{tmp_path} (clip features)"
  with pytest.raises(ValueError, match=r"unreadable images: \[.*bad1\.jpg'\]"):
    deepfurniture.load(str(tmp_path), _options(encoder="clip"))
  os.rename(tmp_path / "furnitures", tmp_path / "elsewhere")
  with pytest.raises(FileNotFoundError, match=r"furnitures: furniture image folder not found"):
    deepfurniture.load(str(tmp_path), _options(encoder="clip"))


_BAD_ANNOTATIONS = {
    "invalid_json": ("{", r"s0/annotation\.json: not valid JSON"),
    "no_instances": ({"scene": {}}, r"s0/annotation\.json: field 'instances' must be a list"),
    "instances_not_list": ({"instances": {}}, r"field 'instances' must be a list"),
    "instance_not_object": ({"instances": [3]},
                            r"annotation\.json: instances\[0\]: must be an object, got int"),
    "category_str": ({"instances": [{"identityID": 1, "categoryID": "3"}]},
                     r"instances\[0\]: field 'categoryID' must be an int, got '3'"),
    "category_bool": ({"instances": [{"identityID": 1, "categoryID": True}]},
                      r"instances\[0\]: field 'categoryID' must be an int, got True"),
    "no_identity": ({"instances": [{"identityID": 1, "categoryID": 1}, {"categoryID": 1}]},
                    r"instances\[1\]: field 'identityID' must be an int or a non-empty "
                    r"string, got None"),
}


@pytest.mark.parametrize("case", sorted(_BAD_ANNOTATIONS))
def test_annotation_errors(tmp_path, case):
  content, pattern = _BAD_ANNOTATIONS[case]
  (tmp_path / "scenes" / "s0").mkdir(parents=True)
  (tmp_path / "scenes" / "s0" / "annotation.json").write_text(
      content if isinstance(content, str) else json.dumps(content))
  with pytest.raises(ValueError, match=pattern):
    deepfurniture.load(str(tmp_path), _options("unused.npz"))


def test_layout_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"scenes: scenes folder not found"):
    deepfurniture.load(str(tmp_path), _options("unused.npz"))
  _scene(tmp_path, "s0", [(f"x{j}", 1) for j in range(4)])
  features = _features(tmp_path, ["other"])
  with pytest.raises(ValueError, match=r"no scene has 4\.\.20 items with features"):
    deepfurniture.load(str(tmp_path), _options(features))
  (tmp_path / "metadata").mkdir()
  (tmp_path / "metadata" / "furnitures.jsonl").write_text('{"furniture_id": "x0"}\n{"a": 1}\n')
  with pytest.raises(ValueError, match=r"furnitures\.jsonl:2: field 'furniture_id' must be"):
    deepfurniture.load(str(tmp_path), _options(features))
  os.remove(tmp_path / "metadata" / "furnitures.jsonl")
  _features(tmp_path, [f"x{j}" for j in range(4)])
  (tmp_path / "metadata" / "categories.json").write_text('{"one": "sofa"}')
  with pytest.raises(ValueError, match=r"categories\.json: entry 'one': expected an integer "
                                       r"id and a name"):
    deepfurniture.load(str(tmp_path), _options(features))


@pytest.mark.parametrize("changes, pattern", [
    ({}, r"--source=deepfurniture needs --features \(a precomputed features \.npz keyed by "
         r"item id\) or --encoder"),
    ({"features": "f.npz", "encoder": "clip"}, r"give --features or --encoder, not both"),
    ({"encoder": "resnet"}, r"--encoder must be 'clip' or 'keras:<model\.keras>', got "
                            r"'resnet'"),
    ({"encoder": "keras:"}, r"--encoder must be 'clip' or 'keras:<model\.keras>'"),
    ({"encoder": "clip", "encoder_batch_size": 0}, r"--encoder_batch_size must be >= 1"),
    ({"source": "generic", "encoder": "clip"},
     r"--encoder is only used by --source=deepfurniture\|iqon3000\|polyvore_outfits, not "
     r"generic"),
])
def test_config_needs_features_or_encoder(tmp_path, changes, pattern):
  fields = dict(source="deepfurniture", input=str(tmp_path), output_dir=str(tmp_path / "out"))
  fields.update(changes)
  config = config_lib.BuilderConfig(**fields)
  with pytest.raises(ValueError, match=pattern):
    config.validate()
  with pytest.raises(ValueError, match=pattern):
    build.run(config)
  assert not os.path.exists(tmp_path / "out")


def test_build_shards_end_to_end(tmp_path):
  raw = tmp_path / "raw"
  rng = np.random.default_rng(0)
  item_ids = []
  for k in range(14):
    items = [f"k{k}-{j}" for j in range(4 + k % 3)] + ["shared"]
    item_ids += items[:-1]
    _scene(raw, f"scene{k:02d}", [(i, 1 + int(rng.integers(11))) for i in items],
           task=f"task{k // 2}")
  item_ids.append("shared")
  for k, item in enumerate(item_ids[:5]):
    _jpeg(raw / "furnitures" / f"{item}.jpg", seed=k)
  features = _features(raw, item_ids)
  manifest = build.run(config_lib.BuilderConfig(
      source="deepfurniture", input=str(raw), features=features,
      output_dir=str(tmp_path / "out"), num_shards=1, seed=3))
  assert manifest["source"] == "deepfurniture"
  assert manifest["synthetic"] is False
  assert manifest["feature_dim"] == DIM
  splits = manifest["splits"]
  assert sum(v["sets"] for v in splits.values()) == 14
  assert all(v["sets"] >= 1 for v in splits.values()), splits
  images = {}
  for split in splits:
    with np.load(tmp_path / "out" / f"items-{split}.npz") as table:
      images.update(zip(table["item_ids"].tolist(), table["images"].tolist()))
  assert images["k0-0"] == os.path.join(str(raw), "furnitures", "k0-0.jpg")
  assert images["k13-0"] == ""
