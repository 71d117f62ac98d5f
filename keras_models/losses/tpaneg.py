"""TPaNeg: target- and prediction-aware hard negatives for set retrieval.

Two halves. Offline, `negative_table.build_negative_table` lists each training item's
candidate negatives. In the train step, `gather_negatives` turns item indices into
negative features on the device, and `tpaneg_logits` filters them by the current
curriculum threshold and by the prediction; `tpaneg_loss` applies a softmax
cross-entropy over the positive and the kept negatives ("replace": the paper's loss),
while the trainer's "add" mode puts the kept negatives beside the in-batch ones.

Differences from the original, on purpose: items sharing any set with the target are
never negatives (they are true matches), and the threshold gamma is a tensor read at run
time, so the curriculum keeps moving inside a compiled train step.
"""

from __future__ import annotations

import typing

import tensorflow as tf

from keras_models.losses import set_ops


def gather_negatives(item_index: tf.Tensor, negative_table: tf.Tensor,
                     item_features: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Looks up the negatives of every target item inside the graph.

  Keep `negative_table` and `item_features` as device tensors or variables:
  passing NumPy arrays into a traced function embeds them as constants.

  Args:
    item_index: `[batch, set_size]` int32 rows in the item table, -1 = pad.
    negative_table: `[num_items, num_negatives]` int32 rows, -1 = none.
    item_features: `[num_items, dim]` float features of the item table.

  Returns:
    negative_features: `[batch, set_size, num_negatives, dim]` float32, zeros
      where there is no negative.
    negative_mask: `[batch, set_size, num_negatives]` bool.
  """
  item_index = tf.cast(item_index, tf.int32)
  negative_table = tf.cast(negative_table, tf.int32)
  has_item = item_index >= 0
  rows = tf.gather(negative_table, tf.maximum(item_index, 0))
  rows = tf.where(has_item[..., None], rows, -1)
  negative_mask = rows >= 0
  negative_features = tf.gather(tf.cast(item_features, tf.float32), tf.maximum(rows, 0))
  negative_features = tf.where(negative_mask[..., None], negative_features, 0.0)
  return negative_features, negative_mask


class HardNegativeLogits(typing.NamedTuple):
  """Scores of each target against its positive and its table negatives.

  Attributes:
    positive: `[batch, set_size]` float32, s(p, y) / tau.
    negatives: `[batch, set_size, num_negatives]` float32, s(p, n) / tau.
    keep: `[batch, set_size, num_negatives]` bool, negatives that pass both filters.
    valid: `[batch, set_size]` bool, real target items.
  """

  positive: tf.Tensor
  negatives: tf.Tensor
  keep: tf.Tensor
  valid: tf.Tensor


def tpaneg_logits(predictions: tf.Tensor, target_features: tf.Tensor,
                  target_categories: tf.Tensor, target_mask: tf.Tensor,
                  negative_features: tf.Tensor, negative_mask: tf.Tensor,
                  gamma: float | tf.Tensor, epsilon: float, temperature: float
                  ) -> HardNegativeLogits:
  """Logits of TPaNeg and which negatives survive its two filters.

  For a valid target item y of category c with p = predictions[b, c - 1] and
  s(., .) the cosine similarity, a negative n is kept iff

    negative_mask(n)  and  s(y, n) >= gamma  and  s(p, n) >= s(p, y) - epsilon

  The selection is treated as a constant (no gradient flows through it).

  Args:
    predictions: `[batch, num_categories, dim]`; category c is row c - 1.
    target_features: `[batch, set_size, dim]`.
    target_categories: `[batch, set_size]` int in 1..num_categories, 0 = pad.
    target_mask: `[batch, set_size]` bool.
    negative_features: `[batch, set_size, num_negatives, dim]`.
    negative_mask: `[batch, set_size, num_negatives]` bool.
    gamma: target-aware threshold; pass a tensor (e.g. a `tf.Variable`) so a
      compiled step sees curriculum updates.
    epsilon: prediction-aware margin, in cosine units.
    temperature: tau > 0.

  Returns:
    A `HardNegativeLogits`.
  """
  target_categories = tf.cast(target_categories, tf.int32)
  target_mask = tf.logical_and(tf.cast(target_mask, tf.bool), target_categories > 0)
  query = set_ops.l2_normalize(
      set_ops.gather_category_predictions(predictions, target_categories))
  target = set_ops.l2_normalize(target_features)
  negatives = set_ops.l2_normalize(negative_features)

  positive_score = tf.reduce_sum(query * target, axis=-1)
  negative_score = tf.einsum("bsd,bsnd->bsn", query, negatives)
  target_score = tf.einsum("bsd,bsnd->bsn", target, negatives)

  # Comparisons carry no gradient anyway; stop_gradient documents that the
  # prediction-aware selection is a constant of the step, as in the paper.
  gamma = tf.cast(gamma, tf.float32)
  keep = (tf.cast(negative_mask, tf.bool) & target_mask[..., None]
          & (target_score >= gamma)
          & (tf.stop_gradient(negative_score)
             >= tf.stop_gradient(positive_score)[..., None] - epsilon))
  return HardNegativeLogits(positive_score / temperature, negative_score / temperature, keep,
                            target_mask)


def tpaneg_loss(predictions: tf.Tensor, target_features: tf.Tensor,
                target_categories: tf.Tensor, target_mask: tf.Tensor,
                negative_features: tf.Tensor, negative_mask: tf.Tensor,
                gamma: float | tf.Tensor, epsilon: float, temperature: float
                ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Sum of TPaNeg cross-entropies, their count, and the kept negatives.

  With the kept negatives of `tpaneg_logits`,

    loss_y = -log( exp(s(p, y) / tau)
                   / (exp(s(p, y) / tau) + sum_{n kept} exp(s(p, n) / tau)) )

  and only items with at least one kept negative count:

    loss_sum = sum_{y: kept(y) >= 1} loss_y,   num_valid = |{y: kept(y) >= 1}|,
    kept_negatives_sum = sum_{valid y} kept(y).

  Args: as `tpaneg_logits`.

  Returns:
    loss_sum, num_valid and kept_negatives_sum, scalar float32 each.
  """
  parts = tpaneg_logits(predictions, target_features, target_categories, target_mask,
                        negative_features, negative_mask, gamma, epsilon, temperature)
  kept = tf.reduce_sum(tf.cast(parts.keep, tf.float32), axis=-1)
  logits, allowed, positive, counted = replace_mode_rows(parts)
  per_item = set_ops.masked_softmax_cross_entropy(logits, allowed, positive)
  loss_sum = tf.reduce_sum(tf.where(counted, per_item, tf.zeros_like(per_item)))
  num_valid = tf.reduce_sum(tf.cast(counted, tf.float32))
  kept_negatives_sum = tf.reduce_sum(tf.where(parts.valid, kept, tf.zeros_like(kept)))
  return loss_sum, num_valid, kept_negatives_sum


def replace_mode_rows(parts: HardNegativeLogits
                      ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
  """(logits, allowed, positive, counted) of the paper's softmax over [positive, kept].

  Rows are `[batch, set_size, 1 + num_negatives]`, the positive first; a target counts
  only with at least one kept negative.
  """
  keep = parts.keep
  logits = tf.concat([parts.positive[..., None], parts.negatives], axis=-1)
  positive = tf.concat([tf.ones_like(keep[..., :1]), tf.zeros_like(keep)], axis=-1)
  allowed = tf.concat([tf.ones_like(keep[..., :1]), keep], axis=-1)
  return logits, allowed, positive, parts.valid & tf.reduce_any(keep, axis=-1)


def curriculum_gamma(epoch: int | tf.Tensor, gamma_start: float, gamma_end: float,
                     curriculum_epochs: int) -> tf.Tensor:
  """Target-aware threshold for a 0-based epoch, a pure function of `epoch`.

    gamma(e) = gamma_start + (gamma_end - gamma_start) * min(e / E_c, 1)

  with E_c = curriculum_epochs (e < 0 is treated as 0); E_c <= 0 gives
  gamma_end from the start. Pass
  the epoch as a tensor (e.g. a `tf.Variable`) when calling it from a compiled
  function, so the value follows the variable rather than the trace.

  Args:
    epoch: 0-based epoch, Python number or scalar tensor.
    gamma_start: gamma at epoch 0.
    gamma_end: gamma from epoch `curriculum_epochs` on.
    curriculum_epochs: length of the linear ramp in epochs.

  Returns:
    Scalar float32 tensor.
  """
  if curriculum_epochs <= 0:
    return tf.constant(gamma_end, tf.float32)
  progress = tf.clip_by_value(tf.cast(epoch, tf.float32) / float(curriculum_epochs), 0.0, 1.0)
  return gamma_start + (gamma_end - gamma_start) * progress
