"""Ridge fitted from statistics streamed in blocks equals the fit on all pairs at once."""

from __future__ import annotations

import numpy as np

from keras_models import ridge


def test_streamed_statistics_give_the_same_fit():
  rng = np.random.default_rng(3)
  inputs, targets = rng.standard_normal((300, 12)), rng.standard_normal((300, 12))
  categories = rng.integers(1, 4, size=300)
  whole = ridge.Ridge(inputs, targets, categories)
  statistics = ridge.RidgeStatistics()
  for start in range(0, 300, 37):
    statistics.add(inputs[start:start + 37], targets[start:start + 37],
                   categories[start:start + 37])
  streamed = ridge.Ridge.from_statistics(statistics)
  new_inputs, new_categories = rng.standard_normal((20, 12)), rng.integers(1, 4, size=20)
  for lam in (1e-3, 1.0, 50.0):
    np.testing.assert_allclose(streamed.predict(new_inputs, new_categories, lam),
                               whole.predict(new_inputs, new_categories, lam), atol=1e-10)


def test_exact_interpolation_with_tiny_lambda():
  # More samples than dimensions and an exact linear map: the fit recovers it.
  rng = np.random.default_rng(4)
  inputs = rng.standard_normal((80, 6))
  true_map = rng.standard_normal((6, 6))
  targets = inputs @ true_map + 2.0
  model = ridge.Ridge(inputs, targets, np.ones(80, int))
  probe = rng.standard_normal((5, 6))
  np.testing.assert_allclose(model.predict(probe, np.ones(5, int), 1e-9), probe @ true_map + 2.0,
                             atol=1e-6)
