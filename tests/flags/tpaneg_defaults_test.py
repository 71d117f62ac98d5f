"""`--use_tpaneg` alone is the original code's TPaNeg; the recipes keep what they meant."""

from __future__ import annotations

import os

from absl import flags
from absl.testing import flagsaver
import pytest

from flags import train_flags

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The original run.py's TPaNeg (REFERENCE.md 2.1: --candidate_neg_num 50,
# --taneg_t_gamma_init 0.2, --taneg_t_gamma_final 0.4, --taneg_curriculum_epochs 100,
# --paneg_epsilon 0.2; 2.3: L_tp replaces L_in; 2.4: a uniform random draw above the
# threshold, no upper cut).
ORIGINAL = {"tpaneg_mode": "replace", "tpaneg_pool": "random", "candidate_neg_num": 50,
            "tpaneg_gamma_start": 0.2, "tpaneg_gamma_end": 0.4,
            "tpaneg_curriculum_epochs": 100, "tpaneg_epsilon": 0.2,
            "tpaneg_max_similarity": 1.0}

# (mode, pool) of every TPaNeg recipe: the tuned ones add random draws, the dataset
# recipes and smoke tests used the nearest pool before the default became random.
RECIPES = {
    "ikea/tpaneg": ("add", "random"), "ikea/integrated": ("add", "random"),
    "synthetic/tpaneg": ("add", "random"), "synthetic/integrated": ("add", "random"),
    "deepfurniture/tpaneg": ("replace", "nearest"),
    "deepfurniture/integrated": ("replace", "nearest"),
    "iqon3000/tpaneg": ("replace", "nearest"), "iqon3000/integrated": ("replace", "nearest"),
    "deepfurniture/paper_tpaneg": ("replace", "random"),
    "deepfurniture/paper_integrated": ("replace", "random"),
    "iqon3000/paper_tpaneg": ("replace", "random"),
    "iqon3000/paper_integrated": ("replace", "random"),
    "smoke/tpaneg": ("replace", "nearest"), "smoke/integrated": ("replace", "nearest"),
}


def _loss(*argv: str):
  FLAGS.unparse_flags()
  FLAGS(["prog", "--data_dir=d", "--model_dir=m", *argv])
  # No shards at d: the data-sized defaults are given the train sets to size for.
  return train_flags.train_config_from_flags(num_train_sets=400).loss


def test_use_tpaneg_alone_is_the_original():
  with flagsaver.flagsaver():
    loss = _loss("--use_tpaneg")
  assert loss.use_tpaneg
  assert {name: getattr(loss, name) for name in ORIGINAL} == ORIGINAL


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipes_keep_their_mode_and_pool(recipe, monkeypatch):
  monkeypatch.chdir(ROOT)
  with flagsaver.flagsaver():
    loss = _loss(f"--flagfile=experiments/{recipe}.flags", "--data_dir=d", "--model_dir=m")
  assert loss.use_tpaneg
  assert (loss.tpaneg_mode, loss.tpaneg_pool) == RECIPES[recipe]
