"""The classifier head f (what Backward Search inverts) and the distilled student.

Classifier, as the reference's attribute head: Dense 256 -> ReLU -> BN -> Dropout 0.4 ->
Dense 128 -> ReLU -> BN -> Dropout 0.4 -> Dense C (logits), trained with cross-entropy on
the train split's item vectors and their category labels.

Student, as the reference's KD model on [z0 ; onehot(c)]: Dense h -> sigmoid -> BN ->
Dense h -> sigmoid -> BN -> Dense D. The reference ends in tanh because its z live in
(-1, 1)^256; ours are standardised item features, unbounded and up to 1280-d, which a
128-wide bottleneck cannot reproduce, so the student predicts the change: z* = z0 + out.
It is trained with MSE to the teacher's z* (the reference's student_reg is 0).
"""

from __future__ import annotations

from absl import logging
import keras
import numpy as np
import tensorflow as tf


def build_classifier(dim: int, num_classes: int) -> keras.Model:
  """Classifier head `[B, dim]` -> `[B, num_classes]` logits."""
  inputs = keras.Input([dim], name="z")
  hidden = inputs
  for width in (256, 128):
    hidden = keras.layers.Dense(width, activation="relu")(hidden)
    hidden = keras.layers.BatchNormalization()(hidden)
    hidden = keras.layers.Dropout(0.4)(hidden)
  return keras.Model(inputs, keras.layers.Dense(num_classes)(hidden), name="classifier")


def train_classifier(classifier: keras.Model, features: np.ndarray, labels: np.ndarray, *,
                     epochs: int, learning_rate: float, batch_size: int, seed: int) -> float:
  """Fits the classifier on `features` [N, D] and 0-based `labels` [N]; returns train accuracy."""
  classifier.compile(optimizer=keras.optimizers.Adam(learning_rate),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy"])
  dataset = tf.data.Dataset.from_tensor_slices((features, labels)).shuffle(
      len(features), seed=seed).batch(batch_size)
  # One line an epoch: on a large catalog this fit is the longest part of the run.
  progress = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logging.info(
      "classifier epoch %d/%d on %d items: loss %.4f, accuracy %.4f", epoch + 1, epochs,
      len(features), logs["loss"], logs["accuracy"]))
  history = classifier.fit(dataset, epochs=epochs, verbose=0, shuffle=False,
                           callbacks=[progress])
  return float(history.history["accuracy"][-1])


def accuracy(classifier: keras.Model, features: np.ndarray, labels: np.ndarray) -> float:
  """Share of `features` [N, D] whose argmax logit is the 0-based label [N]."""
  logits = classifier.predict(features, batch_size=4096, verbose=0)
  return float(np.mean(np.argmax(logits, axis=1) == labels))


class Student(keras.Model):
  """Maps (z0 [B, D], condition [B] 0-based) to z* [B, D] in one forward pass."""

  def __init__(self, dim: int, num_classes: int, hidden_dim: int = 128, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes
    self.body = keras.Sequential([
        keras.layers.Dense(hidden_dim, activation="sigmoid"),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(hidden_dim, activation="sigmoid"),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(dim)])

  def call(self, inputs, training=False):
    z0, conditions = inputs
    onehot = tf.one_hot(tf.cast(conditions, tf.int32), self.num_classes)
    return z0 + self.body(tf.concat([z0, onehot], axis=1), training=training)


def train_student(student: Student, z0: np.ndarray, conditions: np.ndarray,
                  targets: np.ndarray, *, epochs: int, learning_rate: float,
                  batch_size: int, seed: int) -> list[float]:
  """Fits the student with MSE to the teacher's `targets` [N, D]; returns the loss per epoch."""
  student.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
  dataset = tf.data.Dataset.from_tensor_slices(((z0, conditions), targets)).shuffle(
      len(z0), seed=seed).batch(batch_size)
  history = student.fit(dataset, epochs=epochs, verbose=0, shuffle=False)
  return [float(v) for v in history.history["loss"]]


def predict_function(student: Student, dim: int):
  """Compiled one-pass student `(z0 [B, D], conditions [B]) -> [B, D]` for timing and use."""
  return tf.function(lambda z0, conditions: student((z0, conditions), training=False),
                     input_signature=[tf.TensorSpec([None, dim], tf.float32),
                                      tf.TensorSpec([None], tf.int32)])
