"""Embedded synthetic dataset: deterministic by seed, no files needed. SYNTHETIC DATA.

Generative process (all draws from `numpy.random.default_rng(seed)`):
  1. Each category c in 1..K gets a fixed direction mu_c ~ N(0, I_D) / sqrt(D) and a
     fixed two-layer style map f_c(z) = A_c tanh(W_c z), W_c [H, L] and A_c [D, H]
     Gaussian, scaled so that ||f_c(z)|| is about `style_scale`.
  2. Each set draws a size n uniform in [min_items, max_items]; its categories are drawn
     with replacement from a Zipf-like distribution p_c proportional to 1 / c**0.5
     (heterogeneous, some repeats).
  3. An item of category c with latent style z has the feature
     x = mu_c + f_c(z) + noise_scale * eps / sqrt(D), eps ~ N(0, I_D).
Without a catalog (`catalog_size` 0) every item is unique to its set and takes the set's
style z ~ N(0, I_L). With a catalog, items recur across sets as in real data: the
catalog holds `catalog_size` items, each of a category drawn from p_c and of a style
z = s_m + style_jitter * N(0, I_L) around one of `num_styles` style prototypes s_m; a set
draws a prototype m, and each of its slots an item uniformly from the catalog items of
the slot's category and style m (from all items of the category when there are none). A
set never holds one item twice: a repeated draw is redrawn, and dropped after a few tries.
The category mean mu_c says nothing about z, so the category-mean predictor ranks a
category's items almost at random; the other items of the set reveal z through their
own f_c'(z), so a model that reads the query set can predict f_c(z) and beat it clearly.
Sets carry no split: the builder's seeded 70/15/15 rule assigns them.

Features are computed in row blocks with one matrix product per category and block, so
memory is the output plus a block, and the result does not depend on the block size.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfrecords_builder import raw_dataset

# Elements of the largest temporary array of one generation block.
_BLOCK_ELEMENTS = 1 << 22
# Mean catalog items per (style, category) pool when `num_styles` is 0 (automatic).
_ITEMS_PER_POOL = 20
# Redraws of a slot whose item is already in its set, before the slot is dropped.
_REDRAWS = 8


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Size and difficulty of the synthetic dataset.

  Attributes:
    catalog_size: Distinct items that sets draw from; 0 = every item unique to its set.
    num_styles: Style prototypes of the catalog; 0 = catalog_size // (20 K), so that a
      (style, category) pool holds about 20 items.
    style_jitter: Spread of a catalog item's style around its prototype.
  """

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
  catalog_size: int = 0
  num_styles: int = 0
  style_jitter: float = 0.5

  def validate(self) -> None:
    if self.num_sets < 3:
      raise ValueError(f"synthetic: num_sets must be >= 3, got {self.num_sets}")
    if self.num_categories < 1 or self.feature_dim < 1 or self.latent_dim < 1:
      raise ValueError("synthetic: num_categories, feature_dim and latent_dim must be >= 1")
    if not 2 <= self.min_items <= self.max_items:
      raise ValueError(
          f"synthetic: need 2 <= min_items <= max_items, got {self.min_items}, {self.max_items}")
    if self.catalog_size and self.catalog_size < max(self.num_categories, self.max_items):
      raise ValueError(
          f"synthetic: catalog_size {self.catalog_size} must be 0 (no catalog) or at least "
          f"num_categories ({self.num_categories}) and max_items ({self.max_items})")
    if self.num_styles < 0 or self.style_jitter < 0:
      raise ValueError(f"synthetic: num_styles ({self.num_styles}) and style_jitter "
                       f"({self.style_jitter}) must be >= 0")

  def styles(self) -> int:
    """Style prototypes of the catalog (`num_styles`, or its automatic value)."""
    return self.num_styles or max(1, self.catalog_size // (_ITEMS_PER_POOL * self.num_categories))


def category_name(category: int) -> str:
  return f"cat{category:02d}"


@dataclasses.dataclass(frozen=True)
class _StyleMaps:
  """The per-category parameters of step 1: mu [K, D], W [K, H, L], A [K, D, H]."""

  mu: np.ndarray
  w: np.ndarray
  a: np.ndarray


def _features(rng: np.random.Generator, maps: _StyleMaps, categories: np.ndarray,
              styles: np.ndarray, style_rows: np.ndarray | None,
              noise_scale: float) -> np.ndarray:
  """[N, D] float32 features of items of `categories` [N] (0-based) and styles.

  Item i has style `styles[style_rows[i]]` (`styles[i]` when `style_rows` is None). The
  noise is drawn block after block in row order, so the output does not depend on the
  block size.
  """
  total, d = len(categories), maps.mu.shape[1]
  features = np.empty((total, d), np.float32)
  block = max(1, _BLOCK_ELEMENTS // d)
  for start in range(0, total, block):
    stop = min(start + block, total)
    values = noise_scale * rng.standard_normal((stop - start, d)) / np.sqrt(d)
    block_categories = categories[start:stop]
    rows = np.arange(start, stop) if style_rows is None else style_rows[start:stop]
    for category in np.unique(block_categories):
      local = np.flatnonzero(block_categories == category)
      hidden = np.tanh(styles[rows[local]] @ maps.w[category].T)
      values[local] += maps.mu[category] + hidden @ maps.a[category].T
    features[start:stop] = values
  return features


def _draw_items(rng: np.random.Generator, config: SyntheticConfig, owners: np.ndarray,
                slot_categories: np.ndarray, item_categories: np.ndarray,
                item_styles: np.ndarray, set_styles: np.ndarray) -> np.ndarray:
  """[slots] catalog item of every slot (-1: dropped as a repeat within its set)."""
  k = config.num_categories
  pool_key = item_styles * k + item_categories
  pool_order = np.argsort(pool_key, kind="stable")
  pool_counts = np.bincount(pool_key, minlength=config.styles() * k)
  pool_starts = np.concatenate([[0], np.cumsum(pool_counts)[:-1]])
  category_order = np.argsort(item_categories, kind="stable")
  category_counts = np.bincount(item_categories, minlength=k)
  category_starts = np.concatenate([[0], np.cumsum(category_counts)[:-1]])
  slot_key = set_styles[owners] * k + slot_categories
  own_pool = pool_counts[slot_key] > 0

  def draw(slots: np.ndarray) -> np.ndarray:
    u = rng.random(len(slots))
    key, category = slot_key[slots], slot_categories[slots]
    from_pool = pool_order[pool_starts[key] + (u * pool_counts[key]).astype(np.int64)]
    from_category = category_order[category_starts[category]
                                   + (u * category_counts[category]).astype(np.int64)]
    return np.where(own_pool[slots], from_pool, from_category)

  items = draw(np.arange(len(owners)))
  for attempt in range(_REDRAWS + 1):
    order = np.lexsort((items, owners))
    repeated = np.zeros(len(items), bool)
    repeated[order[1:]] = ((owners[order[1:]] == owners[order[:-1]])
                           & (items[order[1:]] == items[order[:-1]]) & (items[order[1:]] >= 0))
    slots = np.flatnonzero(repeated)
    if not len(slots):
      break
    items[slots] = draw(slots) if attempt < _REDRAWS else -1
  return items


def generate(config: SyntheticConfig) -> raw_dataset.RawDataset:
  """Generates the dataset described in the module docstring."""
  config.validate()
  rng = np.random.default_rng(config.seed)
  k, d, l, h = config.num_categories, config.feature_dim, config.latent_dim, config.hidden_dim
  mu = rng.standard_normal((k, d)) / np.sqrt(d)
  w = rng.standard_normal((k, h, l)) / np.sqrt(l)
  a = rng.standard_normal((k, d, h)) * config.style_scale / np.sqrt(h * 0.4)
  maps = _StyleMaps(mu, w, a / np.sqrt(d))
  probabilities = 1.0 / np.sqrt(np.arange(1, k + 1))
  probabilities /= probabilities.sum()

  sizes = rng.integers(config.min_items, config.max_items + 1, size=config.num_sets)
  owners = np.repeat(np.arange(config.num_sets), sizes)
  names = [category_name(c + 1) for c in range(k)]
  if config.catalog_size:
    item_categories = np.concatenate([
        np.arange(k), rng.choice(k, size=config.catalog_size - k, p=probabilities)])
    item_styles = rng.integers(0, config.styles(), size=config.catalog_size)
    prototypes = rng.standard_normal((config.styles(), l))
    latent = prototypes[item_styles] + config.style_jitter * rng.standard_normal(
        (config.catalog_size, l))
    features = _features(rng, maps, item_categories, latent, None, config.noise_scale)
    set_styles = rng.integers(0, config.styles(), size=config.num_sets)
    slot_categories = rng.choice(k, size=len(owners), p=probabilities)
    slots = _draw_items(rng, config, owners, slot_categories, item_categories, item_styles,
                        set_styles)
    item_ids = np.array([f"syn-item{i:07d}" for i in range(config.catalog_size)])
    kept = slots >= 0
    owners, slots = owners[kept], slots[kept]
    sizes = np.bincount(owners, minlength=config.num_sets)
    slot_names = np.asarray(names)[item_categories[slots]]
    slot_ids = item_ids[slots]
  else:
    styles = rng.standard_normal((config.num_sets, l))
    categories = rng.choice(k, size=len(owners), p=probabilities)
    features = _features(rng, maps, categories, styles, owners, config.noise_scale)
    item_ids = np.array([f"syn{s:06d}-{j:02d}" for s, n in enumerate(sizes) for j in range(n)])
    slot_names = np.asarray(names)[categories]
    slot_ids = item_ids
  sets = []
  start = 0
  for s, n in enumerate(sizes.tolist()):
    sets.append(raw_dataset.RawSet(
        set_id=f"syn{s:06d}", items=tuple(slot_ids[start:start + n].tolist()),
        categories=tuple(slot_names[start:start + n].tolist()), origin=f"synthetic set {s}"))
    start += n
  return raw_dataset.RawDataset(
      name="synthetic", sets=sets, item_ids=item_ids, features=features,
      features_origin=f"synthetic(seed={config.seed})", category_names=tuple(names),
      synthetic=True)
