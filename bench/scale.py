"""Cost curve of every stage at 1 %, 10 % and 100 % of a paper-scale preset. SYNTHETIC data.

  python -m bench.scale                                   # both presets, 1 %, 10 %, 100 %
  python -m bench.scale --presets=iqon3000 --fractions=0.01,0.1
  python -m bench.scale --stages=build,train_cst --fractions=0.01
  python -m bench.scale --plot_only --output_csv=scale.csv     # redraw from a CSV

For each preset (experiments/build/scale/<preset>.flags) and fraction it builds the
shards, then runs each stage as its own process (`bench/scale_stages.py`) and records
wall time, peak RSS of the process tree, bytes on disk and the stage's unit of work per
second. Rows go to --output_csv as they finish (rewritten atomically), then a log-log
figure of time and memory against the number of sets is drawn and a table printed,
with each stage's time per unit of work at every size relative to the smallest. The
machine's dense-matmul rate is probed before every stage, so rates measured while other
work shares the machine can be compared with what the machine gave at that moment.
"""

from __future__ import annotations

import logging
import os
import traceback

from absl import app
from absl import flags
import pandas as pd

from bench import harness
from bench import scale_report
from bench import scale_stages
from tfrecords_builder import atomic_io

PRESETS = flags.DEFINE_list("presets", list(scale_stages.PRESETS), "Presets to run.")
FRACTIONS = flags.DEFINE_list("fractions", ["0.01", "0.1", "1"], "Fractions of each preset.")
STAGES = flags.DEFINE_list("stages", list(scale_stages.STAGES), "Stages, in this order.")
WORK_DIR = flags.DEFINE_string("work_dir", "/tmp/setretrieval_scale",
                               "Folder of the generated data and runs (GBs at 100 %).")
OUTPUT_CSV = flags.DEFINE_string("output_csv", "", "CSV of the rows; default "
                                 "<work_dir>/scale.csv.")
OUTPUT_FIGURE = flags.DEFINE_string("output_figure", "", "Log-log figure; default "
                                    "<work_dir>/scale.png.")
TRAIN_STEPS = flags.DEFINE_integer("train_steps", 30, "Training steps timed per training "
                                   "stage (one epoch of this many steps, then validation).")
TIMEOUT = flags.DEFINE_float("timeout", 7200.0, "Seconds before a stage is killed.")
KEEP_DATA = flags.DEFINE_bool("keep_data", False, "Keep each point's data and runs.")
PLOT_ONLY = flags.DEFINE_bool("plot_only", False, "Only redraw figure and table from the CSV.")


def _write(rows: list[dict], path: str) -> None:
  text = pd.DataFrame(rows).to_csv(index=False)
  atomic_io.write_text(path, text)


def main(argv: list[str]) -> None:
  # One line per request from httpx's logger would bury the progress lines.
  logging.getLogger("httpx").setLevel(logging.WARNING)
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  unknown = sorted(set(STAGES.value) - set(scale_stages.STAGES))
  if unknown:
    raise app.UsageError(f"unknown --stages {unknown}; known: {list(scale_stages.STAGES)}")
  csv_path = OUTPUT_CSV.value or os.path.join(WORK_DIR.value, "scale.csv")
  figure_path = OUTPUT_FIGURE.value or os.path.join(WORK_DIR.value, "scale.png")
  if PLOT_ONLY.value:
    rows = pd.read_csv(csv_path).to_dict("records")
  else:
    rows = _run_all(csv_path)
  frame = pd.DataFrame(rows)
  scale_report.figure(frame, figure_path)
  print(scale_report.table(frame))
  print(f"\nrows in {csv_path}, figure in {figure_path} (all data SYNTHETIC)")


def _run_all(csv_path: str) -> list[dict]:
  machine = harness.machine_info()
  print(f"machine: {machine['cpu_model']}, {machine['cpu_cores']} cores, device "
        f"{machine['device']}, TF {machine['tensorflow']}; SYNTHETIC data")
  rows: list[dict] = []
  for name in PRESETS.value:
    preset = scale_stages.load_preset(name)
    for fraction in (float(f) for f in FRACTIONS.value):
      context = scale_stages.Context(preset, fraction, WORK_DIR.value, TRAIN_STEPS.value,
                                     TIMEOUT.value)
      for stage in STAGES.value:
        matmul = harness.matmul_flops_per_second()
        load = harness.load_average()
        try:
          row = scale_stages.RUNNERS[stage](context)
        except Exception as error:  # pylint: disable=broad-except
          # One failing stage must not lose the others' figures; the row says why.
          traceback.print_exc()
          row = {"preset": name, "fraction": fraction, "num_sets": context.num_sets,
                 "stage": stage, "error": str(error).splitlines()[0][:300]}
        row.update(matmul_gflops=round(matmul / 1e9, 1), load_average=load)
        rows.append(row)
        _write(rows, csv_path)
        print(scale_report.one_line(row), flush=True)
      if not KEEP_DATA.value:
        scale_stages.remove_point(context)
  return rows


if __name__ == "__main__":
  app.run(main)
