"""Trainer-level TPaNeg modes, accidental hits and the cycle input, against NumPy oracles."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_models import configs
from keras_models import retrieval_trainer

TAU = 0.5
EPSILON = 0.3
GAMMA = -0.2


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class RecordingEncoder(keras.Model):
  """Returns fixed predictions and records the features of every call."""

  def __init__(self, predictions):
    super().__init__()
    self.predictions = predictions
    self.seen = []
    self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

  def call(self, inputs, training=False):
    self.seen.append(np.asarray(inputs["features"]))
    return self.predictions * self.scale


def make_batch(seed):
  """Four sets of three target slots over 8 distinct items; item 2 recurs in set 2."""
  rng = np.random.default_rng(seed)
  item_table = rng.normal(size=(8, 4)).astype(np.float32)
  item_index = np.array([[0, 1, 2], [3, 4, -1], [2, 5, 6], [7, -1, -1]], np.int32)
  categories = np.array([[1, 2, 1], [1, 2, 0], [1, 1, 2], [2, 0, 0]], np.int32)
  mask = item_index >= 0
  features = np.where(mask[..., None], item_table[np.maximum(item_index, 0)], 0.0)
  predictions = rng.normal(size=(4, 2, 4)).astype(np.float32)
  # Negative table: each item's 3 candidate rows of the item table (-1 = none).
  table = np.array([[2, 5, 6], [4, 7, -1], [0, 6, -1], [0, 5, 2], [1, 7, -1], [0, 2, 6],
                    [0, 2, 5], [1, 4, -1]], np.int32)
  batch = {"target_features": features.astype(np.float32), "target_categories": categories,
           "target_mask": mask, "target_item_index": item_index}
  return predictions, batch, item_table, table


def reference_term(predictions, batch, item_table, table, mode):
  """Per-item loop: in-batch candidates (add mode) plus kept hard negatives."""
  features, categories = batch["target_features"], batch["target_categories"]
  mask, item_index = batch["target_mask"], batch["target_item_index"]
  loss_sum, count, starved = 0.0, 0, 0
  for b, s in zip(*np.nonzero(mask)):
    c = categories[b, s]
    p, y = _unit(predictions[b, c - 1]), _unit(features[b, s])
    positive = p @ y
    hard = [p @ _unit(item_table[n]) for n in table[item_index[b, s]] if n >= 0
            and _unit(item_table[n]) @ y >= GAMMA
            and p @ _unit(item_table[n]) >= positive - EPSILON]
    starved += not hard
    same_category = [(m, t) for m, t in zip(*np.nonzero(mask)) if categories[m, t] == c]
    in_batch = [p @ _unit(features[m, t]) for m, t in same_category
                if m != b and item_index[m, t] != item_index[b, s]]
    if mode == "replace":
      negatives, counted = hard, bool(hard)
    else:
      negatives, counted = in_batch + hard, bool(in_batch) or bool(hard)
    if not counted:
      continue
    logits = np.array([positive] + negatives) / TAU
    loss_sum += np.log(np.exp(logits).sum()) - positive / TAU
    count += 1
  return loss_sum, count, starved


def trainer_for(predictions, item_table, table, **loss_flags):
  loss = configs.LossConfig(temperature=TAU, use_tpaneg=True, tpaneg_epsilon=EPSILON,
                            tpaneg_gamma_start=GAMMA, tpaneg_gamma_end=GAMMA, **loss_flags)
  tables = retrieval_trainer.NegativeTables(table, item_table)
  return retrieval_trainer.SetRetrievalTrainer(RecordingEncoder(predictions), loss, tables)


class TpanegModesTest(tf.test.TestCase):

  def test_add_and_replace_match_the_oracle(self):
    for seed in range(3):
      predictions, batch, item_table, table = make_batch(seed)
      for mode in ("add", "replace"):
        trainer = trainer_for(predictions, item_table, table, tpaneg_mode=mode)
        term = trainer._term(tf.constant(predictions), batch, "target")
        want_sum, want_count, want_starved = reference_term(predictions, batch, item_table,
                                                            table, mode)
        self.assertAllClose(term.loss_sum, want_sum, rtol=1e-5)
        self.assertEqual(term.count, want_count)
        self.assertEqual(term.starved, want_starved)

  def test_add_mode_differs_from_in_batch_alone(self):
    predictions, batch, item_table, table = make_batch(0)
    add = trainer_for(predictions, item_table, table, tpaneg_mode="add")
    plain = trainer_for(predictions, item_table, np.full_like(table, -1), tpaneg_mode="add")
    with_hard = add._term(tf.constant(predictions), batch, "target")
    without = plain._term(tf.constant(predictions), batch, "target")
    self.assertGreater(float(with_hard.loss_sum), float(without.loss_sum))
    # With an empty table the add mode is the in-batch loss with accidental hits removed.
    want_sum, _, _ = reference_term(predictions, batch, item_table, np.full_like(table, -1),
                                    "add")
    self.assertAllClose(without.loss_sum, want_sum, rtol=1e-5)


class CycleInputTest(tf.test.TestCase):

  def test_cycle_normalize_feeds_unit_vectors_back(self):
    predictions, batch, _, _ = make_batch(1)
    batch = {**batch, **{k.replace("target", "query"): v for k, v in batch.items()}}
    for normalize in (False, True):
      loss = configs.LossConfig(temperature=TAU, use_cycle_loss=True,
                                cycle_normalize=normalize)
      encoder = RecordingEncoder(3.0 * predictions)
      trainer = retrieval_trainer.SetRetrievalTrainer(encoder, loss)
      trainer._loss_terms(batch, training=False)
      cycle_inputs = encoder.seen[2:]
      self.assertLen(cycle_inputs, 2)
      norms = np.linalg.norm(cycle_inputs[0], axis=-1)[batch["target_mask"]]
      if normalize:
        self.assertAllClose(norms, np.ones_like(norms), atol=1e-5)
      else:
        want = np.linalg.norm(3.0 * predictions, axis=-1)[
            np.nonzero(batch["target_mask"])[0],
            batch["target_categories"][batch["target_mask"]] - 1]
        self.assertAllClose(norms, want, rtol=1e-5)


if __name__ == "__main__":
  tf.test.main()
