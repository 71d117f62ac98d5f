"""Metrics of ranked lists with class-level relevance, as the ICFRR code reports them.

"mAP" means something different in every neighbouring system, so each variant here has
its own name and states its denominator (R = relevant items in the whole gallery):

- `map_all`: full AP, (1 / R) * sum_i P@i * rel_i over the whole list (torchmetrics AP).
- `map_200_within_top`: AP of the top-200 list alone, whose denominator is the number of
  relevant items *within the top 200* (ICFRR's mAP@200; 0 when none is there). This is
  not our core `mAP@k`, whose denominator is min(R, k).
- `precision_at_k`: (relevant in top-k) / k.
- `reciprocal_rank`: 1 / position of the first relevant item (0 when none).

Inputs are `hits` [Q, L]: the relevance of the item at each position of each ranked list.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from keras_models.metrics import ranking


def average_precision_all(hits: tf.Tensor) -> tf.Tensor:
  """Full AP over the list: `[Q, L]` bool -> `[Q]` float32 (R = relevant in the list)."""
  hits = tf.cast(hits, tf.int32)
  return ranking.average_precision_at_k(hits, tf.reduce_sum(hits, axis=1))


def average_precision_within_top(hits: tf.Tensor, n: int) -> tf.Tensor:
  """AP of the top-n list normalised by the relevant items within it: `[Q]` float32."""
  return average_precision_all(hits[:, :n])


def precision_at_k(hits: tf.Tensor, k: int) -> tf.Tensor:
  """(relevant in top-k) / k, also when the list is shorter than k: `[Q]` float32."""
  return tf.reduce_sum(tf.cast(hits[:, :k], tf.float32), axis=1) / float(k)


def reciprocal_rank(hits: tf.Tensor) -> tf.Tensor:
  """1 / (1 + position of the first relevant item), 0 when none: `[Q]` float32."""
  hits = tf.cast(hits, tf.bool)
  first = tf.cast(tf.argmax(tf.cast(hits, tf.int32), axis=1), tf.float32)
  return tf.where(tf.reduce_any(hits, axis=1), 1.0 / (first + 1.0), 0.0)


def summarize(hits: tf.Tensor, map_cutoff: int = 200,
              precision_ks: Sequence[int] = (25, 100, 200)) -> dict[str, float]:
  """Means over queries of every list metric, keyed by explicit names.

  Args:
    hits: `[Q, L]` bool relevance of the ranked items, best first, over the whole gallery.
    map_cutoff: n of `map_<n>_within_top`.
    precision_ks: k of `precision_at_<k>`.

  Returns:
    {"map_all", "map_<n>_within_top", "precision_at_<k>"..., "mrr"} -> float.
  """
  hits = tf.convert_to_tensor(hits)
  means = {"map_all": average_precision_all(hits),
           f"map_{map_cutoff}_within_top": average_precision_within_top(hits, map_cutoff)}
  for k in precision_ks:
    means[f"precision_at_{k}"] = precision_at_k(hits, k)
  means["mrr"] = reciprocal_rank(hits)
  return {name: float(tf.reduce_mean(values).numpy()) for name, values in means.items()}
