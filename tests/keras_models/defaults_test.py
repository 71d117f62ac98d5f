"""The data-sized defaults: tiers, the epoch budget and settings given by the user."""

from __future__ import annotations

import pytest

from keras_models import configs
from keras_models import defaults


@pytest.mark.parametrize("num_train_sets, name", [
    (1, "small"), (410, "small"), (999, "small"), (1_000, "medium"), (2_100, "medium"),
    (9_999, "medium"), (10_000, "large"), (1_000_000, "large")])
def test_tiers(num_train_sets, name):
  assert defaults.tier_of(num_train_sets).name == name


def test_ikea_sized_data():
  # 410 sets, batch 32: 12 steps an epoch; ceil(3000 / 12) = 250 epochs; patience
  # 250 / 10 = 25; warmup min(100, 250 * 12 / 20 = 150) = 100.
  assert defaults.resolve(410) == {
      "hidden_dim": 128, "num_layers": 1, "dropout_rate": 0.3, "batch_size": 32,
      "learning_rate": 2e-3, "lr_schedule": "cosine", "warmup_steps": 100, "epochs": 250,
      "early_stopping_patience": 25}


def test_synthetic_sized_data():
  # 2,100 sets, batch 64: 32 steps; ceil(3000 / 32) = 94 epochs; patience max(10, 9.4) = 10.
  settings = defaults.resolve(2_100)
  assert (settings["hidden_dim"], settings["num_layers"], settings["dropout_rate"],
          settings["batch_size"]) == (128, 2, 0.1, 64)
  assert (settings["epochs"], settings["early_stopping_patience"],
          settings["warmup_steps"]) == (94, 10, 100)


def test_epoch_budget_is_clipped():
  # 40 sets, batch 32: 1 step, 3000 epochs -> 300. 200,000 sets, batch 64: 3125 steps,
  # 1 epoch -> 20, patience max(10, 2) = 10.
  assert defaults.resolve(40)["epochs"] == defaults.MAX_EPOCHS == 300
  large = defaults.resolve(200_000)
  assert (large["hidden_dim"], large["epochs"], large["early_stopping_patience"]) == (256, 20, 10)


def test_given_settings_are_kept_and_the_rest_follow_them():
  # Batch 8: 410 // 8 = 51 steps; ceil(3000 / 51) = 59 epochs; patience max(10, 5.9) = 10.
  settings = defaults.resolve(410, {"batch_size": 8, "hidden_dim": 64, "num_layers": None})
  assert (settings["batch_size"], settings["hidden_dim"], settings["num_layers"]) == (8, 64, 1)
  assert (settings["epochs"], settings["early_stopping_patience"]) == (59, 10)
  # Given epochs set the patience; a constant schedule has no warmup.
  settings = defaults.resolve(410, {"epochs": 30, "lr_schedule": "constant"})
  assert (settings["early_stopping_patience"], settings["warmup_steps"]) == (10, 0)
  settings = defaults.resolve(410, {"epochs": 300})
  assert (settings["early_stopping_patience"], settings["warmup_steps"]) == (30, 100)
  settings = defaults.resolve(410, {"epochs": 100})
  assert (settings["early_stopping_patience"], settings["warmup_steps"]) == (10, 60)
  # steps_per_epoch replaces one pass over the sets: ceil(3000 / 100) = 30 epochs.
  assert defaults.resolve(410, steps_per_epoch=100)["epochs"] == 30


def test_train_config_for_library_callers():
  config = defaults.train_config("d", "m", 2_100, loss=configs.LossConfig(use_cycle_loss=True),
                                 seed=3, epochs=5, num_layers=1)
  config.validate()
  assert (config.seed, config.epochs, config.model.num_layers, config.model.hidden_dim,
          config.batch_size, config.lr_schedule, config.loss.use_cycle_loss) == (
              3, 5, 1, 128, 64, "cosine", True)


def test_describe_names_the_tier_and_the_settings():
  text = defaults.describe(410, {"hidden_dim": 128, "epochs": 250})
  assert text.startswith("settings chosen from the data (410 train sets, tier small;")
  assert "--hidden_dim=128 --epochs=250;" in text


def test_errors():
  with pytest.raises(ValueError, match="need at least one train set, got 0"):
    defaults.resolve(0)
  with pytest.raises(ValueError, match="'temperature' is not a setting of the rule"):
    defaults.resolve(410, {"temperature": 0.1})
