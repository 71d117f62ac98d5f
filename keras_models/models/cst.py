"""Category set transformer (CST): predicts one feature per category from a set.

Given a query set of items (features and categories), the model returns for
each of the K categories a predicted feature of the item of that category that
would complete the set. K learned-projection "seeds", initialised from the
category centers, attend to the encoded items and to each other.

Every attention masks padded items, so a set's prediction depends neither on
how far it was padded nor on the order of its items (REFERENCE.md section 4,
pitfall 3). The model assumes nothing about where its input features come from:
the cycle loss feeds it its own predictions gathered at item categories.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_models.layers import set_blocks

FEATURES = "features"
CATEGORIES = "categories"
MASK = "mask"

# Seed of the random unit-norm seed init used when no category centers exist.
_RANDOM_CENTERS_SEED = 0


def random_unit_centers(num_categories: int, feature_dim: int,
                        seed: int = _RANDOM_CENTERS_SEED) -> np.ndarray:
  """Returns reproducible random unit-norm rows, `[num_categories, feature_dim]` float32."""
  centers = np.random.default_rng(seed).standard_normal((num_categories, feature_dim))
  centers /= np.linalg.norm(centers, axis=-1, keepdims=True)
  return centers.astype(np.float32)


@keras.saving.register_keras_serializable(package="setretrieval")
class CSTModel(keras.Model):
  """Category set transformer.

  Input to `call` is a dict:
    `features`: `[batch, set_size, feature_dim]` float32 item features.
    `categories`: `[batch, set_size]` int32 category ids in 1..K, 0 = padding.
    `mask`: `[batch, set_size]` bool, True for real items.
  Output: `[batch, num_categories, feature_dim]` float32; row c-1 is the
  prediction for category c. A set with no real item gets finite outputs that
  depend only on the weights.

  Padded rows may hold any finite values in `features` and any id in
  `categories`: both are replaced before use.
  """

  def __init__(self, num_categories: int, feature_dim: int, hidden_dim: int = 512,
               num_layers: int = 2, num_heads: int = 2, dropout_rate: float = 0.1,
               category_centers: np.ndarray | None = None,
               trainable_seeds: bool = False, name: str = "cst", **kwargs):
    """Creates the layers.

    Args:
      num_categories: K, the number of item categories.
      feature_dim: D, the item feature size (input and output).
      hidden_dim: Width of every attention and feed-forward block.
      num_layers: Number of (item block, seed block) pairs.
      num_heads: Attention heads; must divide `hidden_dim`.
      dropout_rate: Dropout on every attention and feed-forward output while
        training.
      category_centers: `[num_categories, feature_dim]` initial seeds, e.g. the
        normalised mean train feature of each category. None uses
        `random_unit_centers(num_categories, feature_dim)` (seed 0). Not part of
        `get_config`: the seeds are a weight and travel with the weights file.
      trainable_seeds: Whether the seed weight is trained; the seed projection
        is trained either way.
      name: Model name.
      **kwargs: Passed to `keras.Model`.

    Raises:
      ValueError: If `category_centers` has the wrong shape or `num_heads`
        does not divide `hidden_dim`.
    """
    super().__init__(name=name, **kwargs)
    if category_centers is None:
      category_centers = random_unit_centers(num_categories, feature_dim)
    category_centers = np.asarray(category_centers, dtype=np.float32)
    if category_centers.shape != (num_categories, feature_dim):
      raise ValueError(
          f"{name}: category_centers has shape {category_centers.shape}, expected "
          f"({num_categories}, {feature_dim})")
    self.num_categories = num_categories
    self.feature_dim = feature_dim
    self.hidden_dim = hidden_dim
    self.num_layers = num_layers
    self.num_heads = num_heads
    self.dropout_rate = dropout_rate
    self.trainable_seeds = trainable_seeds

    self.input_projection = keras.layers.Dense(hidden_dim, activation="gelu",
                                               name="input_projection")
    self.category_embedding = keras.layers.Embedding(num_categories + 1, hidden_dim,
                                                     name="category_embedding")
    self.category_seeds = self.add_weight(
        shape=(num_categories, feature_dim),
        initializer=keras.initializers.Constant(category_centers),
        trainable=trainable_seeds, name="category_seeds")
    self.seed_projection = keras.layers.Dense(hidden_dim, name="seed_projection")
    self.item_blocks = [
        set_blocks.ItemBlock(hidden_dim, num_heads, dropout_rate, name=f"item_block_{i}")
        for i in range(num_layers)
    ]
    self.seed_blocks = [
        set_blocks.SeedBlock(hidden_dim, num_heads, dropout_rate, name=f"seed_block_{i}")
        for i in range(num_layers)
    ]
    self.output_projection = keras.layers.Dense(feature_dim, name="output_projection")
    self.output_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="output_norm")

  def build(self, input_shape: dict[str, tuple]) -> None:
    # Explicit builds spare Keras a symbolic trace of `call` on first use.
    features_shape = tuple(input_shape[FEATURES])
    items_shape = (*features_shape[:-1], self.hidden_dim)
    seeds_shape = (features_shape[0], self.num_categories, self.hidden_dim)
    self.input_projection.build(features_shape)
    self.category_embedding.build()
    self.seed_projection.build((self.num_categories, self.feature_dim))
    for item_block, seed_block in zip(self.item_blocks, self.seed_blocks):
      item_block.build(items_shape)
      seed_block.build(seeds_shape, items_shape)
    self.output_projection.build(seeds_shape)
    self.output_norm.build((*seeds_shape[:-1], self.feature_dim))

  def call(self, inputs: dict[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
    """Predicts one feature per category for each set.

    Args:
      inputs: Dict with `features` `[batch, set_size, feature_dim]`, `categories`
        `[batch, set_size]` and `mask` `[batch, set_size]` (see the class doc).
      training: Enables dropout.

    Returns:
      `[batch, num_categories, feature_dim]` float32.
    """
    item_mask = tf.cast(inputs[MASK], tf.bool)
    # Padded rows are overwritten so that NaN or huge garbage there cannot
    # reach the masked attention as 0 * NaN, and stray ids cannot index out of
    # range.
    features = tf.where(item_mask[..., tf.newaxis],
                        tf.cast(inputs[FEATURES], self.compute_dtype), 0.0)
    categories = tf.where(item_mask, tf.cast(inputs[CATEGORIES], tf.int32), 0)
    items = self.input_projection(features) + self.category_embedding(categories)

    seeds = self.seed_projection(self.category_seeds)
    batch_size = tf.shape(items)[0]
    seeds = tf.broadcast_to(seeds[tf.newaxis],
                            [batch_size, self.num_categories, self.hidden_dim])
    for item_block, seed_block in zip(self.item_blocks, self.seed_blocks):
      items = item_block(items, item_mask, training=training)
      seeds = seed_block(seeds, items, item_mask, training=training)
    return tf.cast(self.output_norm(self.output_projection(seeds)), tf.float32)

  def build_for(self, set_size: int, batch_size: int = 1) -> None:
    """Creates all weights by calling the model once on zeros.

    Keras 3 can only load a `.weights.h5` file into a subclassed model whose
    weights exist, so call this before `load_weights`.

    Args:
      set_size: Any set size; the weights do not depend on it.
      batch_size: Batch size of the dummy call.
    """
    self(dummy_inputs(batch_size, set_size, self.feature_dim), training=False)

  def get_config(self) -> dict:
    return {
        "name": self.name,
        "num_categories": self.num_categories,
        "feature_dim": self.feature_dim,
        "hidden_dim": self.hidden_dim,
        "num_layers": self.num_layers,
        "num_heads": self.num_heads,
        "dropout_rate": self.dropout_rate,
        "trainable_seeds": self.trainable_seeds,
    }


def dummy_inputs(batch_size: int, set_size: int, feature_dim: int) -> dict[str, tf.Tensor]:
  """Returns an all-real input dict of zero features and category 1."""
  return {
      FEATURES: tf.zeros([batch_size, set_size, feature_dim], tf.float32),
      CATEGORIES: tf.ones([batch_size, set_size], tf.int32),
      MASK: tf.ones([batch_size, set_size], tf.bool),
  }


def build_model(model: CSTModel, set_size: int) -> CSTModel:
  """Builds `model` with `CSTModel.build_for(set_size)` and returns it."""
  model.build_for(set_size)
  return model
