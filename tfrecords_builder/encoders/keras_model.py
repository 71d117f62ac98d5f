"""`--encoder=keras:<path.keras>`: any saved Keras image model as a feature extractor.

The model must take one image input with a fixed size, `[batch, height, width, 3]`, and
return one feature vector per image, `[batch, dim]`. Each image is resized bicubic so it
covers `height x width`, centre-cropped (see `images.resize_and_center_crop`) and scaled
to RGB in [0, 1]; nothing else is done. A model that expects other inputs (ImageNet mean
and std, [-1, 1], [0, 255]) must carry that step itself, e.g. a `keras.layers.Rescaling`
or `keras.layers.Normalization` layer right after its input, before it is saved.

Loading uses `keras.saving.load_model(path, compile=False)` in safe mode, so custom layers
must be registered (`keras.saving.register_keras_serializable`) in code imported first,
and `Lambda` layers are refused.
"""

from __future__ import annotations

import os
from typing import Callable

import keras
import numpy as np
from PIL import Image
import tensorflow as tf

from tfrecords_builder.encoders import images


class KerasImageEncoder:
  """Runs a single-input Keras image model in batches, traced once for any batch size.

  Attributes:
    feature_dim: D, the size of the model's output vector.
    image_size: (height, width) the model takes.
    name: how logs refer to this encoder.
  """

  def __init__(self, model: keras.Model, pixel_transform: Callable[[np.ndarray], np.ndarray],
               name: str):
    """Checks the model's input and output shapes.

    Args:
      model: takes float32 [batch, height, width, 3], returns [batch, dim].
      pixel_transform: uint8 [height, width, 3] -> float32 model input for one image.
      name: used in error messages and logs.

    Raises:
      ValueError: naming `name` when the model has several inputs or outputs, an input
        that is not a fixed-size RGB image, or an output that is not one vector per image.
    """
    inputs = getattr(model, "inputs", None)
    outputs = getattr(model, "outputs", None)
    if not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
      raise ValueError(
          f"{name}: expected a functional or Sequential model with one image input and "
          f"one output, got {len(inputs or [])} input(s) and {len(outputs or [])} output(s)")
    input_shape = tuple(inputs[0].shape)
    if len(input_shape) != 4 or input_shape[3] != 3 or None in input_shape[1:]:
      raise ValueError(
          f"{name}: model input shape {input_shape} is not [batch, height, width, 3] with "
          "a fixed height and width; save the model with e.g. keras.Input((224, 224, 3))")
    output_shape = tuple(outputs[0].shape)
    if len(output_shape) != 2 or output_shape[1] is None:
      raise ValueError(
          f"{name}: model output shape {output_shape} is not [batch, dim]; end the model "
          "with a pooling layer so each image gives one vector")
    self.name = name
    self.image_size = (int(input_shape[1]), int(input_shape[2]))
    self.feature_dim = int(output_shape[1])
    self._pixel_transform = pixel_transform
    self._model = model
    self._forward = tf.function(
        self._call_model,
        input_signature=[tf.TensorSpec([None, *self.image_size, 3], tf.float32)])

  def _call_model(self, batch):
    return tf.cast(self._model(batch, training=False), tf.float32)

  def preprocess(self, image: Image.Image) -> np.ndarray:
    """RGB PIL image -> float32 model input [height, width, 3]."""
    return self._pixel_transform(images.resize_and_center_crop(image, *self.image_size))

  def encode_batch(self, batch: np.ndarray) -> np.ndarray:
    """Raw (not normalised) features of preprocessed images.

    Args:
      batch: float32 [batch, height, width, 3] from `preprocess`.

    Returns:
      float32 [batch, feature_dim].
    """
    return self._forward(tf.convert_to_tensor(batch, tf.float32)).numpy()


def check(path: str) -> None:
  """Raises FileNotFoundError naming `path` when the model file is missing."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: Keras model file not found (from 'keras:{path}')")


def load(path: str) -> KerasImageEncoder:
  """Loads a saved Keras image model; see the module docstring for what it must be.

  Raises:
    FileNotFoundError: when `path` is missing.
    ValueError: naming `path` when Keras cannot load it or its shapes do not fit.
  """
  check(path)
  try:
    model = keras.saving.load_model(path, compile=False)
  except (ValueError, TypeError, OSError) as error:
    raise ValueError(f"{path}: cannot load as a Keras model ({error})") from error
  return KerasImageEncoder(model, images.unit_scale, name=f"keras:{path}")
