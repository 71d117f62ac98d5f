"""ICFRR: Iterative Cluster-free Re-ranking (Hudson & Smith, arXiv 2303.17703), on shortlists.

Each query's ranked gallery list is refined by votes of its current top-K_Q items:

    R[a, g]   rank of g in a's gallery-gallery list (self excluded, nearest = 0)
    alpha(r)  = 1 - r / (G - 1) for 0 <= r < K_G, else 0
    Delta_q(g) = (1 / K_Q) * sum_{k < K_Q} alpha(R[pi_q(k), g])

and either (mode "positional", the reference code) u_j = v_j + beta * Delta_q(pi_q(j)) with
v_j the j-th best *initial* score, fixed by position, then pi_q is re-sorted by u; or (mode
"accumulate", the paper) s_q <- s_q + beta * Delta_q and pi_q = argsort(-s_q).

Only each query's top-T initial list (its shortlist) is re-ordered; G and alpha stay those
of the whole gallery, and K_Q is clipped to T. With T >= G this is the reference algorithm
exactly. alpha is zero beyond K_G, so only each gallery item's top-K_G neighbour list is
stored ([G, K_G], not the [G, G] rank matrix) and Delta is a weighted scatter of the lists
of the top-K_Q items: O(Q * K_Q * K_G) per iteration, with a [block, G] scratch per query
block. Sorting uses `tf.math.top_k`, whose ties keep the lower index first: a stable
descending sort.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf

from keras_models import configs
from keras_models.metrics import streaming

_INTS = tf.TensorSpec([None, None], tf.int32)
_FLOATS = tf.TensorSpec([None, None], tf.float32)
_WEIGHTS = tf.TensorSpec([None], tf.float32)
_SCALAR_INT = tf.TensorSpec([], tf.int32)
_SCALAR_FLOAT = tf.TensorSpec([], tf.float32)

# Elements of the [block, G] vote scratch (128 MB of float32): the query block shrinks on
# large galleries so the scratch stays bounded.
VOTE_SCRATCH_ELEMENTS = 1 << 25
# Gallery rows whose neighbour lists are searched per ranker call ([rows, K_G + 1] results).
NEIGHBOUR_ROWS_PER_CALL = 16384


def scores_from_cosine(cosine: np.ndarray, score: str) -> np.ndarray:
  """s0 of cosines between L2-normalised vectors: same shape, float32.

  "cosine" is <q, g>; "neg_euclidean" is -||q - g|| = -sqrt(2 - 2 <q, g>) as in the
  reference code (same order, different scale against beta * Delta).
  """
  cosine = np.asarray(cosine, np.float32)
  if score == "cosine":
    return cosine
  if score == "neg_euclidean":
    return -np.sqrt(np.maximum(2.0 - 2.0 * cosine, 0.0))
  raise ValueError(f"unknown icfrr score '{score}'; known: {configs.ICFRR_SCORES}")


def neighbour_table(gallery: np.ndarray, k_g: int,
                    ranker: streaming.ChunkedRanker | None = None,
                    chunk_size: int = configs.GALLERY_CHUNK_SIZE) -> np.ndarray:
  """Each gallery item's nearest min(k_g, G - 1) others by cosine, nearest first.

  The exact streaming top-(k + 1) of every item against the gallery, with the item itself
  dropped (or the last entry, when duplicates pushed it out); equal scores keep gallery
  order, as a top_k over the row with the item masked would.

  Args:
    gallery: `[G, D]` L2-normalised gallery vectors.
    k_g: neighbours kept per item (alpha is zero beyond them).
    ranker: exact streaming top-k; a default one when None.
    chunk_size: gallery rows scored per fold, bounding scores to [query chunk, chunk_size].

  Returns:
    `[G, min(k_g, G - 1)]` int32 gallery indices; N[a, r] is the item of rank r in a's list.
  """
  size = len(gallery)
  k = min(int(k_g), size - 1)
  if k < 1:
    return np.zeros([size, 0], np.int32)
  ranker = ranker or streaming.ChunkedRanker()
  vectors = tf.constant(np.asarray(gallery, np.float32))
  ones, ids = np.ones(size, np.int32), np.arange(size, dtype=np.int64)
  table = np.empty([size, k], np.int32)
  for start in range(0, size, NEIGHBOUR_ROWS_PER_CALL):
    rows = np.arange(start, min(start + NEIGHBOUR_ROWS_PER_CALL, size))
    _, found = ranker.top_k(vectors[start:rows[-1] + 1], ones[rows], vectors, ones, ids,
                            k + 1, chunk_size)
    is_self = found == rows[:, np.newaxis]
    kept = np.argsort(is_self, axis=1, kind="stable")[:, :k]
    table[rows] = np.take_along_axis(found, kept, axis=1)
  return table


def rank_weights(gallery_size: int, k_g: int) -> np.ndarray:
  """alpha(r) = 1 - r / (G - 1) for r < K_G: [min(k_g, G - 1)] float32."""
  k = min(int(k_g), gallery_size - 1)
  return (1.0 - np.arange(k, dtype=np.float32) / max(gallery_size - 1, 1)).astype(np.float32)


@tf.function(input_signature=[_INTS, _INTS, _WEIGHTS])
def votes(voters, neighbours, weights):
  """Delta_q(g) for every query and gallery item.

  Args:
    voters: `[B, K_Q]` int32 gallery indices of each query's current top-K_Q items.
    neighbours: `[G, K_G]` int32 neighbour table.
    weights: `[K_G]` float32 alpha(r).

  Returns:
    `[B, G]` float32 Delta_q(g), indexed by gallery item.
  """
  batch, size = tf.shape(voters)[0], tf.shape(neighbours)[0]
  voted = tf.gather(neighbours, voters)  # [B, K_Q, K_G]
  segments = voted + (tf.range(batch) * size)[:, tf.newaxis, tf.newaxis]
  updates = tf.broadcast_to(weights, tf.shape(voted))
  delta = tf.math.unsorted_segment_sum(updates, segments, batch * size)
  return tf.reshape(delta, [batch, size]) / tf.cast(tf.shape(voters)[1], tf.float32)


def _shortlist_votes(items, slots, neighbours, weights, k_q):
  """Delta of each shortlist slot: `[B, T]` from items [B, T] and current slot order."""
  voters = tf.gather(items, slots[:, :k_q], batch_dims=1)
  return tf.gather(votes(voters, neighbours, weights), items, batch_dims=1)


@tf.function(input_signature=[_INTS, _INTS, _FLOATS, _INTS, _WEIGHTS, _SCALAR_INT,
                              _SCALAR_FLOAT])
def positional_step(items, slots, values, neighbours, weights, k_q, beta):
  """One reference-code iteration on shortlists.

  Args:
    items: `[B, T]` int32 gallery indices of each shortlist, ascending (slot order).
    slots: `[B, T]` int32 current ranked list pi as slots of `items`, best first.
    values: `[B, T]` float32 initial scores sorted descending (v_j, fixed by position).
    neighbours: `[G, K_G]` int32 neighbour table.
    weights: `[K_G]` float32 alpha(r).
    k_q: voters per query (<= T).
    beta: weight of the votes.

  Returns:
    `[B, T]` int32 new pi (slots): u_j = v_j + beta * Delta(pi(j)), sorted by u.
  """
  delta = _shortlist_votes(items, slots, neighbours, weights, k_q)
  updated = values + beta * tf.gather(delta, slots, batch_dims=1)
  positions = tf.math.top_k(updated, k=tf.shape(updated)[1]).indices
  return tf.gather(slots, positions, batch_dims=1)


@tf.function(input_signature=[_INTS, _INTS, _FLOATS, _INTS, _WEIGHTS, _SCALAR_INT,
                              _SCALAR_FLOAT])
def accumulate_step(items, slots, scores, neighbours, weights, k_q, beta):
  """One paper iteration on slot-indexed scores `[B, T]`: returns (new pi, new scores).

  Slots are in gallery order, so ties keep the lower gallery index as over a full row.
  """
  scores = scores + beta * _shortlist_votes(items, slots, neighbours, weights, k_q)
  return tf.math.top_k(scores, k=tf.shape(scores)[1]).indices, scores


def _rerank_block(values, items, neighbours, weights, config):
  """Yields pi^0..pi^T of one query block as `[B, T]` gallery indices."""
  yield items
  by_item = np.argsort(items, axis=1, kind="stable").astype(np.int32)
  ascending = np.take_along_axis(items, by_item, axis=1)
  slots = np.argsort(by_item, axis=1, kind="stable").astype(np.int32)  # position -> slot
  k_q = tf.constant(min(config.k_q, items.shape[1]), tf.int32)
  beta = tf.constant(config.beta, tf.float32)
  scores = np.take_along_axis(values, by_item, axis=1)  # slot-indexed s0
  for _ in range(config.iterations):
    if config.mode == "positional":
      slots = positional_step(ascending, slots, values, neighbours, weights, k_q, beta)
    else:
      slots, scores = accumulate_step(ascending, slots, scores, neighbours, weights, k_q,
                                      beta)
    yield np.take_along_axis(ascending, slots.numpy(), axis=1)


def rerank(values: np.ndarray, items: np.ndarray, neighbours: np.ndarray,
           config: configs.IcfrrConfig, query_block_size: int = 256) -> Iterator[np.ndarray]:
  """Yields the re-ranked shortlists before re-ranking and after each iteration.

  Args:
    values: `[Q, T]` float initial scores s0 of each shortlist, sorted descending.
    items: `[Q, T]` int gallery indices that go with `values` (distinct within a row).
    neighbours: `[G, K_G]` int32 table from `neighbour_table` over the whole gallery (its
      rows set G in alpha, its width K_G).
    config: ICFRR settings; k_q is clipped to T.
    query_block_size: queries updated together; shrunk so the [block, G] vote scratch
      stays under `VOTE_SCRATCH_ELEMENTS`.

  Yields:
    `[Q, T]` int32 gallery indices best first: pi^0, pi^1, ..., pi^iterations.

  Raises:
    ValueError: if the shapes disagree or an item is outside the table.
  """
  values = np.asarray(values, np.float32)
  items = np.asarray(items, np.int32)
  size = len(neighbours)
  if values.shape != items.shape:
    raise ValueError(f"values {values.shape} and items {items.shape} differ")
  if items.size and (items.min() < 0 or items.max() >= size):
    raise ValueError(f"shortlist items must be in [0, {size}), the neighbour table's rows")
  block_size = max(1, min(query_block_size, VOTE_SCRATCH_ELEMENTS // max(size, 1)))
  weights = tf.constant(rank_weights(size, neighbours.shape[1]))
  table = tf.constant(neighbours, tf.int32)
  blocks = [_rerank_block(values[start:start + block_size], items[start:start + block_size],
                          table, weights, config)
            for start in range(0, len(items), block_size)]
  for _ in range(config.iterations + 1):
    parts = [next(block) for block in blocks]
    yield np.concatenate(parts) if parts else items.copy()
