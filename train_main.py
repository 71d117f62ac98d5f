"""Trains a set-retrieval model.

  python train_main.py --flagfile=experiments/synthetic/cst.flags
  python train_main.py --flagfile=experiments/ikea/tpaneg.flags --epochs=5

Writes flags.txt (re-runnable with --flagfile), best.weights.h5, final.weights.h5,
history.csv and TensorBoard logs to --model_dir. Rerunning the same command after an
interruption resumes from <model_dir>/backup.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from flags import common_flags
from flags import entry_flags
from flags import train_flags
from keras_models import distribution
from keras_models import training
from tfrecords_builder import atomic_io

FLAGS = flags.FLAGS


def flagfile_text(modules) -> str:
  """The given modules' flags as a flagfile that reproduces this run."""
  lines = []
  for module in modules:
    for flag in FLAGS.get_flags_for_module(module.__name__):
      if flag.value is not None:
        lines.append(flag.serialize())
  return "\n".join(sorted(lines)) + "\n"


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = train_flags.train_config_from_flags()
  if distribution.is_chief():
    atomic_io.check_writable_dir(config.model_dir, "--model_dir")
    atomic_io.write_text(os.path.join(config.model_dir, "flags.txt"),
                         flagfile_text([common_flags, train_flags]))
  result = training.run(config)
  print(f"trained {config.model.model} on {config.data_dir}: best val Top-10% "
        f"{100 * result.best_value:.2f}% at epoch {result.best_epoch} of "
        f"{result.epochs_run} ({result.seconds:.0f} s); weights in {config.model_dir}")


if __name__ == "__main__":
  entry_flags.run(main)
