"""Question files: the format's reader and writer, and the generated questions' rule."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from keras_models import data_files
from tfrecords_builder import dataset_builder
from tfrecords_builder import question_files
from tfrecords_builder import question_generation
from tests import tiny_data


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
  return tiny_data.build_synthetic(str(tmp_path_factory.mktemp("q") / "syn"), num_sets=120,
                                   num_categories=4, feature_dim=8, min_items=3, max_items=6)


def _read(data_dir, split):
  folder = os.path.join(data_dir, question_files.FOLDER)
  outfits = question_files.read_outfits(os.path.join(folder, question_files.outfits_name(split)))
  keys = question_files.outfit_keys(outfits, "outfits")
  fitb = question_files.read_fitb(os.path.join(folder, question_files.fitb_name(split)))
  compatibility = question_files.read_compatibility(
      os.path.join(folder, question_files.compatibility_name(split)))
  return outfits, keys, fitb, compatibility


@pytest.mark.parametrize("split", ["val", "test"])
def test_generated_questions_follow_the_rule(shards, split):
  manifest = data_files.load_manifest(shards)
  table = data_files.load_item_table(manifest, split)
  category = dict(zip(table.item_ids.tolist(), table.categories.tolist()))
  outfits, keys, fitb, compatibility = _read(shards, split)
  members = {o.set_id: [i for i, _ in o.items] for o in outfits}
  assert [o.set_id for o in outfits] == table.set_ids.tolist()
  for outfit, start, end in zip(outfits, table.set_offsets[:-1], table.set_offsets[1:]):
    assert [i for i, _ in outfit.items] == table.item_ids[table.set_items[start:end]].tolist()
    assert [k for _, k in outfit.items] == list(range(1, end - start + 1))
  assert len(fitb) == len(outfits)  # no category here is too small to skip a question
  for question, outfit in zip(fitb, outfits):
    items = members[outfit.set_id]
    blank = items[question.blank_position - 1]
    assert [keys[t] for t in question.question] == [
        i for k, i in enumerate(items) if k != question.blank_position - 1]
    answers = [keys[t] for t in question.answers]
    assert answers[question.correct] == blank
    wrong = [a for k, a in enumerate(answers) if k != question.correct]
    assert len(set(wrong)) == 3 and not set(wrong) & set(items)
    assert all(category[a] == category[blank] for a in wrong)
  labels = [q.label for q in compatibility]
  assert labels == [1, 0] * len(outfits)
  for positive, negative, outfit in zip(compatibility[::2], compatibility[1::2], outfits):
    items = members[outfit.set_id]
    assert [keys[t] for t in positive.items] == items
    drawn = [keys[t] for t in negative.items]
    assert len(set(drawn)) == len(items) and not set(drawn) & set(items)
    assert [category[i] for i in drawn] == [category[i] for i in items]
  with open(os.path.join(shards, question_files.FOLDER, question_files.PROVENANCE)) as stream:
    provenance = json.load(stream)
  assert provenance["kind"] == "generated" and provenance["seed"] == 0
  assert provenance["splits"][split]["fitb"] == len(fitb)


def _split(categories, sets, set_ids=None):
  return dataset_builder.SplitData(
      set_ids=set_ids or [f"s{k}" for k in range(len(sets))],
      set_items=[np.asarray(s, np.int32) for s in sets],
      item_ids=np.asarray([f"i{k}" for k in range(len(categories))]),
      categories=np.asarray(categories, np.int32),
      features=np.zeros((len(categories), 2), np.float32),
      images=np.full(len(categories), ""))


def test_seeded_draws_and_counted_skips():
  # Categories 1 and 2 have 4 items each: sets s0 and s1 (one of each) leave 3 outside
  # for any blank; s2 (two of 2) and s3 (two of 1) leave 2, too few for FITB but enough
  # for their random outfit; category 3 lives only in s4: no question, no random outfit.
  data = _split([1, 2, 1, 2, 2, 2, 1, 1, 3, 3], [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
  runs = []
  for seed in (0, 0, 1):
    counts = {}
    runs.append((list(question_generation.fitb_questions(data, "test", seed, counts)),
                 list(question_generation.compatibility_questions(data, "test", seed, counts)),
                 counts))
  assert runs[0] == runs[1]
  assert runs[0][:2] != runs[2][:2]
  for fitb, compatibility, counts in runs:
    assert counts["fitb_skipped"] == 3 and len(fitb) == 2
    assert counts["compatibility_negatives_skipped"] == 1 and len(compatibility) == 9
    for question in fitb:
      assert question.answers[question.correct].startswith(question.question[0].split("_")[0])


def test_sets_with_white_space_in_their_id_are_left_out_and_counted():
  data = _split([1, 1, 1, 1, 1, 1, 1, 1], [[0, 1], [2, 3], [4, 5], [6, 7]],
                set_ids=["a room", "s1", "s2", "s3"])
  counts = {}
  fitb = list(question_generation.fitb_questions(data, "val", 0, counts))
  compatibility = list(question_generation.compatibility_questions(data, "val", 0, counts))
  assert counts["sets_with_white_space_in_id"] == 1 and len(fitb) == 3
  assert len(compatibility) == 6
  named = {t for q in fitb for t in q.question + q.answers} | {
      t for q in compatibility for t in q.items}
  assert not any(t.startswith("a room") for t in named)
  assert [o.set_id for o in question_generation.outfits(data)] == ["s1", "s2", "s3"]


def test_round_trip(tmp_path):
  questions = [question_files.FitbQuestion(("7_1", "7_2"), ("3_1", "7_3", "x_y_2", "4_9"), 3,
                                           1)]
  lines = [question_files.CompatibilityQuestion(1, ("7_1", "7_2"), 1),
           question_files.CompatibilityQuestion(0, ("3_1", "x_y_2"), 2)]
  outfits = [question_files.Outfit("x_y", (("a", 2), ("b", 5)))]
  question_files.write_fitb(str(tmp_path / "f.json"), questions)
  question_files.write_compatibility(str(tmp_path / "c.txt"), lines)
  question_files.write_outfits(str(tmp_path / "o.json"), outfits)
  assert question_files.read_fitb(str(tmp_path / "f.json")) == questions
  assert question_files.read_compatibility(str(tmp_path / "c.txt")) == lines
  read = question_files.read_outfits(str(tmp_path / "o.json"))
  assert read == outfits
  assert question_files.outfit_keys(read, "o.json") == {"x_y_2": "a", "x_y_5": "b"}


@pytest.mark.parametrize("records, message", [
    ("{", r"f\.json: not valid JSON"),
    ({"question": []}, r"f\.json: must hold a JSON list of questions"),
    ([{"question": ["1_1", "2_1"], "answers": ["1_2", "3_1", "4_1", "5_1"]}],
     r"f\.json: question 0: question items come from 2 outfits"),
    ([{"question": ["1_1"], "answers": ["2_2", "3_1", "4_1", "5_1"]}],
     r"f\.json: question 0: 0 answers are from the question's outfit 1, expected exactly one"),
    ([{"question": ["1_1"], "answers": ["1_2", "3_1", "4_1", "5_1"]},
      {"question": ["1_1"], "answers": ["1_2", "3_1", "4_1", "51"]}],
     r"f\.json: question 1: answers: '51' is not an item token"),
    ([{"question": ["1_1"], "answers": ["1_2", 3, "4_1", "5_1"]}],
     r"f\.json: question 0: field 'answers' must be a list of strings"),
])
def test_bad_fitb_files(tmp_path, records, message):
  path = tmp_path / "f.json"
  path.write_text(records if isinstance(records, str) else json.dumps(records))
  with pytest.raises(ValueError, match=message):
    question_files.read_fitb(str(path))


@pytest.mark.parametrize("text, message", [
    ("1 1_1 1_2\n2 1_1 1_2\n", r"c\.txt: line 2: label must be 0 or 1, got '2'"),
    ("1 1_1\n", r"c\.txt: line 1: needs at least 2 items, got 1"),
    ("\n0 1_1 1_x\n", r"c\.txt: line 2: '1_x' is not an item token"),
])
def test_bad_compatibility_files(tmp_path, text, message):
  path = tmp_path / "c.txt"
  path.write_text(text)
  with pytest.raises(ValueError, match=message):
    question_files.read_compatibility(str(path))


def test_bad_outfit_files(tmp_path):
  path = tmp_path / "o.json"
  path.write_text(json.dumps([{"set_id": "9", "items": [{"item_id": "a", "index": "1"}]}]))
  with pytest.raises(ValueError, match=r"o\.json: outfit 0 \(set_id 9\): items\[0\]: field "
                     r"'index' must be an integer >= 0, got '1'"):
    question_files.read_outfits(str(path))
  outfits = [question_files.Outfit("9", (("a", 1), ("b", 1)))]
  with pytest.raises(ValueError, match=r"o\.json: set_id 9: index 1 appears twice"):
    question_files.outfit_keys(outfits, "o.json")


def test_max_sets_asks_a_seeded_sample_of_the_same_sets_for_both_protocols():
  # 12 sets of two category-1 items over 24 items: every set can get both questions.
  data = _split([1] * 24, [[2 * s, 2 * s + 1] for s in range(12)],
                set_ids=[f"s{s}" for s in range(12)])
  asked = question_generation.asked(data, "test", 0, 5)
  assert asked.sum() == 5
  np.testing.assert_array_equal(asked, question_generation.asked(data, "test", 0, 5))
  assert not np.array_equal(asked, question_generation.asked(data, "test", 1, 5))
  assert question_generation.asked(data, "test", 0, 0).all()
  counts = {}
  fitb = list(question_generation.fitb_questions(data, "test", 0, counts, max_sets=5))
  compatibility = list(question_generation.compatibility_questions(data, "test", 0, counts,
                                                                   max_sets=5))
  chosen = {f"s{s}" for s in np.flatnonzero(asked)}
  assert {q.question[0].split("_")[0] for q in fitb} == chosen
  assert {q.items[0].split("_")[0] for q in compatibility if q.label == 1} == chosen
  assert len(compatibility) == 10
