"""Library entry of conditional search: `run(config)` for conditional_main.py.

"An item like this one, but of category c." Everything happens in the item feature space
(the space users' galleries are in), with the only label we have, the category:

1. A classifier head f is trained on the train split's items. With `standardize` the
   search space is the features standardised per dimension with train statistics, so
   coordinates are O(1) as in the reference's tanh space, which lr 0.2 assumes; results
   are mapped back before retrieval. With `pca_dim` the search moves only along the top
   principal axes (in 1280-d the full-space search finds adversarial perturbations that
   flip the classifier without changing the neighbours).
2. Queries: up to `num_queries` items of the evaluated split (seeded by query_seed, so
   every seed scores the same queries), each with a condition c drawn uniformly among
   the categories other than its own that have >= min_condition_items gallery items.
3. For every lambda, Backward Search gives z*; a student is distilled from the teacher's
   z* on train-split queries with random conditions; both retrieve by cosine from the
   split's item table, the query item itself excluded (the reference keeps it).
4. Baselines: z0 itself, and z0 restricted to the items of category c (the trivial answer
   when the condition is the category: precision 1 whenever c has >= k items).
"""

from __future__ import annotations

import dataclasses
import os
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from keras_models import data_files
from keras_models.conditional import backward_search
from keras_models.conditional import config as config_lib
from keras_models.conditional import metrics
from keras_models.conditional import networks
from tfrecords_builder import atomic_io


@dataclasses.dataclass(frozen=True)
class FeatureSpace:
  """Affine map from item features x to the search space: z = ((x - mean) / scale) @ basis.

  `basis` [D, P] (orthonormal columns, the top principal axes of the standardised train
  features) is None for the full space. A search result z* goes back as x0 plus the change
  made inside the subspace, so what lies outside it is kept from the query x0.
  """

  mean: np.ndarray
  scale: np.ndarray
  basis: np.ndarray | None = None

  @classmethod
  def fit(cls, features: np.ndarray, standardize: bool, pca_dim: int = 0) -> "FeatureSpace":
    dim = features.shape[1]
    if not standardize:
      mean, scale = np.zeros(dim, np.float32), np.ones(dim, np.float32)
    else:
      mean = features.mean(0).astype(np.float32)
      scale = np.maximum(features.std(0), 1e-6).astype(np.float32)
    basis = None
    if pca_dim:
      _, _, axes = np.linalg.svd((features - mean) / scale, full_matrices=False)
      basis = axes[:pca_dim].T.astype(np.float32)
    return cls(mean, scale, basis)

  @property
  def dim(self) -> int:
    return len(self.mean) if self.basis is None else self.basis.shape[1]

  def to_search(self, features: np.ndarray) -> np.ndarray:
    standardised = (features - self.mean) / self.scale
    if self.basis is not None:
      standardised = standardised @ self.basis
    return standardised.astype(np.float32)

  def to_items(self, z: np.ndarray, query_features: np.ndarray) -> np.ndarray:
    """Item features of search-space vectors z [Q, P] of the queries [Q, D]."""
    z = np.asarray(z, np.float32)
    if self.basis is None:
      return (z * self.scale + self.mean).astype(np.float32)
    change = (z - self.to_search(query_features)) @ self.basis.T
    return (query_features + change * self.scale).astype(np.float32)


def sample_conditions(categories: np.ndarray, allowed: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
  """A condition per item [N], uniform over `allowed` categories other than its own."""
  conditions = np.empty(len(categories), np.int32)
  for i, own in enumerate(categories):
    conditions[i] = rng.choice(allowed[allowed != own])
  return conditions


def sample_queries(categories: np.ndarray, num_queries: int, min_condition_items: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(rows [Q], conditions [Q]) of the evaluated split's items; see the module docstring."""
  counts = np.bincount(categories)
  allowed = np.flatnonzero(counts >= min_condition_items)
  allowed = allowed[allowed > 0]
  if len(allowed) < 2:
    raise ValueError(f"fewer than 2 categories have >= {min_condition_items} items")
  rng = np.random.default_rng(seed)
  rows = np.sort(rng.choice(len(categories), size=min(num_queries, len(categories)),
                            replace=False))
  return rows, sample_conditions(categories[rows], allowed, rng)


def _scores(space, gallery, gallery_categories, rows, z0_items, conditions, z, k, only=None):
  """Precision@k of the condition and context preservation of search-space vectors z."""
  excluded = rows.astype(np.int32)
  only = np.full(len(rows), -1, np.int32) if only is None else only.astype(np.int32)
  found, valid = metrics.retrieve(space.to_items(z, z0_items), excluded, only, gallery,
                                  gallery_categories, k)
  return {"precision_at_k": float(metrics.condition_precision_at_k(
              tf.gather(gallery_categories, found), valid, conditions).numpy()),
          "context": float(metrics.context_preservation(
              z0_items, tf.gather(gallery, found), valid).numpy())}


def _queries_per_second(function, num_queries: int, repeats: int) -> float:
  function()  # Traces (or warms up) outside the timing.
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    function()
    best = min(best, time.perf_counter() - start)
  return num_queries / best


def run(config: config_lib.ConditionalConfig) -> dict:
  """Trains f, searches, distils, measures; writes conditional.{json,txt} to output_dir."""
  config.validate()
  manifest = data_files.load_manifest(config.data_dir)
  train = data_files.load_item_table(manifest, "train")
  split = data_files.load_item_table(manifest, config.split)
  num_classes = manifest.num_categories
  keras.utils.set_random_seed(config.seed)
  space = FeatureSpace.fit(train.features, config.standardize, config.pca_dim)
  dim = space.dim
  classifier = networks.build_classifier(dim, num_classes)
  train_accuracy = networks.train_classifier(
      classifier, space.to_search(train.features), train.categories - 1,
      epochs=config.classifier_epochs, learning_rate=config.classifier_learning_rate,
      batch_size=config.classifier_batch_size, seed=config.seed)
  split_accuracy = networks.accuracy(classifier, space.to_search(split.features),
                                     split.categories - 1)
  gallery = tf.math.l2_normalize(split.features, axis=1)
  gallery_categories = tf.constant(split.categories, tf.int32)
  rows, conditions = sample_queries(split.categories, config.num_queries,
                                    config.min_condition_items, config.query_seed)
  z0_items = split.features[rows]
  z0 = space.to_search(z0_items)
  score = lambda z, only=None: _scores(space, gallery, gallery_categories, rows, z0_items,
                                       conditions, z, config.top_k, only)
  results = {"z0": score(z0), "z0_filtered_to_c": score(z0, conditions)}
  search = backward_search.BackwardSearch(
      classifier, dim, learning_rate=config.search_learning_rate, steps=config.search_steps,
      patience=config.search_patience, store_after_step=config.store_after_step)
  rng = np.random.default_rng(config.seed)
  student_rows = rng.choice(len(train.categories), size=config.student_train_queries)
  student_conditions = sample_conditions(train.categories[student_rows],
                                         np.arange(1, num_classes + 1), rng)
  student_z0 = space.to_search(train.features[student_rows])
  for lam in config.lambdas:
    z_star = search(z0, conditions - 1, lam).numpy()
    results[f"backward_search/lambda_{lam:g}"] = score(z_star)
    teacher = search(student_z0, student_conditions - 1, lam).numpy()
    student = networks.Student(dim, num_classes, config.student_hidden_dim)
    losses = networks.train_student(
        student, student_z0, student_conditions - 1, teacher, epochs=config.student_epochs,
        learning_rate=config.student_learning_rate, batch_size=config.student_batch_size,
        seed=config.seed)
    predict = networks.predict_function(student, dim)
    z_student = predict(z0, conditions - 1).numpy()
    entry = score(z_student)
    entry["mse_to_teacher_first_epoch"], entry["mse_to_teacher_last_epoch"] = losses[0], losses[-1]
    entry["test_mse_to_teacher"] = float(np.mean((z_student - z_star) ** 2))
    search_rate = _queries_per_second(
        lambda: search(z0, conditions - 1, lam).numpy(), len(rows), config.timing_repeats)
    student_rate = _queries_per_second(
        lambda: predict(z0, conditions - 1).numpy(), len(rows), config.timing_repeats)
    entry.update(search_queries_per_second=search_rate,
                 student_queries_per_second=student_rate, speedup=student_rate / search_rate)
    results[f"student/lambda_{lam:g}"] = entry
    logging.info("lambda %g: search %s, student %s", lam,
                 results[f"backward_search/lambda_{lam:g}"], entry)
  report = {"data": manifest.data_label(), "synthetic": manifest.synthetic,
            "split": config.split, "seed": config.seed, "num_queries": int(len(rows)),
            "gallery_size": int(len(split.categories)), "timing_batch_size": int(len(rows)),
            "classifier_train_accuracy": train_accuracy,
            "classifier_split_accuracy": split_accuracy, "config": dataclasses.asdict(config),
            "results": results}
  os.makedirs(config.output_dir, exist_ok=True)
  atomic_io.write_json(os.path.join(config.output_dir, "conditional.json"), report)
  report["table"] = format_table(report)
  atomic_io.write_text(os.path.join(config.output_dir, "conditional.txt"), report["table"] + "\n")
  return report


def format_table(report: dict) -> str:
  """Text table of one run: precision@k of the condition, context, speed."""
  k = report["config"]["top_k"]
  lines = [f"conditional search on {report['data']} / {report['split']}, seed "
           f"{report['seed']}, {report['num_queries']} queries, gallery "
           f"{report['gallery_size']}; classifier accuracy on the split "
           f"{report['classifier_split_accuracy']:.3f}",
           f"{'method':<30} {f'cond_prec@{k}':>12} {'context':>8} {'queries/s':>11}"]
  for name, values in report["results"].items():
    rate = values.get("student_queries_per_second")
    rate_text = f"{rate:>11.0f}" if rate else f"{'':>11}"
    lines.append(f"{name:<30} {values['precision_at_k']:>12.4f} {values['context']:>8.4f} "
                 f"{rate_text}")
    if rate:
      lines.append(f"{'  (backward search, same batch)':<30} {'':>12} {'':>8} "
                   f"{values['search_queries_per_second']:>11.0f}  speed-up "
                   f"{values['speedup']:.0f}x")
  return "\n".join(lines)
