"""The `set_retrieval` tfds builder holds exactly the sets of our shards."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_models import data_files
from keras_models import input_pipeline
from keras_models import tfds_source
from tfrecords_builder import build
from tfrecords_builder import config as builder_config
from tfrecords_builder import schema
from tfrecords_builder.sources import synthetic
from tfrecords_builder.tfds import set_retrieval

IKEA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared",
                    "data", "ikea")
SPLITS = ("train", "val", "test")
TINY = synthetic.SyntheticConfig(num_sets=60, feature_dim=8, num_categories=5)


def _text(values: np.ndarray) -> np.ndarray:
  return np.asarray([v.decode() for v in values], dtype=str)


def _shard_sets(data_dir: str, split: str) -> dict[str, list]:
  """Every record of a split's shards, parsed with the shared schema, in stored order."""
  paths = sorted(glob.glob(os.path.join(data_dir, f"{split}-*.tfrecord")))
  serialized = np.concatenate([b.numpy() for b in tf.data.TFRecordDataset(paths).batch(4096)])
  parsed = tf.io.parse_example(serialized, schema.PARSE_SPEC)

  def rows(ragged: tf.RaggedTensor) -> list[np.ndarray]:
    return np.split(ragged.values.numpy(), ragged.row_splits.numpy()[1:-1])

  return {
      "set_id": _text(parsed[schema.SET_ID].numpy()).tolist(),
      "item_ids": [_text(r) for r in rows(parsed[schema.ITEM_IDS])],
      "categories": rows(parsed[schema.CATEGORIES]),
      "item_index": rows(parsed[schema.ITEM_INDEX]),
      "features": [np.frombuffer(b, "<f4") for b in parsed[schema.FEATURES].numpy()],
  }


def _assert_same_sets(builder: tfds.core.DatasetBuilder, data_dir: str) -> None:
  manifest = data_files.load_manifest(data_dir)
  assert builder.info.features["categories"].feature.names == list(manifest.categories)
  assert builder.info.metadata["feature_dim"] == manifest.feature_dim
  assert builder.info.metadata["max_set_size"] == manifest.max_set_size
  for split in SPLITS:
    expected = _shard_sets(data_dir, split)
    examples = list(tfds.as_numpy(builder.as_dataset(split=split)))
    assert [e["set_id"].decode() for e in examples] == expected["set_id"], split
    for key, shift in (("item_ids", None), ("categories", 1), ("item_index", 0),
                       ("features", 0)):
      got = [e[key] for e in examples]
      got = [_text(g) for g in got] if shift is None else [
          g.reshape(-1) + shift for g in got]
      assert [len(g) for g in got] == [len(e) for e in expected[key]], (split, key)
      np.testing.assert_array_equal(np.concatenate(got), np.concatenate(expected[key]),
                                    err_msg=f"{split}: {key}")


def _shards(output_dir: str, **options) -> str:
  build.run(builder_config.BuilderConfig(output_dir=output_dir, num_shards=2, **options))
  return output_dir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """A tiny synthetic config prepared through tfds, and our shards of the same sets."""
  root = tmp_path_factory.mktemp("tiny")
  config = set_retrieval.SetRetrievalConfig(name="tiny", source="synthetic", synthetic=TINY)
  builder = set_retrieval.SetRetrieval(config=config, data_dir=str(root / "tfds"))
  builder.download_and_prepare()
  return builder, _shards(str(root / "shards"), source="synthetic", synthetic=TINY)


def test_synthetic_equals_shards(tiny):
  builder, data_dir = tiny
  assert builder.info.metadata["synthetic"] is True
  _assert_same_sets(builder, data_dir)


def test_registered_config_builds_and_loads(tmp_path):
  builder = tfds.builder("set_retrieval/synthetic", data_dir=str(tmp_path))
  assert builder.builder_config.synthetic == synthetic.SyntheticConfig()
  builder.download_and_prepare()
  train = tfds.load("set_retrieval/synthetic", split="train", data_dir=str(tmp_path))
  assert int(train.cardinality()) == builder.info.splits["train"].num_examples == 2100
  example = next(iter(train))
  assert example["features"].shape[1] == 64


def test_missing_manual_dir_is_named(tmp_path):
  builder = tfds.builder("set_retrieval/generic", data_dir=str(tmp_path / "tfds"))
  missing = tmp_path / "no_such_dir"
  with pytest.raises(AssertionError, match=f"Manual directory {missing} does not exist or "
                     "is empty(.|\n)*generic +sets.jsonl"):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(missing)))


def test_manual_dir_without_sets_file_is_named(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "notes.txt").write_text("not a dataset")
  builder = tfds.builder("set_retrieval/reference_pickles", data_dir=str(tmp_path / "tfds"))
  with pytest.raises(FileNotFoundError, match=f"{manual}/train.pkl: split file not found"):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))


@pytest.mark.skipif(not os.path.isdir(IKEA), reason=f"IKEA data not found at {IKEA}")
def test_ikea_equals_shards(tmp_path):
  config = set_retrieval.SetRetrievalConfig(name="ikea", source="generic", image_dir="images")
  builder = set_retrieval.SetRetrieval(config=config, data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=os.path.abspath(IKEA)))
  data_dir = _shards(str(tmp_path / "shards"), source="generic", input=IKEA,
                     image_dir=os.path.join(IKEA, "images"))
  _assert_same_sets(builder, data_dir)
  counts = {s: builder.info.splits[s].num_examples for s in SPLITS}
  assert sum(counts.values()) == 547, counts
  table = data_files.load_item_table(data_files.load_manifest(data_dir), "train")
  images = {}
  for example in tfds.as_numpy(builder.as_dataset(split="train")):
    images.update(zip(example["item_ids"], example["images"]))
  assert {i.decode(): p.decode() for i, p in images.items()} == dict(
      zip(table.item_ids, table.images))


def test_tfds_batches_equal_shard_batches(tiny):
  builder, data_dir = tiny
  manifest = data_files.load_manifest(data_dir)
  shapes = tfds_source.shapes_from_info(builder.info)
  ours = input_pipeline.make_dataset(manifest, "val", 4, training=False, seed=3)
  theirs = tfds_source.make_dataset(builder.as_dataset(split="val"), 4, training=False,
                                    seed=3, **shapes)
  count = 0
  for expected, actual in zip(ours, theirs):
    assert sorted(expected) == sorted(actual)
    for key in expected:
      np.testing.assert_array_equal(actual[key].numpy(), expected[key].numpy(), err_msg=key)
    count += 1
  assert count == -(-manifest.num_sets("val") // 4)
  train = tfds_source.make_dataset(builder.as_dataset(split="train"), 8, training=True,
                                   shuffle_buffer=64, **shapes)
  batch = next(iter(train))
  half = manifest.half_size
  assert batch["query_features"].shape == (8, half, 8)
  num_items = (tf.reduce_sum(tf.cast(batch["query_mask"], tf.int32), 1)
               + tf.reduce_sum(tf.cast(batch["target_mask"], tf.int32), 1))
  assert bool(tf.reduce_all(tf.reduce_sum(tf.cast(batch["query_mask"], tf.int32), 1) >= 1))
  assert int(tf.reduce_min(num_items)) >= TINY.min_items


def test_shapes_need_metadata():
  info = type("Info", (), {"metadata": {}, "full_name": "other/1.0.0"})()
  with pytest.raises(ValueError, match=r"other/1.0.0: info.metadata has no \['max_set_size', "
                     r"'feature_dim'\]"):
    tfds_source.shapes_from_info(info)
