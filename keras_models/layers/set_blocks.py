"""Post-norm transformer blocks for the item branch and the category-seed branch.

The two branches get separate blocks, hence separate variables. The original
code reused one self-attention layer and one LayerNorm for items and seeds
(REFERENCE.md section 4, pitfall 4), which ties two different distributions to
the same normalisation statistics and attention projections.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_models.layers import attention

_LAYER_NORM_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="setretrieval")
class FeedForward(keras.layers.Layer):
  """Position-wise two-layer MLP, `model_dim -> inner_dim (gelu) -> model_dim`."""

  def __init__(self, model_dim: int, inner_dim: int, **kwargs):
    super().__init__(**kwargs)
    self.model_dim = model_dim
    self.inner_dim = inner_dim
    self.inner = keras.layers.Dense(inner_dim, activation="gelu", name="inner")
    self.outer = keras.layers.Dense(model_dim, name="outer")

  def build(self, inputs_shape: tuple) -> None:
    self.inner.build(inputs_shape)
    self.outer.build((*inputs_shape[:-1], self.inner_dim))

  def call(self, inputs: tf.Tensor) -> tf.Tensor:
    """Maps `[batch, length, model_dim]` to `[batch, length, model_dim]`."""
    return self.outer(self.inner(inputs))

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(model_dim=self.model_dim, inner_dim=self.inner_dim)
    return config


def _norm(name: str) -> keras.layers.LayerNormalization:
  return keras.layers.LayerNormalization(epsilon=_LAYER_NORM_EPSILON, name=name)


@keras.saving.register_keras_serializable(package="setretrieval")
class ItemBlock(keras.layers.Layer):
  """Encodes the query items: masked self-attention, then a feed-forward.

  Each sub-layer is `x = LayerNorm(x + Dropout(sublayer(x)))`.
  """

  def __init__(self, model_dim: int, num_heads: int, dropout_rate: float = 0.1,
               **kwargs):
    super().__init__(**kwargs)
    self.model_dim = model_dim
    self.num_heads = num_heads
    self.dropout_rate = dropout_rate
    self.self_attention = attention.SelfAttention(model_dim, num_heads,
                                                  name="self_attention")
    self.attention_norm = _norm("attention_norm")
    self.feed_forward = FeedForward(model_dim, 2 * model_dim, name="feed_forward")
    self.feed_forward_norm = _norm("feed_forward_norm")
    self.dropout = keras.layers.Dropout(dropout_rate)

  def build(self, items_shape: tuple) -> None:
    for layer in (self.self_attention, self.attention_norm, self.feed_forward,
                  self.feed_forward_norm):
      layer.build(items_shape)

  def call(self, items: tf.Tensor, item_mask: tf.Tensor,
           training: bool | None = None) -> tf.Tensor:
    """Updates the item states.

    Args:
      items: `[batch, set_size, model_dim]`.
      item_mask: `[batch, set_size]` bool, True for real items.
      training: Enables dropout.

    Returns:
      `[batch, set_size, model_dim]`; rows of padded items are finite garbage.
    """
    attended = self.self_attention(items, key_mask=item_mask)
    items = self.attention_norm(items + self.dropout(attended, training=training))
    transformed = self.feed_forward(items)
    return self.feed_forward_norm(items + self.dropout(transformed, training=training))

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(model_dim=self.model_dim, num_heads=self.num_heads,
                  dropout_rate=self.dropout_rate)
    return config


@keras.saving.register_keras_serializable(package="setretrieval")
class SeedBlock(keras.layers.Layer):
  """Updates the K category seeds from the items, then among themselves.

  Sub-layers, each `x = LayerNorm(x + Dropout(sublayer(x)))`: cross-attention
  from the seeds to the unmasked items, self-attention over the seeds (all K
  seeds are always present, so no mask), feed-forward.
  """

  def __init__(self, model_dim: int, num_heads: int, dropout_rate: float = 0.1,
               **kwargs):
    super().__init__(**kwargs)
    self.model_dim = model_dim
    self.num_heads = num_heads
    self.dropout_rate = dropout_rate
    self.cross_attention = attention.CrossAttention(model_dim, num_heads,
                                                    name="cross_attention")
    self.cross_attention_norm = _norm("cross_attention_norm")
    self.self_attention = attention.SelfAttention(model_dim, num_heads,
                                                  name="self_attention")
    self.self_attention_norm = _norm("self_attention_norm")
    self.feed_forward = FeedForward(model_dim, 2 * model_dim, name="feed_forward")
    self.feed_forward_norm = _norm("feed_forward_norm")
    self.dropout = keras.layers.Dropout(dropout_rate)

  def build(self, seeds_shape: tuple, items_shape: tuple) -> None:
    self.cross_attention.build(seeds_shape, items_shape)
    for layer in (self.cross_attention_norm, self.self_attention, self.self_attention_norm,
                  self.feed_forward, self.feed_forward_norm):
      layer.build(seeds_shape)

  def call(self, seeds: tf.Tensor, items: tf.Tensor, item_mask: tf.Tensor,
           training: bool | None = None) -> tf.Tensor:
    """Updates the seed states.

    Args:
      seeds: `[batch, num_categories, model_dim]`.
      items: `[batch, set_size, model_dim]`, the item states of this layer.
      item_mask: `[batch, set_size]` bool, True for real items.
      training: Enables dropout.

    Returns:
      `[batch, num_categories, model_dim]`.
    """
    attended = self.cross_attention(seeds, items, key_mask=item_mask)
    seeds = self.cross_attention_norm(seeds + self.dropout(attended, training=training))
    attended = self.self_attention(seeds)
    seeds = self.self_attention_norm(seeds + self.dropout(attended, training=training))
    transformed = self.feed_forward(seeds)
    return self.feed_forward_norm(seeds + self.dropout(transformed, training=training))

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(model_dim=self.model_dim, num_heads=self.num_heads,
                  dropout_rate=self.dropout_rate)
    return config
