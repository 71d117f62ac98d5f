"""Prints mean +- std over seeds of every method's test metrics from eval metrics.json files.

Rows: each method, then the training-free baselines (`keras_models.baselines.NAMES`);
columns: Top-K% and MRR, plus Recall@10/30/50 and FITB-4 when every run reports them.

  python bench/seed_table.py runs/synthetic          # reads runs/synthetic/*/seed*/eval/test
  python bench/seed_table.py runs/ikea --scope=macro
"""

from __future__ import annotations

import glob
import json
import os
import sys

from absl import app
from absl import flags

from keras_models import baselines
from keras_models.reporting import tables

SCOPE = flags.DEFINE_enum("scope", "micro", ["micro", "macro"], "Average over queries or "
                          "categories.")
SPLIT = flags.DEFINE_string("split", "test", "Evaluated split.")


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    raise app.UsageError("usage: seed_table.py RUNS_DIR")
  pattern = os.path.join(argv[1], "*", "seed*", "eval", SPLIT.value, "metrics.json")
  paths = sorted(glob.glob(pattern))
  if not paths:
    raise app.UsageError(f"no metrics.json under {pattern}")
  documents = []
  for path in paths:
    with open(path, encoding="utf-8") as stream:
      document = json.load(stream)
    method = path.split(os.sep)[-5]
    # Each run holds its model row and the baselines; keep the model under its method
    # name and the baselines once per seed.
    document["methods"] = {(method if name not in baselines.NAMES else name): v
                           for name, v in document["methods"].items()}
    documents.append(document)
  by_seed: dict[str, dict] = {}
  for path, document in zip(paths, documents):
    by_seed.setdefault(path.split(os.sep)[-4], {"methods": {}})["methods"].update(
        document["methods"])
  print(f"{documents[0]['data']} / {SPLIT.value}, {SCOPE.value} average, "
        f"{len(by_seed)} seeds (Top-K% in percent)")
  sys.stdout.write(tables.mean_std_table(list(by_seed.values()), scope=SCOPE.value))


if __name__ == "__main__":
  app.run(main)
