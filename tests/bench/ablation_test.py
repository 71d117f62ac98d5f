"""bench/ablation.py on tiny shards: its val table and its choice match the runs it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from tests import tiny_data

_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _ablation(data_dir: str, runs_dir: str) -> str:
  done = subprocess.run(
      [sys.executable, "-m", "bench.ablation", f"--data_dir={data_dir}",
       f"--runs_dir={runs_dir}", "--methods=cst,cycle", "--seeds=0,1", "--epochs=1",
       "--report_test=chosen", "--verbose=0"],
      cwd=tiny_data.ROOT, env=_ENV, capture_output=True, text=True, timeout=600, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  return done.stdout


def _top10(runs_dir: str, method: str, seed: int, split: str) -> float:
  path = os.path.join(runs_dir, method, f"seed{seed}", "eval", split, "metrics.json")
  with open(path, encoding="utf-8") as stream:
    return json.load(stream)["methods"][method]["micro"]["top_10_percent"]


def test_table_and_choice_follow_the_runs(tmp_path):
  data_dir = tiny_data.build_synthetic(str(tmp_path / "data"), num_sets=60, num_categories=4,
                                       feature_dim=16, min_items=3, max_items=6)
  runs_dir = str(tmp_path / "runs")
  printed = _ablation(data_dir, runs_dir)
  lines = printed.splitlines()
  # The rule's settings for these 42 train sets are printed first.
  assert lines[0].startswith("settings chosen from the data (42 train sets, tier small")
  assert "--epochs=1" in lines[0]
  test_start = lines.index(next(line for line in lines if "/ test of" in line))
  rows = {line.split()[0]: line.split() for line in lines[:test_start] if line.split()}
  scores = {}
  for method in ("cst", "cycle"):
    values = 100 * np.array([_top10(runs_dir, method, seed, "val") for seed in (0, 1)])
    scores[method] = values
    # method runs Top-5 (mean +- std) Top-10 (mean +- std) ...
    assert rows[method][1] == "2"
    assert rows[method][5] == f"{values.mean():.2f}"
    assert rows[method][7] == f"{values.std(ddof=1):.2f}"
  best = max(scores, key=lambda m: (scores[m].mean(), m == "cst"))
  other = "cycle" if best == "cst" else "cst"
  choice = next(line for line in lines if line.startswith("best by"))
  assert choice.startswith(f"best by val top_10_percent: {best} {scores[best].mean():.2f} +- "
                           f"{scores[best].std(ddof=1):.2f} over 2 seed(s); next: {other}")
  # Test is scored for the chosen method only.
  for seed in (0, 1):
    assert os.path.isfile(os.path.join(runs_dir, best, f"seed{seed}", "eval", "test",
                                       "metrics.json"))
    assert not os.path.exists(os.path.join(runs_dir, other, f"seed{seed}", "eval", "test"))
  test = 100 * np.array([_top10(runs_dir, best, seed, "test") for seed in (0, 1)])
  assert any(line.split()[:2] == [best, "2"] and line.split()[5] == f"{test.mean():.2f}"
             for line in lines[test_start:])
  # A second call reuses the finished runs instead of training them again.
  weights = os.path.join(runs_dir, "cst", "seed0", "best.weights.h5")
  before = os.path.getmtime(weights)
  assert _ablation(data_dir, runs_dir).splitlines()[-1] == lines[-1]
  assert os.path.getmtime(weights) == before
