"""Library entry of evaluation: `run(config)` scores a trained encoder and writes reports.

Every method (the model and `baselines.NAMES`) is ranked and FITB-scored by one
`Evaluator` on the same queries, gallery and FITB candidates. Outputs go to
<model_dir>/eval/<split>/ (metrics.json, results_summary.csv,
percentage_table.txt, plots, collages), each written atomically, and scalars to
TensorBoard under <model_dir>/logs/eval.
"""

from __future__ import annotations

import dataclasses
import os
import time

from absl import logging

from keras_models import baselines
from keras_models import configs
from keras_models import data_files
from keras_models import evaluator as evaluator_lib
from keras_models import outfit_protocols
from keras_models import weights_io
from keras_models.metrics import fitb
from keras_models.models import builder
from keras_models.reporting import figures
from keras_models.reporting import tables
from keras_models.rerank import report as rerank_report


@dataclasses.dataclass
class EvalResult:
  """Summaries by method name (the model first, then the baselines)."""

  method: str
  summaries: dict[str, dict]
  output_dir: str
  table: str
  ridge_lambda: float = float("nan")


def weights_path(config: configs.EvalConfig) -> str:
  path = config.weights or os.path.join(config.model_dir, weights_io.BEST_WEIGHTS)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: weights not found; train first or pass --weights")
  return path


def load_encoder(config: configs.EvalConfig, manifest: data_files.Manifest):
  """Builds the encoder for `manifest` and loads its weights, with a clear mismatch error."""
  encoder = builder.build_encoder(config.model, manifest)
  path = weights_path(config)
  weights_io.check_signature(path, manifest)
  weights_io.load_weights_checked(
      encoder, path, f"{config.model.model} with hidden_dim={config.model.hidden_dim}, "
      f"num_layers={config.model.num_layers}, D={manifest.feature_dim}, "
      f"K={manifest.num_categories}")
  return encoder


def _ridge_fit(config: configs.EvalConfig, manifest: data_files.Manifest,
               evaluator: evaluator_lib.Evaluator) -> baselines.RidgeFit:
  """Fits the ridge baseline on the train queries and picks lambda on val."""
  def split_evaluator(split):
    if split == config.split and (split == "train" or 10 in config.top_percents):
      return evaluator
    return evaluator_lib.Evaluator(manifest, split, batch_size=config.batch_size,
                                   chunk_size=config.gallery_chunk_size,
                                   seed=config.eval_split_seed)
  with data_files.shards_named_on_data_loss(manifest, ("train", "val")):
    fit = baselines.fit_ridge(split_evaluator("train"), split_evaluator("val"),
                              config.ridge_lambdas)
  logging.info("ridge: lambda %g chosen by val %s %s", fit.lam, baselines.RIDGE_MONITOR,
               fit.val_scores)
  return fit


def run(config: configs.EvalConfig) -> EvalResult:
  """Evaluates the model of `config` and its baselines on `config.split`."""
  config.validate()
  manifest = data_files.load_manifest(config.data_dir)
  encoder = load_encoder(config, manifest)
  clock = [time.perf_counter()]
  with data_files.shards_named_on_data_loss(manifest, (config.split,)):
    evaluator = evaluator_lib.Evaluator(
        manifest, config.split, batch_size=config.batch_size, gallery=config.gallery,
        chunk_size=config.gallery_chunk_size, seed=config.eval_split_seed,
        top_percents=config.top_percents, recall_ks=config.recall_ks, map_ks=config.map_ks)
    _, ranks, vectors = evaluator.evaluate(encoder)
  clock.append(time.perf_counter())
  method = config.method_name or os.path.basename(os.path.normpath(config.model_dir))
  fitb_name = f"fitb_{config.fitb_candidates}"
  distractors = evaluator.distractors(config.fitb_candidates - 1)
  summaries = {
      method: evaluator.summarize(ranks, {fitb_name: evaluator.fitb_hits(
          vectors, config.fitb_candidates)}),
      "random": evaluator.summarize(baselines.random_ranks(evaluator, config.seed),
                                    {fitb_name: fitb.random_hits(distractors, config.seed)})}
  category_means = data_files.load_category_means(manifest)
  ridge = _ridge_fit(config, manifest, evaluator)
  clock.append(time.perf_counter())
  for name in baselines.NAMES[1:]:
    predicted = baselines.predictions(name, evaluator, category_means, ridge)
    summaries[name] = evaluator.summarize(evaluator.ranks(predicted), {
        fitb_name: evaluator.fitb_hits(predicted, config.fitb_candidates)})
  clock.append(time.perf_counter())
  output_dir = os.path.join(config.model_dir, "eval", config.split)
  os.makedirs(output_dir, exist_ok=True)
  notes = {
      "ridge": {"lambda": ridge.lam, "lambdas": list(ridge.val_scores),
                "val_top_10_percent": list(ridge.val_scores.values())},
      "fitb": {"candidates": config.fitb_candidates, "seed": config.eval_split_seed,
               "short_queries": fitb.short_queries(evaluator.targets.categories, distractors)},
      # Where the time went (the split's item table and halves are read before the first).
      "timing": {**dict(zip(("model_seconds", "ridge_fit_seconds", "baselines_seconds"),
                            (round(b - a, 3) for a, b in zip(clock, clock[1:])))),
                 "pairs_ranked": evaluator.pairs_ranked,
                 "rank_seconds": round(evaluator.rank_seconds, 3)}}
  table = tables.write_all(output_dir, config, manifest, evaluator, summaries, notes)
  retrieval = {name: {key[len("micro/"):]: value for key, value in summary.items()
                     if key.startswith("micro/")} for name, summary in summaries.items()}
  table += "\n" + outfit_protocols.report(config, manifest, evaluator.table, encoder, method,
                                          output_dir, retrieval)
  figures.write_figures(output_dir, config, manifest, evaluator, method, summaries, vectors)
  if config.rerank == "icfrr":
    table += "\n\n" + rerank_report.write(output_dir, config, manifest, evaluator, method,
                                           vectors, ranks)
  logging.info("wrote evaluation of %s on %s/%s to %s", method, manifest.data_label(),
               config.split, output_dir)
  return EvalResult(method=method, summaries=summaries, output_dir=output_dir, table=table,
                    ridge_lambda=ridge.lam)
