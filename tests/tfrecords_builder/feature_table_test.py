"""Errors of the features table (`features.npz`) as the generic source reads it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tfrecords_builder.generic_fixtures import DIM
from tests.tfrecords_builder.generic_fixtures import ITEM_IDS
from tests.tfrecords_builder.generic_fixtures import SETS
from tests.tfrecords_builder.generic_fixtures import _features
from tests.tfrecords_builder.generic_fixtures import _replace_line
from tests.tfrecords_builder.generic_fixtures import _write_dataset
from tests.tfrecords_builder.generic_fixtures import _write_lines
from tfrecords_builder import dataset_builder
from tfrecords_builder.sources import generic


def test_missing_features_file(tmp_path):
  _write_lines(tmp_path / "sets.jsonl", SETS)
  with pytest.raises(FileNotFoundError, match=(
      rf"{tmp_path}: expected features\.npz or exactly one \.npz file, found 0")):
    generic.load(str(tmp_path))
  with pytest.raises(FileNotFoundError, match=r"missing\.npz: features file not found"):
    generic.load(str(tmp_path), str(tmp_path / "missing.npz"))


def test_item_not_in_features(tmp_path):
  lines = _replace_line(3, dict(SETS[2], items=SETS[2]["items"] + [
      {"item_id": "zz", "category": "bed"}]))
  _write_dataset(tmp_path, sets=lines)
  with pytest.raises(ValueError, match=(r"sets\.jsonl:3 \(set 's3'\): item 'zz' is not in "
                                        r".*features\.npz")):
    dataset_builder.build(generic.load(str(tmp_path)))


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_features_not_finite(tmp_path, bad_value):
  features = _features(ITEM_IDS)
  features[6, 2] = bad_value  # Item "c3".
  _write_dataset(tmp_path, features=features)
  with pytest.raises(ValueError, match=(r"features\.npz: feature of item 'c3' \(row 6\) has "
                                        r"NaN or inf")):
    generic.load(str(tmp_path))


def test_zero_feature_cannot_be_normalised(tmp_path):
  features = _features(ITEM_IDS)
  features[3] = 0  # Item "b1".
  _write_dataset(tmp_path, features=features)
  dataset = generic.load(str(tmp_path))
  with pytest.raises(ValueError, match=r"features\.npz: item 'b1' has an all-zero feature"):
    dataset_builder.build(dataset)
  # Without normalisation the zero row is kept as it is.
  built = dataset_builder.build(dataset, l2_normalize=False)
  row = built.splits["train"].item_ids.tolist().index("b1")
  np.testing.assert_array_equal(built.splits["train"].features[row], np.zeros(DIM))


# (item_ids, features, regex after "features.npz: ").
_TABLE_ERRORS = {
    "features_not_2d": (ITEM_IDS, np.zeros((len(ITEM_IDS), DIM, 2), np.float16),
                        r"'features' must be \[N, D\], got shape \(10, 5, 2\)"),
    "features_1d": (ITEM_IDS, np.ones(len(ITEM_IDS), np.float32),
                    r"'features' must be \[N, D\], got shape \(10,\)"),
    "length_mismatch": (ITEM_IDS, _features(ITEM_IDS + ["extra"]),
                        r"10 item_ids but 11 feature rows"),
    "duplicate_item_id": (ITEM_IDS[:-1] + ["a2"], _features(ITEM_IDS),
                          r"item_id 'a2' appears 2 times"),
    "integer_features": (ITEM_IDS, np.ones((len(ITEM_IDS), DIM), np.int32),
                         r"'features' must be a float array, got int32"),
    "item_ids_2d": (np.asarray(ITEM_IDS).reshape(2, 5), _features(ITEM_IDS),
                    r"'item_ids' must be 1-D, got shape \(2, 5\)"),
}


@pytest.mark.parametrize("case", sorted(_TABLE_ERRORS))
def test_feature_table_errors(tmp_path, case):
  item_ids, features, pattern = _TABLE_ERRORS[case]
  _write_dataset(tmp_path, item_ids=item_ids, features=features)
  with pytest.raises(ValueError, match=r"features\.npz: " + pattern):
    generic.load(str(tmp_path))


def test_feature_table_missing_array(tmp_path):
  _write_lines(tmp_path / "sets.jsonl", SETS)
  np.savez(tmp_path / "features.npz", ids=np.asarray(ITEM_IDS), features=_features(ITEM_IDS))
  with pytest.raises(ValueError, match=r"features\.npz: missing array\(s\) \['item_ids'\]"):
    generic.load(str(tmp_path))


def test_feature_table_not_npz(tmp_path):
  _write_lines(tmp_path / "sets.jsonl", SETS)
  (tmp_path / "features.npz").write_bytes(b"not a zip file")
  with pytest.raises(ValueError, match=r"features\.npz: not a readable \.npz file"):
    generic.load(str(tmp_path))


def test_feature_table_object_arrays_refused(tmp_path):
  _write_lines(tmp_path / "sets.jsonl", SETS)
  np.savez(tmp_path / "features.npz", item_ids=np.asarray(ITEM_IDS, dtype=object),
           features=_features(ITEM_IDS))
  with pytest.raises(ValueError, match=r"features\.npz: not a readable \.npz file"):
    generic.load(str(tmp_path))


def test_duplicate_item_id_count_is_its_own(tmp_path):
  item_ids = ITEM_IDS + ["a1", "b1", "b1"]
  _write_dataset(tmp_path, item_ids=item_ids, features=_features(item_ids))
  with pytest.raises(ValueError, match=r"features\.npz: item_id 'a1' appears 2 times"):
    generic.load(str(tmp_path))
