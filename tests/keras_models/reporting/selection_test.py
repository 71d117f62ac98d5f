"""selection.choose: the best mean, its sample std and whether its lead is clear."""

from __future__ import annotations

import pytest

from keras_models.reporting import selection


def test_choose_takes_the_best_mean_with_sample_std():
  # cst: mean 0.20, std sqrt(((-.02)^2 + 0 + .02^2) / 2) = 0.02;
  # cycle: mean 0.25, std sqrt((.01^2 + .01^2) / 1) = 0.01414...
  choice = selection.choose({"cst": [0.18, 0.20, 0.22], "cycle": [0.24, 0.26],
                             "tpaneg": [0.10]})
  assert choice.best.method == "cycle" and choice.best.runs == 2
  assert choice.best.mean == pytest.approx(0.25)
  assert choice.best.std == pytest.approx(0.0141421, abs=1e-6)
  assert choice.runner_up.method == "cst"
  assert choice.runner_up.std == pytest.approx(0.02)
  # 0.25 - 0.0141 = 0.2359 > 0.20 + 0.02 = 0.22: clear.
  assert choice.clear


def test_overlapping_spreads_are_not_a_clear_lead():
  # 0.21 - 0.01 = 0.20 < 0.20 + 0.02: overlap.
  choice = selection.choose({"cst": [0.18, 0.20, 0.22], "cycle": [0.20, 0.22]})
  assert choice.best.method == "cycle" and not choice.clear
  text = selection.describe(choice, "val top_10_percent")
  assert text.startswith("best by val top_10_percent: cycle 21.00 +- 1.41 over 2 seed(s); "
                         "next: cst 20.00 +- 2.00")
  assert "not a clear lead" in text


def test_one_method_one_seed():
  choice = selection.choose({"cst": [0.3]})
  assert (choice.best.mean, choice.best.std, choice.runner_up) == (0.3, 0.0, None)
  assert choice.clear
  assert selection.describe(choice, "x") == "best by x: cst 30.00 +- 0.00 over 1 seed(s)"


def test_ties_keep_the_first_listed():
  assert selection.choose({"cst": [0.2], "cycle": [0.2]}).best.method == "cst"


def test_errors_name_the_problem():
  with pytest.raises(ValueError, match="no method to choose from"):
    selection.choose({})
  with pytest.raises(ValueError, match="method 'cycle' has no score"):
    selection.choose({"cst": [0.2], "cycle": []})
