"""Tests for the category set transformer."""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from keras_models.models import cst

_K = 4
_D = 8
_CONFIG = dict(num_categories=_K, feature_dim=_D, hidden_dim=16, num_layers=2, num_heads=2)


def _padded(features: np.ndarray, categories: np.ndarray, set_size: int,
            seed: int = 0) -> dict[str, np.ndarray]:
  """Pads one set `[n, D]` to a batch of one `[1, set_size, D]` with garbage rows."""
  rng = np.random.default_rng(seed)
  n = len(features)
  padded_features = 100.0 * rng.standard_normal((1, set_size, _D)).astype(np.float32)
  padded_features[0, :n] = features
  padded_categories = rng.integers(0, _K + 1, (1, set_size)).astype(np.int32)
  padded_categories[0, :n] = categories
  mask = np.zeros((1, set_size), bool)
  mask[0, :n] = True
  return {cst.FEATURES: padded_features, cst.CATEGORIES: padded_categories, cst.MASK: mask}


def _batch(batch_size: int = 3, set_size: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  mask = np.arange(set_size)[None] < rng.integers(1, set_size + 1, (batch_size, 1))
  return {
      cst.FEATURES: rng.standard_normal((batch_size, set_size, _D)).astype(np.float32),
      cst.CATEGORIES: np.where(mask, rng.integers(1, _K + 1, mask.shape), 0).astype(np.int32),
      cst.MASK: mask,
  }


def _all_finite(tensors) -> bool:
  # The embedding's gradient is an `IndexedSlices`; densify before checking.
  return all(np.isfinite(tf.convert_to_tensor(t).numpy()).all() for t in tensors)


class CSTModelTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    keras.utils.set_random_seed(0)
    # Shared and never updated: building a model costs about a second on CPU.
    cls.model = cst.CSTModel(**_CONFIG)
    cls.model.build_for(set_size=5)

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(1)
    self.set_features = rng.standard_normal((3, _D)).astype(np.float32)
    self.set_categories = np.array([2, 4, 2], np.int32)

  def test_output_shape_and_dtype(self):
    outputs = self.model(_batch(batch_size=3, set_size=5))
    self.assertEqual(outputs.shape, (3, _K, _D))
    self.assertEqual(outputs.dtype, tf.float32)

  def test_padding_length_and_garbage_do_not_change_outputs(self):
    short = self.model(_padded(self.set_features, self.set_categories, 4, seed=2))
    long = self.model(_padded(self.set_features, self.set_categories, 9, seed=3))
    self.assertAllClose(short, long, atol=1e-5, rtol=1e-5)
    # Guards against a vacuous pass: a different set must change the outputs.
    smaller = self.model(_padded(self.set_features[:2], self.set_categories[:2], 4))
    self.assertNotAllClose(short, smaller)

  def test_nan_in_padded_rows_does_not_leak(self):
    clean = _padded(self.set_features, self.set_categories, 6)
    dirty = {key: value.copy() for key, value in clean.items()}
    dirty[cst.FEATURES][0, 3:] = np.nan
    self.assertAllClose(self.model(clean), self.model(dirty), atol=1e-5, rtol=1e-5)

  def test_permutation_invariant(self):
    order = np.array([2, 0, 1])
    original = self.model(_padded(self.set_features, self.set_categories, 5))
    permuted = self.model(
        _padded(self.set_features[order], self.set_categories[order], 5))
    self.assertAllClose(original, permuted, atol=1e-5, rtol=1e-5)

  def test_fully_padded_set_gives_finite_outputs_and_gradients(self):
    inputs = _batch(batch_size=2, set_size=4)
    inputs[cst.MASK][1] = False
    with tf.GradientTape() as tape:
      outputs = self.model(inputs, training=True)
      loss = tf.reduce_mean(outputs**2)
    grads = tape.gradient(loss, self.model.trainable_variables)
    self.assertTrue(_all_finite([outputs]))
    self.assertNotIn(None, grads)
    self.assertTrue(_all_finite(grads))

  def test_item_and_seed_branches_share_no_variables(self):
    item_vars = {id(v) for block in self.model.item_blocks for v in block.variables}
    seed_vars = {id(v) for block in self.model.seed_blocks for v in block.variables}
    self.assertNotEmpty(item_vars)
    self.assertNotEmpty(seed_vars)
    self.assertEmpty(item_vars & seed_vars)
    self.assertLen({id(v) for v in self.model.weights}, len(self.model.weights))

  def test_seeds_start_at_centers_and_train_only_when_asked(self):
    centers = np.random.default_rng(4).standard_normal((_K, _D)).astype(np.float32)
    config = dict(_CONFIG, num_layers=1, category_centers=centers)
    frozen = cst.CSTModel(**config)
    trainable = cst.CSTModel(**config, trainable_seeds=True)
    for model in (frozen, trainable):
      model.build_for(set_size=3)
      self.assertAllEqual(model.category_seeds.numpy(), centers)
    self.assertNotIn(id(frozen.category_seeds), {id(v) for v in frozen.trainable_weights})
    self.assertIn(id(frozen.category_seeds), {id(v) for v in frozen.non_trainable_weights})
    self.assertIn(id(trainable.category_seeds), {id(v) for v in trainable.trainable_weights})

  def test_default_centers_are_seeded_unit_vectors(self):
    other = cst.CSTModel(**_CONFIG)
    self.assertAllClose(np.linalg.norm(other.category_seeds.numpy(), axis=-1), np.ones(_K))
    self.assertAllEqual(other.category_seeds.numpy(), self.model.category_seeds.numpy())

  def test_rejects_wrong_center_shape(self):
    with self.assertRaisesRegex(ValueError, r"category_centers has shape \(3, 8\)"):
      cst.CSTModel(**_CONFIG, category_centers=np.zeros((3, _D)))

  def test_one_adam_step_changes_weights(self):
    model = cst.build_model(cst.CSTModel(**_CONFIG), set_size=5)
    inputs = _batch()
    targets = tf.random.stateless_normal((3, _K, _D), seed=[1, 2])
    before = [v.numpy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean((model(inputs, training=True) - targets)**2)
    grads = tape.gradient(loss, model.trainable_variables)
    self.assertNotIn(None, grads)
    self.assertTrue(_all_finite(grads))
    keras.optimizers.Adam(1e-2).apply(grads, model.trainable_variables)
    # Adam's first step moves every parameter with a nonzero gradient by ~lr.
    changed = [not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables)]
    self.assertGreater(np.mean(changed), 0.9)
    self.assertAllEqual(model.category_seeds.numpy(), self.model.category_seeds.numpy())

  def test_cycle_input_of_own_predictions(self):
    inputs = _batch()
    with tf.GradientTape() as tape:
      predictions = self.model(inputs, training=True)
      gathered = tf.gather(predictions, tf.maximum(inputs[cst.CATEGORIES] - 1, 0), batch_dims=1)
      cycle_inputs = dict(inputs, **{cst.FEATURES: gathered})
      loss = tf.reduce_mean(self.model(cycle_inputs, training=True)**2)
    grads = tape.gradient(loss, self.model.trainable_variables)
    self.assertTrue(_all_finite(grads))

  def test_save_and_load_weights_round_trip(self):
    path = os.path.join(self.get_temp_dir(), "cst.weights.h5")
    self.model.save_weights(path)
    restored = cst.build_model(cst.CSTModel.from_config(self.model.get_config()), set_size=7)
    inputs = _batch(seed=5)
    self.assertNotAllClose(self.model(inputs), restored(inputs))
    restored.load_weights(path)
    self.assertAllEqual(self.model(inputs), restored(inputs))

  def test_tf_function_with_input_signature_traces_once(self):
    signature = [{
        cst.FEATURES: tf.TensorSpec([None, None, _D], tf.float32),
        cst.CATEGORIES: tf.TensorSpec([None, None], tf.int32),
        cst.MASK: tf.TensorSpec([None, None], tf.bool),
    }]
    predict = tf.function(lambda inputs: self.model(inputs, training=False),
                          input_signature=signature)
    for batch_size, set_size in ((3, 5), (2, 9)):
      inputs = _batch(batch_size, set_size)
      self.assertAllClose(predict(inputs), self.model(inputs), atol=1e-5)
    self.assertEqual(predict.experimental_get_tracing_count(), 1)

  def test_dropout_only_when_training(self):
    model = cst.CSTModel(**dict(_CONFIG, dropout_rate=0.5))
    inputs = _batch()
    self.assertAllEqual(model(inputs, training=False), model(inputs, training=False))
    self.assertNotAllClose(model(inputs, training=True), model(inputs, training=False))

  def test_config_round_trip(self):
    config = self.model.get_config()
    self.assertEqual(cst.CSTModel.from_config(config).get_config(), config)


if __name__ == "__main__":
  tf.test.main()
