"""Tests for building an encoder from a config, and that evaluation needs no trainer."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_models import configs
from keras_models import data_files
from keras_models.models import builder
from keras_models.models import cst

_MANIFEST = data_files.Manifest(data_dir="tiny", source="synthetic", synthetic=True,
                                feature_dim=8, num_categories=3, categories=("a", "b", "c"),
                                max_set_size=8, splits={})


class BuilderTest(tf.test.TestCase):

  def test_builds_the_registered_model_with_weights(self):
    encoder = builder.build_encoder(configs.ModelConfig(hidden_dim=16, num_layers=1),
                                    _MANIFEST)
    self.assertIsInstance(encoder, cst.CSTModel)
    self.assertNotEmpty(encoder.weights)
    features = np.random.default_rng(0).normal(size=(2, 4, 8)).astype(np.float32)
    categories = np.array([[0, 1, 2, 0], [1, 1, 2, 0]], np.int32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    out = encoder({cst.FEATURES: features, cst.CATEGORIES: categories, cst.MASK: mask},
                  training=False)
    self.assertEqual(out.shape, (2, 3, 8))

  def test_policy_is_restored_after_a_mixed_build(self):
    before = keras.mixed_precision.global_policy().name
    encoder = builder.build_encoder(configs.ModelConfig(hidden_dim=16, num_layers=1),
                                    _MANIFEST, mixed_precision="mixed_bfloat16")
    self.assertEqual(keras.mixed_precision.global_policy().name, before)
    self.assertTrue(all(w.dtype == "float32" for w in encoder.weights))

  def test_evaluation_does_not_import_the_trainer(self):
    code = ("import sys, keras_models.evaluation; "
            "print('keras_models.training' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    self.assertEqual(out, "False")


if __name__ == "__main__":
  tf.test.main()
