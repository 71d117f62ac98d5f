"""Keras metrics that keep a running mean of a rank-based retrieval metric.

Ranks come from `streaming.ChunkedRanker` or `ranking.rank_counts`; these wrappers only
accumulate, so one evaluation loop can feed every metric the same
`update_state(ranks, gallery_sizes, sample_weight)`. Padding queries are masked with a
zero `sample_weight`.
"""

from typing import Any

import keras
import tensorflow as tf

from keras_models.metrics import ranking


class _RankMean(keras.metrics.Metric):
  """Weighted running mean: result = sum_i w_i * v(rank_i) / sum_i w_i (0 before data)."""

  def __init__(self, name: str, dtype: Any = None) -> None:
    super().__init__(name=name, dtype=dtype)
    self.total = self.add_variable(shape=(), initializer="zeros", name="total")
    self.count = self.add_variable(shape=(), initializer="zeros", name="count")

  def _values(self, ranks: tf.Tensor, gallery_sizes: tf.Tensor | None) -> tf.Tensor:
    raise NotImplementedError

  def update_state(
      self,
      ranks: tf.Tensor,
      gallery_sizes: tf.Tensor | None = None,
      sample_weight: tf.Tensor | None = None,
  ) -> None:
    """Adds a batch of queries.

    Args:
      ranks: `[num_queries]` int ranks (1 = best).
      gallery_sizes: `[num_queries]` int |G_c| of each query's category.
      sample_weight: optional `[num_queries]` float weights; 0 masks a query.
    """
    values = tf.reshape(tf.cast(self._values(ranks, gallery_sizes), self.dtype), [-1])
    if sample_weight is None:
      weights = tf.ones_like(values)
    else:
      weights = tf.broadcast_to(tf.cast(sample_weight, self.dtype), tf.shape(values))
    self.total.assign_add(tf.reduce_sum(weights * values))
    self.count.assign_add(tf.reduce_sum(weights))

  def result(self) -> tf.Tensor:
    return tf.math.divide_no_nan(
        tf.convert_to_tensor(self.total), tf.convert_to_tensor(self.count)
    )

  def reset_state(self) -> None:
    self.total.assign(0.0)
    self.count.assign(0.0)


class TopPercentAccuracy(_RankMean):
  """Fraction of queries whose positive is within the top K% of its category's gallery.

  hit = rank <= max(1, floor(K / 100 * |G_c|)); result = mean(hit).
  """

  def __init__(
      self, percent: float = 10.0, name: str | None = None, dtype: Any = None
  ) -> None:
    """Creates the metric.

    Args:
      percent: K, in percent.
      name: defaults to `retrieval/top_{K}_percent`.
      dtype: dtype of the state and result.
    """
    self.percent = float(percent)
    super().__init__(name=name or f"retrieval/top_{self.percent:g}_percent", dtype=dtype)

  def _values(self, ranks: tf.Tensor, gallery_sizes: tf.Tensor | None) -> tf.Tensor:
    if gallery_sizes is None:
      raise ValueError(f"{self.name}: update_state needs gallery_sizes")
    return ranking.top_percent_hits(ranks, gallery_sizes, self.percent)

  def get_config(self) -> dict[str, Any]:
    return {**super().get_config(), "percent": self.percent}


class MeanReciprocalRank(_RankMean):
  """MRR = mean(1 / rank). `gallery_sizes` is accepted and ignored."""

  def __init__(self, name: str = "retrieval/mrr", dtype: Any = None) -> None:
    super().__init__(name=name, dtype=dtype)

  def _values(self, ranks: tf.Tensor, gallery_sizes: tf.Tensor | None) -> tf.Tensor:
    return ranking.reciprocal_ranks(ranks)


class MeanPercentileRank(_RankMean):
  """mean((rank - 1) / max(|G_c| - 1, 1)): 0 = perfect, 0.5 = random ranking."""

  def __init__(
      self, name: str = "retrieval/mean_percentile_rank", dtype: Any = None
  ) -> None:
    super().__init__(name=name, dtype=dtype)

  def _values(self, ranks: tf.Tensor, gallery_sizes: tf.Tensor | None) -> tf.Tensor:
    if gallery_sizes is None:
      raise ValueError(f"{self.name}: update_state needs gallery_sizes")
    return ranking.percentile_ranks(ranks, gallery_sizes)
