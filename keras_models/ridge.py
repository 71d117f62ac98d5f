"""Per-category centred ridge regression fitted from streamed sufficient statistics.

For each category c, with n_c pairs (x, y) of inputs and targets:
  W_c(lambda) = argmin_W ||(X_c - xbar_c) W - (Y_c - ybar_c)||^2 + lambda ||W||^2
              = (G_c + lambda I)^-1 C_c,
  G_c = X_c^T X_c - n_c xbar_c xbar_c^T,   C_c = X_c^T Y_c - n_c xbar_c ybar_c^T,
and a prediction is ybar_c + (x - xbar_c) W_c. Only n_c, the sums of x and y and the
[D, D] products X^T X and X^T Y are kept, accumulated block by block in float64, so a fit
over millions of pairs holds O(K D^2) numbers, never the pairs. One eigendecomposition
G_c = V diag(e) V^T per category serves every lambda of a grid: W_c = V diag(1 / (e +
lambda)) V^T C_c. Directions with e <= 1e-12 max e (the centring's null space, rounding)
are dropped, which is the minimum-norm solution there.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class _Sums:
  count: int
  input_sum: np.ndarray  # [D]
  target_sum: np.ndarray  # [D]
  gram: np.ndarray  # [D, D] X^T X
  cross: np.ndarray  # [D, D] X^T Y


class RidgeStatistics:
  """Running per-category sums of (input, target) pairs."""

  def __init__(self) -> None:
    self.sums: dict[int, _Sums] = {}

  def add(self, inputs: np.ndarray, targets: np.ndarray, categories: np.ndarray) -> None:
    """Adds pairs: `inputs` and `targets` [n, D], `categories` [n] int."""
    inputs, targets = np.asarray(inputs, np.float64), np.asarray(targets, np.float64)
    categories = np.asarray(categories)
    for category in np.unique(categories):
      rows = categories == category
      x, y = inputs[rows], targets[rows]
      sums = self.sums.get(int(category))
      if sums is None:
        dim = inputs.shape[1]
        sums = self.sums[int(category)] = _Sums(
            0, np.zeros(dim), np.zeros(dim), np.zeros((dim, dim)), np.zeros((dim, dim)))
      sums.count += len(x)
      sums.input_sum += x.sum(axis=0)
      sums.target_sum += y.sum(axis=0)
      sums.gram += x.T @ x
      sums.cross += x.T @ y


@dataclasses.dataclass(frozen=True)
class _CategoryFit:
  input_mean: np.ndarray  # [D]
  target_mean: np.ndarray  # [D]
  basis: np.ndarray  # [D, r] eigenvectors V of G_c kept
  eigenvalues: np.ndarray  # [r]
  projected: np.ndarray  # [r, D] V^T C_c


class Ridge:
  """Per-category centred ridge (module docstring); lambda is chosen at `predict`."""

  def __init__(self, inputs: np.ndarray, targets: np.ndarray, categories: np.ndarray):
    """Fits pairs given at once: `inputs`, `targets` [n, D], `categories` [n] int."""
    statistics = RidgeStatistics()
    statistics.add(inputs, targets, categories)
    self.fits = _fit(statistics)

  @classmethod
  def from_statistics(cls, statistics: RidgeStatistics) -> Ridge:
    ridge = cls.__new__(cls)
    ridge.fits = _fit(statistics)
    return ridge

  def predict(self, inputs: np.ndarray, categories: np.ndarray, lam: float) -> np.ndarray:
    """[m, D] ybar_c + (x - xbar_c) W_c(lam); rows of a category without a fit keep x."""
    inputs = np.asarray(inputs, np.float64)
    categories = np.asarray(categories)
    result = inputs.copy()
    for category in np.unique(categories):
      fit = self.fits.get(int(category))
      if fit is None:
        continue
      rows = categories == category
      coordinates = (inputs[rows] - fit.input_mean) @ fit.basis
      result[rows] = fit.target_mean + (coordinates / (fit.eigenvalues + lam)) @ fit.projected
    return result


def _fit(statistics: RidgeStatistics) -> dict[int, _CategoryFit]:
  fits = {}
  for category, sums in statistics.sums.items():
    input_mean = sums.input_sum / sums.count
    target_mean = sums.target_sum / sums.count
    gram = sums.gram - sums.count * np.outer(input_mean, input_mean)
    cross = sums.cross - sums.count * np.outer(input_mean, target_mean)
    eigenvalues, basis = np.linalg.eigh((gram + gram.T) / 2)
    keep = eigenvalues > 1e-12 * max(float(eigenvalues.max(initial=0.0)), 1e-300)
    basis = basis[:, keep]
    fits[category] = _CategoryFit(input_mean, target_mean, basis, eigenvalues[keep],
                                  basis.T @ cross)
  return fits
