"""The window scan of the random pool equals a brute-force top-k by the same priorities."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_models.losses import random_pool


def _oracle(unit, pairs, k, low, high, seed, category):
  """Per row: eligible candidates sorted by priority frac(v_i + u_j) descending, first k."""
  size = len(unit)
  key = tf.random.experimental.stateless_fold_in(tf.constant(seed, tf.int64), category)
  column_noise, row_noise = tf.random.stateless_uniform([2, size], key).numpy()
  similarity = unit @ unit.T
  excluded = {tuple(p) for p in pairs.tolist()}
  table = np.full((size, k), -1)
  for i in range(size):
    eligible = [j for j in range(size) if j != i and (i, j) not in excluded
                and low <= similarity[i, j] <= high]
    priority = {j: (row_noise[i] + column_noise[j]) % 1.0 for j in eligible}
    chosen = sorted(eligible, key=lambda j: -priority[j])[:k]
    table[i, :len(chosen)] = chosen
  return table


@pytest.mark.parametrize("size, k, low, window, block", [
    (40, 3, -1.0, 7, 5),      # many windows per block, every row full
    (40, 6, 0.3, 11, 16),     # few eligible: rows scan the whole cycle
    (25, 30, -1.0, 4, 3),     # k above the category size
    (60, 4, 0.0, 2048, 1024),  # one window
])
def test_window_scan_matches_brute_force(monkeypatch, size, k, low, window, block):
  monkeypatch.setattr(random_pool, "WINDOW", window)
  monkeypatch.setattr(random_pool, "BLOCK_ROWS", block)
  rng = np.random.default_rng(size + k)
  unit = rng.normal(size=(size, 6)).astype(np.float32)
  unit /= np.linalg.norm(unit, axis=1, keepdims=True)
  members = rng.permutation(size)[:size // 2 * 2].reshape(-1, 2)
  pairs = np.concatenate([members, members[:, ::-1]]).astype(np.int64)
  got = random_pool.random_candidates(tf.constant(unit), pairs, k, (low, 0.99), (3, 1), 7)
  want = _oracle(unit.astype(np.float64), pairs, k, low, 0.99, (3, 1), 7)
  np.testing.assert_array_equal(got, want)
