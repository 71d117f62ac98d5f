"""Tests for the IQON3000 source and its category table on tiny raw trees."""

from __future__ import annotations

import collections
import json
import logging
import os
import sys
import types

import numpy as np
from PIL import Image
import pytest

import tfrecords_builder
from tfrecords_builder import build
from tfrecords_builder import config as config_lib
from tfrecords_builder.sources import image_features
from tfrecords_builder.sources import iqon3000
from tfrecords_builder.sources import iqon_categories

DIM = 5


def _coordinate(root, user, coordinate, items, images=True):
  """Writes <user>/<coordinate>/<coordinate>.json and an `<itemId>_m.jpg` per item.

  `items` are (itemId, category text) or full item dicts.
  """
  folder = root / str(user) / str(coordinate)
  folder.mkdir(parents=True, exist_ok=True)
  records = [i if isinstance(i, dict) else {"itemId": i[0], "category x color": i[1],
                                            "imgUrl": f"http://x/{i[0]}.jpg"} for i in items]
  (folder / f"{coordinate}.json").write_text(
      json.dumps({"setId": coordinate, "items": records}, ensure_ascii=False),
      encoding="utf-8")
  if images:
    for k, record in enumerate(records):
      Image.new("RGB", (4, 4), (k * 40 % 255, 90, 160)).save(
          folder / f"{record['itemId']}_m.jpg", "JPEG")


def _features(root, item_ids):
  path = root / "features.npz"
  rng = np.random.default_rng(0)
  np.savez(path, item_ids=np.asarray([str(i) for i in item_ids]),
           features=(rng.standard_normal((len(item_ids), DIM)) + 0.5).astype(np.float32))
  return str(path)


def _options(features):
  return image_features.FeatureOptions(features=features)


def _raw_tree(root):
  """Users 1, 2 and 10 (read in that order, not "1", "10", "2"); returns the features."""
  # Coordinate 5 is read before 40 and claims item 100.
  _coordinate(root, 1, 5, [(100, "ジャケット × ブラック"), (101, "Tシャツ"), (102, "パンツ"),
                           (103, "スニーカー")])
  _coordinate(root, 1, 40, [(100, "ジャケット"), (104, "ニットワンピース"), (105, "バッグ"),
                            (106, "腕時計"), (107, "謎の服")])
  # User 2 is read before user 10, so this coordinate claims item 120.
  _coordinate(root, 2, 9, [(120, "ショートブーツ"), (121, "ピアス"), (122, "財布"),
                           {"itemId": "123", "categoryName": "サングラス"}])
  _coordinate(root, 2, 8, [(108, "スカート"), (109, "帽子"), (110, "ソックス")])  # 3 items.
  # 114 has no feature; 115 has no <itemId>_m.jpg but its imgUrl names a file there.
  _coordinate(root, 10, 3, [(120, "ブーツ"), (111, "水着"), (112, "香水"), (113, "ベルト"),
                            (114, "ルームウェア"), (115, "謎の服")])
  _coordinate(root, 10, 4, [{"itemId": 116, "category": {"name": "コート"}},
                            {"itemId": 117}, (118, "謎の服"), (119, "その他")])
  os.remove(root / "10" / "3" / "115_m.jpg")
  Image.new("RGB", (4, 4)).save(root / "10" / "3" / "photo.jpg", "JPEG")
  json_path = root / "10" / "3" / "3.json"
  record = json.loads(json_path.read_text(encoding="utf-8"))
  record["items"][-1]["imgUrl"] = "http://img.example/a/photo.jpg"
  json_path.write_text(json.dumps(record), encoding="utf-8")
  (root / "10" / "77").mkdir()  # A coordinate folder without its json.
  (root / "notes.txt").write_text("not a user")
  return _features(root, [i for i in range(100, 124) if i != 114])


def test_sets_dedupe_categories_and_counts(tmp_path):
  features = _raw_tree(tmp_path)
  dataset, counts, unknown = iqon3000.load_with_counts(str(tmp_path), _options(features))
  assert dataset.name == "iqon3000"
  assert dataset.category_names == iqon_categories.CLASS_NAMES
  assert len(dataset.category_names) == 17
  sets = {s.set_id: s for s in dataset.sets}
  assert list(sets) == ["1/5", "1/40", "2/9", "10/3", "10/4"]
  assert sets["1/5"].items == ("100", "101", "102", "103")
  assert sets["1/40"].items == ("104", "105", "106", "107")  # 100 stays in 1/5.
  assert sets["10/3"].items == ("111", "112", "113", "115")  # 120 stays in 2/9; 114 unfeatured.
  assert sets["1/5"].categories == ("outerwear", "tops", "pants", "shoes")
  assert sets["1/40"].categories == ("dresses", "bags", "watches", "others")
  assert sets["2/9"].categories == ("shoes", "accessories", "wallets_small_goods", "glasses")
  assert sets["10/3"].categories == ("underwear_swim", "beauty", "fashion_goods", "others")
  assert sets["10/4"].categories == ("outerwear", "others", "others", "others")
  assert [s.group for s in dataset.sets] == ["1", "1", "2", "10", "10"]
  assert sets["1/5"].images[0] == os.path.join(str(tmp_path), "1", "5", "100_m.jpg")
  assert sets["10/3"].images[3] == os.path.join(str(tmp_path), "10", "3", "photo.jpg")
  assert sets["2/9"].origin == os.path.join(str(tmp_path), "2", "9", "9.json")
  # 謎の服 three times, a missing text once; その他 is a known text.
  assert unknown == collections.Counter({"謎の服": 3, "": 1})
  assert counts == {
      "users": 3, "coordinates_without_json": 1, "items_read": 26, "items_repeated": 2,
      "coordinates_read": 6, "items_no_feature": 1, "coordinates_too_small": 1,
      "coordinates_kept": 5, "items_kept": 20, "items_unknown_category": 4}
  assert sorted(dataset.item_ids.tolist()) == [
      str(i) for i in range(100, 124) if i not in (108, 109, 110, 114)]


def test_unknown_categories_reported(tmp_path, caplog):
  features = _raw_tree(tmp_path)
  caplog.set_level(logging.INFO)
  iqon3000.load(str(tmp_path), _options(features))
  assert ("4 items (2 distinct category texts) not in the IQON category table became "
          "'others': '謎の服' x 3, '<missing>' x 1") in caplog.text
  report = iqon3000.unknown_category_report(
      collections.Counter({f"t{k}": k for k in range(1, 6)}), top=2)
  assert report == "'t5' x 5, 't4' x 4 and 3 more"


def test_category_table():
  cases = {
      "ジャケット": "outerwear", "アウター": "outerwear", "Jacket": "outerwear",
      "Tシャツ/カットソー": "tops", "インナー": "tops", "ニットワンピース": "dresses",
      "レギンスパンツ": "pants", "スカート": "skirts", "ショートブーツ": "shoes",
      "ショルダーバッグ": "bags", "ニット帽": "hats", "腕時計": "watches",
      "ヘアアクセサリー": "accessories", "スカーフ": "fashion_goods", "手袋": "fashion_goods",
      "長財布": "wallets_small_goods", "キーケース": "wallets_small_goods",
      "靴下": "legwear", "タイツ": "legwear", "ルームウェア": "underwear_swim",
      "水着": "underwear_swim", "コスメ": "beauty", "香水": "beauty", "サングラス": "glasses",
      "メガネ": "glasses", "その他": "others", "  パンプス ": "shoes"}
  assert {text: iqon_categories.classify(text) for text in cases} == cases
  assert iqon_categories.classify("謎") is None
  assert iqon_categories.classify("") is None
  assert set(iqon_categories.TABLE.values()) == set(iqon_categories.CLASS_NAMES)
  text = iqon_categories.category_text
  assert text({"category x color": "ジャケット × ブラック", "categoryName": "x"}) == "ジャケット"
  assert text({"category x color": "", "categoryName": "パンツ"}) == "パンツ"
  assert text({"category": {"name": "スカート"}}) == "スカート"
  assert text({"category": "スカート", "itemName": "NIKE Tシャツ"}) == ""


def test_brand_in_item_name_does_not_override(tmp_path):
  items = [{"itemId": k, "category x color": "Tシャツ × ホワイト", "itemName": "NIKE スニーカー風"}
           for k in range(4)]
  _coordinate(tmp_path, 1, 1, items)
  dataset = iqon3000.load(str(tmp_path), _options(_features(tmp_path, range(4))))
  assert dataset.sets[0].categories == ("tops",) * 4


def test_user_split_disjoint_seeded(tmp_path):
  sets_per_user = {str(u): 1 + u % 3 for u in range(40)}
  total = sum(sets_per_user.values())
  splits = iqon3000.assign_user_splits(sets_per_user, seed=5)
  assert set(splits) == set(sets_per_user)
  share = collections.Counter()
  for user, split in splits.items():
    share[split] += sets_per_user[user]
  # Train is filled while < 70 % is assigned, val while < 80 %: each overshoots by less
  # than one user (at most 3 sets).
  assert 0.70 * total <= share["train"] < 0.70 * total + 3, share
  assert 0.80 * total <= share["train"] + share["val"] < 0.80 * total + 3, share
  assert share["test"] > 0
  assert iqon3000.assign_user_splits(sets_per_user, seed=5) == splits
  assert iqon3000.assign_user_splits(sets_per_user, seed=6) != splits


def _many_users(root, num_users=12):
  item_ids = []
  for user in range(num_users):
    for coordinate in range(1 + user % 2):
      items = [(f"u{user}c{coordinate}i{k}", "トップス") for k in range(4 + user % 2)]
      item_ids += [i for i, _ in items]
      _coordinate(root, user, f"c{coordinate}", items, images=user < 2)
  return item_ids


def test_split_of_sets_follows_users(tmp_path):
  features = _features(tmp_path, _many_users(tmp_path / "raw"))
  dataset = iqon3000.load(str(tmp_path / "raw"), _options(features), seed=1)
  split_of_user = {}
  for raw_set in dataset.sets:
    assert split_of_user.setdefault(raw_set.group, raw_set.split) == raw_set.split
  assert set(split_of_user.values()) == {"train", "val", "test"}
  items_of = collections.defaultdict(set)
  for raw_set in dataset.sets:
    items_of[raw_set.split].update(raw_set.items)
  assert not items_of["train"] & items_of["test"] and not items_of["train"] & items_of["val"]
  again = iqon3000.load(str(tmp_path / "raw"), _options(features), seed=1)
  assert [s.split for s in again.sets] == [s.split for s in dataset.sets]


def test_encoder_drops_items_without_image(tmp_path, monkeypatch):
  _coordinate(tmp_path, 1, 1, [(k, "トップス") for k in range(5)])
  _coordinate(tmp_path, 1, 2, [(k, "トップス") for k in range(10, 14)])
  os.remove(tmp_path / "1" / "1" / "3_m.jpg")
  os.remove(tmp_path / "1" / "2" / "13_m.jpg")
  encoded = []

  def encode_images(paths, spec, path, batch_size, skip_bad_images):
    del spec, path, batch_size, skip_bad_images
    encoded.extend(os.path.basename(p) for p in paths)
    return np.eye(len(paths), DIM, dtype=np.float32) + 0.1, []
  module = types.ModuleType("tfrecords_builder.encoders")
  module.encode_images = encode_images
  monkeypatch.setitem(sys.modules, "tfrecords_builder.encoders", module)
  monkeypatch.setattr(tfrecords_builder, "encoders", module, raising=False)
  dataset, counts, _ = iqon3000.load_with_counts(
      str(tmp_path), image_features.FeatureOptions(encoder="clip"))
  assert encoded == ["0_m.jpg", "1_m.jpg", "2_m.jpg", "4_m.jpg", "10_m.jpg", "11_m.jpg",
                     "12_m.jpg"]
  assert [s.items for s in dataset.sets] == [("0", "1", "2", "4")]
  assert counts["items_no_image"] == 2 and counts["coordinates_too_small"] == 1


def test_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"nope: IQON3000 folder not found"):
    iqon3000.load(str(tmp_path / "nope"), _options("unused.npz"))
  folder = tmp_path / "1" / "2"
  folder.mkdir(parents=True)
  cases = [
      ("{", r"1/2/2\.json: not valid JSON"),
      (json.dumps({"setId": 2}), r"1/2/2\.json: field 'items' must be a list"),
      (json.dumps({"items": ["x"]}), r"2\.json: items\[0\]: must be an object, got str"),
      (json.dumps({"items": [{"itemId": 1}, {"itemId": None}]}),
       r"2\.json: items\[1\]: field 'itemId' must be an int or a non-empty string, got None"),
      (json.dumps({"items": [{"itemId": 1, "imgUrl": 3}]}),
       r"2\.json: items\[0\]: field 'imgUrl' must be a string"),
  ]
  for content, pattern in cases:
    (folder / "2.json").write_text(content)
    with pytest.raises(ValueError, match=pattern):
      iqon3000.load(str(tmp_path), _options("unused.npz"))
  _coordinate(tmp_path, 1, 2, [(k, "トップス") for k in range(4)])
  with pytest.raises(ValueError, match=r"no coordinate has 4 items with features"):
    iqon3000.load(str(tmp_path), _options(_features(tmp_path, [0, 1, 2])))


def test_config_needs_features_or_encoder(tmp_path):
  config = config_lib.BuilderConfig(source="iqon3000", input=str(tmp_path),
                                    output_dir=str(tmp_path / "out"))
  with pytest.raises(ValueError, match=r"--source=iqon3000 needs --features"):
    build.run(config)


def test_build_shards_end_to_end(tmp_path):
  features = _features(tmp_path, _many_users(tmp_path / "raw"))
  manifest = build.run(config_lib.BuilderConfig(
      source="iqon3000", input=str(tmp_path / "raw"), features=features,
      output_dir=str(tmp_path / "out"), num_shards=1, seed=1))
  assert manifest["source"] == "iqon3000"
  assert manifest["categories"] == list(iqon_categories.CLASS_NAMES)
  splits = manifest["splits"]
  assert sum(v["sets"] for v in splits.values()) == 18
  assert all(v["sets"] >= 1 for v in splits.values()), splits
