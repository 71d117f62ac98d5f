"""Backward Search: optimise a query embedding until a frozen classifier predicts c.

For queries z0 [B, D] and conditions c [B], z starts at z0 and takes `steps` Adam steps
(PyTorch's defaults: beta1 0.9, beta2 0.999, eps 1e-8, no weight decay) on

    L_i(z) = CE(f(z_i), c_i) + lambda * mean_j |z_ij - z0_ij|

(the sum over i is differentiated, so every query's step is independent of the batch).
The classifier runs with training=False (BN running statistics, no dropout). Early
stopping as in the reference code, per query: if L_i <= best_i and counter_i <= patience
the z is stored and the counter reset, else the counter grows; once it passes `patience`
the stored z is frozen while the loop still runs every step. The reference stores the z
*after* the step whose loss was computed *before* it (`store_after_step=True`); the
default stores the z whose loss was measured. The whole loop is one compiled
`tf.function` (a `tf.while_loop`) whose batch dimension is free.
"""

from __future__ import annotations

import keras
import tensorflow as tf

ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
ADAM_EPSILON = 1e-8


class BackwardSearch:
  """Compiled batched Backward Search over a frozen classifier."""

  def __init__(self, classifier: keras.Model, dim: int, *, learning_rate: float = 0.2,
               steps: int = 100, patience: int = 10, store_after_step: bool = False):
    """Builds the traced search.

    Args:
      classifier: maps `[B, dim]` float32 to `[B, num_classes]` logits.
      dim: D, the embedding width.
      learning_rate: Adam step size.
      steps: Adam steps (all run; early stopping only freezes the stored z).
      patience: non-improving steps after which a query's stored z is frozen.
      store_after_step: reproduce the reference's off-by-one pairing of loss and z.
    """
    self.classifier = classifier
    self.learning_rate, self.steps, self.patience = learning_rate, steps, patience
    self.store_after_step = store_after_step
    self.search = tf.function(self._search, input_signature=[
        tf.TensorSpec([None, dim], tf.float32), tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([], tf.float32)])

  def _losses(self, z, z0, conditions, lam):
    logits = self.classifier(z, training=False)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(conditions, logits)
    return cross_entropy + lam * tf.reduce_mean(tf.abs(z - z0), axis=1)

  def _search(self, z0, conditions, lam):
    """Returns (best z [B, D], its loss [B], the step it was measured at [B], loss trace).

    The loss trace is `[steps, B]`: L_i at every step, before that step's update.
    """
    batch = tf.shape(z0)[0]
    z, first, second = z0, tf.zeros_like(z0), tf.zeros_like(z0)
    best_z, best_loss = z0, tf.fill([batch], float("inf"))
    best_step, counter = tf.fill([batch], -1), tf.zeros([batch], tf.int32)
    trace = tf.TensorArray(tf.float32, size=self.steps)
    for step in tf.range(self.steps):
      with tf.GradientTape() as tape:
        tape.watch(z)
        losses = self._losses(z, z0, conditions, lam)
        total = tf.reduce_sum(losses)
      gradient = tape.gradient(total, z)
      count = tf.cast(step + 1, tf.float32)
      first = ADAM_BETA_1 * first + (1.0 - ADAM_BETA_1) * gradient
      second = ADAM_BETA_2 * second + (1.0 - ADAM_BETA_2) * tf.square(gradient)
      corrected_first = first / (1.0 - ADAM_BETA_1**count)
      corrected_second = second / (1.0 - ADAM_BETA_2**count)
      updated = z - self.learning_rate * corrected_first / (
          tf.sqrt(corrected_second) + ADAM_EPSILON)
      improved = (losses <= best_loss) & (counter <= self.patience)
      stored = updated if self.store_after_step else z
      best_z = tf.where(improved[:, tf.newaxis], stored, best_z)
      best_loss = tf.where(improved, losses, best_loss)
      best_step = tf.where(improved, step, best_step)
      counter = tf.where(improved, 0, counter + 1)
      trace = trace.write(step, losses)
      z = updated
    return best_z, best_loss, best_step, trace.stack()

  def __call__(self, z0, conditions, lam: float) -> tf.Tensor:
    """Optimised z* `[B, D]` for queries z0 `[B, D]` and conditions `[B]` (0-based)."""
    return self.search(tf.cast(z0, tf.float32), tf.cast(conditions, tf.int32),
                       tf.constant(lam, tf.float32))[0]
