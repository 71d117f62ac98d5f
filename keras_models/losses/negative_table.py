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

from keras_models.losses import set_ops

POOLS = ("nearest", "random")


@tf.function(input_signature=[
    tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None], tf.int64),
    tf.TensorSpec([None], tf.int64),
    tf.TensorSpec([None, None], tf.bool),
    tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None, None], tf.int64),
    tf.TensorSpec([], tf.float32),
    tf.TensorSpec([], tf.float32),
    tf.TensorSpec([], tf.int32),
])
def _fold_block(similarity: tf.Tensor, row_ids: tf.Tensor,
                col_ids: tf.Tensor, excluded: tf.Tensor, priority: tf.Tensor,
                best_values: tf.Tensor, best_ids: tf.Tensor, min_similarity: tf.Tensor,
                max_similarity: tf.Tensor, num_negatives: tf.Tensor
                ) -> tuple[tf.Tensor, tf.Tensor]:
  """Merges one block of same-category candidates into each row's running top-k.

  `similarity` (cosines of unit vectors of one category), `excluded` and `priority` are
  `[rows, cols]`; `best_*` are `[rows, <= num_negatives]`.
  Eligible candidates are ranked by `priority` (the similarity itself for the nearest
  pool, uniform noise for the random pool). Running lists are concatenated before the
  new block and `top_k` prefers the earlier position on ties, so the result equals a
  stable descending sort by priority then index.
  """
  eligible = ((similarity >= min_similarity) & (similarity <= max_similarity)
              & (row_ids[:, None] != col_ids[None, :]) & ~excluded)
  ranked = tf.where(eligible, priority, set_ops.MASKED_LOGIT)
  values = tf.concat([best_values, ranked], axis=1)
  ids = tf.concat([best_ids, tf.broadcast_to(col_ids[None, :], tf.shape(ranked))], axis=1)
  k = tf.minimum(num_negatives, tf.shape(values)[1])
  values, positions = tf.math.top_k(values, k=k)
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


def _excluded_block(pairs: np.ndarray, row_start: int, num_rows: int, col_start: int,
                    num_cols: int) -> np.ndarray:
  """`[num_rows, num_cols]` bool mask of the pairs (member positions) inside one block."""
  mask = np.zeros((num_rows, num_cols), bool)
  inside = ((pairs[:, 0] >= row_start) & (pairs[:, 0] < row_start + num_rows)
            & (pairs[:, 1] >= col_start) & (pairs[:, 1] < col_start + num_cols))
  mask[pairs[inside, 0] - row_start, pairs[inside, 1] - col_start] = True
  return mask


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
    features: `[num_items, dim]` float array or tensor.
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
  features = np.asarray(features, dtype=np.float32)
  categories = np.asarray(categories).astype(np.int64)
  if features.ndim != 2 or categories.shape != (features.shape[0],):
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

  unit = set_ops.l2_normalize(tf.constant(features)).numpy()
  table = np.full((num_items, num_negatives), -1, dtype=np.int32)
  bounds = (tf.constant(min_similarity, tf.float32), tf.constant(max_similarity, tf.float32))
  k = tf.constant(num_negatives, tf.int32)
  position = np.full(num_items, -1, np.int64)
  for category in np.unique(categories):
    members = np.flatnonzero(categories == category)
    position[members] = np.arange(len(members))
    local = position[pairs]
    local = local[(local >= 0).all(axis=1)]
    for row_start in range(0, len(members), chunk_size):
      rows = members[row_start:row_start + chunk_size]
      best_values = tf.zeros([len(rows), 0], tf.float32)
      best_ids = tf.zeros([len(rows), 0], tf.int64)
      for col_start in range(0, len(members), chunk_size):
        cols = members[col_start:col_start + chunk_size]
        similarity = tf.matmul(unit[rows], unit[cols], transpose_b=True)
        if pool == "nearest":
          priority = similarity
        else:
          block_seed = tf.random.experimental.stateless_fold_in(
              tf.constant(seed, tf.int64), int(category) * 1_000_003 + row_start * 7919
              + col_start)
          priority = tf.random.stateless_uniform([len(rows), len(cols)], block_seed)
        best_values, best_ids = _fold_block(
            similarity, rows, cols,
            _excluded_block(local, row_start, len(rows), col_start, len(cols)), priority,
            best_values, best_ids, *bounds, k)
      found = np.where(best_values.numpy() > set_ops.MASKED_LOGIT / 2, best_ids.numpy(), -1)
      table[rows, :found.shape[1]] = found
    position[members] = -1
  return table


def _csr_of(set_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """CSR (offsets, items) of the sets given as one set id per item."""
  order = np.argsort(set_ids, kind="stable")
  _, counts = np.unique(set_ids[order], return_counts=True)
  return np.concatenate([[0], np.cumsum(counts)]), order
