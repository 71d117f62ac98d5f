"""Fill-in-the-blank (FITB) accuracy, the outfit-completion protocol, as pure NumPy functions.

Protocol: a query q of category c with positive y is shown y and `num_distractors` other
items of its gallery G_c, drawn uniformly without replacement from G_c \\ {y}. It is a
hit when the positive scores strictly highest,

    hit = s(y) > max_d s(d),   s(g) = <q, g>,

so a tie counts against the model, as in the rank definition of `ranking`. FITB-4 is the
mean hit with 3 distractors (chance 1/4). A category with fewer than `num_distractors + 1`
gallery items gives its queries every other item of G_c as distractors (chance
1 / |G_c|; with |G_c| = 1 the query is a hit), and `short_queries` counts them.

The draw is a pure function of (seed, query order, gallery): one uniform per (query,
slot) from `np.random.default_rng([seed, 0])`, so every method scored on the same
evaluator faces the same candidates. `random_hits` uses the stream [seed, 1].
"""

from __future__ import annotations

import numpy as np

_DRAW_STREAM, _SCORE_STREAM = 0, 1
# Queries scored per block: [block, candidates, dim] float32 stays small.
_QUERY_BLOCK = 4096


def draw_distractors(query_categories: np.ndarray, positive_positions: np.ndarray,
                     gallery_categories: np.ndarray, num_distractors: int,
                     seed: int) -> np.ndarray:
  """Gallery positions of each query's distractors, uniform without replacement.

  Slot t of a query of category c with m = |G_c| draws r uniform in [0, m - 1 - t) and
  shifts it past the already excluded positions within G_c (the positive's, then the
  earlier slots'), in ascending order: a bijection onto the positions still free, so the
  draw is uniform over the (m - 1)! / (m - 1 - k)! ordered choices.

  Args:
    query_categories: `[num_queries]` int category ids; 0 = padding (no distractors).
    positive_positions: `[num_queries]` int position of each positive in the gallery.
    gallery_categories: `[gallery_size]` int category ids of the gallery rows.
    num_distractors: k, distractors per query (3 for FITB-4).
    seed: seed of the draw.

  Returns:
    `[num_queries, k]` int64 gallery positions; -1 where G_c has fewer than k + 1 items.

  Raises:
    ValueError: if k < 1, or a positive's gallery row is not of its query's category.
  """
  if num_distractors < 1:
    raise ValueError(f"num_distractors must be >= 1, got {num_distractors}")
  query_categories = np.asarray(query_categories, np.int64)
  positive_positions = np.asarray(positive_positions, np.int64)
  gallery_categories = np.asarray(gallery_categories, np.int64)
  uniforms = np.random.default_rng([seed, _DRAW_STREAM]).random((len(query_categories), num_distractors))
  result = np.full((len(query_categories), num_distractors), -1, np.int64)
  for category in np.unique(query_categories[query_categories > 0]):
    queries = np.flatnonzero(query_categories == category)
    members = np.flatnonzero(gallery_categories == category)
    within = np.searchsorted(members, positive_positions[queries])
    present = within < len(members)
    present[present] = members[within[present]] == positive_positions[queries[present]]
    if not present.all():
      bad = queries[np.argmin(present)]
      raise ValueError(f"query {bad}: positive gallery position {positive_positions[bad]} "
                       f"is not in the gallery of its category {category}")
    excluded = within[:, np.newaxis]
    for slot in range(min(num_distractors, len(members) - 1)):
      free = len(members) - 1 - slot
      draw = np.minimum((uniforms[queries, slot] * free).astype(np.int64), free - 1)
      for column in range(excluded.shape[1]):
        draw += draw >= excluded[:, column]
      result[queries, slot] = members[draw]
      excluded = np.sort(np.concatenate([excluded, draw[:, np.newaxis]], axis=1), axis=1)
  return result


def hits(queries: np.ndarray, positive_positions: np.ndarray, distractors: np.ndarray,
         gallery: np.ndarray) -> np.ndarray:
  """FITB hit of each query: s(y) > max over its distractors s(d).

  The positive and the distractors are scored by one product over the same gallery rows,
  so an item identical to the positive ties with it exactly (and counts against).

  Args:
    queries: `[num_queries, dim]` float query vectors.
    positive_positions: `[num_queries]` int gallery position of each positive.
    distractors: `[num_queries, k]` int gallery positions, -1 = no distractor.
    gallery: `[gallery_size, dim]` float gallery vectors.

  Returns:
    `[num_queries]` float32 1.0 for a hit, else 0.0.
  """
  queries = np.asarray(queries, np.float32)
  candidates = np.concatenate([np.asarray(positive_positions, np.int64)[:, np.newaxis],
                               np.asarray(distractors, np.int64)], axis=1)
  result = np.zeros(len(queries), np.float32)
  for start in range(0, len(queries), _QUERY_BLOCK):
    block = slice(start, start + _QUERY_BLOCK)
    rows = candidates[block]
    vectors = np.asarray(gallery[np.maximum(rows, 0)], np.float32)
    scores = np.einsum("qd,qkd->qk", queries[block], vectors)
    rivals = np.where(rows[:, 1:] >= 0, scores[:, 1:], -np.inf)
    result[block] = scores[:, 0] > rivals.max(axis=1)
  return result


def random_hits(distractors: np.ndarray, seed: int) -> np.ndarray:
  """FITB hits of random scores: each candidate gets a uniform score, ties impossible.

  Args:
    distractors: `[num_queries, k]` int gallery positions, -1 = no distractor.
    seed: seed of the scores.

  Returns:
    `[num_queries]` float32, a hit with probability 1 / (1 + distractors present).
  """
  distractors = np.asarray(distractors)
  scores = np.random.default_rng([seed, _SCORE_STREAM]).random((len(distractors), distractors.shape[1] + 1))
  rivals = np.where(distractors >= 0, scores[:, 1:], -np.inf)
  return (scores[:, 0] > rivals.max(axis=1)).astype(np.float32)


def short_queries(query_categories: np.ndarray, distractors: np.ndarray) -> int:
  """Valid queries (category > 0) with fewer distractors than slots."""
  valid = np.asarray(query_categories) > 0
  return int(np.sum(valid & np.any(np.asarray(distractors) < 0, axis=1)))
