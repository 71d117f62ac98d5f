"""Tensor helpers shared by the set-retrieval losses.

A model predicts one vector per category, `[batch, num_categories, dim]`, while
targets are padded item lists, `[batch, set_size, dim]`. These helpers line the
two up and compute cosine similarities in a way that stays finite on padding
(all-zero rows), so masked entries never leak NaN into gradients.
"""

from __future__ import annotations

import tensorflow as tf

# Masked logits use a large finite negative rather than -inf: -inf minus -inf
# in a softmax over an all-masked row is NaN, -1e9 minus -1e9 is 0.
MASKED_LOGIT = -1e9


def l2_normalize(x: tf.Tensor, axis: int = -1) -> tf.Tensor:
  """Scales `x` to unit L2 norm along `axis`; all-zero rows stay zero.

  `tf.math.l2_normalize` clamps the squared norm from below, so a zero
  (padding) vector gives a zero output and a finite gradient, unlike dividing
  by `tf.norm`, whose gradient at zero is NaN.

  Args:
    x: float tensor of any shape `[..., dim]`.
    axis: the axis to normalise over.

  Returns:
    A float32 tensor of the same shape as `x`.
  """
  return tf.math.l2_normalize(tf.cast(x, tf.float32), axis=axis, epsilon=1e-12)


def gather_category_predictions(predictions: tf.Tensor,
                                categories: tf.Tensor) -> tf.Tensor:
  """Picks, for every item, the prediction for that item's category.

  Category `c` (1-based) is row `c - 1` of `predictions`. Padding items
  (category 0) get a zero vector; their index is clamped to row 0 before the
  gather so it stays in range, and the result is zeroed afterwards so no
  gradient reaches row 0 through a padding slot.

  Args:
    predictions: `[batch, num_categories, dim]` one vector per category.
    categories: `[batch, set_size]` int, values in `0..num_categories`, where 0
      marks padding.

  Returns:
    `[batch, set_size, dim]` float32, the prediction for each item's category,
    zeros on padding.
  """
  predictions = tf.cast(predictions, tf.float32)
  categories = tf.cast(categories, tf.int32)
  is_item = categories > 0
  rows = tf.where(is_item, categories - 1, tf.zeros_like(categories))
  gathered = tf.gather(predictions, rows, batch_dims=1)
  return tf.where(is_item[..., tf.newaxis], gathered, tf.zeros_like(gathered))


def masked_softmax_cross_entropy(logits: tf.Tensor, allowed: tf.Tensor,
                                 positive: tf.Tensor) -> tf.Tensor:
  """Cross-entropy of a softmax restricted to the `allowed` entries.

  loss_i = logsumexp_{j: allowed_ij} logits_ij - sum_j positive_ij * logits_ij

  Disallowed entries are replaced by `MASKED_LOGIT` with `tf.where`, whose
  gradient to the replaced branch is exactly zero, so a row that is entirely
  masked gives a finite (meaningless) value that the caller must drop.

  Args:
    logits: `[..., num_candidates]` float32.
    allowed: `[..., num_candidates]` bool; should include the positive.
    positive: `[..., num_candidates]` bool, one True per row that matters.

  Returns:
    `[...]` float32 per-row loss.
  """
  masked = tf.where(allowed, logits, tf.fill(tf.shape(logits), MASKED_LOGIT))
  positive_logit = tf.reduce_sum(
      tf.where(positive, masked, tf.zeros_like(masked)), axis=-1)
  return tf.reduce_logsumexp(masked, axis=-1) - positive_logit
