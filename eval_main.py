"""Evaluates a trained set-retrieval model over the full gallery of a split.

  python eval_main.py --flagfile=experiments/synthetic/cst.flags --split=test
  python eval_main.py --flagfile=experiments/ikea/cst.flags --split=test \
      --weights=runs/ikea/cst/final.weights.h5 --gallery=items

Prints the Top-K% table (model, random ranking, category-mean predictor) and writes
metrics.json, results_summary.csv, percentage_table.txt and plots to
<model_dir>/eval/<split>/.
"""

from __future__ import annotations

from flags import entry_flags
from flags import eval_flags
# Experiment flagfiles hold training flags too; defining them lets one file drive both.
from flags import train_flags  # pylint: disable=unused-import
from keras_models import evaluation


def main(argv: list[str]) -> None:
  del argv  # entry_flags refuses positional arguments.
  entry_flags.check_input_paths(eval_flags.input_path_flags())
  result = evaluation.run(eval_flags.eval_config_from_flags())
  print(result.table)
  print(f"reports in {result.output_dir}")


if __name__ == "__main__":
  entry_flags.run(main)
