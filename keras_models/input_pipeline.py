"""Shards -> batched, prefetched tf.data of sets split into a query half and a target half.

Each batch is a dict of
  query_features  [batch, half, D] float32   query_categories  [batch, half] int32 (0 = pad)
  query_mask      [batch, half] bool         query_item_index  [batch, half] int32 (-1 = pad)
and the same four `target_*` tensors, plus `set_id` [batch] string, with half =
ceil(max_set_size / 2). Training re-draws every set's X/Y split each epoch (random item
order; |X| = n/2, or floor/ceil at random for odd n, so each half has >= 1 item) and
reshuffles sets; val/test use a split fixed by `seed` and the set and item ids, so every
run and every model sees the same halves.
"""

from __future__ import annotations

import tensorflow as tf

from keras_models import data_files
from tfrecords_builder import schema

HALF_KEYS = ("features", "categories", "mask", "item_index")


def _order_keys(parsed: dict[str, tf.Tensor], training: bool, seed: int) -> tf.Tensor:
  """[batch, S] sort keys in [0, 1) for items, 2 for padding; sorting gives the item order."""
  valid = parsed["categories"] > 0
  if training:
    keys = tf.random.uniform(tf.shape(parsed["categories"]), dtype=tf.float32)
  else:
    # A hash of (seed, set id, item row) gives a fixed pseudo-random order per set.
    text = tf.strings.join([
        tf.strings.as_string(seed),
        tf.broadcast_to(parsed["set_id"][:, None], tf.shape(parsed["item_index"])),
        tf.strings.as_string(parsed["item_index"])], separator="/")
    buckets = tf.strings.to_hash_bucket_fast(text, 1 << 24)
    keys = tf.cast(buckets, tf.float32) / float(1 << 24)
  return tf.where(valid, keys, 2.0)


def split_halves(parsed: dict[str, tf.Tensor], half: int, training: bool,
                 seed: int) -> dict[str, tf.Tensor]:
  """Splits parsed padded sets into query and target halves (see module docstring).

  Args:
    parsed: Output of `schema.parse_batch` ([batch, S] tensors, S <= 2 * half).
    half: Padded length of each half.
    training: Random split (True) or the fixed split (False).
    seed: Seed of the fixed split.
  """
  order = tf.argsort(_order_keys(parsed, training, seed), axis=1, stable=True)
  num_items = parsed["num_items"]
  if training:
    odd = tf.cast(num_items % 2, tf.int32)
    extra = tf.random.uniform(tf.shape(num_items), 0, 2, dtype=tf.int32) * odd
    num_query = num_items // 2 + extra
  else:
    num_query = num_items // 2
  slots = tf.range(half, dtype=tf.int32)[None, :]
  last = tf.shape(order)[1] - 1
  result = {"set_id": parsed["set_id"]}
  halves = (("query", tf.zeros_like(num_query), num_query),
            ("target", num_query, num_items - num_query))
  for prefix, start, count in halves:
    position = start[:, None] + slots
    mask = slots < count[:, None]
    index = tf.gather(order, tf.minimum(position, last), batch_dims=1)
    features = tf.gather(parsed["features"], index, batch_dims=1)
    result[f"{prefix}_features"] = features * tf.cast(mask, tf.float32)[..., None]
    result[f"{prefix}_categories"] = tf.where(
        mask, tf.gather(parsed["categories"], index, batch_dims=1), 0)
    result[f"{prefix}_item_index"] = tf.where(
        mask, tf.gather(parsed["item_index"], index, batch_dims=1), -1)
    result[f"{prefix}_mask"] = mask
  return result


def make_dataset(manifest: data_files.Manifest, split: str, batch_size: int, *,
                 training: bool, seed: int = 0, shuffle_buffer: int = 10000,
                 drop_remainder: bool | None = None) -> tf.data.Dataset:
  """Builds the batched dataset of one split (see module docstring).

  Args:
    manifest: The shards' manifest.
    split: "train", "val" or "test".
    batch_size: Sets per batch (the global batch under a distribution strategy).
    training: Shuffle sets each epoch and re-draw X/Y splits; else a fixed order and split.
    seed: Seed of shuffling (training) or of the fixed split (evaluation).
    shuffle_buffer: Sets held in the shuffle buffer.
    drop_remainder: Drop a last short batch; default: True when training.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  paths = manifest.shard_paths(split)
  files = tf.data.Dataset.from_tensor_slices(paths)
  if training:
    files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    records = tf.data.TFRecordDataset(files, num_parallel_reads=min(4, len(paths)))
    records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  else:
    records = tf.data.TFRecordDataset(paths)
  if drop_remainder is None:
    drop_remainder = training
  half = manifest.half_size
  size, dim = manifest.max_set_size, manifest.feature_dim

  def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    return split_halves(schema.parse_batch(serialized, size, dim), half, training, seed)

  dataset = records.batch(batch_size, drop_remainder=drop_remainder)
  dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)


def without_strings(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """Drops the string fields (`set_id`) of every batch.

  An XLA-compiled (`jit_compile`) train step cannot take string tensors as arguments,
  and the losses never read them.
  """
  return dataset.map(lambda batch: {k: v for k, v in batch.items() if v.dtype != tf.string})


def model_inputs(batch: dict[str, tf.Tensor], prefix: str) -> dict[str, tf.Tensor]:
  """The model's input dict for one half ("query" or "target") of a batch."""
  return {"features": batch[f"{prefix}_features"], "categories": batch[f"{prefix}_categories"],
          "mask": batch[f"{prefix}_mask"]}
