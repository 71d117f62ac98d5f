"""TPaNeg: target- and prediction-aware hard negatives for set retrieval.

Two halves. Offline, `build_negative_table` keeps for each training item the
indices of its most similar same-category items (a small int table instead of
the original pickle of feature lists, REFERENCE.md section 2.4). In the train
step, `gather_negatives` turns item indices into negative features on the
device, and `tpaneg_loss` filters them by the current curriculum threshold and
by the prediction, then applies a softmax cross-entropy.

Differences from the original, on purpose: same-set items are never negatives
(they are true matches of the same set), negatives are the most similar ones
rather than a random subset, and the threshold gamma is a tensor read at run
time, so the curriculum keeps moving inside a compiled train step.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_models.losses import set_ops


@tf.function(input_signature=[
    tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None], tf.int64),
    tf.TensorSpec([None], tf.int64),
    tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None], tf.int64),
    tf.TensorSpec([None], tf.int64),
    tf.TensorSpec([None, None], tf.float32),
    tf.TensorSpec([None, None], tf.int64),
    tf.TensorSpec([], tf.float32),
    tf.TensorSpec([], tf.int32),
])
def _fold_top_negatives(
    row_features: tf.Tensor, row_sets: tf.Tensor, row_ids: tf.Tensor,
    col_features: tf.Tensor, col_sets: tf.Tensor, col_ids: tf.Tensor,
    best_values: tf.Tensor, best_ids: tf.Tensor, min_similarity: tf.Tensor,
    num_negatives: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Merges one block of same-category candidates into each row's running top-k.

  Rows `[rows, dim]` and columns `[cols, dim]` are unit vectors of one
  category; `best_*` are `[rows, <= num_negatives]`. Running lists are
  concatenated before the new block, and `top_k` prefers the earlier position on
  ties, so the result equals a stable descending sort by similarity then index.
  """
  similarity = tf.matmul(row_features, col_features, transpose_b=True)
  eligible = ((similarity >= min_similarity)
              & (row_ids[:, None] != col_ids[None, :])
              & (row_sets[:, None] != col_sets[None, :]))
  similarity = tf.where(eligible, similarity, set_ops.MASKED_LOGIT)
  values = tf.concat([best_values, similarity], axis=1)
  ids = tf.concat([best_ids, tf.broadcast_to(col_ids[None, :], tf.shape(similarity))], axis=1)
  k = tf.minimum(num_negatives, tf.shape(values)[1])
  values, positions = tf.math.top_k(values, k=k)
  return values, tf.gather(ids, positions, batch_dims=1)


def build_negative_table(features: np.ndarray | tf.Tensor, categories: np.ndarray | tf.Tensor,
                         num_negatives: int, min_similarity: float,
                         set_ids: np.ndarray | tf.Tensor | None = None,
                         chunk_size: int = 4096) -> np.ndarray:
  """Indices of each item's hardest same-category negatives.

  For item i the candidates are items j != i of the same category, from a
  different set (when `set_ids` is given), with cos(f_i, f_j) >= min_similarity.
  The `num_negatives` most similar are kept in descending order (ties by lower
  index). Work is done per category in `chunk_size` x `chunk_size` blocks with a
  running top-k, so memory stays bounded for 1e5+ items.

  Args:
    features: `[num_items, dim]` float array or tensor.
    categories: `[num_items]` int category of each item.
    num_negatives: columns of the table, >= 1.
    min_similarity: smallest cosine similarity a negative may have.
    set_ids: `[num_items]` int set of each item, or None if every item is its
      own set.
    chunk_size: rows and columns per block, >= 1.

  Returns:
    `[num_items, num_negatives]` int32 item indices, padded with -1.

  Raises:
    ValueError: on bad shapes or arguments.
  """
  features = np.asarray(features, dtype=np.float32)
  categories = np.asarray(categories).astype(np.int64)
  if features.ndim != 2 or categories.shape != (features.shape[0],):
    raise ValueError(f"build_negative_table: features {features.shape} and categories "
                     f"{categories.shape} must be [N, D] and [N]")
  num_items = features.shape[0]
  if set_ids is None:
    set_ids = np.arange(num_items, dtype=np.int64)
  set_ids = np.asarray(set_ids).astype(np.int64)
  if set_ids.shape != (num_items,):
    raise ValueError(f"build_negative_table: set_ids {set_ids.shape} must be [{num_items}]")
  if num_negatives < 1 or chunk_size < 1:
    raise ValueError(f"build_negative_table: num_negatives={num_negatives} and "
                     f"chunk_size={chunk_size} must be >= 1")

  unit = set_ops.l2_normalize(tf.constant(features)).numpy()
  table = np.full((num_items, num_negatives), -1, dtype=np.int32)
  threshold = tf.constant(min_similarity, tf.float32)
  k = tf.constant(num_negatives, tf.int32)
  for category in np.unique(categories):
    members = np.flatnonzero(categories == category)
    for row_start in range(0, len(members), chunk_size):
      rows = members[row_start:row_start + chunk_size]
      best_values = tf.zeros([len(rows), 0], tf.float32)
      best_ids = tf.zeros([len(rows), 0], tf.int64)
      for col_start in range(0, len(members), chunk_size):
        cols = members[col_start:col_start + chunk_size]
        best_values, best_ids = _fold_top_negatives(
            unit[rows], set_ids[rows], rows, unit[cols], set_ids[cols], cols,
            best_values, best_ids, threshold, k)
      found = np.where(best_values.numpy() > set_ops.MASKED_LOGIT / 2, best_ids.numpy(), -1)
      table[rows, :found.shape[1]] = found
  return table


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


def tpaneg_loss(predictions: tf.Tensor, target_features: tf.Tensor,
                target_categories: tf.Tensor, target_mask: tf.Tensor,
                negative_features: tf.Tensor, negative_mask: tf.Tensor,
                gamma: float | tf.Tensor, epsilon: float, temperature: float
                ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Sum of TPaNeg cross-entropies, their count, and the kept negatives.

  For a valid target item y of category c with p = predictions[b, c - 1] and
  s(., .) the cosine similarity, a negative n is kept iff

    negative_mask(n)  and  s(y, n) >= gamma  and  s(p, n) >= s(p, y) - epsilon

  The selection is treated as a constant (no gradient flows through it). Then

    loss_y = -log( exp(s(p, y) / tau)
                   / (exp(s(p, y) / tau) + sum_{n kept} exp(s(p, n) / tau)) )

  and only items with at least one kept negative count:

    loss_sum = sum_{y: kept(y) >= 1} loss_y,   num_valid = |{y: kept(y) >= 1}|,
    kept_negatives_sum = sum_{valid y} kept(y).

  Args:
    predictions: `[batch, num_categories, dim]`; category c is row c - 1.
    target_features: `[batch, set_size, dim]`.
    target_categories: `[batch, set_size]` int in 1..num_categories, 0 = pad.
    target_mask: `[batch, set_size]` bool.
    negative_features: `[batch, set_size, num_negatives, dim]`.
    negative_mask: `[batch, set_size, num_negatives]` bool.
    gamma: target-aware threshold; pass a tensor (e.g. a `tf.Variable`) so a
      compiled step sees curriculum updates.
    epsilon: prediction-aware margin.
    temperature: tau > 0.

  Returns:
    loss_sum, num_valid and kept_negatives_sum, scalar float32 each.
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
  kept = tf.reduce_sum(tf.cast(keep, tf.float32), axis=-1)

  logits = tf.concat([positive_score[..., None], negative_score], axis=-1) / temperature
  positive = tf.concat([tf.ones_like(keep[..., :1]), tf.zeros_like(keep)], axis=-1)
  allowed = tf.concat([tf.ones_like(keep[..., :1]), keep], axis=-1)
  per_item = set_ops.masked_softmax_cross_entropy(logits, allowed, positive)

  counted = target_mask & (kept > 0)
  loss_sum = tf.reduce_sum(tf.where(counted, per_item, tf.zeros_like(per_item)))
  num_valid = tf.reduce_sum(tf.cast(counted, tf.float32))
  kept_negatives_sum = tf.reduce_sum(tf.where(target_mask, kept, tf.zeros_like(kept)))
  return loss_sum, num_valid, kept_negatives_sum


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
