"""Tests for the hand-written attention layers against a NumPy oracle."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_models.layers import attention

_DIM = 8
_HEADS = 2


def _dense(x: np.ndarray, layer) -> np.ndarray:
  kernel, bias = (w.numpy() for w in layer.weights)
  return x @ kernel + bias


def _oracle(queries: np.ndarray, keys: np.ndarray, values: np.ndarray,
            key_mask: np.ndarray | None, output_layer) -> np.ndarray:
  """Per-batch, per-head softmax attention over the unmasked keys only."""
  batch, num_queries, dim = queries.shape
  head_dim = dim // _HEADS
  context = np.zeros_like(queries)
  for b in range(batch):
    keep = np.ones(keys.shape[1], bool) if key_mask is None else key_mask[b]
    for h in range(_HEADS):
      cols = slice(h * head_dim, (h + 1) * head_dim)
      logits = queries[b, :, cols] @ keys[b][keep][:, cols].T / np.sqrt(head_dim)
      weights = np.exp(logits - logits.max(-1, keepdims=True))
      weights /= weights.sum(-1, keepdims=True)
      context[b, :, cols] = weights @ values[b][keep][:, cols]
  return _dense(context, output_layer)


class SelfAttentionTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.inputs = rng.standard_normal((2, 5, _DIM)).astype(np.float32)
    self.mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    self.layer = attention.SelfAttention(_DIM, _HEADS)

  def test_matches_numpy_oracle_with_mask(self):
    got = self.layer(self.inputs, key_mask=self.mask).numpy()
    q, k, v = np.split(_dense(self.inputs, self.layer.qkv_dense), 3, axis=-1)
    want = _oracle(q, k, v, self.mask, self.layer.output_dense)
    self.assertAllClose(got, want, atol=1e-5)

  def test_matches_numpy_oracle_without_mask(self):
    got = self.layer(self.inputs).numpy()
    q, k, v = np.split(_dense(self.inputs, self.layer.qkv_dense), 3, axis=-1)
    self.assertAllClose(got, _oracle(q, k, v, None, self.layer.output_dense), atol=1e-5)

  def test_masked_keys_do_not_leak(self):
    garbage = self.inputs.copy()
    garbage[0, 3:] = 1e3 * np.random.default_rng(1).standard_normal((2, _DIM))
    clean = self.layer(self.inputs, key_mask=self.mask)
    dirty = self.layer(garbage, key_mask=self.mask)
    self.assertAllClose(clean[0, :3], dirty[0, :3], atol=1e-5)
    self.assertAllClose(clean[1], dirty[1], atol=1e-5)

  def test_fully_masked_row_is_finite_with_finite_gradients(self):
    mask = np.zeros((2, 5), bool)
    inputs = tf.constant(self.inputs)
    with tf.GradientTape() as tape:
      tape.watch(inputs)
      outputs = self.layer(inputs, key_mask=mask)
      loss = tf.reduce_sum(outputs**2)
    grads = tape.gradient(loss, [inputs] + self.layer.trainable_variables)
    self.assertTrue(np.isfinite(outputs.numpy()).all())
    for grad in grads:
      self.assertTrue(np.isfinite(grad.numpy()).all())

  def test_rejects_indivisible_heads(self):
    with self.assertRaisesRegex(ValueError, "not divisible by num_heads 3"):
      attention.SelfAttention(_DIM, 3)


class CrossAttentionTest(tf.test.TestCase):

  def test_matches_numpy_oracle_with_mask(self):
    rng = np.random.default_rng(2)
    queries = rng.standard_normal((2, 3, _DIM)).astype(np.float32)
    memory = rng.standard_normal((2, 4, 6)).astype(np.float32)
    mask = np.array([[1, 0, 1, 0], [1, 1, 1, 1]], bool)
    layer = attention.CrossAttention(_DIM, _HEADS)
    got = layer(queries, memory, key_mask=mask).numpy()
    k, v = np.split(_dense(memory, layer.kv_dense), 2, axis=-1)
    want = _oracle(_dense(queries, layer.q_dense), k, v, mask, layer.output_dense)
    self.assertEqual(got.shape, (2, 3, _DIM))
    self.assertAllClose(got, want, atol=1e-5)


if __name__ == "__main__":
  tf.test.main()
