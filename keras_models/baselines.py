"""Training-free predictors a learned model must beat, ranked by the same `Evaluator`.

Each gives a prediction p(X, c) for every query (target item of category c, query half
X), in `evaluator.targets` order; the evaluator ranks and FITB-scores it exactly as it
does the model's. With x^ = x / ||x|| the L2-normalised item features (the gallery's
geometry) and centre_c the train category centres (`category_centers.npy`):

- random: rank uniform in 1..|G_c| and uniform FITB candidate scores (no vector).
- category_mean: p = centre_c.
- query_mean: p = mean_{x in X} x^, the same for every c.
- centred_query_mean: p = centre_c + mean_{x in X} (x^ - centre_cat(x)), the query
  items' offsets from their own centres moved to the target's centre.
- ridge: p = ybar_c + (q - qbar_c) W_c with q = query_mean(X) / ||.||, one ridge per
  target category c, W_c = argmin ||(Q_c - qbar_c) W - (Y_c - ybar_c)||^2 + lambda ||W||^2
  over the train sets' (query mean, normalised target item) pairs of category c, taken
  from the fixed evaluation halves of each train set (`--eval_split_seed`). lambda is
  the grid value with the best val Top-10 % micro (ties: the larger lambda). Solved by a
  thin SVD of the centred inputs (an [n, D] matrix; via the smaller Gram matrix), so
  every lambda of the grid reuses one factorisation. A category with no
  train pair predicts q itself.

Every prediction is L2-normalised before ranking (cosine ranking ignores its scale).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from keras_models import evaluator as evaluator_lib

NAMES = ("random", "category_mean", "query_mean", "centred_query_mean", "ridge")
DEFAULT_RIDGE_LAMBDAS = (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0)
RIDGE_MONITOR = "micro/top_10_percent"


def set_means(query_rows: Sequence[np.ndarray], values: np.ndarray) -> np.ndarray:
  """[S, D] float64 mean of `values` [N, D] over each set's rows (zeros for no rows)."""
  sizes = np.array([len(rows) for rows in query_rows], np.int64)
  sums = np.zeros((len(query_rows), values.shape[1]), np.float64)
  rows = np.concatenate([np.asarray(r, np.int64) for r in query_rows] + [np.zeros(0, np.int64)])
  owners = np.repeat(np.arange(len(query_rows)), sizes)
  np.add.at(sums, owners, values[rows].astype(np.float64))
  return sums / np.maximum(sizes, 1)[:, np.newaxis]


def query_mean(evaluator: evaluator_lib.Evaluator) -> np.ndarray:
  """[Q, D] normalised mean of each query's normalised query-half items."""
  items = evaluator_lib.l2_normalize(evaluator.table.features)
  means = set_means(evaluator.query_rows, items)
  return evaluator_lib.l2_normalize(means[evaluator.targets.set_rows])


def centred_query_mean(evaluator: evaluator_lib.Evaluator, centers: np.ndarray) -> np.ndarray:
  """[Q, D] normalised centre_c + mean over X of (x^ - centre_cat(x)); `centers` [K, D]."""
  table = evaluator.table
  offsets = evaluator_lib.l2_normalize(table.features) - centers[table.categories - 1]
  means = set_means(evaluator.query_rows, offsets)
  targets = evaluator.targets
  return evaluator_lib.l2_normalize(centers[targets.categories - 1] + means[targets.set_rows])


@dataclasses.dataclass(frozen=True)
class _CategoryFit:
  """Thin SVD of one category's centred inputs: (Q - qbar) = U diag(s) Vt."""

  input_mean: np.ndarray  # [D]
  target_mean: np.ndarray  # [D]
  vt: np.ndarray  # [r, D]
  singular_values: np.ndarray  # [r]
  projected_targets: np.ndarray  # [r, D], U^T (Y - ybar)


def _thin_svd_fit(inputs: np.ndarray, targets: np.ndarray, input_mean: np.ndarray,
                  target_mean: np.ndarray) -> _CategoryFit:
  """Thin SVD of centred `inputs` [n, D] from the eigenvectors of the smaller Gram matrix.

  LAPACK's SVD of an [n, D] matrix was 8x slower here than `eigh` of its [min(n, D)]^2
  Gram matrix. Directions with s^2 <= 1e-12 max s^2 (the centring's null space and
  rounding) are dropped.
  """
  if len(inputs) <= inputs.shape[1]:
    eigenvalues, u = np.linalg.eigh(inputs @ inputs.T)
  else:
    eigenvalues, v = np.linalg.eigh(inputs.T @ inputs)
  keep = eigenvalues > 1e-12 * max(float(eigenvalues.max(initial=0.0)), 1e-300)
  singular_values = np.sqrt(eigenvalues[keep])
  if len(inputs) <= inputs.shape[1]:
    u = u[:, keep]
    vt = (u.T @ inputs) / singular_values[:, np.newaxis]
    projected = u.T @ targets
  else:
    vt = v[:, keep].T
    projected = (vt @ (inputs.T @ targets)) / singular_values[:, np.newaxis]
  return _CategoryFit(input_mean, target_mean, vt, singular_values, projected)


class Ridge:
  """Per-category centred ridge regression from inputs [n, D] to targets [n, D]."""

  def __init__(self, inputs: np.ndarray, targets: np.ndarray, categories: np.ndarray):
    """Fits every category of `categories` [n] (int); lambda is chosen at `predict`."""
    self.fits: dict[int, _CategoryFit] = {}
    inputs, targets = np.asarray(inputs, np.float64), np.asarray(targets, np.float64)
    categories = np.asarray(categories)
    for category in np.unique(categories):
      rows = categories == category
      x_mean, y_mean = inputs[rows].mean(axis=0), targets[rows].mean(axis=0)
      self.fits[int(category)] = _thin_svd_fit(inputs[rows] - x_mean, targets[rows] - y_mean,
                                               x_mean, y_mean)

  def predict(self, inputs: np.ndarray, categories: np.ndarray, lam: float) -> np.ndarray:
    """[m, D] ybar_c + (x - xbar_c) W_c, W_c = Vt^T diag(s / (s^2 + lam)) U^T (Y - ybar).

    Rows of a category without a fit get their input unchanged.
    """
    inputs = np.asarray(inputs, np.float64)
    categories = np.asarray(categories)
    result = inputs.copy()
    for category in np.unique(categories):
      fit = self.fits.get(int(category))
      if fit is None:
        continue
      rows = categories == category
      shrink = fit.singular_values / (fit.singular_values ** 2 + lam)
      coordinates = (inputs[rows] - fit.input_mean) @ fit.vt.T
      result[rows] = fit.target_mean + (coordinates * shrink) @ fit.projected_targets
    return result


@dataclasses.dataclass(frozen=True)
class RidgeFit:
  """The fitted ridge, its lambda and the val `RIDGE_MONITOR` of every grid value."""

  model: Ridge
  lam: float
  val_scores: dict[float, float]

  def predict(self, evaluator: evaluator_lib.Evaluator) -> np.ndarray:
    """[Q, D] normalised ridge predictions for the queries of `evaluator`."""
    return evaluator_lib.l2_normalize(self.model.predict(
        query_mean(evaluator), evaluator.targets.categories, self.lam))


def fit_ridge(train: evaluator_lib.Evaluator, val: evaluator_lib.Evaluator,
              lambdas: Sequence[float] = DEFAULT_RIDGE_LAMBDAS) -> RidgeFit:
  """Fits on `train`'s queries, picks lambda by `val`'s micro Top-10 % (ties: larger).

  Raises:
    ValueError: if `lambdas` is empty or holds a value <= 0.
  """
  if not lambdas or min(lambdas) <= 0:
    raise ValueError(f"ridge lambdas must be a non-empty list of values > 0, got {lambdas}")
  model = Ridge(query_mean(train), train.positive_features, train.targets.categories)
  inputs = query_mean(val)
  scores = {}
  for lam in sorted(lambdas, reverse=True):
    vectors = evaluator_lib.l2_normalize(model.predict(inputs, val.targets.categories, lam))
    scores[float(lam)] = float(val.summarize(val.ranks(vectors))[RIDGE_MONITOR])
  best = max(scores, key=lambda lam: (scores[lam], lam))
  return RidgeFit(model=model, lam=best, val_scores=dict(sorted(scores.items())))


def predictions(name: str, evaluator: evaluator_lib.Evaluator, centers: np.ndarray,
                ridge: RidgeFit | None = None) -> np.ndarray:
  """[Q, D] normalised predictions of baseline `name` (any of `NAMES` but random).

  Raises:
    ValueError: for an unknown name, random, or ridge without a `ridge` fit.
  """
  if name == "category_mean":
    return evaluator_lib.l2_normalize(centers[evaluator.targets.categories - 1])
  if name == "query_mean":
    return query_mean(evaluator)
  if name == "centred_query_mean":
    return centred_query_mean(evaluator, centers)
  if name == "ridge" and ridge is not None:
    return ridge.predict(evaluator)
  raise ValueError(f"baseline '{name}' has no prediction vectors here; vector baselines: "
                   f"{[n for n in NAMES if n != 'random']} (ridge needs a fit_ridge result)")


def random_ranks(evaluator: evaluator_lib.Evaluator, seed: int) -> np.ndarray:
  """[Q] ranks uniform in 1..|G_c| from `np.random.default_rng(seed)`."""
  sizes = evaluator.query_gallery_sizes
  rng = np.random.default_rng(seed)
  return (rng.random(len(sizes)) * sizes).astype(np.int64) + 1
