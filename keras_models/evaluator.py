"""Full-gallery retrieval evaluator of a set encoder on one split (used by training and eval_main).

Protocol: one forward pass per query half X gives a prediction for every category; each
target item y (category c) of the set is a query p(X, c) whose positive is y, ranked by
cosine among the gallery G_c (the deduplicated target items of category c over the split,
or every item of the split with gallery="items"). Ties count against the model. The
gallery is scored in chunks by compiled functions, so memory is bounded by chunk sizes.
FITB (`fitb_hits`) scores the same predictions against distractors drawn once per
evaluator from `seed`, so every method it scores faces the same candidates.
"""

from __future__ import annotations

from collections.abc import Iterator
import dataclasses
import functools
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from keras_models import configs
from keras_models import data_files
from keras_models import fixed_halves
from keras_models.losses import set_ops
from keras_models.metrics import fitb
from keras_models.metrics import ranking
from keras_models.metrics import streaming


@dataclasses.dataclass
class Targets:
  """One row per target item of the split, i.e. per query.

  Attributes:
    categories: [Q] int32 category c of the positive.
    positive_rows: [Q] int64 item-table row of the positive.
    set_rows: [Q] int32 index of the query's set in split order (the item table's).
  """

  categories: np.ndarray
  positive_rows: np.ndarray
  set_rows: np.ndarray


class Evaluator:
  """Holds one split's fixed halves and gallery; scores any encoder against them.

  Memory is the split's item table plus per-query index arrays: the halves are index
  arrays (`fixed_halves`), and the padded query batches are gathered from the item table
  block by block each time a model is scored, never kept. The normalised gallery and
  positive features are made on first use, so an evaluator that only lends its halves
  (the ridge baseline's train split) never copies its table.
  """

  def __init__(self, manifest: data_files.Manifest, split: str, *, batch_size: int = 256,
               gallery: str = "targets", chunk_size: int = configs.GALLERY_CHUNK_SIZE,
               seed: int = 0,
               top_percents=(5, 10, 20), recall_ks=(1, 5, 10, 30, 50), map_ks=(10,)):
    self.manifest = manifest
    self.split = split
    self.seed = seed
    self.batch_size = batch_size
    self.chunk_size = chunk_size
    self.top_percents, self.recall_ks, self.map_ks = top_percents, recall_ks, map_ks
    self.table = data_files.load_item_table(manifest, split)
    self.halves = fixed_halves.fixed_halves(self.table, seed)
    self.targets = Targets(self.table.categories[self.halves.target_items].astype(np.int32),
                           self.halves.target_items, self.halves.target_owners())
    if gallery == "targets":
      rows = np.unique(self.targets.positive_rows)
    else:
      rows = np.arange(len(self.table.item_ids), dtype=np.int64)
    self.gallery_rows = rows
    self.gallery_categories = self.table.categories[rows]
    sizes = np.bincount(self.gallery_categories, minlength=manifest.num_categories + 1)
    self.category_gallery_sizes = sizes[1:]
    self.query_gallery_sizes = sizes[self.targets.categories]
    # Both gallery kinds keep rows sorted, so a positive's position is a binary search.
    self.positive_positions = np.searchsorted(rows, self.targets.positive_rows)
    self._distractors: dict[int, np.ndarray] = {}
    self.ranker = streaming.ChunkedRanker()
    # Query x gallery pairs scored by `ranks` so far, and the seconds it took.
    self.pairs_ranked, self.rank_seconds = 0, 0.0
    self._predict_functions: dict[int, tf.types.experimental.PolymorphicFunction] = {}

  @functools.cached_property
  def query_rows(self) -> list[np.ndarray]:
    """Per set (split order), its query half's item-table rows."""
    return np.split(self.halves.query_items, self.halves.query_offsets[1:-1])

  @functools.cached_property
  def gallery_features(self) -> np.ndarray:
    """[G, D] normalised features of the gallery rows."""
    return l2_normalize(self.table.features[self.gallery_rows])

  @functools.cached_property
  def positive_features(self) -> np.ndarray:
    """[Q, D] normalised feature of each query's positive (a gallery row)."""
    return self.gallery_features[self.positive_positions]

  def query_batches(self) -> Iterator[dict[str, np.ndarray]]:
    """Padded model inputs of the query halves, `batch_size` sets at a time.

    Yields dicts of `query_features` [b, half, D] float32, `query_categories` and
    `target_categories` [b, half] int32 (0 = pad), `query_mask` and `target_mask` [b, half]
    bool, gathered from the item table as the shards' fixed split gives them.
    """
    half, halves, table = self.manifest.half_size, self.halves, self.table
    for start in range(0, halves.num_sets, self.batch_size):
      stop = min(start + self.batch_size, halves.num_sets)
      query = fixed_halves.padded(halves.query_offsets, halves.query_items, start, stop, half)
      target = fixed_halves.padded(halves.target_offsets, halves.target_items, start, stop,
                                   half)
      query_mask, target_mask = query >= 0, target >= 0
      features = table.features[np.maximum(query, 0)] * query_mask[..., None]
      yield {"query_features": features.astype(np.float32, copy=False),
             "query_categories": np.where(query_mask, table.categories[np.maximum(query, 0)],
                                          0).astype(np.int32),
             "query_mask": query_mask,
             "target_categories": np.where(target_mask,
                                           table.categories[np.maximum(target, 0)],
                                           0).astype(np.int32),
             "target_mask": target_mask}

  def predictions(self, encoder: keras.Model) -> np.ndarray:
    """[Q, D] normalised predictions p(X, c) for every target item, in `targets` order."""
    if id(encoder) not in self._predict_functions:
      self._predict_functions[id(encoder)] = self._predict_function(encoder)
    predict = self._predict_functions[id(encoder)]
    outputs = [predict(b["query_features"], b["query_categories"], b["query_mask"],
                       b["target_categories"], b["target_mask"]).numpy()
               for b in self.query_batches()]
    return l2_normalize(np.concatenate(outputs))

  def _predict_function(self, encoder: keras.Model):
    half, dim = self.manifest.half_size, self.manifest.feature_dim
    signature = [tf.TensorSpec([None, half, dim], tf.float32),
                 tf.TensorSpec([None, half], tf.int32), tf.TensorSpec([None, half], tf.bool),
                 tf.TensorSpec([None, half], tf.int32), tf.TensorSpec([None, half], tf.bool)]

    @tf.function(input_signature=signature)
    def predict(features, categories, mask, target_categories, target_mask):
      predicted = encoder({"features": features, "categories": categories, "mask": mask},
                          training=False)
      per_item = set_ops.gather_category_predictions(predicted, target_categories)
      return tf.boolean_mask(per_item, target_mask)

    return predict

  def ranks(self, vectors: np.ndarray, queries: np.ndarray | None = None) -> np.ndarray:
    """[Q] rank of each target item for query vectors [Q, D].

    With `queries` ([n] positions in `targets` order), `vectors` [n, D] are those queries'
    vectors and their [n] ranks are returned.
    """
    chosen = slice(None) if queries is None else queries
    start = time.perf_counter()
    ranks = self.ranker.ranks(
        vectors, self.targets.categories[chosen], self.targets.positive_rows[chosen],
        self.positive_features[chosen], self.gallery_features, self.gallery_categories,
        self.gallery_rows, self.chunk_size)
    self.rank_seconds += time.perf_counter() - start
    self.pairs_ranked += int(self.query_gallery_sizes[chosen].sum())
    return ranks

  def distractors(self, num_distractors: int) -> np.ndarray:
    """[Q, k] gallery positions of each query's FITB distractors (-1: none), drawn once."""
    if num_distractors not in self._distractors:
      self._distractors[num_distractors] = fitb.draw_distractors(
          self.targets.categories, self.positive_positions, self.gallery_categories,
          num_distractors, self.seed)
    return self._distractors[num_distractors]

  def fitb_hits(self, vectors: np.ndarray, num_candidates: int = 4) -> np.ndarray:
    """[Q] FITB-`num_candidates` hits of query vectors [Q, D] (`fitb.hits`)."""
    return fitb.hits(vectors, self.positive_positions, self.distractors(num_candidates - 1),
                     self.gallery_features)

  def summarize(self, ranks: np.ndarray, extra: dict[str, np.ndarray] | None = None,
                queries: np.ndarray | None = None) -> dict[str, np.ndarray | float]:
    """Micro/macro/per-category metrics of `ranks` [Q] and any `extra` per-query values.

    With `queries`, `ranks` are those of `ranks(vectors, queries)`.
    """
    chosen = slice(None) if queries is None else queries
    extra = {name: tf.constant(values, tf.float32) for name, values in (extra or {}).items()}
    summary = ranking.summarize(
        tf.constant(ranks, tf.int32), tf.constant(self.query_gallery_sizes[chosen], tf.int32),
        tf.constant(self.targets.categories[chosen], tf.int32), self.manifest.num_categories,
        self.top_percents, self.recall_ks, self.map_ks, extra)
    return {k: (v.numpy() if v.shape.rank else float(v.numpy())) for k, v in summary.items()}

  def evaluate(self, encoder: keras.Model) -> tuple[dict, np.ndarray, np.ndarray]:
    """Returns (summary, ranks, prediction vectors) of `encoder`."""
    start = time.time()
    vectors = self.predictions(encoder)
    ranks = self.ranks(vectors)
    logging.info("%s: ranked %d queries against %d gallery items in %.2f s", self.split,
                 len(ranks), len(self.gallery_rows), time.time() - start)
    return self.summarize(ranks), ranks, vectors


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
  vectors = np.asarray(vectors, np.float32)
  norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
  return vectors / np.maximum(norms, 1e-12)
