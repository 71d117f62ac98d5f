"""Trains each method over a few seeds on your data and names the best by validation.

Whether cycle consistency or TPaNeg helps depends on the data (docs/training_defaults.md:
on SYNTHETIC cycle gains 3.5 points of Top-10 % and TPaNeg loses 7; on a held-out real
dataset TPaNeg gains 1.4 and cycle loses 0.9-1.7), so choose on your own validation split:

  python -m bench.ablation --data_dir=data/ikea --runs_dir=runs/ablation/ikea \
      --methods=cst,cycle,tpaneg,integrated --seeds=0,1,2

Every run is `training.run` on `defaults.train_config` (what train_main gives a user who
types no setting) plus the method's loss settings (METHODS), scored by `evaluation.run`
on val; with --report_test the chosen method's runs (or all) are scored on test too. Runs
go to <runs_dir>/<method>/seed<s> (so bench/seed_table.py reads them); a run whose val
metrics exist is not trained again, so an interrupted study continues where it stopped.
Prints the val table (mean +- std over seeds), the method with the best mean val Top-10 %
(the early-stopping monitor) and whether its lead is clear of the spread.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app
from absl import flags

from keras_models import baselines
from keras_models import configs
from keras_models import data_files
from keras_models import defaults
from keras_models import evaluation
from keras_models import training
from keras_models.reporting import selection
from keras_models.reporting import tables

# Loss settings of each method (LossConfig fields): the recipes of experiments/ikea/.
_TPANEG = {"use_tpaneg": True, "tpaneg_mode": "add", "tpaneg_pool": "random",
           "tpaneg_max_similarity": 0.95, "candidate_neg_num": 32, "tpaneg_gamma_start": 0.3,
           "tpaneg_gamma_end": 0.5, "tpaneg_curriculum_epochs": 20, "tpaneg_epsilon": 0.025}
METHODS = {
    "cst": {},
    "cycle": {"use_cycle_loss": True, "cycle_lambda": 0.2},
    "cycle_norm": {"use_cycle_loss": True, "cycle_normalize": True, "cycle_lambda": 0.2},
    "tpaneg": _TPANEG,
    "integrated": {"use_cycle_loss": True, "cycle_normalize": True, "cycle_lambda": 0.5,
                   **_TPANEG},
}
MONITOR = "top_10_percent"

DATA_DIR = flags.DEFINE_string("data_dir", None, "Shards to train and validate on.")
RUNS_DIR = flags.DEFINE_string("runs_dir", None, "Folder of the study's runs.")
METHOD_NAMES = flags.DEFINE_list("methods", ["cst", "cycle", "tpaneg", "integrated"],
                                 f"Methods to compare, of {sorted(METHODS)}.")
SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds of every method.")
EPOCHS = flags.DEFINE_integer("epochs", None, "Epoch budget of every run; default: the "
                              "data-sized rule's (keras_models/defaults.py).")
REPORT_TEST = flags.DEFINE_enum("report_test", "none", ["none", "chosen", "all"],
                                "Also score on test the chosen method's runs, or every run.")
VERBOSE = flags.DEFINE_integer("verbose", 2, "Keras fit verbosity.")


def _metrics_path(model_dir: str, split: str) -> str:
  return os.path.join(model_dir, "eval", split, "metrics.json")


def _evaluate(config: configs.TrainConfig, method: str, split: str) -> dict:
  """The metrics document of `config`'s run on `split`, scored once and kept."""
  path = _metrics_path(config.model_dir, split)
  if not os.path.isfile(path):
    evaluation.run(configs.EvalConfig(
        data_dir=config.data_dir, model_dir=config.model_dir, model=config.model, split=split,
        seed=config.seed, method_name=method, num_collages=0))
  with open(path, encoding="utf-8") as stream:
    return json.load(stream)


def run_config(data_dir: str, runs_dir: str, method: str, seed: int, num_train_sets: int,
               epochs: int | None) -> configs.TrainConfig:
  """The data's default run of `method` with `seed`."""
  if method not in METHODS:
    raise ValueError(f"unknown method '{method}'; known: {sorted(METHODS)}")
  given = {"epochs": epochs} if epochs else {}
  return defaults.train_config(
      data_dir, os.path.join(runs_dir, method, f"seed{seed}"), num_train_sets,
      loss=configs.LossConfig(**METHODS[method]), seed=seed, verbose=VERBOSE.value, **given)


def _table(documents: dict[tuple[str, int], dict], seeds: list[int]) -> str:
  """Mean +- std over seeds of every method and, once per seed, the baselines."""
  by_seed = []
  for seed in seeds:
    methods = {}
    for (method, run_seed), document in documents.items():
      if run_seed == seed:
        methods.update({name: values for name, values in document["methods"].items()
                        if name == method or name in baselines.NAMES})
    by_seed.append({"methods": methods})
  return tables.mean_std_table(by_seed)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  data_dir, runs_dir = DATA_DIR.value, RUNS_DIR.value
  if not data_dir or not runs_dir:
    raise app.UsageError("--data_dir and --runs_dir are required")
  manifest = data_files.load_manifest(data_dir)
  num_train_sets = manifest.num_sets("train")
  seeds = [int(seed) for seed in SEEDS.value]
  methods = METHOD_NAMES.value
  runs = {(method, seed): run_config(data_dir, runs_dir, method, seed, num_train_sets,
                                     EPOCHS.value)
          for method in methods for seed in seeds}
  val = {}
  for (method, seed), config in runs.items():
    if not os.path.isfile(_metrics_path(config.model_dir, "val")):
      training.run(config)
    val[method, seed] = _evaluate(config, method, "val")
  scores = {method: [val[method, seed]["methods"][method]["micro"][MONITOR] for seed in seeds]
            for method in methods}
  choice = selection.choose(scores)
  print(defaults.describe(num_train_sets,
                         defaults.resolve(num_train_sets, {"epochs": EPOCHS.value})))
  print(f"{manifest.data_label()} / val, micro average, seeds {seeds} (Top-K% in percent)")
  sys.stdout.write(_table(val, seeds))
  print(selection.describe(choice, f"val {MONITOR}"))
  if REPORT_TEST.value != "none":
    tested = methods if REPORT_TEST.value == "all" else [choice.best.method]
    test = {(m, seed): _evaluate(runs[m, seed], m, "test") for m in tested for seed in seeds}
    print(f"{manifest.data_label()} / test of {', '.join(tested)}:")
    sys.stdout.write(_table(test, seeds))


if __name__ == "__main__":
  app.run(main)
