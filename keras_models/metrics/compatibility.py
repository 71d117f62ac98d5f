"""Outfit compatibility as pure NumPy: the leave-one-out outfit score and ROC AUC.

Outfit score. A set-completion model p(X, c) predicts, from a set X, a feature for the
item of category c that completes it. The score of an outfit O = {x_1..x_n} (n >= 2,
categories c_i) asks it to predict each item from the others:

    score(O) = (1/n) sum_i cos(p(O \\ {x_i}, c_i), x_i)

so it lies in [-1, 1] and is high when every item is what the rest of the outfit calls
for. The same score is computed by eval_main (compatibility AUC), the HTTP service
(POST /v1/score) and the SavedModel (`score` signature).

Compatibility AUC. Over the compatibility questions (label 1: a real outfit, 0: a random
one), the ROC AUC of the scores is the Mann-Whitney statistic with ties as 1/2,

    AUC = (1 / (P N)) sum_{i: pos} sum_{j: neg} ([s_i > s_j] + 1/2 [s_i == s_j])
        = (sum_{i: pos} midrank(s_i) - P (P + 1) / 2) / (P N),

computed from mid-ranks in O((P + N) log(P + N)), never as the [P, N] pair matrix.
"""

from __future__ import annotations

import numpy as np


def leave_one_out(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Index arrays of the leave-one-out queries of outfits of `sizes` items.

  Query t leaves out item `left_out[t]` of outfit `outfit_of[t]`; its query set is the
  outfit's other positions, `members[t]` (padded with -1). Queries come outfit by
  outfit, item by item, so there are sum(sizes) of them.

  Args:
    sizes: `[num_outfits]` int item counts, each >= 2.

  Returns:
    outfit_of `[T]` int64, left_out `[T]` int64 (position within the outfit) and members
    `[T, max(sizes) - 1]` int64 positions within the outfit, -1 = padding.

  Raises:
    ValueError: an outfit with fewer than 2 items.
  """
  sizes = np.asarray(sizes, np.int64)
  if len(sizes) and sizes.min() < 2:
    raise ValueError(f"outfit {int(np.argmin(sizes))} has {int(sizes.min())} item(s); the "
                     "leave-one-out score needs >= 2")
  outfit_of = np.repeat(np.arange(len(sizes)), sizes)
  starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
  left_out = np.arange(len(outfit_of)) - starts
  width = int(sizes.max()) - 1 if len(sizes) else 0
  slots = np.arange(width)[np.newaxis, :]
  # Slot j holds position j below the left-out item and j + 1 from it on.
  positions = slots + (slots >= left_out[:, np.newaxis])
  members = np.where(positions < sizes[outfit_of][:, np.newaxis], positions, -1)
  return outfit_of, left_out, members


def cosine(predictions: np.ndarray, items: np.ndarray) -> np.ndarray:
  """Row-wise cosine of `predictions` [T, D] and `items` [T, D]; 0 for a zero row."""
  predictions = np.asarray(predictions, np.float64)
  items = np.asarray(items, np.float64)
  norms = np.linalg.norm(predictions, axis=1) * np.linalg.norm(items, axis=1)
  dots = np.einsum("td,td->t", predictions, items)
  return np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)


def outfit_scores(item_similarities: np.ndarray, outfit_of: np.ndarray,
                  num_outfits: int) -> np.ndarray:
  """Mean of each outfit's leave-one-out similarities (NaN for an outfit without any).

  Args:
    item_similarities: `[T]` cos(p(O \\ {x_i}, c_i), x_i) of every leave-one-out query.
    outfit_of: `[T]` int outfit of each query.
    num_outfits: number of outfits O.

  Returns:
    `[O]` float64 outfit scores.
  """
  outfit_of = np.asarray(outfit_of, np.int64)
  sums = np.bincount(outfit_of, np.asarray(item_similarities, np.float64), num_outfits)
  counts = np.bincount(outfit_of, minlength=num_outfits)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(counts > 0, sums / counts, np.nan)


def midranks(values: np.ndarray) -> np.ndarray:
  """1-based ranks of `values` [N] in ascending order, tied values sharing their mean rank."""
  values = np.asarray(values, np.float64)
  order = np.argsort(values, kind="stable")
  ordered = values[order]
  starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
  ends = np.r_[starts[1:], len(values)]
  ranks = np.empty(len(values), np.float64)
  ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
  return ranks


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
  """ROC AUC of `scores` [N] for binary `labels` [N] (1 positive), ties counted 1/2.

  Raises:
    ValueError: NaN scores, labels other than 0/1, or no positive or no negative.
  """
  scores = np.asarray(scores, np.float64)
  labels = np.asarray(labels)
  if scores.shape != labels.shape or scores.ndim != 1:
    raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be [N]")
  if np.isnan(scores).any():
    raise ValueError(f"{int(np.isnan(scores).sum())} scores are NaN")
  if not np.isin(labels, (0, 1)).all():
    raise ValueError("labels must be 0 or 1")
  positives = int(np.sum(labels == 1))
  negatives = len(labels) - positives
  if not positives or not negatives:
    raise ValueError(f"AUC needs positives and negatives, got {positives} and {negatives}")
  rank_sum = midranks(scores)[labels == 1].sum()
  return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))
