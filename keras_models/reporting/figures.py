"""Evaluation figures: per-category bars, embedding PCA, training curves, collages."""

from __future__ import annotations

import os

from absl import logging
import numpy as np
import tensorflow as tf

from keras_models import configs
from keras_models import data_files
from keras_models import evaluator as evaluator_lib
from keras_models.reporting import collages
from keras_models.reporting import plots

TOP_K_SHOWN = 5


def write_figures(output_dir: str, config: configs.EvalConfig, manifest: data_files.Manifest,
                  evaluator: evaluator_lib.Evaluator, method: str, summaries: dict,
                  vectors: np.ndarray) -> list[str]:
  """Writes the figures of one evaluation and logs them to TensorBoard; returns the paths.

  `summaries` maps method names to `Evaluator.summarize` dicts, the model's under
  `method`; per_category.png compares them all, the other figures show the model.
  """
  names = list(manifest.categories)
  title = f"{method} on {manifest.data_label()} / {config.split}"
  summary = summaries[method]
  written = []
  metrics = {f"Top-{p}%": f"top_{p}_percent" for p in config.top_percents}
  metrics["MRR"] = "mrr"
  metrics.update({f"FITB-{k.split('_')[-1]}": k.split("/", 1)[1] for k in summary
                  if k.startswith("per_category/fitb_")})
  panels = {label: {m: s[f"per_category/{key}"] for m, s in summaries.items()}
            for label, key in metrics.items()}
  path = os.path.join(output_dir, "per_category.png")
  plots.per_category_panels(path, names, panels, summary["per_category/count"],
                            f"{title}: every method, per category")
  written.append(path)
  path = os.path.join(output_dir, "embedding_pca.png")
  plots.embedding_pca(path, evaluator.gallery_features, evaluator.gallery_categories, vectors,
                      evaluator.targets.categories, names, title, seed=config.seed)
  written.append(path)
  history = os.path.join(config.model_dir, "history.csv")
  if os.path.isfile(history):
    path = os.path.join(config.model_dir, "training_curves.png")
    plots.training_curves(history, path, f"{method} on {manifest.data_label()}")
    written.append(path)
  collage_paths = _write_collages(output_dir, config, evaluator, vectors, names, title)
  _log_tensorboard(config, summary, collage_paths)
  return written + collage_paths


def _write_collages(output_dir, config, evaluator, vectors, names, title) -> list[str]:
  table = evaluator.table
  if config.num_collages <= 0 or not any(table.images):
    return []
  targets = evaluator.targets
  has_image = table.images != ""
  candidate_sets = np.unique(targets.set_rows[has_image[targets.positive_rows]])
  chosen = _choose_sets(candidate_sets, table.set_images, config.num_collages, config.seed)
  folder = os.path.join(output_dir, "collages")
  os.makedirs(folder, exist_ok=True)
  paths = []
  for set_row in chosen:
    queries = np.flatnonzero(targets.set_rows == set_row)
    scores, ids = evaluator.ranker.top_k(
        vectors[queries], targets.categories[queries], evaluator.gallery_features,
        evaluator.gallery_categories, evaluator.gallery_rows, TOP_K_SHOWN,
        evaluator.chunk_size)
    rows = []
    for q, query in enumerate(queries):
      positive = targets.positive_rows[query]
      retrieved = [(table.images[i], float(s), bool(i == positive))
                   for s, i in zip(scores[q], ids[q]) if i >= 0]
      rows.append(collages.TargetRow(image=table.images[positive],
                                     category=names[targets.categories[query] - 1],
                                     retrieved=retrieved))
    query_items = [(table.images[r], names[table.categories[r] - 1])
                   for r in evaluator.query_rows[set_row]]
    set_id = table.set_ids[set_row] if set_row < len(table.set_ids) else str(set_row)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in set_id)[:80]
    path = os.path.join(folder, f"{safe}.jpg")
    set_image = table.set_images[set_row] if set_row < len(table.set_images) else ""
    collages.write_collage(path, f"{title}: set {set_id}", query_items, rows,
                           set_image=str(set_image))
    paths.append(path)
  logging.info("wrote %d collages to %s", len(paths), folder)
  return paths


def _choose_sets(candidates: np.ndarray, set_images: np.ndarray, count: int,
                 seed: int) -> list[int]:
  """`count` set rows drawn with `seed`, sets with their own photo first, in row order.

  Args:
    candidates: `[n]` set rows whose targets have images.
    set_images: `[num_sets]` set photo paths ("" when none).
    count: collages wanted.
    seed: draw seed.
  """
  rng = np.random.default_rng(seed)
  has_photo = np.asarray([bool(set_images[r]) if r < len(set_images) else False
                          for r in candidates], bool)
  chosen = []
  for group in (candidates[has_photo], candidates[~has_photo]):
    take = min(count - len(chosen), len(group))
    if take > 0:
      chosen += rng.choice(group, take, replace=False).tolist()
  return sorted(chosen)


def _log_tensorboard(config, summary, collage_paths) -> None:
  writer = tf.summary.create_file_writer(os.path.join(config.model_dir, "logs", "eval"))
  with writer.as_default(step=0):
    for key, value in summary.items():
      if key.startswith(("micro/", "macro/")) and key != "micro/count":
        tf.summary.scalar(f"{config.split}/{key}", float(value))
    for i, path in enumerate(collage_paths[:3]):
      image = collages.collage_as_array(path)[None]
      tf.summary.image(f"{config.split}/collage_{i}", image)
  writer.close()
