"""train_main with no setting: the data-sized rule, logged, in flags.txt and model_config.json."""

from __future__ import annotations

import logging
import os

from absl import flags
from absl.testing import flagsaver
import pytest

import eval_main
from flags import eval_flags
from flags import train_flags
from keras_models import defaults
from keras_models import run_config
from keras_models import training
from tests import tiny_data
import train_main

FLAGS = flags.FLAGS

# 42 train sets: the small tier (hidden 128, 1 layer, dropout 0.3, batch 32).
data_dir = tiny_data.shards_fixture(num_sets=60, num_categories=4, feature_dim=16,
                                    min_items=3, max_items=6)


def _parse(*argv: str) -> None:
  FLAGS.unparse_flags()
  FLAGS(["prog", *argv])


def test_settings_left_out_come_from_the_rule(data_dir, caplog):
  with flagsaver.flagsaver():
    _parse(f"--data_dir={data_dir}", "--model_dir=m")
    with caplog.at_level(logging.INFO, logger="absl"):
      config = train_flags.train_config_from_flags()
  assert train_flags.rule_values(config) == defaults.resolve(42)
  assert (config.model.hidden_dim, config.model.num_layers, config.model.dropout_rate,
          config.batch_size, config.lr_schedule) == (128, 1, 0.3, 32, "cosine")
  assert "settings chosen from the data (42 train sets, tier small" in caplog.text


def test_given_flags_win_and_the_rest_follow_them(data_dir):
  with flagsaver.flagsaver():
    _parse(f"--data_dir={data_dir}", "--model_dir=m", "--batch_size=8", "--hidden_dim=32",
           "--lr_schedule=constant")
    config = train_flags.train_config_from_flags()
  # 42 // 8 = 5 steps an epoch: ceil(3000 / 5) = 600 epochs, clipped to 300.
  assert (config.batch_size, config.model.hidden_dim, config.model.num_layers) == (8, 32, 1)
  assert (config.lr_schedule, config.warmup_steps, config.epochs) == ("constant", 0, 300)


def test_default_run_is_reproducible_and_readable_without_flags(data_dir, tmp_path,
                                                                monkeypatch, capsys):
  monkeypatch.chdir(tiny_data.ROOT)
  model_dir = str(tmp_path / "run")
  with flagsaver.flagsaver():
    _parse(f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--epochs=1", "--verbose=0")
    expected = train_flags.train_config_from_flags()
    train_main.main(["train_main"])
  # One epoch: its best epoch is its last, so the run says it was still improving.
  assert f"warning: {training.STILL_IMPROVING}" in capsys.readouterr().out
  with open(os.path.join(model_dir, "flags.txt"), encoding="utf-8") as stream:
    written = stream.read().splitlines()
  assert {"--hidden_dim=128", "--num_layers=1", "--dropout_rate=0.3", "--batch_size=32",
          "--lr_schedule=cosine", "--learning_rate=0.002", "--epochs=1"} <= set(written)
  with flagsaver.flagsaver():
    # flags.txt gives every setting, so the rerun needs neither the data nor the rule.
    _parse(f"--flagfile={os.path.join(model_dir, 'flags.txt')}")
    assert all(holder.value is not None for holder in train_flags.rule_flags().values())
    assert train_flags.train_config_from_flags(num_train_sets=1) == expected
  assert run_config.read(model_dir).model == expected.model
  with flagsaver.flagsaver():
    _parse(f"--model_dir={model_dir}", "--split=test")
    assert eval_flags.eval_config_from_flags().model == expected.model
    eval_main.main(["eval_main"])
  assert os.path.isfile(os.path.join(model_dir, "eval", "test", "metrics.json"))


def test_a_reader_without_model_config_sizes_the_model_from_its_data(data_dir, tmp_path):
  model_dir = str(tmp_path / "older")
  os.makedirs(model_dir)
  with flagsaver.flagsaver():
    _parse(f"--model_dir={model_dir}", f"--data_dir={data_dir}", "--num_layers=2")
    model = eval_flags.eval_config_from_flags().model
  assert (model.hidden_dim, model.num_layers) == (128, 2)


@pytest.mark.parametrize("best_epoch, epochs_run, improving", [(3, 3, True), (2, 3, False),
                                                               (0, 0, False)])
def test_still_improving(best_epoch, epochs_run, improving):
  result = training.TrainResult(best_epoch=best_epoch, best_value=0.5, epochs_run=epochs_run,
                                seconds=1.0, history={}, encoder=None)
  assert result.still_improving == improving
