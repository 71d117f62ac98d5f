"""Conditional search ("an item like this one, but of category c") on item features.

  python conditional_main.py --flagfile=experiments/conditional/synthetic.flags --seed=0
  python conditional_main.py --flagfile=experiments/conditional/ikea.flags --seed=0 \
      --model_dir=runs/conditional/ikea/seed0

Trains a classifier head on the train split's item features, runs Backward Search for
every --conditional_lambdas value, distils a student per lambda, and prints precision@10
of the condition (Backward Search's "mAP@10"), context preservation and the speed-up.
Writes conditional.json and conditional.txt to --model_dir.
"""

from __future__ import annotations

from flags import conditional_flags
from flags import entry_flags
from keras_models.conditional import search_run


def main(argv: list[str]) -> None:
  del argv  # entry_flags refuses positional arguments.
  entry_flags.check_input_paths(conditional_flags.input_path_flags())
  config = conditional_flags.conditional_config_from_flags()
  report = search_run.run(config)
  print(report["table"])
  print(f"report in {config.output_dir}")


if __name__ == "__main__":
  entry_flags.run(main)
