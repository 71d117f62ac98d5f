"""Conditional retrieval, metrics, query sampling and the student, against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from keras_models.conditional import metrics
from keras_models.conditional import networks
from keras_models.conditional import search_run
from keras_models.metrics import streaming


def _unit(rows, rng, dim=4):
  vectors = rng.normal(size=(rows, dim))
  return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("query_chunk_size, chunk_size", [(3, 7), (2048, 8192)])
def test_retrieve_in_chunks_matches_brute_force(query_chunk_size, chunk_size):
  rng = np.random.default_rng(1)
  gallery, categories = _unit(61, rng), rng.integers(1, 4, size=61).astype(np.int32)
  categories[[5, 40]] = 4  # Two items only: lists filtered to category 4 get empty slots.
  queries = rng.normal(size=(17, 4)).astype(np.float32)
  # Every query's own nearest row is excluded, so exclusion changes every unfiltered list.
  excluded = np.argmax(queries @ gallery.T, axis=1).astype(np.int32)
  excluded[:3] = -1
  only = rng.choice([-1, 1, 2, 3, 4], size=17).astype(np.int32)
  only[:2] = -1
  only[2:4] = 4
  rows, valid = metrics.retrieve(queries, excluded, only, gallery, categories, 6,
                                 streaming.ChunkedRanker(query_chunk_size), chunk_size)
  assert rows.shape == valid.shape == (17, 6)
  normalised = queries.astype(np.float64) / np.linalg.norm(queries, axis=1, keepdims=True)
  for q in range(17):
    candidates = [g for g in np.argsort(-(gallery @ normalised[q]), kind="stable")
                  if g != excluded[q] and (only[q] < 0 or categories[g] == only[q])]
    np.testing.assert_array_equal(rows[q][valid[q]], candidates[:6], err_msg=f"query {q}")
    assert valid[q].sum() == min(6, len(candidates))
    assert (rows[q][~valid[q]] == 0).all()
  assert (~valid[2:4]).any()


def test_retrieve_and_metrics_match_brute_force():
  rng = np.random.default_rng(0)
  gallery, categories = _unit(30, rng), rng.integers(1, 3, size=30).astype(np.int32)
  categories[:2] = 3  # Two items only: lists filtered to category 3 get empty slots.
  queries = rng.normal(size=(8, 4)).astype(np.float32)
  excluded = rng.integers(-1, 30, size=8).astype(np.int32)
  only = np.array([-1, 1, 2, 3, -1, 3, 2, 1], np.int32)
  rows, valid = metrics.retrieve(queries, excluded, only, gallery, categories, 5)
  normalised = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  for q in range(8):
    candidates = [g for g in np.argsort(-(gallery @ normalised[q]), kind="stable")
                  if g != excluded[q] and (only[q] < 0 or categories[g] == only[q])]
    np.testing.assert_array_equal(rows[q][valid[q]], candidates[:5])
    assert valid[q].sum() == min(5, len(candidates))
  conditions = np.array([1, 1, 2, 3, 2, 3, 2, 1], np.int32)
  relevant = valid & (categories[rows] == conditions[:, None])
  assert metrics.condition_precision_at_k(categories[rows], valid, conditions).numpy() == (
      pytest.approx(relevant.mean(axis=1).mean()))
  cosines = np.einsum("qd,qkd->qk", normalised, gallery[rows])
  expected = np.mean([cosines[q][valid[q]].mean() for q in range(8)])
  assert metrics.context_preservation(queries, gallery[rows], valid).numpy() == pytest.approx(
      expected, abs=1e-6)


def test_sample_queries_conditions_and_space():
  categories = np.array([1] * 12 + [2] * 12 + [3] * 4 + [4] * 11, np.int32)
  rows, conditions = search_run.sample_queries(categories, 30, 10, seed=7)
  assert len(rows) == 30 and len(np.unique(rows)) == 30
  assert (conditions != categories[rows]).all()
  assert set(conditions) <= {1, 2, 4}  # category 3 has fewer than 10 items.
  again = search_run.sample_queries(categories, 30, 10, seed=7)
  np.testing.assert_array_equal(again[1], conditions)
  with pytest.raises(ValueError, match="fewer than 2 categories have >= 20 items"):
    search_run.sample_queries(categories, 5, 20, seed=0)
  features = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 3)).astype(np.float32)
  space = search_run.FeatureSpace.fit(features, standardize=True)
  z = space.to_search(features)
  np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(z.std(0), 1, atol=1e-4)
  np.testing.assert_allclose(space.to_items(z, features), features, atol=1e-5)
  subspace = search_run.FeatureSpace.fit(features, standardize=True, pca_dim=2)
  z = subspace.to_search(features)
  assert z.shape == (50, 2) and subspace.dim == 2
  np.testing.assert_allclose(subspace.to_items(z, features), features, atol=1e-5)
  # A change of z moves the item only along the principal axes (in standardised units).
  moved = subspace.to_items(z + [1.0, 0.0], features)
  np.testing.assert_allclose((moved - features) / subspace.scale,
                             np.broadcast_to(subspace.basis[:, 0], (50, 3)), atol=1e-5)


def test_student_shapes_and_training_reduces_mse():
  rng = np.random.default_rng(0)
  z0 = rng.normal(size=(256, 6)).astype(np.float32)
  conditions = rng.integers(0, 3, size=256).astype(np.int32)
  shifts = rng.normal(size=(3, 6)).astype(np.float32)
  targets = z0 + shifts[conditions]
  student = networks.Student(6, 3, hidden_dim=16)
  predict = networks.predict_function(student, 6)
  assert predict(z0[:5], conditions[:5]).shape == (5, 6)
  before = np.mean((predict(z0, conditions).numpy() - targets) ** 2)
  losses = networks.train_student(student, z0, conditions, targets, epochs=40,
                                  learning_rate=1e-2, batch_size=32, seed=0)
  assert losses[-1] < 0.2 * losses[0]
  # Inference mode (BN moving statistics) too.
  after = np.mean((predict(z0, conditions).numpy() - targets) ** 2)
  assert after < 0.3 * before
