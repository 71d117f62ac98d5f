"""The benchmarks' quick modes run end to end (figures are not asserted, only sanity)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
  env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
  return subprocess.run([sys.executable, os.path.join(ROOT, "bench", script), *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                        check=False)


def test_index_recall_quick(tmp_path):
  output = tmp_path / "rows.json"
  done = _run("index_recall.py", "--quick", "--latency_queries=2", f"--output={output}")
  assert done.returncode == 0, done.stderr[-3000:]
  rows = json.loads(output.read_text())
  assert {r["backend"] for r in rows} == {"exact", "faiss_flat", "faiss_ivf", "faiss_hnsw",
                                          "scann"}
  by_backend = {r["backend"]: r for r in rows}
  # exact is checked against NumPy brute force; faiss_flat against exact.
  assert by_backend["exact"]["recall"] == 1.0
  assert by_backend["faiss_flat"]["recall"] == 1.0
  assert all(0.0 <= r["recall"] <= 1.0 and r["qps"] > 0 and r["build_s"] >= 0 for r in rows)
  assert "SYNTHETIC 5000 x 32" in done.stdout


def test_serve_load_quick(served_model, tmp_path):
  output = tmp_path / "load.json"
  done = _run("serve_load.py", "--quick", f"--serve_flagfile={served_model.flagfile}",
              f"--output={output}", "--startup_seconds=400")
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
  result = json.loads(output.read_text())
  assert [level["concurrency"] for level in result["levels"]] == [1, 8, 32]
  assert all(level["errors"] == 0 and level["requests"] > 0 for level in result["levels"])
  assert result["backend"] == "exact" and "SYNTHETIC" in result["label"]
