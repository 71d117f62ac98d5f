"""Checks the training-free baselines and the evaluator's FITB / Recall@k against NumPy oracles."""

from __future__ import annotations

import numpy as np
import pytest

from keras_models import baselines
from keras_models import data_files
from keras_models import evaluator as evaluator_lib
from keras_models import ridge
from tests import tiny_data

data_dir = tiny_data.shards_fixture(num_sets=90, num_categories=4, feature_dim=12,
                                    min_items=3, max_items=6)


@pytest.fixture(scope="module")
def setup(data_dir):
  manifest = data_files.load_manifest(data_dir)
  evaluators = {split: evaluator_lib.Evaluator(manifest, split, batch_size=7)
                for split in ("train", "val", "test")}
  return manifest, evaluators, data_files.load_category_means(manifest)


def _unit(v):
  v = np.asarray(v, np.float64)
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _oracle_ranks(evaluator, vectors):
  """Brute force: 1 + #{same category, s > s(y)} + #{same category, other id, s == s(y)}."""
  scores = vectors.astype(np.float32) @ evaluator.gallery_features.T
  ranks = []
  for q, (category, positive) in enumerate(zip(evaluator.targets.categories,
                                               evaluator.positive_positions)):
    same = evaluator.gallery_categories == category
    above = scores[q] > scores[q, positive]
    ties = (scores[q] == scores[q, positive]) & (np.arange(len(same)) != positive)
    ranks.append(1 + np.sum(same & (above | ties)))
  return np.array(ranks)


def _oracle_category_means(manifest):
  """m_c: the mean of the unit train item vectors of category c, item by item."""
  table = data_files.load_item_table(manifest, "train")
  sums = np.zeros((manifest.num_categories, manifest.feature_dim))
  counts = np.zeros(manifest.num_categories)
  for feature, category in zip(table.features, table.categories):
    sums[category - 1] += feature / np.linalg.norm(feature.astype(np.float64))
    counts[category - 1] += 1
  return sums / counts[:, np.newaxis]


def _oracle_means(evaluator, category_means):
  """Per query: (query mean, centred query mean), from each set's items one by one."""
  table, targets = evaluator.table, evaluator.targets
  plain, centred = [], []
  for set_row, category in zip(targets.set_rows, targets.categories):
    rows = evaluator.query_rows[set_row]
    items = _unit(table.features[rows])
    plain.append(_unit(items.mean(axis=0)))
    offsets = items - category_means[table.categories[rows] - 1]
    centred.append(_unit(category_means[category - 1] + offsets.mean(axis=0)))
  return np.array(plain), np.array(centred)


def test_category_means_are_the_unnormalised_means_of_unit_items(setup):
  manifest, _, means = setup
  expected = _oracle_category_means(manifest)
  np.testing.assert_allclose(means, expected, atol=1e-6)
  # Means of unit vectors are shorter than 1; the builder's centres are unit length.
  assert (np.linalg.norm(means, axis=1) < 0.99).all()
  np.testing.assert_allclose(np.linalg.norm(data_files.load_centers(manifest), axis=1), 1.0,
                             atol=1e-5)


def test_query_means_match_oracle(setup):
  manifest, evaluators, means = setup
  category_means = _oracle_category_means(manifest)
  for evaluator in evaluators.values():
    plain, centred = _oracle_means(evaluator, category_means)
    np.testing.assert_allclose(baselines.predictions("query_mean", evaluator, means), plain,
                               atol=1e-5)
    np.testing.assert_allclose(baselines.predictions("centred_query_mean", evaluator, means),
                               centred, atol=1e-5)
    np.testing.assert_allclose(baselines.predictions("category_mean", evaluator, means),
                               _unit(category_means[evaluator.targets.categories - 1]),
                               atol=1e-6)
    # The unit-length centres (CST's seeds) define another, weaker predictor.
    _, with_centres = _oracle_means(evaluator, data_files.load_centers(manifest))
    assert np.abs(with_centres - centred).max() > 1e-2


def _oracle_ridge(inputs, targets, categories, new_inputs, new_categories, lam):
  """Primal normal equations per category: W = (Xc^T Xc + lam I)^-1 Xc^T Yc."""
  result = new_inputs.astype(np.float64).copy()
  for category in np.unique(new_categories):
    rows = categories == category
    if not rows.any():
      continue
    x_mean, y_mean = inputs[rows].mean(axis=0), targets[rows].mean(axis=0)
    xc, yc = inputs[rows] - x_mean, targets[rows] - y_mean
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(xc.shape[1]), xc.T @ yc)
    result[new_categories == category] = y_mean + (
        new_inputs[new_categories == category] - x_mean) @ w
  return result


@pytest.mark.parametrize("num_train", [9, 200])  # fewer and more samples than dimensions
def test_ridge_matches_normal_equations(num_train):
  rng = np.random.default_rng(num_train)
  dim = 20
  inputs, targets = rng.standard_normal((num_train, dim)), rng.standard_normal((num_train, dim))
  categories = rng.integers(1, 4, size=num_train)
  categories[0] = 5  # a category with a single sample: W = 0, predicts its target
  new_inputs = rng.standard_normal((30, dim))
  new_categories = rng.integers(1, 7, size=30)
  new_categories[:2] = (5, 4)  # 4 and 6 have no train sample: the input is returned
  model = ridge.Ridge(inputs, targets, categories)
  for lam in (1e-3, 1.0, 100.0):
    expected = _oracle_ridge(inputs, targets, categories, new_inputs, new_categories, lam)
    np.testing.assert_allclose(model.predict(new_inputs, new_categories, lam), expected,
                               atol=1e-8)
  predicted = model.predict(new_inputs, new_categories, 1.0)
  np.testing.assert_allclose(predicted[0], targets[0], atol=1e-12)
  np.testing.assert_array_equal(predicted[1], new_inputs[1])


@pytest.mark.parametrize("selection", [None, 9])
def test_fit_ridge_picks_best_val_lambda(setup, monkeypatch, selection):
  _, evaluators, _ = setup
  train, val = evaluators["train"], evaluators["val"]
  lambdas = (0.01, 1.0, 1e4)
  chosen = np.arange(len(val.targets.categories))
  if selection is not None:
    # Lambda chosen on a seeded sample of 9 val queries.
    monkeypatch.setattr(baselines, "RIDGE_SELECTION_QUERIES", selection)
    chosen = baselines.selection_queries(len(chosen), val.seed)
    assert len(chosen) == selection and len(np.unique(chosen)) == selection
  fit = baselines.fit_ridge(train, val, lambdas)
  plain_train, _ = _oracle_means(train, np.zeros((4, 12)))
  plain_val, _ = _oracle_means(val, np.zeros((4, 12)))
  expected = {}
  for lam in lambdas:
    vectors = _unit(_oracle_ridge(plain_train, train.positive_features,
                                  train.targets.categories, plain_val,
                                  val.targets.categories, lam))
    ranks = _oracle_ranks(val, vectors)
    cutoff = np.maximum(1, np.floor(10 * val.query_gallery_sizes / 100))
    expected[lam] = np.mean((ranks <= cutoff)[chosen])
  assert list(fit.val_scores) == sorted(lambdas)
  np.testing.assert_allclose(list(fit.val_scores.values()), [expected[l] for l in lambdas],
                             atol=1e-6)
  assert fit.lam == max(lambdas, key=lambda l: (round(expected[l], 6), l))
  with pytest.raises(ValueError, match="ridge lambdas must be a non-empty list of values > 0"):
    baselines.fit_ridge(train, val, (1.0, 0.0))


def test_every_baseline_goes_through_the_evaluator_ranks(setup):
  _, evaluators, means = setup
  test = evaluators["test"]
  fit = baselines.fit_ridge(evaluators["train"], evaluators["val"], (0.1,))
  for name in baselines.NAMES[1:]:
    vectors = baselines.predictions(name, test, means, fit)
    np.testing.assert_array_equal(test.ranks(vectors), _oracle_ranks(test, vectors))
  with pytest.raises(ValueError, match="baseline 'random' has no prediction vectors"):
    baselines.predictions("random", test, means)
  ranks = baselines.random_ranks(test, seed=3)
  assert (ranks >= 1).all() and (ranks <= test.query_gallery_sizes).all()


def test_evaluator_fitb_and_recall_match_oracle(setup):
  _, evaluators, means = setup
  test = evaluators["test"]
  np.testing.assert_array_equal(test.gallery_rows[test.positive_positions],
                                test.targets.positive_rows)
  vectors = baselines.predictions("query_mean", test, means)
  distractors = test.distractors(3)
  scores = vectors @ test.gallery_features.T
  expected_hits = []
  for q, (positive, row) in enumerate(zip(test.positive_positions, distractors)):
    rivals = [scores[q, d] for d in row if d >= 0]
    expected_hits.append(all(scores[q, positive] > r for r in rivals))
  hits = test.fitb_hits(vectors, 4)
  np.testing.assert_array_equal(hits, np.array(expected_hits, np.float32))
  summary = test.summarize(test.ranks(vectors), {"fitb_4": hits})
  ranks = _oracle_ranks(test, vectors)
  for k in (1, 5, 10, 30, 50):
    assert summary[f"micro/recall_at_{k}"] == pytest.approx(np.mean(ranks <= k))
  assert summary["micro/fitb_4"] == pytest.approx(np.mean(expected_hits))
  per_category = [np.mean(hits[test.targets.categories == c]) if np.any(
      test.targets.categories == c) else np.nan for c in range(1, 5)]
  np.testing.assert_allclose(summary["per_category/fitb_4"], per_category)
  # The draw is fixed per evaluator, so every method faces the same candidates.
  assert test.distractors(3) is distractors


def test_eval_config_rejects_bad_fitb_and_ridge_settings():
  from keras_models import configs  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="fitb_candidates must be >= 2, got 1"):
    configs.EvalConfig(data_dir="d", model_dir="m", fitb_candidates=1).validate()
  with pytest.raises(ValueError, match=r"ridge_lambdas must be non-empty and > 0, got \(\)"):
    configs.EvalConfig(data_dir="d", model_dir="m", ridge_lambdas=()).validate()
