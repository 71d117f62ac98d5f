"""The scale bench's parts: measured child processes, presets, the table and the figure.

The bench itself runs for hours at paper scale; here its pieces are checked on tiny
inputs (no timing is asserted), and one real stage (the build) runs end to end.
"""

from __future__ import annotations

import os
import sys

import pandas as pd

from bench import scale_process
from bench import scale_report
from bench import scale_stages


def test_child_memory_and_exit_code(tmp_path):
  # 300 MB touched by the child and 200 MB by its own child: the tree's peak sees both.
  script = ("import subprocess, sys, time; a = bytearray(300 << 20); "
            "c = subprocess.Popen([sys.executable, '-c', "
            "'import time; b = bytearray(200 << 20); time.sleep(1.5)']); "
            "time.sleep(0.7); c.wait(); sys.exit(3)")
  measured = scale_process.run([sys.executable, "-c", script], str(tmp_path / "log.txt"),
                               str(tmp_path))
  assert measured.exit_code == 3
  assert measured.peak_rss_bytes > 450 << 20
  assert measured.seconds > 1.0
  assert os.path.isfile(measured.log_path)


def test_timeout_kills(tmp_path):
  measured = scale_process.run([sys.executable, "-c", "import time; time.sleep(60)"],
                               str(tmp_path / "log.txt"), str(tmp_path), timeout=1.0)
  assert measured.exit_code < 0 and measured.seconds < 30


def test_presets_read_their_flagfiles():
  iqon = scale_stages.load_preset("iqon3000")
  furniture = scale_stages.load_preset("deepfurniture")
  assert (iqon.num_sets, iqon.catalog_size) == (300000, 742000)
  assert (furniture.num_sets, furniture.catalog_size) == (24000, 20000)
  context = scale_stages.Context(iqon, 0.01, "/work", 30, 60.0)
  assert (context.num_sets, context.catalog_size) == (3000, 7420)


def _rows() -> pd.DataFrame:
  rows = []
  for fraction, sets, seconds, rate in ((0.1, 30000, 30.0, 1000.0), (1.0, 300000, 450.0, 666.7)):
    rows.append({"preset": "iqon3000", "fraction": fraction, "num_sets": sets,
                 "stage": "build", "seconds": seconds, "peak_rss_mb": 100.0 * fraction,
                 "disk_mb": 1.0, "work": sets, "unit": "sets/s", "rate": rate,
                 "matmul_gflops": 50.0, "feature_dim": 512})
    rows.append({"preset": "iqon3000", "fraction": fraction, "num_sets": sets,
                 "stage": "eval", "seconds": 10.0, "peak_rss_mb": 1.0, "disk_mb": 0.0,
                 "work": 1e9, "unit": "pairs/s", "rate": 1e7, "matmul_gflops": 20.48})
  rows.append({"preset": "iqon3000", "fraction": 1.0, "num_sets": 300000, "stage": "serve",
               "error": "serve_main exited during start-up"})
  return pd.DataFrame(rows)


def test_table_relative_time_per_unit_and_matmul_share():
  text = scale_report.table(_rows())
  lines = {(line.split("|")[2].strip(), line.split("|")[3].strip()): line
           for line in text.splitlines()[2:]}
  # Time per set grew from 1/1000 to 1/666.7 s: x1.50; eval's 1e7 pairs/s x 2 x 512 FLOPs
  # is half of 20.48 GFLOP/s.
  assert "| x1.50 | x1.50 |" in lines[("300000", "build")]
  assert "| 0.50 |" in lines[("300000", "eval")]
  assert "failed" in lines[("300000", "serve")]


def test_icfrr_row_rates_queries_over_icfrr_seconds_only():
  eval_row = {"stage": "icfrr", "seconds": 100.0, "work": 5e6, "unit": "pairs/s", "rate": 1e6}
  report = {"num_queries": 600, "gallery_size": 50, "seconds": {"task": 1.0,
                                                                "category_level": 2.0}}
  row = scale_stages.icfrr_row(eval_row, report)
  assert (row["work"], row["unit"], row["rate"]) == (600.0, "queries/s (ICFRR)", 200.0)
  assert (row["icfrr_task_seconds"], row["icfrr_category_seconds"]) == (1.0, 2.0)
  assert row["seconds"] == 100.0


def test_figure_is_written(tmp_path):
  path = tmp_path / "scale.png"
  scale_report.figure(_rows(), str(path))
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_stage_end_to_end(tmp_path):
  context = scale_stages.Context(scale_stages.load_preset("deepfurniture"), 0.001,
                                 str(tmp_path), 2, 600.0)
  row = scale_stages.build(context)
  assert row["stage"] == "build" and row["num_sets"] == 100
  assert row["work"] == 100 and row["rate"] > 0 and row["peak_rss_mb"] > 0
  assert row["disk_mb"] > 0 and row["feature_dim"] == 512
  scale_stages.remove_point(context)
  assert not os.path.exists(context.data_dir)
