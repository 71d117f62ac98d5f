"""conditional_main on tiny synthetic shards: outputs, baselines, flag errors."""

from __future__ import annotations

import json
import os

from absl import flags
from absl.testing import flagsaver
import pytest

import conditional_main
from flags import conditional_flags
from tests import tiny_data

FLAGS = flags.FLAGS
ROOT = tiny_data.ROOT


def _parse(*argv: str) -> None:
  FLAGS.unparse_flags()
  FLAGS(["prog", *argv])


def test_conditional_main_on_tiny_data(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(ROOT)
  data_dir = str(tmp_path / "syn")
  tiny_data.build_synthetic(data_dir, num_sets=120,
                            num_categories=3, feature_dim=8, min_items=3, max_items=5)
  out = str(tmp_path / "run")
  with flagsaver.flagsaver():
    _parse("--flagfile=experiments/conditional/synthetic.flags", f"--data_dir={data_dir}",
           f"--model_dir={out}", "--conditional_lambdas=0.5", "--conditional_top_k=3",
           "--conditional_min_condition_items=3", "--classifier_epochs=3",
           "--search_steps=20", "--student_train_queries=64", "--student_epochs=2",
           "--timing_repeats=1")
    conditional_main.main(["conditional_main"])
  printed = capsys.readouterr().out
  assert "SYNTHETIC" in printed and "speed-up" in printed
  with open(os.path.join(out, "conditional.json"), encoding="utf-8") as stream:
    report = json.load(stream)
  results = report["results"]
  assert set(results) == {"z0", "z0_filtered_to_c", "backward_search/lambda_0.5",
                          "student/lambda_0.5"}
  # Restricting z0's neighbours to category c is relevant by construction.
  assert results["z0_filtered_to_c"]["precision_at_k"] == 1.0
  # The search moves queries towards their condition, away from the query item.
  assert results["backward_search/lambda_0.5"]["precision_at_k"] > (
      results["z0"]["precision_at_k"] + 0.2)
  assert results["backward_search/lambda_0.5"]["context"] < results["z0"]["context"]
  for values in results.values():
    assert 0.0 <= values["precision_at_k"] <= 1.0 and -1.0 <= values["context"] <= 1.0
  assert results["student/lambda_0.5"]["speedup"] > 0
  assert os.path.isfile(os.path.join(out, "conditional.txt"))


def test_bad_lambdas_fail_before_work():
  with flagsaver.flagsaver():
    _parse("--data_dir=d", "--model_dir=m", "--conditional_lambdas=1,big")
    with pytest.raises(flags.ValidationError, match="--conditional_lambdas must be a list"):
      conditional_flags.conditional_config_from_flags()
    _parse("--data_dir=d", "--model_dir=m", "--conditional_lambdas=-1")
    with pytest.raises(ValueError, match="lambdas must be a non-empty list of values >= 0"):
      conditional_flags.conditional_config_from_flags()
