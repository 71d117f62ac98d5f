"""ICFRR: Iterative Cluster-free Re-ranking (Hudson & Smith, arXiv 2303.17703).

Each query's ranked gallery list is refined by votes of its current top-K_Q items:

    R[a, g]   rank of g in a's gallery-gallery list (self excluded, nearest = 0)
    alpha(r)  = 1 - r / (G - 1) for 0 <= r < K_G, else 0
    Delta_q(g) = (1 / K_Q) * sum_{k < K_Q} alpha(R[pi_q(k), g])

and either (mode "positional", the reference code) u_j = v_j + beta * Delta_q(pi_q(j)) with
v_j the j-th best *initial* score, fixed by position, then pi_q is re-sorted by u; or (mode
"accumulate", the paper) s_q <- s_q + beta * Delta_q and pi_q = argsort(-s_q).

alpha is zero beyond K_G, so only each gallery item's top-K_G neighbour list is stored
([G, K_G], not the [G, G] rank matrix) and Delta is a weighted scatter of the neighbour
lists of the top-K_Q items: O(Q * K_Q * K_G) per iteration. Sorting uses `tf.math.top_k`,
whose ties keep the lower index first, i.e. a stable descending sort.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf

from keras_models import configs

_INTS = tf.TensorSpec([None, None], tf.int32)
_FLOATS = tf.TensorSpec([None, None], tf.float32)
_SCALAR_INT = tf.TensorSpec([], tf.int32)
_SCALAR_FLOAT = tf.TensorSpec([], tf.float32)


def initial_scores(queries: np.ndarray, gallery: np.ndarray, score: str) -> np.ndarray:
  """[Q, G] s0 of L2-normalised queries [Q, D] and gallery [G, D].

  "cosine" is <q, g>; "neg_euclidean" is -||q - g|| = -sqrt(2 - 2 <q, g>) as in the
  reference code (same order, different scale against beta * Delta).
  """
  cosine = np.asarray(queries, np.float32) @ np.asarray(gallery, np.float32).T
  if score == "cosine":
    return cosine
  if score == "neg_euclidean":
    return -np.sqrt(np.maximum(2.0 - 2.0 * cosine, 0.0))
  raise ValueError(f"unknown icfrr score '{score}'; known: {configs.ICFRR_SCORES}")


@tf.function(input_signature=[_FLOATS, _FLOATS, tf.TensorSpec([None], tf.int32),
                              _SCALAR_INT])
def _neighbour_chunk(rows, gallery, row_ids, k):
  scores = tf.matmul(rows, gallery, transpose_b=True)
  is_self = tf.equal(row_ids[:, tf.newaxis], tf.range(tf.shape(gallery)[0])[tf.newaxis, :])
  scores = tf.where(is_self, float("-inf"), scores)
  return tf.math.top_k(scores, k=k).indices


def neighbour_table(gallery: np.ndarray, k_g: int, chunk_size: int = 2048) -> np.ndarray:
  """Each gallery item's nearest min(k_g, G - 1) others by cosine, nearest first.

  Args:
    gallery: `[G, D]` L2-normalised gallery vectors.
    k_g: neighbours kept per item (alpha is zero beyond them).
    chunk_size: gallery rows scored per call, bounding memory to [chunk_size, G].

  Returns:
    `[G, min(k_g, G - 1)]` int32 gallery indices; N[a, r] is the item of rank r in a's list.
  """
  gallery = tf.constant(gallery, tf.float32)
  size = int(gallery.shape[0])
  k = min(int(k_g), size - 1)
  if k < 1:
    return np.zeros([size, 0], np.int32)
  blocks = [np.zeros([0, k], np.int32)]
  for start in range(0, size, chunk_size):
    stop = min(start + chunk_size, size)
    blocks.append(_neighbour_chunk(gallery[start:stop], gallery,
                                   tf.range(start, stop, dtype=tf.int32), k).numpy())
  return np.concatenate(blocks)


def rank_weights(gallery_size: int, k_g: int) -> np.ndarray:
  """alpha(r) = 1 - r / (G - 1) for r < K_G: [min(k_g, G - 1)] float32."""
  k = min(int(k_g), gallery_size - 1)
  return (1.0 - np.arange(k, dtype=np.float32) / max(gallery_size - 1, 1)).astype(np.float32)


@tf.function(input_signature=[_INTS, _INTS, tf.TensorSpec([None], tf.float32), _SCALAR_INT])
def votes(order, neighbours, weights, k_q):
  """Delta_q(g) for every query and gallery item.

  Args:
    order: `[B, G]` int32 current ranked lists pi_q (gallery indices, best first).
    neighbours: `[G, K_G]` int32 neighbour table.
    weights: `[K_G]` float32 alpha(r).
    k_q: voters per query (<= G).

  Returns:
    `[B, G]` float32 Delta_q(g), indexed by gallery item.
  """
  batch, size = tf.shape(order)[0], tf.shape(neighbours)[0]
  voted = tf.gather(neighbours, order[:, :k_q])  # [B, K_Q, K_G]
  segments = voted + (tf.range(batch) * size)[:, tf.newaxis, tf.newaxis]
  updates = tf.broadcast_to(weights, tf.shape(voted))
  delta = tf.math.unsorted_segment_sum(updates, segments, batch * size)
  return tf.reshape(delta, [batch, size]) / tf.cast(k_q, tf.float32)


@tf.function(input_signature=[_INTS, _FLOATS, _INTS, tf.TensorSpec([None], tf.float32),
                              _SCALAR_INT, _SCALAR_FLOAT])
def positional_step(order, values, neighbours, weights, k_q, beta):
  """One reference-code iteration: u_j = v_j + beta * Delta(pi(j)); returns the new [B, G] pi."""
  delta = votes(order, neighbours, weights, k_q)
  updated = values + beta * tf.gather(delta, order, batch_dims=1)
  positions = tf.math.top_k(updated, k=tf.shape(updated)[1]).indices
  return tf.gather(order, positions, batch_dims=1)


@tf.function(input_signature=[_INTS, _FLOATS, _INTS, tf.TensorSpec([None], tf.float32),
                              _SCALAR_INT, _SCALAR_FLOAT])
def accumulate_step(order, scores, neighbours, weights, k_q, beta):
  """One paper iteration on item-indexed scores [B, G]: returns (new pi, new scores)."""
  scores = scores + beta * votes(order, neighbours, weights, k_q)
  return tf.math.top_k(scores, k=tf.shape(scores)[1]).indices, scores


def rerank(scores: np.ndarray, neighbours: np.ndarray, config: configs.IcfrrConfig,
           query_block_size: int = 1024) -> Iterator[np.ndarray]:
  """Yields the ranked lists before re-ranking and after each of `config.iterations`.

  Args:
    scores: `[Q, G]` float initial scores s0 (higher = better).
    neighbours: `[G, K_G]` int32 table from `neighbour_table` (its width sets K_G).
    config: ICFRR settings; k_q is clipped to G.
    query_block_size: queries updated together, bounding memory to [block, K_Q, K_G].

  Yields:
    `[Q, G]` int32 gallery indices best first: pi^0, pi^1, ..., pi^T.
  """
  scores = np.asarray(scores, np.float32)
  num_queries, size = scores.shape
  if neighbours.shape[0] != size:
    raise ValueError(f"neighbour table has {neighbours.shape[0]} rows, scores {size} columns")
  top = tf.math.top_k(tf.constant(scores), k=size)
  values, order = top.values.numpy(), top.indices.numpy()
  yield order
  weights = tf.constant(rank_weights(size, neighbours.shape[1]))
  table = tf.constant(neighbours, tf.int32)
  k_q = tf.constant(min(config.k_q, size), tf.int32)
  beta = tf.constant(config.beta, tf.float32)
  accumulated = scores.copy()
  for _ in range(config.iterations):
    order = order.copy()
    for start in range(0, num_queries, query_block_size):
      block = slice(start, start + query_block_size)
      if config.mode == "positional":
        order[block] = positional_step(order[block], values[block], table, weights, k_q,
                                       beta).numpy()
      else:
        new_order, new_scores = accumulate_step(order[block], accumulated[block], table,
                                                weights, k_q, beta)
        order[block], accumulated[block] = new_order.numpy(), new_scores.numpy()
    yield order
