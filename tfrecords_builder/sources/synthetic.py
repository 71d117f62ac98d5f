"""Embedded synthetic dataset: deterministic by seed, no files needed. SYNTHETIC DATA.

Generative process (all draws from `numpy.random.default_rng(seed)`):
  1. Each category c in 1..K gets a fixed direction mu_c ~ N(0, I_D) / sqrt(D) and a
     fixed two-layer style map f_c(z) = A_c tanh(W_c z), W_c [H, L] and A_c [D, H]
     Gaussian, scaled so that ||f_c(z)|| is about `style_scale`.
  2. Each set draws a latent style z ~ N(0, I_L) and a size n uniform in
     [min_items, max_items]; its categories are drawn with replacement from a Zipf-like
     distribution p_c proportional to 1 / c**0.5 (heterogeneous, some repeats).
  3. Item j of category c gets x = mu_c + f_c(z) + noise_scale * eps / sqrt(D),
     eps ~ N(0, I_D).
The category mean mu_c says nothing about z, so the category-mean predictor ranks a
category's items almost at random; the other items of the set reveal z through their
own f_c'(z), so a model that reads the query set can predict f_c(z) and beat it clearly.
Items are unique to their set. Sets carry no split: the builder's seeded 70/15/15 rule
assigns them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfrecords_builder import raw_dataset

# Elements of the largest temporary array of one generation block.
_BLOCK_ELEMENTS = 1 << 22


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Size and difficulty of the synthetic dataset."""

  num_sets: int = 3000
  num_categories: int = 11
  feature_dim: int = 64
  latent_dim: int = 16
  hidden_dim: int = 32
  min_items: int = 4
  max_items: int = 10
  style_scale: float = 1.0
  noise_scale: float = 1.5
  seed: int = 0

  def validate(self) -> None:
    if self.num_sets < 3:
      raise ValueError(f"synthetic: num_sets must be >= 3, got {self.num_sets}")
    if self.num_categories < 1 or self.feature_dim < 1 or self.latent_dim < 1:
      raise ValueError("synthetic: num_categories, feature_dim and latent_dim must be >= 1")
    if not 2 <= self.min_items <= self.max_items:
      raise ValueError(
          f"synthetic: need 2 <= min_items <= max_items, got {self.min_items}, {self.max_items}")


def category_name(category: int) -> str:
  return f"cat{category:02d}"


def generate(config: SyntheticConfig) -> raw_dataset.RawDataset:
  """Generates the dataset described in the module docstring."""
  config.validate()
  rng = np.random.default_rng(config.seed)
  k, d, l, h = config.num_categories, config.feature_dim, config.latent_dim, config.hidden_dim
  mu = rng.standard_normal((k, d)) / np.sqrt(d)
  w = rng.standard_normal((k, h, l)) / np.sqrt(l)
  a = rng.standard_normal((k, d, h)) * config.style_scale / np.sqrt(h * 0.4)
  a /= np.sqrt(d)
  probabilities = 1.0 / np.sqrt(np.arange(1, k + 1))
  probabilities /= probabilities.sum()

  sizes = rng.integers(config.min_items, config.max_items + 1, size=config.num_sets)
  styles = rng.standard_normal((config.num_sets, l))
  total = int(sizes.sum())
  categories = rng.choice(k, size=total, p=probabilities)
  set_of_item = np.repeat(np.arange(config.num_sets), sizes)
  # Items are generated in row blocks so that the [rows, D, H] gathered style maps stay
  # small at 1e6 items; every block makes the same calls on fewer rows and the noise is
  # drawn in the same order, so the output does not depend on the block size.
  features = np.empty((total, d), np.float32)
  block = max(1, _BLOCK_ELEMENTS // (d * h))
  for start in range(0, total, block):
    rows = slice(start, min(start + block, total))
    hidden = np.tanh(np.einsum("nhl,nl->nh", w[categories[rows]], styles[set_of_item[rows]]))
    features[rows] = (mu[categories[rows]]
                      + np.einsum("ndh,nh->nd", a[categories[rows]], hidden)
                      + config.noise_scale * rng.standard_normal((rows.stop - start, d))
                      / np.sqrt(d))

  item_ids = np.array([f"syn{s:06d}-{j:02d}" for s, n in enumerate(sizes) for j in range(n)])
  names = [category_name(c + 1) for c in range(k)]
  sets = []
  start = 0
  for s, n in enumerate(sizes):
    sets.append(raw_dataset.RawSet(
        set_id=f"syn{s:06d}",
        items=tuple(item_ids[start:start + n]),
        categories=tuple(names[c] for c in categories[start:start + n]),
        origin=f"synthetic set {s}"))
    start += n
  return raw_dataset.RawDataset(
      name="synthetic", sets=sets, item_ids=item_ids, features=features,
      features_origin=f"synthetic(seed={config.seed})", category_names=tuple(names),
      synthetic=True)
