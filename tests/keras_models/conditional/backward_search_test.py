"""Backward Search against a NumPy simulation (Adam, L1, patience bookkeeping)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_models.conditional import backward_search

DIM, CLASSES = 5, 3


def _linear_classifier(rng):
  classifier = keras.Sequential([keras.Input([DIM]), keras.layers.Dense(CLASSES)])
  weights = rng.normal(size=(DIM, CLASSES)).astype(np.float32)
  bias = rng.normal(size=CLASSES).astype(np.float32)
  classifier.layers[-1].set_weights([weights, bias])
  return classifier, weights.astype(np.float64), bias.astype(np.float64)


def _simulate(z0, conditions, weights, bias, lam, lr, steps, patience, store_after_step):
  """The reference loop, per query, in float64 with hand-written gradients."""
  z = z0.astype(np.float64)
  first, second = np.zeros_like(z), np.zeros_like(z)
  best_z, best_loss = z.copy(), np.full(len(z), np.inf)
  best_step, counter = np.full(len(z), -1), np.zeros(len(z), int)
  trace = []
  onehot = np.eye(CLASSES)[conditions]
  for step in range(steps):
    logits = z @ weights + bias
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    losses = -np.log((probs * onehot).sum(axis=1)) + lam * np.abs(z - z0).mean(axis=1)
    gradient = (probs - onehot) @ weights.T + lam * np.sign(z - z0) / DIM
    first = 0.9 * first + 0.1 * gradient
    second = 0.999 * second + 0.001 * gradient**2
    updated = z - lr * (first / (1 - 0.9**(step + 1))) / (
        np.sqrt(second / (1 - 0.999**(step + 1))) + 1e-8)
    for i in range(len(z)):
      if losses[i] <= best_loss[i] and counter[i] <= patience:
        best_z[i] = updated[i] if store_after_step else z[i]
        best_loss[i], best_step[i], counter[i] = losses[i], step, 0
      else:
        counter[i] += 1
    trace.append(losses)
    z = updated
  return best_z, best_loss, best_step, np.array(trace)


@pytest.mark.parametrize("store_after_step", [False, True])
def test_matches_numpy_simulation(store_after_step):
  rng = np.random.default_rng(0)
  classifier, weights, bias = _linear_classifier(rng)
  z0 = rng.normal(size=(6, DIM)).astype(np.float32)
  conditions = rng.integers(0, CLASSES, size=6).astype(np.int32)
  search = backward_search.BackwardSearch(classifier, DIM, learning_rate=0.2, steps=40,
                                          patience=3, store_after_step=store_after_step)
  best_z, best_loss, best_step, trace = (t.numpy() for t in search.search(z0, conditions, 2.0))
  want_z, want_loss, want_step, want_trace = _simulate(
      z0, conditions, weights, bias, 2.0, 0.2, 40, 3, store_after_step)
  np.testing.assert_allclose(trace, want_trace, rtol=1e-3, atol=1e-4)
  np.testing.assert_array_equal(best_step, want_step)
  np.testing.assert_allclose(best_z, want_z, atol=1e-4)
  np.testing.assert_allclose(best_loss, want_loss, rtol=1e-4)
  # Early stopping froze some queries before the end, and the stored loss is the minimum
  # of the trace up to the freeze.
  assert (best_step < 39 - 3).any()
  for i, step in enumerate(best_step):
    assert best_loss[i] == pytest.approx(trace[: step + 1, i].min(), rel=1e-6)
  # The loss went down, except for queries already of class c, where z0 stays best.
  assert (best_loss <= trace[0]).all() and (best_loss < trace[0] - 0.5).sum() >= 3


def test_batched_equals_one_query_at_a_time_and_reaches_the_condition():
  rng = np.random.default_rng(1)
  classifier, _, _ = _linear_classifier(rng)
  z0 = rng.normal(size=(5, DIM)).astype(np.float32)
  conditions = rng.integers(0, CLASSES, size=5).astype(np.int32)
  search = backward_search.BackwardSearch(classifier, DIM)
  batched = search(z0, conditions, 0.5).numpy()
  for i in range(5):
    np.testing.assert_allclose(search(z0[i:i + 1], conditions[i:i + 1], 0.5).numpy()[0],
                               batched[i], atol=1e-5)
  assert (np.argmax(classifier(batched).numpy(), axis=1) == conditions).all()
  assert search.search.experimental_get_tracing_count() == 1
