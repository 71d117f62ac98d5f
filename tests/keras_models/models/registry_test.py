"""Tests for the model registry."""

from __future__ import annotations

import tensorflow as tf

from keras_models.models import cst
from keras_models.models import registry


class RegistryTest(tf.test.TestCase):

  def test_known_name(self):
    self.assertIs(registry.get_model_class("cst"), cst.CSTModel)
    self.assertEqual(registry.MODELS, {"cst": cst.CSTModel})

  def test_unknown_name_lists_known(self):
    with self.assertRaisesRegex(ValueError, r"^unknown model 'xyz'; known: cst$"):
      registry.get_model_class("xyz")


if __name__ == "__main__":
  tf.test.main()
