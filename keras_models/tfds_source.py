"""A tensorflow-datasets split of sets -> the batches of `input_pipeline.make_dataset`.

A user who holds sets as a tfds dataset (`tfds.load("set_retrieval/<source>")`, or any
dataset with the same features, see `tfrecords_builder/tfds/set_retrieval.py`) trains from
it without writing our shards:

  train = tfds.load("set_retrieval/synthetic", split="train", data_dir=...)
  batches = tfds_source.make_dataset(train, batch_size=64, training=True,
                                     **tfds_source.shapes_from_info(builder.info))

Each example (`set_id`, `item_ids` [n], `categories` [n] ClassLabel 0..K-1, `item_index`
[n], `features` [n, D]) is padded to `max_set_size` items as `schema.parse_batch` pads a
shard record (categories shifted to 1..K, 0 = padding; item_index -1 = padding), then
split into halves by `input_pipeline.split_halves`. For val/test the halves therefore
equal those of our shards of the same sets (the fixed split hashes seed, set id and item
row). Evaluation and `training.run`'s validation still read a shard folder (item tables,
category centers); `training.run(config, train_dataset=...)` takes these batches.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_models import input_pipeline


def shapes_from_info(info: Any) -> dict[str, int]:
  """`max_set_size` and `feature_dim` from the `info.metadata` of a `set_retrieval` build.

  Raises:
    ValueError: naming the dataset when its metadata lacks them.
  """
  metadata = info.metadata or {}
  missing = [key for key in ("max_set_size", "feature_dim") if key not in metadata]
  if missing:
    raise ValueError(f"{info.full_name}: info.metadata has no {missing}; pass max_set_size "
                     "and feature_dim to make_dataset yourself")
  return {"max_set_size": int(metadata["max_set_size"]),
          "feature_dim": int(metadata["feature_dim"])}


def _as_record(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
  return {
      "set_id": example["set_id"],
      "features": tf.cast(example["features"], tf.float32),
      "categories": tf.cast(example["categories"], tf.int32) + 1,
      "item_index": tf.cast(example["item_index"], tf.int32),
      "num_items": tf.shape(example["categories"], out_type=tf.int32)[0],
  }


def make_dataset(dataset: tf.data.Dataset, batch_size: int, *, max_set_size: int,
                 feature_dim: int, training: bool, seed: int = 0,
                 shuffle_buffer: int = 10000,
                 drop_remainder: bool | None = None) -> tf.data.Dataset:
  """Batches of query and target halves, as `input_pipeline.make_dataset` returns them.

  Args:
    dataset: Examples of one split (see the module docstring).
    batch_size: Sets per batch.
    max_set_size: Items per set after padding (S); a larger set raises at run time.
    feature_dim: Feature dimension (D).
    training: Shuffle sets each epoch and re-draw X/Y splits; else keep the order and the
      fixed split of `seed`.
    seed: Seed of shuffling (training) or of the fixed split (evaluation).
    shuffle_buffer: Sets held in the shuffle buffer.
    drop_remainder: Drop a last short batch; default: True when training.

  Returns:
    Dicts of `query_*` / `target_*` features [batch, half, D], categories, mask and
    item_index [batch, half], and set_id [batch]; half = ceil(max_set_size / 2).
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if drop_remainder is None:
    drop_remainder = training
  records = dataset.map(_as_record, num_parallel_calls=tf.data.AUTOTUNE)
  if training:
    records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  padded = records.padded_batch(
      batch_size,
      padded_shapes={"set_id": [], "features": [max_set_size, feature_dim],
                     "categories": [max_set_size], "item_index": [max_set_size],
                     "num_items": []},
      padding_values={"set_id": "", "features": 0.0, "categories": 0, "item_index": -1,
                      "num_items": 0},
      drop_remainder=drop_remainder)
  half = (max_set_size + 1) // 2

  def split(parsed: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    return input_pipeline.split_halves(parsed, half, training, seed)

  # Autotune off, as in our own pipelines: deleting an iterator could otherwise stall.
  return input_pipeline.without_autotune(
      padded.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
