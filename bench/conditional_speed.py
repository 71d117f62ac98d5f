"""Queries/s of Backward Search against the distilled student, interleaved repeats.

  PYTHONPATH=. python bench/conditional_speed.py --dims=64,1280 --batch_sizes=1,1000

Weights do not change the cost, so both networks are freshly initialised (classifier head
256-128-C, student hidden 128, C = 12). Each repeat times one search call (100 Adam steps,
compiled) and one student call (compiled) on the same batch, one after the other, so load
from other processes hits both alike; the median of the per-repeat ratios is reported.
"""

from __future__ import annotations

import time

from absl import app
from absl import flags
import numpy as np

from keras_models.conditional import backward_search
from keras_models.conditional import networks

DIMS = flags.DEFINE_list("dims", ["64", "1280"], "Search-space widths D.")
BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "1000"], "Queries per call.")
REPEATS = flags.DEFINE_integer("repeats", 15, "Interleaved timed repeats.")
CLASSES = 12


def _seconds(function) -> float:
  start = time.perf_counter()
  function()
  return time.perf_counter() - start


def main(argv: list[str]) -> None:
  del argv
  for dim in (int(d) for d in DIMS.value):
    search = backward_search.BackwardSearch(networks.build_classifier(dim, CLASSES), dim)
    student = networks.Student(dim, CLASSES)
    predict = networks.predict_function(student, dim)
    for batch in (int(b) for b in BATCH_SIZES.value):
      rng = np.random.default_rng(0)
      z0 = rng.normal(size=(batch, dim)).astype(np.float32)
      conditions = rng.integers(0, CLASSES, size=batch).astype(np.int32)
      run_search = lambda: search(z0, conditions, 1.0).numpy()
      run_student = lambda: predict(z0, conditions).numpy()
      run_search(), run_student()
      times = np.array([(_seconds(run_search), _seconds(run_student))
                        for _ in range(REPEATS.value)])
      ratios = times[:, 0] / times[:, 1]
      print(f"D={dim:<5} batch={batch:<5} search {batch / np.median(times[:, 0]):>10.0f} q/s  "
            f"student {batch / np.median(times[:, 1]):>10.0f} q/s  speed-up median "
            f"{np.median(ratios):.0f}x (min {ratios.min():.0f}x, max {ratios.max():.0f}x)")


if __name__ == "__main__":
  app.run(main)
