"""The trained set encoder as one fixed-shape tf.function for the query service.

A request holds 1..max_items query items; they are padded to `max_items` rows with a mask,
so every request runs the same traced graph (no retrace per request). The set encoder
masks padding, so the padding length does not change its predictions.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_models import configs as model_configs
from keras_models import data_files
from keras_models import evaluation
from search import completion
from search import configs


class QueryEncoder:
  """Predicts one unit vector per category from a padded query set."""

  def __init__(self, encoder: keras.Model, feature_dim: int, max_items: int) -> None:
    """Wraps `encoder` (input dict features/categories/mask, output [batch, K, D])."""
    self.encoder = encoder
    self.feature_dim = int(feature_dim)
    self.max_items = int(max_items)
    signature = [tf.TensorSpec([1, self.max_items, self.feature_dim], tf.float32),
                 tf.TensorSpec([1, self.max_items], tf.int32),
                 tf.TensorSpec([1, self.max_items], tf.bool)]
    self._predict = tf.function(self._forward, input_signature=signature)

  def _forward(self, features: tf.Tensor, categories: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    predicted = self.encoder({"features": features, "categories": categories, "mask": mask},
                             training=False)
    return tf.math.l2_normalize(predicted[0], axis=-1)

  def tracing_count(self) -> int:
    return self._predict.experimental_get_tracing_count()

  def predict(self, features: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """Predicted unit features of every category for one query set.

    Args:
      features: `[n, feature_dim]` float32 query item features, 1 <= n <= max_items.
      categories: `[n]` int category ids in 1..K.

    Returns:
      `[K, feature_dim]` float32; row c - 1 is the prediction for category c.

    Raises:
      ValueError: for a set of 0 or more than max_items items or a wrong feature dim.
    """
    features = np.asarray(features, np.float32)
    count = len(features)
    if not 1 <= count <= self.max_items or features.shape[1:] != (self.feature_dim,):
      raise ValueError(f"query set of shape {features.shape}: need 1..{self.max_items} rows "
                       f"of dim {self.feature_dim}")
    padded, ids, mask = completion.pad_one_set(features, categories, self.max_items)
    return self._predict(padded, ids, mask).numpy()


def load(config: configs.ServeConfig,
         manifest: data_files.Manifest) -> tuple[QueryEncoder, str]:
  """Loads the trained encoder of `config`; returns it and the weights path it read."""
  eval_config = model_configs.EvalConfig(data_dir=config.data_dir, model_dir=config.model_dir,
                                         model=config.model, weights=config.weights)
  encoder = evaluation.load_encoder(eval_config, manifest)
  return (QueryEncoder(encoder, manifest.feature_dim, config.max_items),
          evaluation.weights_path(eval_config))
