"""Fuzzed `sets.jsonl`: every file either parses or raises a ValueError naming the line."""

from __future__ import annotations

import json
import os
import re
import tempfile

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from tfrecords_builder.sources import generic

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=8), children, max_size=4),
    max_leaves=12)
IDS = st.text(min_size=1, max_size=12)
ITEM = st.fixed_dictionaries(
    {"item_id": IDS | JSON_VALUES, "category": IDS | JSON_VALUES},
    optional={"image": st.text(max_size=8) | JSON_VALUES})
SET = st.fixed_dictionaries(
    {}, optional={"set_id": IDS | JSON_VALUES, "items": st.lists(ITEM, max_size=5) | JSON_VALUES,
                  "split": st.sampled_from(["train", "val", "test"]) | JSON_VALUES,
                  "group": IDS | JSON_VALUES})
FUZZ = settings(max_examples=60, deadline=None)


def _read(content: bytes):
  """read_sets on `content`; returns the sets, or the ValueError it raised."""
  with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "sets.jsonl")
    with open(path, "wb") as stream:
      stream.write(content)
    try:
      return generic.read_sets(path)
    except ValueError as error:
      assert str(error).startswith(path), error
      return error


@FUZZ
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=4))
def test_random_bytes_give_value_errors(lines):
  _read(b"\n".join(lines))


@FUZZ
@given(st.lists(SET | JSON_VALUES, min_size=1, max_size=4))
def test_wrong_types_and_missing_keys_give_value_errors(records):
  result = _read("\n".join(json.dumps(r) for r in records).encode("utf-8"))
  if not isinstance(result, ValueError):
    for raw_set, record in zip(result, records):
      assert raw_set.set_id == str(record["set_id"])
      assert list(raw_set.items) == [str(item["item_id"]) for item in record["items"]]


@FUZZ
@given(st.lists(IDS, min_size=1, max_size=4, unique=True), IDS)
def test_unicode_ids_round_trip(item_ids, set_id):
  record = {"set_id": set_id, "items": [{"item_id": i, "category": "c"} for i in item_ids]}
  result = _read((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass"))
  if isinstance(result, ValueError):
    # Lone surrogates (valid JSON escapes) cannot be stored as UTF-8.
    assert "UTF-8" in str(result), result
  else:
    assert result[0].set_id == set_id and list(result[0].items) == item_ids


@pytest.mark.parametrize("lines, message", [
    (['{"set_id": "a", "items": []}', '{"set_id": "a", "items": []}'],
     r":2: duplicate set_id 'a' \(first on line 1\)"),
    (['{"set_id": "a", "items": [{"item_id": "x", "category": "c"}, '
      '{"item_id": "x", "category": "d"}]}'], r":1 \(set 'a'\): item 'x' appears twice"),
    (['{"items": []}'], r":1: missing field 'set_id'"),
    (['{"set_id": "a", "items": [{"item_id": 1.5, "category": "c"}]}'],
     r":1 \(set 'a'\) item 0: field 'item_id' must be a string, got float"),
    (['{"set_id": "a", "items": {}}'], r"field 'items' must be a list"),
    (['[' * 100000], r":1: JSON nested too deeply|:1: not valid JSON"),
    (['{"set_id": "\\ud800", "items": []}'], r":1: field 'set_id' is not valid Unicode"),
])
def test_specific_errors(lines, message):
  result = _read("\n".join(lines).encode("utf-8"))
  assert isinstance(result, ValueError)
  assert re.search(message, str(result)), result
