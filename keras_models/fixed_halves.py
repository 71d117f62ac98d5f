"""The fixed query/target halves of every set of a split, computed from its item table.

Evaluation scores every model on the same halves: `input_pipeline.split_halves` orders a
set's items by a hash of (seed, set id, item row), ties by position, and puts the first
n // 2 in the query half X and the rest in the target half Y. This module computes the
same halves from the item table's set membership (`set_ids`, `set_offsets`, `set_items`)
without reading the shards, so evaluation holds index arrays rather than padded feature
batches, and a split of any size costs two int arrays of its item occurrences.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from keras_models import data_files

# Hash buckets of the order key; the input pipeline's `_order_keys` uses the same.
HASH_BUCKETS = 1 << 24
# Memberships hashed per TF call (bounds the string tensors held at once).
_HASH_BLOCK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Halves:
  """CSR item rows of each set's query half and target half, in split order.

  Attributes:
    query_offsets: [num_sets + 1] int64 offsets into `query_items`.
    query_items: [num_query_items] int64 item-table rows, in half order.
    target_offsets: [num_sets + 1] int64 offsets into `target_items`.
    target_items: [num_target_items] int64 item-table rows, in half order.
  """

  query_offsets: np.ndarray
  query_items: np.ndarray
  target_offsets: np.ndarray
  target_items: np.ndarray

  @property
  def num_sets(self) -> int:
    return len(self.query_offsets) - 1

  def target_owners(self) -> np.ndarray:
    """[num_target_items] int32 set index of every target item."""
    return np.repeat(np.arange(self.num_sets, dtype=np.int32), np.diff(self.target_offsets))


def order_keys(seed: int, set_ids: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
  """[n] int64 hash bucket of "seed/set_id/item_row" for each (set id, item row) pair."""
  keys = np.empty(len(item_rows), np.int64)
  for start in range(0, len(item_rows), _HASH_BLOCK):
    stop = start + _HASH_BLOCK
    text = tf.strings.join([
        tf.strings.as_string(tf.constant(seed, tf.int32)),
        tf.constant(set_ids[start:stop]),
        tf.strings.as_string(tf.constant(item_rows[start:stop], tf.int32))], separator="/")
    keys[start:stop] = tf.strings.to_hash_bucket_fast(text, HASH_BUCKETS).numpy()
  return keys


def fixed_halves(table: data_files.ItemTable, seed: int) -> Halves:
  """The halves `input_pipeline.make_dataset(..., training=False, seed=seed)` gives.

  Args:
    table: The split's item table (its set membership; features are not read).
    seed: The evaluation split seed (`--eval_split_seed`).
  """
  offsets = np.asarray(table.set_offsets, np.int64)
  members = np.asarray(table.set_items, np.int64)
  sizes = np.diff(offsets)
  owners = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
  slots = np.arange(len(members), dtype=np.int64) - offsets[owners]
  keys = order_keys(seed, table.set_ids[owners], members)
  ordered = members[np.lexsort((slots, keys, owners))]
  num_query = sizes // 2
  in_query = slots < num_query[owners]
  return Halves(
      query_offsets=np.concatenate([[0], np.cumsum(num_query)]).astype(np.int64),
      query_items=ordered[in_query],
      target_offsets=np.concatenate([[0], np.cumsum(sizes - num_query)]).astype(np.int64),
      target_items=ordered[~in_query])


def padded(offsets: np.ndarray, items: np.ndarray, start: int, stop: int,
           width: int) -> np.ndarray:
  """[stop - start, width] int64 rows of sets start..stop-1, padded with -1."""
  sizes = np.diff(offsets[start:stop + 1])
  slots = np.arange(width)[None, :]
  positions = offsets[start:stop, None] + slots
  valid = slots < sizes[:, None]
  return np.where(valid, items[np.minimum(positions, max(len(items) - 1, 0))], -1)
