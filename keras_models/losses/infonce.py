"""Category-wise in-batch InfoNCE for set-to-set retrieval.

Each target item is scored against every candidate item of its own category, so
negatives come from the other sets in the (global) batch. It replaces the
original per-category Python loop (REFERENCE.md section 2.3, pitfall 1) with one
`[items, candidates]` matmul and boolean masks, so it compiles into the train
step and runs unchanged under `tf.distribute.MirroredStrategy`.
"""

from __future__ import annotations

import tensorflow as tf

from keras_models.losses import set_ops


def category_infonce(
    predictions: tf.Tensor,
    target_features: tf.Tensor,
    target_categories: tf.Tensor,
    target_mask: tf.Tensor,
    temperature: float | tf.Tensor,
    candidate_features: tf.Tensor | None = None,
    candidate_categories: tf.Tensor | None = None,
    candidate_mask: tf.Tensor | None = None,
    batch_offset: int | tf.Tensor = 0,
) -> tuple[tf.Tensor, tf.Tensor]:
  """Sum of category-wise InfoNCE losses over target items, and their count.

  For a valid target item y in local set b, slot s, category c, with
  p = predictions[b, c - 1] and s(., .) the cosine similarity:

    loss_y = -log( exp(s(p, y) / tau) / sum_{y' in C(y)} exp(s(p, y') / tau) )

  where C(y) = {y} plus every valid candidate item of category c in a candidate
  set other than b + batch_offset. Other items of category c in y's own set are
  left out entirely: they belong to the same set, so they are not negatives, and
  only y is the positive. An item is counted only if category c has at least 2
  valid items among all candidates (same-set ones included, as in the original
  code); with exactly two in one set its loss is 0 but it still counts.

    loss_sum = sum_{counted y} loss_y,    num_valid = |{counted y}|

  The caller divides by num_valid summed over replicas. Under data parallelism
  pass the all-gathered targets as candidates and this replica's first global
  set index as `batch_offset`: replica sums and counts then add up to the
  single-device values, so gradients match for any number of replicas.

  Args:
    predictions: `[batch, num_categories, dim]` one vector per category;
      category c is row c - 1.
    target_features: `[batch, set_size, dim]` target items.
    target_categories: `[batch, set_size]` int in 1..num_categories, 0 = pad.
    target_mask: `[batch, set_size]` bool, True for real items.
    temperature: tau, a positive float or scalar tensor.
    candidate_features: `[num_candidate_sets, set_size, dim]`; defaults to the
      targets. Must contain the targets as sets batch_offset..batch_offset +
      batch - 1, with the same set_size.
    candidate_categories: `[num_candidate_sets, set_size]` int, as targets.
    candidate_mask: `[num_candidate_sets, set_size]` bool, as targets.
    batch_offset: index of local set 0 among the candidate sets.

  Returns:
    loss_sum: scalar float32, the sum of loss_y over counted items.
    num_valid: scalar float32, the number of counted items.

  Raises:
    ValueError: if only some of the three candidate tensors are given.
  """
  given = [t is not None for t in (candidate_features, candidate_categories, candidate_mask)]
  if any(given) and not all(given):
    raise ValueError(
        "category_infonce: candidate_features, candidate_categories and candidate_mask "
        "must be given together")
  if not any(given):
    candidate_features = target_features
    candidate_categories = target_categories
    candidate_mask = target_mask

  target_categories = tf.cast(target_categories, tf.int32)
  candidate_categories = tf.cast(candidate_categories, tf.int32)
  target_mask = tf.logical_and(tf.cast(target_mask, tf.bool), target_categories > 0)
  candidate_mask = tf.logical_and(
      tf.cast(candidate_mask, tf.bool), candidate_categories > 0)

  batch = tf.shape(target_categories)[0]
  set_size = tf.shape(target_categories)[1]
  num_candidate_sets = tf.shape(candidate_categories)[0]
  dim = tf.shape(target_features)[-1]
  num_items = batch * set_size
  num_candidates = num_candidate_sets * set_size

  query = set_ops.l2_normalize(
      set_ops.gather_category_predictions(predictions, target_categories))
  query = tf.reshape(query, [num_items, dim])
  keys = tf.reshape(set_ops.l2_normalize(candidate_features), [num_candidates, dim])
  logits = tf.matmul(query, keys, transpose_b=True) / tf.cast(temperature, tf.float32)

  item_category = tf.reshape(target_categories, [num_items, 1])
  item_set = tf.reshape(
      tf.repeat(tf.range(batch) + tf.cast(batch_offset, tf.int32), set_size), [num_items, 1])
  item_slot = tf.reshape(tf.tile(tf.range(set_size), [batch]), [num_items, 1])
  candidate_category = tf.reshape(candidate_categories, [1, num_candidates])
  candidate_set = tf.reshape(tf.repeat(tf.range(num_candidate_sets), set_size),
                             [1, num_candidates])
  candidate_slot = tf.reshape(tf.tile(tf.range(set_size), [num_candidate_sets]),
                              [1, num_candidates])
  candidate_valid = tf.reshape(candidate_mask, [1, num_candidates])

  # [num_items, num_candidates] relations between each target and each candidate.
  same_category = tf.logical_and(candidate_valid, candidate_category == item_category)
  same_set = candidate_set == item_set
  positive = tf.logical_and(same_set, candidate_slot == item_slot)
  allowed = tf.logical_or(
      tf.logical_and(same_category, tf.logical_not(same_set)), positive)

  category_count = tf.reduce_sum(tf.cast(same_category, tf.int32), axis=1)
  counted = tf.logical_and(tf.reshape(target_mask, [num_items]), category_count >= 2)

  per_item = set_ops.masked_softmax_cross_entropy(logits, allowed, positive)
  loss_sum = tf.reduce_sum(tf.where(counted, per_item, tf.zeros_like(per_item)))
  num_valid = tf.reduce_sum(tf.cast(counted, tf.float32))
  return loss_sum, num_valid
