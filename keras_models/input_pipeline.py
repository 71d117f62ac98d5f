"""Shards -> batched, prefetched tf.data of sets split into a query half and a target half.

Each batch is a dict of
  query_features  [batch, half, D] float32   query_categories  [batch, half] int32 (0 = pad)
  query_mask      [batch, half] bool         query_item_index  [batch, half] int32 (-1 = pad)
and the same four `target_*` tensors, plus `set_id` [batch] string, with half =
ceil(max_set_size / 2). Training re-draws every set's X/Y split each epoch (random item
order; |X| = n/2, or floor/ceil at random for odd n, so each half has >= 1 item) and
reshuffles sets; val/test use a split fixed by `seed` and the set and item ids, so every
run and every model sees the same halves.

`training_stream` is the endless training input of `training.run`: its batches are a pure
function of (seed, global step), so a resumed run continues with exactly the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

import tensorflow as tf

from keras_models import data_files
from tfrecords_builder import schema

HALF_KEYS = ("features", "categories", "mask", "item_index")


def _order_keys(parsed: dict[str, tf.Tensor], training: bool, seed: int,
                key: tf.Tensor | None) -> tf.Tensor:
  """[batch, S] sort keys in [0, 1) for items, 2 for padding; sorting gives the item order."""
  valid = parsed["categories"] > 0
  if training and key is not None:
    keys = tf.random.stateless_uniform(tf.shape(parsed["categories"]), seed=key)
  elif training:
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


def split_halves(parsed: dict[str, tf.Tensor], half: int, training: bool, seed: int,
                 key: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
  """Splits parsed padded sets into query and target halves (see module docstring).

  Args:
    parsed: Output of `schema.parse_batch` ([batch, S] tensors, S <= 2 * half).
    half: Padded length of each half.
    training: Random split (True) or the fixed split (False).
    seed: Seed of the fixed split.
    key: [2] int64 stateless seed of a training split (None: stateful random ops).
  """
  order_key, extra_key = (None, None) if key is None else tf.unstack(
      tf.random.experimental.stateless_split(key, 2))
  order = tf.argsort(_order_keys(parsed, training, seed, order_key), axis=1, stable=True)
  num_items = parsed["num_items"]
  if training:
    odd = tf.cast(num_items % 2, tf.int32)
    if extra_key is None:
      extra = tf.random.uniform(tf.shape(num_items), 0, 2, dtype=tf.int32) * odd
    else:
      extra = tf.random.stateless_uniform(tf.shape(num_items), extra_key, 0, 2,
                                          dtype=tf.int32) * odd
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
  return without_autotune(dataset.prefetch(tf.data.AUTOTUNE))


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """`dataset` with tf.data's autotune model thread switched off.

  Deleting an iterator joins that thread, and in TF 2.21 it can first sleep through its
  whole optimization period, which doubles up to 60 s (see `distribute`). AUTOTUNE in
  `map`/`prefetch` then means one call per core and a legacy-tuned prefetch buffer.
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  return dataset.with_options(options)


def _permuted(values: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
  """[n] `values` in the order of a stateless random permutation keyed by `key`."""
  return tf.gather(values, tf.argsort(tf.random.stateless_uniform(tf.shape(values), key)))


def training_stream(manifest: data_files.Manifest, batch_size: int, *, seed: int,
                    shuffle_buffer: int = 10000, start_step: int = 0) -> tf.data.Dataset:
  """Endless training batches; batch g is a pure function of (seed, g).

  The stream is pass 0, pass 1, ... over the train sets. With k = (seed, p), pass p
  permutes the shards with key fold(k, 0), permutes the sets within each block of
  `shuffle_buffer` consecutive records with fold(fold(k, 1), block), and draws the X/Y
  split of its batch b with fold(fold(k, 2), b). Every random op is stateless, so the
  stream does not depend on iterator state; starting at `start_step` skips serialized
  batches only.

  Args:
    manifest: The shards' manifest.
    batch_size: Global batch size; the last short batch of every pass is dropped.
    seed: Seed of the whole stream.
    shuffle_buffer: Sets permuted together (a whole pass when >= the train sets).
    start_step: Global step of the first batch.
  """
  batches_per_pass = manifest.num_sets("train") // batch_size
  if batches_per_pass < 1:
    raise ValueError(f"{manifest.data_dir}: {manifest.num_sets('train')} train sets, fewer "
                     f"than one batch of {batch_size}")
  paths = tf.constant(manifest.shard_paths("train"))
  half, size, dim = manifest.half_size, manifest.max_set_size, manifest.feature_dim
  fold = tf.random.experimental.stateless_fold_in

  def one_pass(pass_index: tf.Tensor) -> tf.data.Dataset:
    key = tf.stack([tf.constant(seed, tf.int64), pass_index])
    files = tf.data.Dataset.from_tensor_slices(_permuted(paths, fold(key, 0)))
    records = tf.data.TFRecordDataset(files, num_parallel_reads=min(4, len(paths)))
    blocks = records.batch(shuffle_buffer).enumerate()
    records = blocks.map(lambda i, block: _permuted(block, fold(fold(key, 1), i))).unbatch()
    batches = records.batch(batch_size, drop_remainder=True).enumerate()
    return batches.map(lambda i, serialized: (fold(fold(key, 2), i), serialized))

  first_pass, skip = divmod(start_step, batches_per_pass)
  stream = tf.data.Dataset.range(first_pass, 1 << 40).flat_map(one_pass).skip(skip)

  def parse(key: tf.Tensor, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    return split_halves(schema.parse_batch(serialized, size, dim), half, True, seed, key)

  stream = stream.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
  options = tf.data.Options()
  # No autotune model thread (AUTOTUNE then means one call per core and a legacy-tuned
  # prefetch buffer): deleting an iterator joins that thread, and in TF 2.21 it can sleep
  # through its whole optimization period (doubling up to 60 s) first; see `distribute`.
  options.autotune.enabled = False
  # Each global batch is split over the workers, as MirroredStrategy splits it over replicas.
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return stream.with_options(options)


def distribute(strategy: tf.distribute.Strategy,
               stream: tf.data.Dataset) -> tf.distribute.DistributedDataset | tf.data.Dataset:
  """`stream` for `fit` under `strategy`, read through plain iterators of `stream` itself.

  Why: `fit` ends by deleting its iterator. `experimental_distribute_dataset` (what `fit`
  does by default) wraps the stream in a MultiDeviceIterator whose per-device root
  iterator runs tf.data's autotune model thread, and deleting a root iterator joins that
  thread; TF 2.21's cancellation wakes it before marking itself done, so it can go back to
  sleep for the rest of its optimization period (which doubles up to 60 s): runs ended
  12-57 s after their last epoch. Here every replica gets its share of each global batch
  (contiguous rows, as the default rebatching gives) from an ordinary iterator of `stream`,
  whose options disable autotune, so no model thread is ever started. With N replicas each
  one parses the whole global batch and keeps its rows: N times the input work of one
  pipeline (a few ms per batch of 64 sets), against one copy per device before.

  Args:
    strategy: The strategy `fit` runs under.
    stream: Global batches (dicts of [batch, ...] tensors), e.g. `training_stream`.

  Returns:
    The distributed stream for a single-worker MirroredStrategy; `stream` itself for
    any other strategy (the default strategy iterates it directly; multi-worker keeps
    TF's own input pipeline). Either way with autotune off (`without_autotune`).
  """
  # A stream injected into training.run (tfds batches, say) gets the same options.
  stream = without_autotune(stream)
  if not isinstance(strategy, tf.distribute.MirroredStrategy):
    return stream
  replicas = strategy.num_replicas_in_sync

  def replica_stream(context: tf.distribute.InputContext) -> tf.data.Dataset:
    if replicas == 1:
      return stream
    replica = context.input_pipeline_id

    def rows(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
      share = tf.shape(tf.nest.flatten(batch)[0])[0] // replicas
      return {k: v[replica * share:(replica + 1) * share] for k, v in batch.items()}

    return stream.map(rows)

  options = tf.distribute.InputOptions(
      experimental_replication_mode=tf.distribute.InputReplicationMode.PER_REPLICA,
      experimental_fetch_to_device=False)
  return strategy.distribute_datasets_from_function(replica_stream, options)


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
