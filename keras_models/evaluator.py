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

import dataclasses
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from keras_models import configs
from keras_models import data_files
from keras_models import input_pipeline
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
    set_rows: [Q] int32 index of the query's set in split order.
  """

  categories: np.ndarray
  positive_rows: np.ndarray
  set_rows: np.ndarray


class Evaluator:
  """Holds one split's fixed halves and gallery; scores any encoder against them."""

  def __init__(self, manifest: data_files.Manifest, split: str, *, batch_size: int = 256,
               gallery: str = "targets", chunk_size: int = configs.GALLERY_CHUNK_SIZE,
               seed: int = 0,
               top_percents=(5, 10, 20), recall_ks=(1, 5, 10, 30, 50), map_ks=(10,)):
    self.manifest = manifest
    self.split = split
    self.seed = seed
    self.chunk_size = chunk_size
    self.top_percents, self.recall_ks, self.map_ks = top_percents, recall_ks, map_ks
    self.table = data_files.load_item_table(manifest, split)
    # The halves are fixed, so the batches are read once and reused every epoch.
    self.batches = list(input_pipeline.make_dataset(
        manifest, split, batch_size, training=False, seed=seed))
    self.targets = self._target_slots()
    self.positive_features = l2_normalize(self.table.features[self.targets.positive_rows])
    if gallery == "targets":
      rows = np.unique(self.targets.positive_rows)
    else:
      rows = np.arange(len(self.table.item_ids), dtype=np.int64)
    self.gallery_rows = rows
    self.gallery_features = l2_normalize(self.table.features[rows])
    self.gallery_categories = self.table.categories[rows]
    sizes = np.bincount(self.gallery_categories, minlength=manifest.num_categories + 1)
    self.category_gallery_sizes = sizes[1:]
    self.query_gallery_sizes = sizes[self.targets.categories]
    # Both gallery kinds keep rows sorted, so a positive's position is a binary search.
    self.positive_positions = np.searchsorted(rows, self.targets.positive_rows)
    self._distractors: dict[int, np.ndarray] = {}
    self.ranker = streaming.ChunkedRanker()
    self._predict_functions: dict[int, tf.types.experimental.PolymorphicFunction] = {}

  def _target_slots(self) -> Targets:
    categories, rows, sets = [], [], []
    self.query_rows: list[np.ndarray] = []
    offset = 0
    for batch in self.batches:
      query_rows = batch["query_item_index"].numpy()
      self.query_rows += [r[r >= 0] for r in query_rows]
      mask = batch["target_mask"].numpy()
      categories.append(batch["target_categories"].numpy()[mask])
      rows.append(batch["target_item_index"].numpy()[mask])
      sets.append((np.nonzero(mask)[0] + offset).astype(np.int32))
      offset += mask.shape[0]
    return Targets(np.concatenate(categories).astype(np.int32),
                   np.concatenate(rows).astype(np.int64), np.concatenate(sets))

  def predictions(self, encoder: keras.Model) -> np.ndarray:
    """[Q, D] normalised predictions p(X, c) for every target item, in `targets` order."""
    if id(encoder) not in self._predict_functions:
      self._predict_functions[id(encoder)] = self._predict_function(encoder)
    predict = self._predict_functions[id(encoder)]
    outputs = [predict(b["query_features"], b["query_categories"], b["query_mask"],
                       b["target_categories"], b["target_mask"]).numpy() for b in self.batches]
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

  def ranks(self, vectors: np.ndarray) -> np.ndarray:
    """[Q] rank of each target item for query vectors [Q, D]."""
    return self.ranker.ranks(
        vectors, self.targets.categories, self.targets.positive_rows, self.positive_features,
        self.gallery_features, self.gallery_categories, self.gallery_rows, self.chunk_size)

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

  def summarize(self, ranks: np.ndarray,
                extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray | float]:
    """Micro/macro/per-category metrics of `ranks` [Q] and any `extra` per-query values."""
    extra = {name: tf.constant(values, tf.float32) for name, values in (extra or {}).items()}
    summary = ranking.summarize(
        tf.constant(ranks, tf.int32), tf.constant(self.query_gallery_sizes, tf.int32),
        tf.constant(self.targets.categories, tf.int32), self.manifest.num_categories,
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
