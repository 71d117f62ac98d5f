"""Tests for the shards -> (query half, target half) input pipeline and manifest loading."""

from __future__ import annotations

import collections
import os
import shutil

import numpy as np
import pytest

from keras_models import data_files
from keras_models import input_pipeline
from tfrecords_builder import dataset_builder
from tfrecords_builder import raw_dataset
from tfrecords_builder import shard_writer

DIM = 4
MAX_SET_SIZE = 7
HALF = 4  # ceil(7 / 2).
# Set sizes per split; train and val hold the largest set, test only up to 5 items, so its
# padding still follows the dataset-wide maximum.
SIZES = {"train": [2, 3, 4, 5, 6, 7] * 4, "val": [2, 3, 4, 5, 6, 7, 3], "test": [2, 3, 4, 5, 5]}


def _raw_dataset():
  rng = np.random.default_rng(0)
  sets, item_ids = [], []
  for split, sizes in SIZES.items():
    for s, size in enumerate(sizes):
      items = tuple(f"{split}{s}-{j}" for j in range(size))
      item_ids += items
      sets.append(raw_dataset.RawSet(
          set_id=f"{split}{s}", items=items,
          categories=tuple(f"c{rng.integers(3)}" for _ in items), split=split))
  features = (rng.standard_normal((len(item_ids), DIM)) + 0.3).astype(np.float32)
  return raw_dataset.RawDataset(name="test", sets=sets, item_ids=np.asarray(item_ids),
                                features=features, features_origin="test")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp("pipeline") / "data")
  built = dataset_builder.build(_raw_dataset())
  shard_writer.write(built, folder, source="test", synthetic=False, num_shards=2,
                     overwrite=False, options={})
  return folder


@pytest.fixture
def manifest(data_dir):
  return data_files.load_manifest(data_dir)


def _set_sizes(split):
  return {f"{split}{s}": size for s, size in enumerate(SIZES[split])}


def _epoch(dataset):
  """Returns [(set_id, query item rows, target item rows)] in dataset order."""
  rows = []
  for batch in dataset.as_numpy_iterator():
    for b, set_id in enumerate(batch["set_id"].tolist()):
      halves = [batch[f"{p}_item_index"][b][batch[f"{p}_mask"][b]].tolist()
                for p in ("query", "target")]
      rows.append((set_id.decode(), tuple(halves[0]), tuple(halves[1])))
  return rows


def _halves(dataset):
  return {set_id: (query, target) for set_id, query, target in _epoch(dataset)}


def test_manifest_fields(manifest, data_dir):
  assert manifest.data_dir == data_dir
  assert manifest.source == "test"
  assert manifest.max_set_size == MAX_SET_SIZE
  assert manifest.half_size == HALF
  assert manifest.feature_dim == DIM
  assert manifest.num_categories == 3
  assert manifest.categories == ("c0", "c1", "c2")
  assert manifest.num_sets("val") == len(SIZES["val"])
  assert manifest.data_label() == "data"


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_padding_and_masks(manifest, split, training):
  table = data_files.load_item_table(manifest, split)
  dataset = input_pipeline.make_dataset(manifest, split, 4, training=training,
                                        drop_remainder=False)
  num_sets = 0
  for batch in dataset.as_numpy_iterator():
    batch_size = len(batch["set_id"])
    num_sets += batch_size
    for prefix in ("query", "target"):
      features = batch[f"{prefix}_features"]
      categories = batch[f"{prefix}_categories"]
      index = batch[f"{prefix}_item_index"]
      mask = batch[f"{prefix}_mask"]
      assert features.shape == (batch_size, HALF, DIM) and features.dtype == np.float32
      assert categories.shape == index.shape == mask.shape == (batch_size, HALF)
      assert categories.dtype == index.dtype == np.int32 and mask.dtype == bool
      # Items fill a prefix of the slots.
      counts = mask.sum(axis=1)
      np.testing.assert_array_equal(mask, np.arange(HALF)[None, :] < counts[:, None])
      assert (counts >= 1).all()
      assert (categories[~mask] == 0).all()
      assert (index[~mask] == -1).all()
      assert (features[~mask] == 0).all()
      np.testing.assert_array_equal(categories[mask], table.categories[index[mask]])
      np.testing.assert_array_equal(features[mask], table.features[index[mask]])
  assert num_sets == len(SIZES[split])


def test_model_inputs(manifest):
  batch = next(iter(input_pipeline.make_dataset(manifest, "val", 2, training=False)))
  for prefix in ("query", "target"):
    inputs = input_pipeline.model_inputs(batch, prefix)
    assert sorted(inputs) == ["categories", "features", "mask"]
    assert inputs["features"] is batch[f"{prefix}_features"]


@pytest.mark.parametrize("split", ["val", "test"])
def test_eval_half_sizes(manifest, split):
  sizes = _set_sizes(split)
  halves = _halves(input_pipeline.make_dataset(manifest, split, 3, training=False))
  assert sorted(halves) == sorted(sizes)
  for set_id, (query, target) in halves.items():
    n = sizes[set_id]
    assert len(query) == n // 2 and len(target) == n - n // 2, set_id
    assert not set(query) & set(target)


def test_training_half_sizes_and_redraw(manifest):
  sizes = _set_sizes("train")
  table = data_files.load_item_table(manifest, "train")
  dataset = input_pipeline.make_dataset(manifest, "train", 4, training=True)
  epochs = [_halves(dataset) for _ in range(3)]
  extra_of_odd_sets = collections.Counter()
  for halves in epochs:
    assert len(halves) == len(sizes)  # 24 sets, batch 4: nothing dropped.
    for set_id, (query, target) in halves.items():
      n = sizes[set_id]
      assert len(query) in (n // 2, (n + 1) // 2), set_id
      assert len(query) + len(target) == n and len(query) >= 1 and len(target) >= 1
      items = sorted(table.item_ids[list(query) + list(target)].tolist())
      assert items == [f"{set_id}-{j}" for j in range(n)]
      if n % 2:
        extra_of_odd_sets[len(query) - n // 2] += 1
  # 12 odd sets x 3 epochs: both floor and ceil occur (all one way has probability 2^-35).
  assert set(extra_of_odd_sets) == {0, 1}
  # The split is re-drawn each epoch: some set's query half changes.
  changed = [s for s in epochs[0] if set(epochs[0][s][0]) != set(epochs[1][s][0])]
  assert changed


def test_training_reshuffles_sets_between_epochs(manifest):
  dataset = input_pipeline.make_dataset(manifest, "train", 4, training=True, seed=3)
  orders = [[row[0] for row in _epoch(dataset)] for _ in range(2)]
  assert sorted(orders[0]) == sorted(orders[1]) == sorted(_set_sizes("train"))
  assert orders[0] != orders[1]


def test_eval_split_fixed_by_seed(manifest):
  dataset = input_pipeline.make_dataset(manifest, "val", 3, training=False, seed=7)
  first = _epoch(dataset)
  assert _epoch(dataset) == first
  assert _epoch(input_pipeline.make_dataset(manifest, "val", 3, training=False, seed=7)) == first
  # Batch size does not change the halves.
  assert _epoch(input_pipeline.make_dataset(manifest, "val", 5, training=False, seed=7)) == first
  # Sets in stored order.
  table = data_files.load_item_table(manifest, "val")
  assert [row[0] for row in first] == table.set_ids.tolist()
  other = _halves(input_pipeline.make_dataset(manifest, "val", 3, training=False, seed=8))
  assert any(set(other[s][0]) != set(q) for s, q, _ in first)


@pytest.mark.parametrize("split, training, drop_remainder, batch_size, expected", [
    ("train", True, None, 5, [5, 5, 5, 5]),  # 24 sets; training drops by default.
    ("train", True, False, 5, [5, 5, 5, 5, 4]),
    ("val", False, None, 3, [3, 3, 1]),  # 7 sets; evaluation keeps all by default.
    ("val", False, True, 3, [3, 3]),
])
def test_drop_remainder(manifest, split, training, drop_remainder, batch_size, expected):
  dataset = input_pipeline.make_dataset(manifest, split, batch_size, training=training,
                                        drop_remainder=drop_remainder)
  sizes = [len(batch["set_id"]) for batch in dataset.as_numpy_iterator()]
  assert sorted(sizes, reverse=True) == expected
  static = dataset.element_spec["query_features"].shape
  assert static.as_list() == [batch_size if len(set(expected)) == 1 else None, HALF, DIM]


def test_bad_batch_size(manifest):
  with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
    input_pipeline.make_dataset(manifest, "val", 0, training=False)


def test_missing_manifest(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"manifest\.json: not found; build shards "
                                              r"first with `python -m tfrecords_builder"):
    data_files.load_manifest(str(tmp_path))


def test_manifest_not_json_or_incomplete(tmp_path):
  (tmp_path / "manifest.json").write_text("{")
  with pytest.raises(ValueError, match=r"manifest\.json: not valid JSON"):
    data_files.load_manifest(str(tmp_path))
  (tmp_path / "manifest.json").write_text('{"source": "x"}')
  with pytest.raises(ValueError, match=r"manifest\.json: missing field 'feature_dim'"):
    data_files.load_manifest(str(tmp_path))


def test_unknown_split(manifest):
  with pytest.raises(ValueError, match=r"manifest\.json: no split 'dev'; have \['test', "
                                       r"'train', 'val'\]"):
    input_pipeline.make_dataset(manifest, "dev", 2, training=False)


@pytest.fixture
def data_copy(data_dir, tmp_path):
  folder = str(tmp_path / "copy")
  shutil.copytree(data_dir, folder)
  return folder


def test_missing_shard(data_copy):
  os.remove(os.path.join(data_copy, "val-00001-of-00002.tfrecord"))
  manifest = data_files.load_manifest(data_copy)
  with pytest.raises(FileNotFoundError, match=(r"val-00001-of-00002\.tfrecord: shard listed "
                                               r"in manifest\.json is missing")):
    input_pipeline.make_dataset(manifest, "val", 2, training=False)
  # Other splits are still readable.
  input_pipeline.make_dataset(manifest, "test", 2, training=False)


def test_verify_shards_detects_flipped_byte(data_copy):
  manifest = data_files.load_manifest(data_copy)
  for split in ("train", "val", "test"):
    data_files.verify_shards(manifest, split)
  path = os.path.join(data_copy, "test-00001-of-00002.tfrecord")
  content = bytearray(open(path, "rb").read())
  content[len(content) // 2] ^= 0x01
  with open(path, "wb") as stream:
    stream.write(bytes(content))
  data_files.verify_shards(manifest, "val")
  with pytest.raises(ValueError, match=(r"test-00001-of-00002\.tfrecord: sha256 \w+\.\.\. does "
                                        r"not match the manifest .* corrupt or truncated")):
    data_files.verify_shards(manifest, "test")


def test_item_table_and_centers_checked(data_copy):
  manifest = data_files.load_manifest(data_copy)
  assert data_files.load_centers(manifest).shape == (3, DIM)
  np.save(os.path.join(data_copy, "category_centers.npy"), np.zeros((2, DIM), np.float32))
  with pytest.raises(ValueError, match=r"category_centers\.npy: shape \(2, 4\), expected "
                                       r"\(3, 4\)"):
    data_files.load_centers(manifest)
  os.remove(os.path.join(data_copy, "items-val.npz"))
  with pytest.raises(FileNotFoundError, match=r"items-val\.npz: item table listed in "
                                              r"manifest\.json is missing"):
    data_files.load_item_table(manifest, "val")


def test_item_table_first_set(manifest):
  table = data_files.load_item_table(manifest, "val")
  # Items are unique to their set here, so first_set is the owning set.
  expected = [table.set_ids.tolist().index(i.rsplit("-", 1)[0]) for i in table.item_ids]
  np.testing.assert_array_equal(table.first_set, expected)
