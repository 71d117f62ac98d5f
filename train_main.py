"""Trains a set-retrieval model.

  python train_main.py --flagfile=experiments/synthetic/cst.flags
  python train_main.py --flagfile=experiments/ikea/tpaneg.flags --epochs=5
  python train_main.py --data_dir=data/mine --model_dir=runs/mine/cst

Settings left out (model size, dropout, batch, schedule, epoch budget, patience) are
chosen from the number of train sets (keras_models/defaults.py) and logged.
Writes flags.txt (re-runnable with --flagfile; it holds the chosen values),
model_config.json, best.weights.h5, final.weights.h5, history.csv and TensorBoard logs to
--model_dir. Rerunning the same command after an interruption resumes from
<model_dir>/backup.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from absl import flags

from flags import common_flags
from flags import entry_flags
from flags import train_flags
from keras_models import distribution
from keras_models import training
from tfrecords_builder import atomic_io

FLAGS = flags.FLAGS


def flagfile_text(modules, resolved: Mapping[str, Any] | None = None) -> str:
  """The given modules' flags as a flagfile that reproduces this run.

  `resolved` (flag name -> value) replaces the parsed value: the settings the data-sized
  rule chose are written as flags, so a rerun does not depend on the rule staying as it is.
  """
  resolved = resolved or {}
  lines = []
  for module in modules:
    for flag in FLAGS.get_flags_for_module(module.__name__):
      if flag.name in resolved:
        lines.append(f"--{flag.name}={resolved[flag.name]}")
      elif flag.value is not None:
        lines.append(flag.serialize())
  return "\n".join(sorted(lines)) + "\n"


def main(argv: list[str]) -> None:
  del argv  # entry_flags refuses positional arguments.
  entry_flags.check_input_paths(train_flags.input_path_flags())
  config = train_flags.train_config_from_flags()
  if distribution.is_chief():
    atomic_io.check_writable_dir(config.model_dir, "--model_dir")
    atomic_io.write_text(os.path.join(config.model_dir, "flags.txt"),
                         flagfile_text([common_flags, train_flags],
                                       train_flags.rule_values(config)))
  result = training.run(config)
  print(f"trained {config.model.model} on {config.data_dir}: best val Top-10% "
        f"{100 * result.best_value:.2f}% at epoch {result.best_epoch} of "
        f"{result.epochs_run} ({result.seconds:.0f} s); weights in {config.model_dir}")
  if result.still_improving:
    print(f"warning: {training.STILL_IMPROVING}")


if __name__ == "__main__":
  entry_flags.run(main)
