"""Metrics of ranked lists with class-level relevance, as the ICFRR code reports them.

"mAP" means something different in every neighbouring system, so each variant here has
its own name and states its denominator (R = relevant items in the whole gallery):

- `map_all`: full AP, (1 / R) * sum_i P@i * rel_i over the whole list (torchmetrics AP).
- `map_all_truncated`: the same sum over a list of the top L items only, still divided by
  R of the whole gallery: relevant items beyond L count as never retrieved, so it is a
  lower bound of `map_all` and equal to it when L covers the gallery.
- `map_200_within_top`: AP of the top-200 list alone, whose denominator is the number of
  relevant items *within the top 200* (ICFRR's mAP@200; 0 when none is there). This is
  not our core `mAP@k`, whose denominator is min(R, k).
- `precision_at_k`: (relevant in top-k) / k.
- `reciprocal_rank`: 1 / position of the first relevant item (0 when none).

Inputs are `hits` [Q, L]: the relevance of the item at each position of each ranked list.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from keras_models.metrics import ranking


def average_precision_all(hits: tf.Tensor) -> tf.Tensor:
  """Full AP over the list: `[Q, L]` bool -> `[Q]` float32 (R = relevant in the list)."""
  hits = tf.cast(hits, tf.int32)
  return ranking.average_precision_at_k(hits, tf.reduce_sum(hits, axis=1))


def average_precision_truncated(hits: tf.Tensor, relevant_counts: tf.Tensor) -> tf.Tensor:
  """(1 / R) * sum_{i <= L} P@i * rel_i: `[Q, L]` bool, `[Q]` R -> `[Q]` float32, 0 if R = 0."""
  hits = tf.cast(hits, tf.float32)
  positions = tf.cast(tf.range(1, tf.shape(hits)[1] + 1), tf.float32)
  precision = tf.cumsum(hits, axis=1) / positions
  return tf.math.divide_no_nan(tf.reduce_sum(precision * hits, axis=1),
                               tf.cast(relevant_counts, tf.float32))


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


def per_query(hits: tf.Tensor, map_cutoff: int = 200,
              precision_ks: Sequence[int] = (25, 100, 200),
              relevant_counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """Every list metric of every query, keyed by explicit names.

  Args:
    hits: `[Q, L]` bool relevance of the ranked items, best first.
    map_cutoff: n of `map_<n>_within_top`.
    precision_ks: k of `precision_at_<k>`.
    relevant_counts: `[Q]` R of each query when the list is the top L of a larger gallery;
      None when the list is the whole gallery (R = relevant items in the list).

  Returns:
    {"map_all" (or "map_all_truncated" with relevant_counts), "map_<n>_within_top",
    "precision_at_<k>"..., "mrr"} -> `[Q]` float32.
  """
  hits = tf.convert_to_tensor(hits)
  if relevant_counts is None:
    values = {"map_all": average_precision_all(hits)}
  else:
    values = {"map_all_truncated": average_precision_truncated(hits, relevant_counts)}
  values[f"map_{map_cutoff}_within_top"] = average_precision_within_top(hits, map_cutoff)
  for k in precision_ks:
    values[f"precision_at_{k}"] = precision_at_k(hits, k)
  values["mrr"] = reciprocal_rank(hits)
  return {name: value.numpy() for name, value in values.items()}


def summarize(hits: tf.Tensor, map_cutoff: int = 200,
              precision_ks: Sequence[int] = (25, 100, 200)) -> dict[str, float]:
  """Means over queries of `per_query` on lists that cover the whole gallery.

  Args:
    hits: `[Q, L]` bool relevance of the ranked items, best first, over the whole gallery.
    map_cutoff: n of `map_<n>_within_top`.
    precision_ks: k of `precision_at_<k>`.

  Returns:
    {"map_all", "map_<n>_within_top", "precision_at_<k>"..., "mrr"} -> float.
  """
  return {name: float(np.mean(values)) for name, values in
          per_query(hits, map_cutoff, precision_ks).items()}
