"""Category-wise in-batch InfoNCE for set-to-set retrieval.

Each target item is scored against every candidate item of its own category, so
negatives come from the other sets in the (global) batch. It replaces the
original per-category Python loop (REFERENCE.md section 2.3, pitfall 1) with one
`[items, candidates]` matmul and boolean masks, so it compiles into the train
step and runs unchanged under `tf.distribute.MirroredStrategy`.

Items recur across sets (90% of IKEA's train items sit in two or more rooms), so
the same item can be both a target's positive and, from another set of the batch,
one of its negatives. Given item indices, those accidental hits are masked (TFRS'
`remove_accidental_hits`).
"""

from __future__ import annotations

import typing

import tensorflow as tf

from keras_models.losses import set_ops


class CategoryLogits(typing.NamedTuple):
  """Per-target logits over the candidates, with the masks that define the loss.

  Attributes:
    logits: `[num_items, num_candidates]` float32, s(p, candidate) / tau.
    allowed: `[num_items, num_candidates]` bool, the softmax's support.
    positive: `[num_items, num_candidates]` bool, one True per valid item.
    counted: `[num_items]` bool, items that enter the loss: valid targets with at
      least one allowed negative.
  """

  logits: tf.Tensor
  allowed: tf.Tensor
  positive: tf.Tensor
  counted: tf.Tensor


def category_logits(
    predictions: tf.Tensor,
    target_features: tf.Tensor,
    target_categories: tf.Tensor,
    target_mask: tf.Tensor,
    temperature: float | tf.Tensor,
    candidate_features: tf.Tensor | None = None,
    candidate_categories: tf.Tensor | None = None,
    candidate_mask: tf.Tensor | None = None,
    batch_offset: int | tf.Tensor = 0,
    target_item_index: tf.Tensor | None = None,
    candidate_item_index: tf.Tensor | None = None,
) -> CategoryLogits:
  """Logits and masks of the category-wise in-batch InfoNCE (see `category_infonce`).

  Targets are flattened to `num_items = batch * set_size` rows and candidates to
  `num_candidates = num_candidate_sets * set_size` columns. Arguments are those of
  `category_infonce`.

  Raises:
    ValueError: if only some of the candidate tensors are given.
  """
  given = [t is not None for t in (candidate_features, candidate_categories, candidate_mask)]
  if any(given) and not all(given):
    raise ValueError(
        "category_infonce: candidate_features, candidate_categories and candidate_mask "
        "must be given together")
  if any(given) and (target_item_index is None) != (candidate_item_index is None):
    raise ValueError("category_infonce: with candidates, give target_item_index and "
                     "candidate_item_index together")
  if not any(given):
    candidate_features = target_features
    candidate_categories = target_categories
    candidate_mask = target_mask
    candidate_item_index = target_item_index

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
  negative = tf.logical_and(same_category, tf.logical_not(same_set))
  if target_item_index is not None:
    item_id = tf.reshape(tf.cast(target_item_index, tf.int32), [num_items, 1])
    candidate_id = tf.reshape(tf.cast(candidate_item_index, tf.int32), [1, num_candidates])
    accidental = tf.logical_and(item_id == candidate_id, item_id >= 0)
    negative = tf.logical_and(negative, tf.logical_not(accidental))
  allowed = tf.logical_or(negative, positive)

  # A target with no negative has loss 0 and no gradient; counting it would only shrink
  # the step by the batch's share of such targets.
  counted = tf.logical_and(tf.reshape(target_mask, [num_items]),
                           tf.reduce_any(negative, axis=1))
  return CategoryLogits(logits, allowed, positive, counted)


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
    target_item_index: tf.Tensor | None = None,
    candidate_item_index: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
  """Sum of category-wise InfoNCE losses over target items, and their count.

  For a valid target item y in local set b, slot s, category c, with
  p = predictions[b, c - 1] and s(., .) the cosine similarity:

    loss_y = -log( exp(s(p, y) / tau) / sum_{y' in C(y)} exp(s(p, y') / tau) )

  where C(y) = {y} plus every valid candidate item of category c in a candidate
  set other than b + batch_offset and, when item indices are given, with an item
  index other than y's (the same item met in another set is not a negative).
  Other items of category c in y's own set are
  left out entirely: they belong to the same set, so they are not negatives, and
  only y is the positive. An item is counted only if C(y) holds at least one
  negative (C(y) != {y}): a target whose same-category candidates are all in its
  own set, or all its own item met elsewhere, has loss 0 and no gradient, and
  counting it would only dilute the mean. This is the rule of the original's
  TPaNeg loss (mean over items with >= 1 negative, REFERENCE.md 2.3); the original's
  in-batch loss counted every item of a category with >= 2 items in the batch,
  negatives or not.

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
    target_item_index: `[batch, set_size]` int item identity (row of the item
      table, -1 = pad), or None to keep accidental hits.
    candidate_item_index: `[num_candidate_sets, set_size]` int, as targets;
      needed with `target_item_index` when candidates are given.

  Returns:
    loss_sum: scalar float32, the sum of loss_y over counted items.
    num_valid: scalar float32, the number of counted items.

  Raises:
    ValueError: if only some of the candidate tensors are given.
  """
  parts = category_logits(
      predictions, target_features, target_categories, target_mask, temperature,
      candidate_features, candidate_categories, candidate_mask, batch_offset,
      target_item_index, candidate_item_index)
  per_item = set_ops.masked_softmax_cross_entropy(parts.logits, parts.allowed, parts.positive)
  loss_sum = tf.reduce_sum(tf.where(parts.counted, per_item, tf.zeros_like(per_item)))
  num_valid = tf.reduce_sum(tf.cast(parts.counted, tf.float32))
  return loss_sum, num_valid
