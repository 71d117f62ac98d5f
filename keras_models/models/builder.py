"""Building a registered encoder from a model config and the data's manifest.

Lives with the models so that evaluation, search and export build the same encoder as
training without importing the trainer.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

from keras_models import configs
from keras_models import data_files
from keras_models.models import registry


@contextlib.contextmanager
def precision_policy(mixed_precision: str):
  """Keras' global dtype policy inside the block: "none" is float32, else the mixed policy.

  Layers keep the policy they were created under, so only model construction needs it.
  """
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(
      "float32" if mixed_precision == "none" else mixed_precision)
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def build_encoder(model_config: configs.ModelConfig, manifest: data_files.Manifest,
                  centers: np.ndarray | None = None,
                  mixed_precision: str = "none") -> keras.Model:
  """Creates the registered encoder for the data of `manifest` and builds its weights.

  With a mixed policy the weights stay float32 and the encoder outputs float32.
  """
  model_class = registry.get_model_class(model_config.model)
  with precision_policy(mixed_precision):
    encoder = model_class(
        num_categories=manifest.num_categories, feature_dim=manifest.feature_dim,
        hidden_dim=model_config.hidden_dim, num_layers=model_config.num_layers,
        num_heads=model_config.num_heads, dropout_rate=model_config.dropout_rate,
        category_centers=centers, trainable_seeds=model_config.trainable_seeds)
  encoder.build_for(manifest.half_size)
  return encoder
