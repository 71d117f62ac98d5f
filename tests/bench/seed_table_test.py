"""Runs bench/seed_table.py on a tree of tiny metrics.json files: models and baselines rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BASELINES = ("random", "category_mean", "query_mean", "centred_query_mean", "ridge")


def _values(top10: float) -> dict:
  return {"top_5_percent": top10 / 2, "top_10_percent": top10, "top_20_percent": 2 * top10,
          "mrr": top10, "recall_at_10": top10, "recall_at_30": 0.5, "recall_at_50": 0.75,
          "fitb_4": top10 + 0.1}


def test_seed_table_rows_models_then_baselines(tmp_path):
  runs = tmp_path / "runs"
  top10 = {("cst", 0): 0.2, ("cst", 1): 0.3, ("cycle", 0): 0.25, ("cycle", 1): 0.35}
  for (method, seed), value in top10.items():
    folder = runs / method / f"seed{seed}" / "eval" / "test"
    folder.mkdir(parents=True)
    methods = {method: {"micro": _values(value), "macro": _values(value)}}
    # Each run reports the baselines too; ridge is the same in every run of a seed.
    methods.update({name: {"micro": _values(0.1 + seed / 100), "macro": _values(0.1)}
                    for name in _BASELINES})
    (folder / "metrics.json").write_text(json.dumps({"data": "toy", "methods": methods}))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  done = subprocess.run([sys.executable, "bench/seed_table.py", str(runs)], cwd=_ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  lines = done.stdout.splitlines()
  assert lines[0] == "toy / test, micro average, 2 seeds (Top-K% in percent)"
  assert lines[1].split()[2:] == ["top_5_percent", "top_10_percent", "top_20_percent", "mrr",
                                  "recall_at_10", "recall_at_30", "recall_at_50", "fitb_4"]
  rows = {line.split()[0]: line.split() for line in lines[2:]}
  assert list(rows) == ["cst", "cycle", *_BASELINES]
  assert all(rows[name][1] == "2" for name in rows)  # one run per seed, baselines too
  cst = 100 * np.array([0.2, 0.3])
  assert rows["cst"][5] == f"{cst.mean():.2f}" and rows["cst"][7] == f"{cst.std(ddof=1):.2f}"
  ridge_fitb = 100 * (np.array([0.1, 0.11]) + 0.1)
  assert rows["ridge"][-3] == f"{ridge_fitb.mean():.2f}"
