"""TPaNeg's offline half: the table of candidate hard negatives of every train item.

For each item the table holds the indices of same-category items that may serve as its
negatives: never the item itself, never an item it shares any train set with (those are
true matches of the same room or outfit, not negatives; items recur across sets, so one
"first set" per item is not enough), and only with s(item, candidate) in
[min_similarity, max_similarity]. The pool is either the most similar candidates
("nearest") or a uniform random draw among them ("random", as in the original code, which
keeps near duplicates such as colour variants from filling the table). A small int table
replaces the original pickle of feature lists (REFERENCE.md section 2.4).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_models.losses import random_pool
from keras_models.losses import set_ops

POOLS = ("nearest", "random")


# Columns per group of the threshold filter: a group is gathered when any of its columns
# can enter a row's running top list.
_GROUP = 8


@tf.function(jit_compile=True, reduce_retracing=True)
def _group_max(similarity: tf.Tensor, thresholds: tf.Tensor, low: tf.Tensor,
               high: tf.Tensor) -> tf.Tensor:
  """[rows, cols / G] max similarity per column group of the candidates above the rows'
  thresholds and within [low, high] (-inf when none); one fused pass (XLA)."""
  keep = (similarity > thresholds[:, None]) & (similarity >= low) & (similarity <= high)
  masked = tf.where(keep, similarity, float("-inf"))
  return tf.reduce_max(tf.reshape(masked, [tf.shape(similarity)[0], -1, _GROUP]), axis=2)


@tf.function(input_signature=[
    tf.TensorSpec([None, None], tf.float32),  # similarity [rows, cols], cols % G == 0
    tf.TensorSpec([None, None], tf.float32),  # group maxima [rows, cols / G]
    tf.TensorSpec([None], tf.float32),  # thresholds [rows]
    tf.TensorSpec([], tf.float32),  # low
    tf.TensorSpec([], tf.float32),  # high
    tf.TensorSpec([None], tf.int64),  # column ids [cols], -1 = padding
    tf.TensorSpec([None, None], tf.float32),  # best similarities [rows, <= k]
    tf.TensorSpec([None, None], tf.int64),  # best ids [rows, <= k]
    tf.TensorSpec([], tf.int32),  # k
])
def _merge_groups(similarity: tf.Tensor, group_max: tf.Tensor, thresholds: tf.Tensor,
                  low: tf.Tensor, high: tf.Tensor, col_ids: tf.Tensor, best_values: tf.Tensor,
                  best_ids: tf.Tensor, k: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Merges the candidates of the groups `_group_max` found into each row's running top k.

  Only the gathered groups enter the top_k, so once a row holds k candidates a block costs
  a filter pass instead of a top_k over all its columns. Running lists come first and the
  groups keep column order, so ties prefer the lower position, as a stable sort would.
  """
  rows = tf.shape(similarity)[0]
  found = tf.where(group_max > float("-inf"))
  blocks = tf.reshape(similarity, [rows, -1, _GROUP])
  values = tf.gather_nd(blocks, found)
  keep = ((values > tf.gather(thresholds, found[:, 0])[:, None]) & (values >= low)
          & (values <= high))
  values = tf.where(keep, values, set_ops.MASKED_LOGIT)
  ids = tf.where(keep, tf.gather(tf.reshape(col_ids, [-1, _GROUP]), found[:, 1]), -1)
  counts = tf.math.bincount(tf.cast(found[:, 0], tf.int32), minlength=rows, dtype=tf.int64)
  slots = tf.range(tf.shape(found)[0], dtype=tf.int64) - tf.gather(
      tf.cumsum(counts, exclusive=True), found[:, 0])
  shape = tf.stack([tf.cast(rows, tf.int64), tf.reduce_max(counts), _GROUP])
  target = tf.stack([found[:, 0], slots], axis=1)
  gathered = tf.reshape(tf.tensor_scatter_nd_update(
      tf.fill(shape, set_ops.MASKED_LOGIT), target, values), [rows, -1])
  gathered_ids = tf.reshape(tf.tensor_scatter_nd_update(
      tf.fill(shape, tf.constant(-1, tf.int64)), target, ids), [rows, -1])
  values = tf.concat([best_values, gathered], axis=1)
  ids = tf.concat([best_ids, gathered_ids], axis=1)
  values, positions = tf.math.top_k(values, k=tf.minimum(k, tf.shape(values)[1]))
  return values, tf.gather(ids, positions, batch_dims=1)


def co_member_pairs(set_offsets: np.ndarray, set_items: np.ndarray) -> np.ndarray:
  """Every ordered pair (i, j), i != j, of item indices that share at least one set.

  Args:
    set_offsets: `[num_sets + 1]` int, CSR offsets of the sets into `set_items`.
    set_items: `[total_items]` int item index of every set member.

  Returns:
    `[num_pairs, 2]` int64, unique rows sorted by (i, j).
  """
  set_offsets = np.asarray(set_offsets, np.int64)
  set_items = np.asarray(set_items, np.int64)
  pairs = []
  sizes = np.diff(set_offsets)
  for size in np.unique(sizes[sizes >= 2]):
    starts = set_offsets[:-1][sizes == size]
    members = set_items[starts[:, None] + np.arange(size)[None, :]]
    first = np.repeat(members, size, axis=1).reshape(-1)
    second = np.tile(members, (1, size)).reshape(-1)
    pairs.append(np.stack([first, second], axis=1))
  if not pairs:
    return np.zeros((0, 2), np.int64)
  pairs = np.concatenate(pairs)
  return np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)


def build_negative_table(features: np.ndarray | tf.Tensor, categories: np.ndarray | tf.Tensor,
                         num_negatives: int, min_similarity: float,
                         set_ids: np.ndarray | tf.Tensor | None = None,
                         chunk_size: int = 4096, *, exclude_pairs: np.ndarray | None = None,
                         max_similarity: float = 1.0, pool: str = "nearest",
                         seed: tuple[int, int] = (0, 0)) -> np.ndarray:
  """Indices of each item's candidate same-category negatives.

  For item i the candidates are items j != i of the same category, from a different
  set (when `set_ids` is given), not paired with i in `exclude_pairs`, with
  min_similarity <= cos(f_i, f_j) <= max_similarity. Pool "nearest" keeps the
  `num_negatives` most similar in descending order (ties by lower index); pool "random"
  keeps a uniform random subset of `num_negatives` of them (all when fewer), drawn from
  `seed`. Work is done per category in `chunk_size` x `chunk_size` blocks with a running
  top-k, so memory stays bounded for 1e5+ items.

  Args:
    features: `[num_items, dim]` float array, tensor or variable (read one category at a
      time).
    categories: `[num_items]` int category of each item.
    num_negatives: columns of the table, >= 1.
    min_similarity: smallest cosine similarity a negative may have.
    set_ids: `[num_items]` int set of each item, or None.
    chunk_size: rows and columns per block, >= 1.
    exclude_pairs: `[num_pairs, 2]` int item pairs that are never each other's
      negatives (`co_member_pairs`), or None.
    max_similarity: largest cosine similarity a negative may have.
    pool: "nearest" or "random".
    seed: two ints, the stateless seed of the random pool.

  Returns:
    `[num_items, num_negatives]` int32 item indices, padded with -1.

  Raises:
    ValueError: on bad shapes or arguments.
  """
  if not isinstance(features, (tf.Tensor, tf.Variable)):
    features = np.asarray(features, dtype=np.float32)
  categories = np.asarray(categories).astype(np.int64)
  if len(features.shape) != 2 or categories.shape != (features.shape[0],):
    raise ValueError(f"build_negative_table: features {features.shape} and categories "
                     f"{categories.shape} must be [N, D] and [N]")
  num_items = features.shape[0]
  if set_ids is not None:
    set_ids = np.asarray(set_ids).astype(np.int64)
    if set_ids.shape != (num_items,):
      raise ValueError(f"build_negative_table: set_ids {set_ids.shape} must be [{num_items}]")
  if num_negatives < 1 or chunk_size < 1:
    raise ValueError(f"build_negative_table: num_negatives={num_negatives} and "
                     f"chunk_size={chunk_size} must be >= 1")
  if pool not in POOLS:
    raise ValueError(f"build_negative_table: pool must be one of {POOLS}, got '{pool}'")
  pairs = np.zeros((0, 2), np.int64) if exclude_pairs is None else np.asarray(
      exclude_pairs, np.int64).reshape(-1, 2)
  if set_ids is not None:
    # Same-set exclusion is the co-member exclusion of one set per item.
    pairs = np.concatenate([pairs, co_member_pairs(*_csr_of(set_ids))])

  table = np.full((num_items, num_negatives), -1, dtype=np.int32)
  position = np.full(num_items, -1, np.int64)
  for category in np.unique(categories):
    members = np.flatnonzero(categories == category)
    position[members] = np.arange(len(members))
    local = position[pairs]
    local = local[(local >= 0).all(axis=1)]
    # One category's rows at a time (a variable is gathered, never copied whole).
    rows = (tf.gather(features, members) if isinstance(features, (tf.Tensor, tf.Variable))
            else tf.constant(features[members]))
    unit = set_ops.l2_normalize(tf.cast(rows, tf.float32))
    if pool == "random":
      found = random_pool.random_candidates(unit, local, num_negatives,
                                            (min_similarity, max_similarity), seed,
                                            int(category))
    else:
      found = _nearest_candidates(unit, local, num_negatives,
                                  (min_similarity, max_similarity), chunk_size)
    table[members, :found.shape[1]] = np.where(found >= 0, members[np.maximum(found, 0)], -1)
    position[members] = -1
  return table


def _nearest_candidates(unit: tf.Tensor, pairs: np.ndarray, num_negatives: int,
                        bounds: tuple[float, float], chunk_size: int) -> np.ndarray:
  """[n, k] category positions of each item's most similar eligible candidates (-1: none).

  Each block of rows keeps its running top (k + E) by similarity over the column blocks,
  E being the most excluded partners (the row itself included) of any of its rows; the
  rows' own thresholds (their (k + E)-th best so far) let `_group_max` skip what cannot
  enter. Excluded partners are dropped at the end (`random_pool.first_allowed`), which
  leaves each row's k best allowed candidates.
  """
  size = int(unit.shape[0])
  low, high = (tf.constant(b, tf.float32) for b in bounds)
  excluded = random_pool.excluded_keys(pairs, size)
  partners = 1 + np.bincount(pairs[:, 0], minlength=size)
  width = (chunk_size + _GROUP - 1) // _GROUP * _GROUP
  found = np.full((size, num_negatives), -1, np.int64)
  for row_start in range(0, size, chunk_size):
    rows = slice(row_start, min(row_start + chunk_size, size))
    keep = num_negatives + int(partners[rows].max())
    k = tf.constant(keep, tf.int32)
    values = tf.zeros([rows.stop - rows.start, 0], tf.float32)
    ids = tf.zeros([rows.stop - rows.start, 0], tf.int64)
    for col_start in range(0, size, chunk_size):
      cols = min(col_start + chunk_size, size)
      similarity = tf.matmul(unit[rows], unit[col_start:cols], transpose_b=True)
      padding = [[0, 0], [0, width - (cols - col_start)]]
      similarity = tf.pad(similarity, padding, constant_values=float("-inf"))
      col_ids = tf.pad(tf.range(col_start, cols, dtype=tf.int64), padding[1:],
                       constant_values=-1)
      thresholds = (values[:, -1] if values.shape[1] == keep
                    else tf.fill([rows.stop - rows.start], float("-inf")))
      values, ids = _merge_groups(similarity, _group_max(similarity, thresholds, low, high),
                                  thresholds, low, high, col_ids, values, ids, k)
    candidates = np.where(values.numpy() > set_ops.MASKED_LOGIT / 2, ids.numpy(), -1)
    found[rows] = random_pool.first_allowed(np.arange(rows.start, rows.stop), candidates,
                                            excluded, size, num_negatives)
  return found


def _csr_of(set_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """CSR (offsets, items) of the sets given as one set id per item."""
  order = np.argsort(set_ids, kind="stable")
  _, counts = np.unique(set_ids[order], return_counts=True)
  return np.concatenate([[0], np.cumsum(counts)]), order
