"""Hand-written multi-head attention with key padding masks.

Keras' own `MultiHeadAttention` is avoided on purpose: its `EinsumDense`
projections make the backward pass about 2x slower on CPU than fused `Dense`
projections followed by `tf.matmul` (see PLATFORM.md). Padded keys are masked
with a large finite negative rather than `-inf`, so a query whose keys are all
padding (an empty set) gets a uniform, finite attention distribution instead of
NaN values and gradients.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# Finite on purpose: `-inf` turns a fully masked row into NaN after softmax.
_MASK_LOGIT = -1e9


class _MultiHeadAttentionBase(keras.layers.Layer):
  """Shared head splitting, masked scaled dot product and output projection."""

  def __init__(self, model_dim: int, num_heads: int, **kwargs):
    super().__init__(**kwargs)
    if model_dim % num_heads:
      raise ValueError(
          f"{self.name}: model_dim {model_dim} is not divisible by num_heads"
          f" {num_heads}")
    self.model_dim = model_dim
    self.num_heads = num_heads
    self.head_dim = model_dim // num_heads
    self.output_dense = keras.layers.Dense(model_dim, name="output")

  def _build_output(self, queries_shape: tuple) -> None:
    self.output_dense.build((*queries_shape[:-1], self.model_dim))

  def _split_heads(self, x: tf.Tensor) -> tf.Tensor:
    """Reshapes `[batch, length, model_dim]` to `[batch, heads, length, head_dim]`."""
    shape = tf.shape(x)
    x = tf.reshape(x, [shape[0], shape[1], self.num_heads, self.head_dim])
    return tf.transpose(x, [0, 2, 1, 3])

  def _attend(self, queries: tf.Tensor, keys: tf.Tensor, values: tf.Tensor,
              key_mask: tf.Tensor | None) -> tf.Tensor:
    """Masked scaled dot-product attention over already projected inputs.

    Args:
      queries: `[batch, num_queries, model_dim]`.
      keys: `[batch, num_keys, model_dim]`.
      values: `[batch, num_keys, model_dim]`.
      key_mask: `[batch, num_keys]` bool, True for real keys; None attends to
        every key.

    Returns:
      `[batch, num_queries, model_dim]` after the output projection.
    """
    q = self._split_heads(queries)
    k = self._split_heads(keys)
    v = self._split_heads(values)
    scale = tf.cast(self.head_dim, q.dtype)**-0.5
    # Softmax in float32 so the mask constant stays finite under float16.
    logits = tf.cast(tf.matmul(q * scale, k, transpose_b=True), tf.float32)
    if key_mask is not None:
      key_mask = tf.cast(key_mask, tf.bool)[:, tf.newaxis, tf.newaxis, :]
      logits = tf.where(key_mask, logits, _MASK_LOGIT)
    weights = tf.cast(tf.nn.softmax(logits, axis=-1), v.dtype)
    context = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])
    shape = tf.shape(context)
    context = tf.reshape(context, [shape[0], shape[1], self.model_dim])
    return self.output_dense(context)

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(model_dim=self.model_dim, num_heads=self.num_heads)
    return config


@keras.saving.register_keras_serializable(package="setretrieval")
class SelfAttention(_MultiHeadAttentionBase):
  """Multi-head self-attention with one fused Q/K/V projection.

  Outputs at masked query positions are finite but meaningless; callers must
  keep masking those positions as keys downstream.
  """

  def __init__(self, model_dim: int, num_heads: int, **kwargs):
    super().__init__(model_dim, num_heads, **kwargs)
    self.qkv_dense = keras.layers.Dense(3 * model_dim, name="qkv")

  def build(self, inputs_shape: tuple) -> None:
    # Explicit builds spare Keras a symbolic trace of `call` on first use,
    # which costs seconds per model on CPU.
    self.qkv_dense.build(inputs_shape)
    self._build_output(inputs_shape)

  def call(self, inputs: tf.Tensor,
           key_mask: tf.Tensor | None = None) -> tf.Tensor:
    """Attends every position to every unmasked position of the same set.

    Args:
      inputs: `[batch, length, model_dim]`.
      key_mask: `[batch, length]` bool, True for real items; None for none.

    Returns:
      `[batch, length, model_dim]`.
    """
    queries, keys, values = tf.split(self.qkv_dense(inputs), 3, axis=-1)
    return self._attend(queries, keys, values, key_mask)


@keras.saving.register_keras_serializable(package="setretrieval")
class CrossAttention(_MultiHeadAttentionBase):
  """Multi-head attention from one sequence to another (fused K/V projection)."""

  def __init__(self, model_dim: int, num_heads: int, **kwargs):
    super().__init__(model_dim, num_heads, **kwargs)
    self.q_dense = keras.layers.Dense(model_dim, name="q")
    self.kv_dense = keras.layers.Dense(2 * model_dim, name="kv")

  def build(self, queries_shape: tuple, memory_shape: tuple) -> None:
    self.q_dense.build(queries_shape)
    self.kv_dense.build(memory_shape)
    self._build_output(queries_shape)

  def call(self, queries: tf.Tensor, memory: tf.Tensor,
           key_mask: tf.Tensor | None = None) -> tf.Tensor:
    """Attends each query to the unmasked memory positions.

    Args:
      queries: `[batch, num_queries, model_dim]`.
      memory: `[batch, num_keys, memory_dim]`, used as keys and values.
      key_mask: `[batch, num_keys]` bool, True for real memory positions.

    Returns:
      `[batch, num_queries, model_dim]`.
    """
    keys, values = tf.split(self.kv_dense(memory), 2, axis=-1)
    return self._attend(self.q_dense(queries), keys, values, key_mask)
