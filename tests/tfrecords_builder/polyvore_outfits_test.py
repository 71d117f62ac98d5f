"""The Polyvore Outfits source on a tiny tree in the real layout, and the shards it builds."""

from __future__ import annotations

import json
import os
import sys
import types

import numpy as np
import pytest

import tfrecords_builder
from keras_models import data_files
from keras_models import question_sets
from tfrecords_builder import build
from tfrecords_builder import config as config_lib
from tfrecords_builder import question_files
from tfrecords_builder.sources import image_features
from tfrecords_builder.sources import polyvore_outfits
from tests.tfrecords_builder import polyvore_fixtures


@pytest.fixture
def tree(tmp_path):
  root = str(tmp_path / "polyvore_outfits")
  return root, polyvore_fixtures.write_tree(root)


def _options(root, **changes):
  return image_features.FeatureOptions(**{"features": os.path.join(root, "features.npz"),
                                          **changes})


def _build(root, output_dir, **changes):
  return build.run(config_lib.BuilderConfig(**{
      "source": "polyvore_outfits", "input": root, "output_dir": output_dir, "num_shards": 1,
      "features": os.path.join(root, "features.npz"), **changes}))


def test_splits_categories_and_order_come_from_the_files(tree):
  root, written = tree
  dataset, report = polyvore_outfits.load_with_counts(root, _options(root))
  outfits = written["versions"]["nondisjoint"]
  for split, stem in (("train", "train"), ("val", "valid"), ("test", "test")):
    sets = [s for s in dataset.sets if s.split == split]
    assert [s.set_id for s in sets] == [o["set_id"] for o in outfits[stem]]
    assert [s.items for s in sets] == [tuple(i["item_id"] for i in o["items"])
                                       for o in outfits[stem]]
  first = dataset.sets[0]
  assert first.categories == ("tops", "bottoms", "shoes", "bags")
  assert first.images[0] == os.path.join(root, "images", f"{first.items[0]}.jpg")
  assert first.origin.endswith("nondisjoint/train.json: outfit 0")
  row = dataset.item_ids.tolist().index("3020")
  np.testing.assert_array_equal(dataset.features[row], written["features"]["3020"])
  assert report["items_shared_between_splits"] == {"train-val": 0, "train-test": 2,
                                                   "val-test": 0}
  assert report["outfits"] == {"train": 8, "val": 4, "test": 4}
  assert report["fitb_questions"] == {"val": 4, "test": 4}
  assert report["compatibility_questions"] == {"val": 8, "test": 8}
  assert set(dataset.questions) == {"val", "test"}
  first_question = dataset.questions["test"].fitb[0]
  assert first_question.answers[first_question.correct] == "300_3"  # outfit 300's shoes
  second_question = dataset.questions["test"].fitb[1]
  assert second_question.answers[second_question.correct] == "301_4"  # index 3 is a gap


def test_disjoint_version_overlap_is_counted_not_assumed(tree):
  root, _ = tree
  _, report = polyvore_outfits.load_with_counts(root, _options(root), version="disjoint")
  assert report["items_shared_between_splits"]["train-test"] == 1


def test_fine_categories_use_category_id_and_csv_names(tree):
  root, _ = tree
  dataset = polyvore_outfits.load(root, _options(root), categories="fine")
  assert dataset.sets[0].categories == ("11 T-Shirts", "21 Jeans", "31 Sneakers", "41 Totes")
  assert dataset.sets[1].categories[0] == "12 Blouses"
  os.remove(os.path.join(root, "categories.csv"))
  assert polyvore_outfits.load(root, _options(root), categories="fine").sets[0].categories[0] \
      == "11"


def test_built_shards_keep_splits_and_official_questions(tree, tmp_path):
  root, written = tree
  output_dir = str(tmp_path / "shards")
  manifest = _build(root, output_dir)
  assert manifest["source"] == "polyvore_outfits"
  assert manifest["categories"] == ["bags", "bottoms", "shoes", "tops"]
  assert {s: v["sets"] for s, v in manifest["splits"].items()} == {
      "train": 8, "val": 4, "test": 4}
  # Test items: 4 outfits, 14 item slots, top 21 in two outfits -> 13 unique items.
  assert manifest["splits"]["test"]["items"] == 13
  assert manifest["source_report"]["items_shared_between_splits"]["train-test"] == 2
  assert manifest["questions"]["kind"] == "official"
  assert manifest["questions"]["splits"]["test"] == {
      "fitb": 4, "fitb_skipped_missing_items": 0, "compatibility": 8,
      "compatibility_positive": 4, "compatibility_skipped_missing_items": 0}
  folder = os.path.join(output_dir, question_files.FOLDER)
  original = os.path.join(root, "nondisjoint")
  with open(os.path.join(folder, "fill_in_blank_test.json")) as mine, \
       open(os.path.join(original, "fill_in_blank_test.json")) as theirs:
    assert json.load(mine) == json.load(theirs)
  with open(os.path.join(folder, "compatibility_val.txt")) as mine, \
       open(os.path.join(original, "compatibility_valid.txt")) as theirs:
    assert mine.read().split() == theirs.read().split()
  # The eval-side reader maps every token to the right item-table row.
  data = data_files.load_manifest(output_dir)
  table = data_files.load_item_table(data, "test")
  questions = question_sets.load(output_dir, "test", table)
  assert questions.label == "official"
  outfits = written["versions"]["nondisjoint"]["test"]
  first = questions.fitb
  expected = [i["item_id"] for i in outfits[0]["items"]]
  assert table.item_ids[first.rows[first.offsets[0]:first.offsets[1]]].tolist() == \
      [expected[0], expected[1], expected[3]]
  assert table.item_ids[first.answers[0, first.correct[0]]] == expected[2]
  assert questions.compatibility.labels.tolist() == [1, 0] * 4


def test_skip_bad_images_drops_items_and_their_questions(tree, tmp_path):
  root, _ = tree
  features = dict(np.load(os.path.join(root, "features.npz")))
  keep = features["item_ids"] != "3020"  # shoes of test outfit 300
  np.savez(os.path.join(root, "features.npz"), item_ids=features["item_ids"][keep],
           features=features["features"][keep])
  with pytest.raises(ValueError, match=r"features\.npz: item '3020' \(.*nondisjoint/test\.json: "
                     r"outfit 0 \(set_id 300\)\) has no feature; 1 items without one"):
    polyvore_outfits.load(root, _options(root))
  manifest = _build(root, str(tmp_path / "shards"), skip_bad_images=True)
  assert manifest["source_report"]["items_dropped"] == {"no_feature": 1}
  test = manifest["questions"]["splits"]["test"]
  # Every test FITB question names outfit 300's shoes (the blank or a wrong answer).
  assert test["fitb"] == 0 and test["fitb_skipped_missing_items"] == 4
  assert test["compatibility_skipped_missing_items"] == 2


def _fake_encoder(monkeypatch, calls):
  """A stand-in `tfrecords_builder.encoders` (the real one needs model weights)."""
  def encode_images(paths, spec, path, batch_size, skip_bad_images):
    calls.append(list(paths))
    rows = [np.arange(1, polyvore_fixtures.DIM + 1) * (1 + int(os.path.basename(p)[:-4]) % 7)
            for p in paths]
    return np.asarray(rows, np.float32), []
  module = types.ModuleType("tfrecords_builder.encoders")
  module.encode_images = encode_images
  monkeypatch.setitem(sys.modules, "tfrecords_builder.encoders", module)
  monkeypatch.setattr(tfrecords_builder, "encoders", module, raising=False)


def test_images_go_through_the_encoder(tree, monkeypatch):
  root, _ = tree
  calls = []
  _fake_encoder(monkeypatch, calls)
  dataset = polyvore_outfits.load(root, image_features.FeatureOptions(encoder="clip"))
  assert sorted(os.path.basename(p) for p in calls[0]) == sorted(
      f"{i}.jpg" for i in dataset.item_ids)
  assert dataset.features_origin.endswith("(clip features)")
  os.remove(os.path.join(root, "images", "2011.jpg"))
  with pytest.raises(FileNotFoundError, match=r"images/2011\.jpg: image of item '2011' \(.*"
                     r"nondisjoint/valid\.json: outfit 1 \(set_id 201\)\) not found"):
    polyvore_outfits.load(root, image_features.FeatureOptions(encoder="clip"))
  dataset, report = polyvore_outfits.load_with_counts(
      root, image_features.FeatureOptions(encoder="clip", skip_bad_images=True))
  assert "2011" not in dataset.item_ids and report["items_dropped"] == {"no_image": 1}


def _edit_json(path, change):
  with open(path) as stream:
    records = json.load(stream)
  change(records)
  with open(path, "w") as stream:
    json.dump(records, stream)


def _three_answers(records):
  records[2]["answers"] = records[2]["answers"][:3]


def _unknown_answer(records):
  wrong = next(k for k, a in enumerate(records[1]["answers"]) if not a.startswith("301_"))
  records[1]["answers"][wrong] = "302_9"


def _item_not_in_metadata(records):
  records[3]["items"][0]["item_id"] = "999999"


@pytest.mark.parametrize("name, change, message", [
    ("fill_in_blank_test.json", _three_answers,
     r"fill_in_blank_test\.json: question 2: has 3 answers, expected 4"),
    ("fill_in_blank_test.json", _unknown_answer,
     r"fill_in_blank_test\.json: question 1: answers\[\d\] '302_9' is not an item of any "
     r"outfit in .*test\.json"),
    ("valid.json", _item_not_in_metadata,
     r"valid\.json: outfit 3 \(set_id 203\): item_id '999999' is not in "
     r"polyvore_item_metadata\.json"),
])
def test_bad_files_are_named_with_their_record(tree, name, change, message):
  root, _ = tree
  _edit_json(os.path.join(root, "nondisjoint", name), change)
  with pytest.raises(ValueError, match=message):
    polyvore_outfits.load(root, _options(root))


def test_bad_compatibility_line_is_named(tree):
  root, _ = tree
  path = os.path.join(root, "nondisjoint", "compatibility_test.txt")
  with open(path, "a") as stream:
    stream.write("\n1 300_1 nope\n")
  with pytest.raises(ValueError, match=r"compatibility_test\.txt: line 10: 'nope' is not an "
                     r"item token"):
    polyvore_outfits.load(root, _options(root))


def test_flags_and_tfds_config_reach_the_source(tree, tmp_path):
  from tfrecords_builder.tfds import set_retrieval  # pylint: disable=g-import-not-at-top
  root, _ = tree
  config = next(c for c in set_retrieval.SetRetrieval.BUILDER_CONFIGS
                if c.name == "polyvore_outfits")
  built = config.builder_config(root)
  assert (built.source, built.features, built.polyvore_version) == (
      "polyvore_outfits", os.path.join(root, "features.npz"), "nondisjoint")
  with pytest.raises(ValueError, match="--polyvore_version must be one of"):
    config_lib.BuilderConfig(source="polyvore_outfits", input=root, output_dir="o",
                             features="f.npz", polyvore_version="both").validate()
