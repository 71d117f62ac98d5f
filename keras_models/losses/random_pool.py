"""TPaNeg's random pool without an all-pairs pass: a seeded window scan per category.

The random pool gives each item i the k eligible candidates j (same category, cosine in
[min_similarity, max_similarity], not i, not sharing a train set with i) of highest
priority frac(v_i + u_j), with u and v independent uniforms drawn from (seed, category).
For one row the priorities of its candidates are independent uniforms, so its k
candidates are a uniform random k-subset of its eligible ones, as in the original code.

Sorting the columns by u once turns every row's priority order into one cyclic scan of
that sorted order, starting where u falls below 1 - v_i. Rows sorted by that start
position scan nearly the same columns, so a block of rows is scored against successive
column windows with one matrix product each, and a row stops once it holds its k
candidates (plus as many as it has excluded partners, dropped afterwards). A row scans
about k / p columns when a share p of its category is eligible, instead of the whole
category; a row with fewer than k eligible candidates scans the whole category once.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Rows scored together, and columns per window: [1024, 2048] products keep the matmul
# rate while wasting few columns before each row's own start position.
BLOCK_ROWS = 1024
WINDOW = 2048


@tf.function(input_signature=[
    tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int64),
    tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int64),
    tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.float32)])
def _window(rows: tf.Tensor, columns: tf.Tensor, starts: tf.Tensor, missing: tf.Tensor,
            first: tf.Tensor, size: tf.Tensor, count: tf.Tensor, min_similarity: tf.Tensor,
            max_similarity: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """The eligible candidates of each row in one column window, in scan order.

  Args:
    rows: `[a, D]` unit features of the active rows.
    columns: `[w, D]` unit features of the window's columns (scan positions first..).
    starts: `[a]` unrolled scan position where each row's own scan starts.
    missing: `[a]` candidates each row still needs.
    first: unrolled scan position of the window's first column.
    size: the category's size (a row scans positions [start, start + size)).
    count: columns in the window.

  Returns:
    (row, window column) of the taken candidates `[m, 2]`, their rank within the row's
    taken ones `[m]`, and `[a]` eligible candidates seen in the window.
  """
  similarity = tf.matmul(rows, columns, transpose_b=True)
  position = first + tf.range(count, dtype=tf.int64)
  in_scan = (position[None, :] >= starts[:, None]) & (position[None, :] < starts[:, None] + size)
  eligible = in_scan & (similarity >= min_similarity) & (similarity <= max_similarity)
  rank = tf.cumsum(tf.cast(eligible, tf.int64), axis=1, exclusive=True)
  taken = tf.where(eligible & (rank < missing[:, None]))
  return taken, tf.gather_nd(rank, taken), tf.reduce_sum(tf.cast(eligible, tf.int64), axis=1)


def random_candidates(unit: tf.Tensor, pairs: np.ndarray, num_negatives: int,
                      bounds: tuple[float, float], seed: tuple[int, int],
                      category: int) -> np.ndarray:
  """Random-pool candidates of one category (module docstring).

  Args:
    unit: `[n, D]` float32 unit features of the category's items.
    pairs: `[m, 2]` int64 category positions (i, j) that are never each other's negatives,
      unique rows.
    num_negatives: k.
    bounds: (min_similarity, max_similarity).
    seed: two ints; with `category`, the stateless seed of u and v.
    category: the category id.

  Returns:
    `[n, k]` int64 category positions of each item's candidates, -1 padded.
  """
  size = int(unit.shape[0])
  key = tf.random.experimental.stateless_fold_in(tf.constant(seed, tf.int64), category)
  column_noise, row_noise = tf.random.stateless_uniform([2, size], key).numpy()
  scan = np.argsort(-column_noise, kind="stable")
  starts = np.searchsorted(-column_noise[scan], -(1.0 - row_noise), side="right")
  scanned = tf.gather(unit, scan)
  excluded = excluded_keys(pairs, size)
  need = num_negatives + 1 + np.bincount(pairs[:, 0], minlength=size)
  low, high = (tf.constant(b, tf.float32) for b in bounds)
  table = np.full((size, num_negatives), -1, np.int64)
  order = np.argsort(starts, kind="stable")
  for block_start in range(0, size, BLOCK_ROWS):
    rows = order[block_start:block_start + BLOCK_ROWS]
    found = _scan_rows(unit, scanned, rows, starts[rows], need[rows], size, low, high)
    columns = np.where(found >= 0, scan[np.maximum(found, 0)], -1)
    table[rows] = first_allowed(rows, columns, excluded, size, num_negatives)
  return table


def _scan_rows(unit: tf.Tensor, scanned: tf.Tensor, rows: np.ndarray, starts: np.ndarray,
               need: np.ndarray, size: int, low: tf.Tensor, high: tf.Tensor) -> np.ndarray:
  """[rows, max need] scan positions of each row's first `need` eligible candidates."""
  found = np.full((len(rows), int(need.max())), -1, np.int64)
  have = np.zeros(len(rows), np.int64)
  active = np.arange(len(rows))
  first = int(starts.min())
  while len(active):
    count = min(WINDOW, int(starts[active].max()) + size - first)
    columns = tf.gather(scanned, np.arange(first, first + count) % size)
    taken, rank, eligible = _window(
        tf.gather(unit, rows[active]), columns, tf.constant(starts[active]),
        tf.constant(need[active] - have[active]), tf.constant(first, tf.int64),
        tf.constant(size, tf.int64), tf.constant(count, tf.int64), low, high)
    taken, rank = taken.numpy(), rank.numpy()
    owner = active[taken[:, 0]]
    found[owner, have[owner] + rank] = (first + taken[:, 1]) % size
    have[active] = np.minimum(have[active] + eligible.numpy(), need[active])
    first += count
    finished = (have[active] >= need[active]) | (first >= starts[active] + size)
    active = active[~finished]
  return found


def excluded_keys(pairs: np.ndarray, size: int) -> np.ndarray:
  """Sorted unique keys i * size + j of excluded (i, j) category positions."""
  if not len(pairs):
    return np.zeros(0, np.int64)
  return np.unique(pairs[:, 0] * size + pairs[:, 1])


def first_allowed(rows: np.ndarray, columns: np.ndarray, excluded: np.ndarray, size: int,
                  num_negatives: int) -> np.ndarray:
  """The first k candidates of each row that are neither the row itself nor excluded.

  Args:
    rows: `[r]` category positions of the rows.
    columns: `[r, c]` candidate category positions in preference order, -1 padded.
    excluded: `excluded_keys` of the category.
    size: the category's size.
    num_negatives: k.

  Returns:
    `[r, k]` int64, -1 padded.
  """
  keys = rows[:, None] * size + columns
  keep = (columns >= 0) & (columns != rows[:, None])
  if len(excluded):
    at = np.minimum(np.searchsorted(excluded, keys), len(excluded) - 1)
    keep &= excluded[at] != keys
  rank = np.cumsum(keep, axis=1) - 1
  result = np.full((len(rows), num_negatives), -1, np.int64)
  row_index, slot = np.nonzero(keep & (rank < num_negatives))
  result[row_index, rank[row_index, slot]] = columns[row_index, slot]
  return result
