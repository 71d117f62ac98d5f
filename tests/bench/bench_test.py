"""Runs the three benchmarks in --quick mode so they cannot rot (no timing is asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_MACHINE_KEYS = {"cpu_model", "cpu_cores", "tensorflow", "device", "load_average_1min"}


def _positive(value) -> bool:
  return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  """Starts the three scripts together (they are mostly single-threaded tracing)."""
  folder = tmp_path_factory.mktemp("bench")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  runs = {}
  for name in ("train_throughput", "eval_scale", "pipeline"):
    path = str(folder / f"{name}.json")
    runs[name] = (path, subprocess.Popen(
        [sys.executable, "-m", f"bench.{name}", "--quick", f"--output_json={path}"],
        cwd=_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  loaded = {}
  for name, (path, process) in runs.items():
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, f"bench.{name} failed:\n{output[-3000:]}"
    assert "| " in output, f"bench.{name} printed no table"
    with open(path, encoding="utf-8") as stream:
      loaded[name] = json.load(stream)
  return loaded


def test_train_throughput(results):
  payload = results["train_throughput"]
  assert payload["data"] == "SYNTHETIC" and payload["quick"] is True
  assert _MACHINE_KEYS <= set(payload["machine"])
  assert [r["variant"] for r in payload["results"]] == ["in_batch", "integrated"]
  for row in payload["results"]:
    for key in ("sets_per_second", "achieved_gflops", "matmul_limit_gflops",
                "ratio_to_matmul_limit", "step_gflop"):
      assert _positive(row[key]), (key, row)
    assert math.isfinite(row["final_loss"])
  in_batch, integrated = payload["results"]
  # Integrated adds two encoder passes and two loss terms to the in-batch step.
  assert integrated["step_gflop"] > 1.5 * in_batch["step_gflop"]


def test_eval_scale(results):
  payload = results["eval_scale"]
  assert _MACHINE_KEYS <= set(payload["machine"])
  rows = {r["method"]: r for r in payload["results"]}
  assert set(rows) == {"ours_top_k", "faiss_flat_ip_top_k", "numpy_top_k", "ours_ranks",
                       "numpy_ranks"}
  for row in rows.values():
    assert _positive(row["queries_per_second"]) and row["peak_extra_mb"] >= 0
  # Exact search on random unit vectors: every method finds the same nearest item.
  for name in ("ours_top_k", "numpy_top_k"):
    assert rows[name]["top1_agreement_with_faiss"] == 1.0
  assert rows["ours_ranks"]["rank_agreement_with_numpy"] > 0.99


def test_pipeline(results):
  payload = results["pipeline"]
  assert _MACHINE_KEYS <= set(payload["machine"])
  builder = payload["builder"]
  assert builder["items"] > builder["sets"] >= 1000
  assert _positive(builder["write_vectors_per_second"])
  for stage in ("reader", "consumer", "fed"):
    assert _positive(payload[stage]["sets_per_second"]), stage
  assert _positive(payload["reader"]["ratio_to_consumer"])
