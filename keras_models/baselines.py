"""Training-free predictors a learned model must beat, ranked by the same `Evaluator`.

Each gives a prediction p(X, c) for every query (target item of category c, query half
X), in `evaluator.targets` order; the evaluator ranks and FITB-scores it exactly as it
does the model's. With x^ = x / ||x|| the L2-normalised item features (the gallery's
geometry) and m_c = mean of x^ over the unique train items of category c
(`data_files.load_category_means`; NOT the unit-length `category_centers.npy` that CST's
seeds use: on real features ||m_c|| is about 0.6, and subtracting a unit vector leaves
the offsets far from zero mean):

- random: rank uniform in 1..|G_c| and uniform FITB candidate scores (no vector).
- category_mean: p = m_c.
- query_mean: p = mean_{x in X} x^, the same for every c.
- centred_query_mean: p = m_c + mean_{x in X} (x^ - m_cat(x)), the query items' offsets
  from their own category means moved to the target's category mean.
- ridge: p = ybar_c + (q - qbar_c) W_c with q = query_mean(X) / ||.||, one ridge per
  target category c, W_c = argmin ||(Q_c - qbar_c) W - (Y_c - ybar_c)||^2 + lambda ||W||^2
  over the train sets' (query mean, normalised target item) pairs of category c, taken
  from the fixed evaluation halves of each train set (`--eval_split_seed`). lambda is
  the grid value with the best val Top-10 % micro (ties: the larger lambda), over at most
  20,000 val queries (a seeded sample on larger splits). Fitted from
  streamed sufficient statistics (`ridge.py`), so every lambda of the grid reuses one
  eigendecomposition per category and the train split is never held as pairs. A category
  with no train pair predicts q itself.

Every prediction is L2-normalised before ranking (cosine ranking ignores its scale).
"""

from __future__ import annotations

from collections.abc import Iterator
import dataclasses
from typing import Sequence

import numpy as np

from keras_models import evaluator as evaluator_lib
from keras_models import ridge as ridge_lib

NAMES = ("random", "category_mean", "query_mean", "centred_query_mean", "ridge")
DEFAULT_RIDGE_LAMBDAS = (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0)
RIDGE_MONITOR = "micro/top_10_percent"
# Val queries that choose lambda (a seeded sample beyond this many): enough to tell grid
# values apart (Top-10 % within about +-0.4 points), without ranking the whole val split
# once per grid value.
RIDGE_SELECTION_QUERIES = 20000
_SELECTION_STREAM = 7
# Sets whose query means are computed together (bounds the ridge fit's working memory).
_SETS_PER_BLOCK = 8192


def _set_mean_blocks(evaluator: evaluator_lib.Evaluator, offsets: np.ndarray | None = None,
                     block: int = _SETS_PER_BLOCK) -> Iterator[tuple[int, int, np.ndarray]]:
  """Yields (start, stop, [stop - start, D] float64 mean over each set's query half).

  The mean is of the normalised items x^, or of x^ - offsets[cat(x)] when `offsets`
  ([K, D]) is given. Items are normalised as they are gathered, block by block, so no
  normalised copy of the whole item table is made.
  """
  halves, table = evaluator.halves, evaluator.table
  for start in range(0, halves.num_sets, block):
    stop = min(start + block, halves.num_sets)
    first, last = halves.query_offsets[start], halves.query_offsets[stop]
    rows = halves.query_items[first:last]
    items = evaluator_lib.l2_normalize(table.features[rows]).astype(np.float64)
    if offsets is not None:
      items -= offsets[table.categories[rows] - 1]
    sums = np.add.reduceat(items, halves.query_offsets[start:stop] - first)
    yield start, stop, sums / np.diff(halves.query_offsets[start:stop + 1])[:, np.newaxis]


def _per_query(evaluator: evaluator_lib.Evaluator,
               blocks: Iterator[tuple[int, int, np.ndarray]]) -> np.ndarray:
  """[Q, D] float32: each query takes its set's row of the blocks' [sets, D] values."""
  targets = evaluator.halves.target_offsets
  result = np.empty((len(evaluator.targets.categories), evaluator.table.features.shape[1]),
                    np.float32)
  for start, stop, values in blocks:
    rows = slice(targets[start], targets[stop])
    result[rows] = values[evaluator.targets.set_rows[rows] - start]
  return result


def _query_mean_blocks(evaluator: evaluator_lib.Evaluator
                       ) -> Iterator[tuple[int, int, np.ndarray]]:
  """Yields (start, stop, [stop - start, D] normalised query-half means of those sets)."""
  for start, stop, means in _set_mean_blocks(evaluator):
    yield start, stop, evaluator_lib.l2_normalize(means)


def query_mean(evaluator: evaluator_lib.Evaluator) -> np.ndarray:
  """[Q, D] normalised mean of each query's normalised query-half items."""
  return _per_query(evaluator, _query_mean_blocks(evaluator))


def centred_query_mean(evaluator: evaluator_lib.Evaluator,
                       category_means: np.ndarray) -> np.ndarray:
  """[Q, D] normalised m_c + mean over X of (x^ - m_cat(x)); `category_means` [K, D] m."""
  offsets = _per_query(evaluator, _set_mean_blocks(evaluator, category_means))
  targets = evaluator.targets
  return evaluator_lib.l2_normalize(category_means[targets.categories - 1] + offsets)


@dataclasses.dataclass(frozen=True)
class RidgeFit:
  """The fitted ridge, its lambda and the val `RIDGE_MONITOR` of every grid value."""

  model: ridge_lib.Ridge
  lam: float
  val_scores: dict[float, float]

  def predict(self, evaluator: evaluator_lib.Evaluator) -> np.ndarray:
    """[Q, D] normalised ridge predictions for the queries of `evaluator`."""
    return evaluator_lib.l2_normalize(self.model.predict(
        query_mean(evaluator), evaluator.targets.categories, self.lam))


def selection_queries(num_queries: int, seed: int) -> np.ndarray:
  """Sorted positions of the val queries that choose lambda: all, or a seeded sample of
  `RIDGE_SELECTION_QUERIES` (each grid value ranks them against the whole val gallery)."""
  if num_queries <= RIDGE_SELECTION_QUERIES:
    return np.arange(num_queries)
  rng = np.random.default_rng([seed, _SELECTION_STREAM])
  return np.sort(rng.choice(num_queries, size=RIDGE_SELECTION_QUERIES, replace=False))


def fit_ridge(train: evaluator_lib.Evaluator, val: evaluator_lib.Evaluator,
              lambdas: Sequence[float] = DEFAULT_RIDGE_LAMBDAS) -> RidgeFit:
  """Fits on `train`'s queries, picks lambda by `val`'s micro Top-10 % (ties: larger).

  The train pairs are streamed in blocks of sets into `ridge.RidgeStatistics`, so the
  fit holds O(K D^2) numbers whatever the size of the train split.

  Raises:
    ValueError: if `lambdas` is empty or holds a value <= 0.
  """
  if not lambdas or min(lambdas) <= 0:
    raise ValueError(f"ridge lambdas must be a non-empty list of values > 0, got {lambdas}")
  statistics = ridge_lib.RidgeStatistics()
  targets = train.halves.target_offsets
  for start, stop, means in _query_mean_blocks(train):
    rows = slice(targets[start], targets[stop])
    statistics.add(means[train.targets.set_rows[rows] - start],
                   evaluator_lib.l2_normalize(train.table.features[train.targets.positive_rows[rows]]),
                   train.targets.categories[rows])
  model = ridge_lib.Ridge.from_statistics(statistics)
  queries = selection_queries(len(val.targets.categories), val.seed)
  inputs = query_mean(val)[queries]
  categories = val.targets.categories[queries]
  scores = {}
  for lam in sorted(lambdas, reverse=True):
    vectors = evaluator_lib.l2_normalize(model.predict(inputs, categories, lam))
    scores[float(lam)] = float(val.summarize(val.ranks(vectors, queries), queries=queries)[
        RIDGE_MONITOR])
  best = max(scores, key=lambda lam: (scores[lam], lam))
  return RidgeFit(model=model, lam=best, val_scores=dict(sorted(scores.items())))


def predictions(name: str, evaluator: evaluator_lib.Evaluator, category_means: np.ndarray,
                ridge: RidgeFit | None = None) -> np.ndarray:
  """[Q, D] normalised predictions of baseline `name` (any of `NAMES` but random).

  `category_means` [K, D] are the m_c of the module docstring
  (`data_files.load_category_means`).

  Raises:
    ValueError: for an unknown name, random, or ridge without a `ridge` fit.
  """
  if name == "category_mean":
    return evaluator_lib.l2_normalize(category_means[evaluator.targets.categories - 1])
  if name == "query_mean":
    return query_mean(evaluator)
  if name == "centred_query_mean":
    return centred_query_mean(evaluator, category_means)
  if name == "ridge" and ridge is not None:
    return ridge.predict(evaluator)
  raise ValueError(f"baseline '{name}' has no prediction vectors here; vector baselines: "
                   f"{[n for n in NAMES if n != 'random']} (ridge needs a fit_ridge result)")


def random_ranks(evaluator: evaluator_lib.Evaluator, seed: int) -> np.ndarray:
  """[Q] ranks uniform in 1..|G_c| from `np.random.default_rng(seed)`."""
  sizes = evaluator.query_gallery_sizes
  rng = np.random.default_rng(seed)
  return (rng.random(len(sizes)) * sizes).astype(np.int64) + 1
