"""Readers of a run rebuild its encoder from model_config.json; set flags must agree with it."""

from __future__ import annotations

import os

from absl import flags
from absl.testing import flagsaver
import pytest

import eval_main
from flags import eval_flags
from flags import export_flags
from flags import index_flags
from flags import serve_flags
from keras_models import configs
from keras_models import data_files
from keras_models import evaluation
from keras_models import run_config
from keras_models import weights_io
from keras_models.models import builder
from tests import tiny_data

FLAGS = flags.FLAGS
# Not the flag defaults (hidden_dim 256, num_layers 2): typing no flag must still fit.
TRAINED = configs.ModelConfig(hidden_dim=16, num_layers=1, num_heads=2, dropout_rate=0.3)

data_dir = tiny_data.shards_fixture(num_sets=40, num_categories=3, feature_dim=8)


def _run(folder: str, data: str, model: configs.ModelConfig = TRAINED) -> str:
  """A run folder as training leaves it: weights of `model` and its model_config.json."""
  manifest = data_files.load_manifest(data)
  os.makedirs(folder)
  encoder = builder.build_encoder(model, manifest)
  encoder.save_weights(os.path.join(folder, weights_io.BEST_WEIGHTS))
  run_config.write(folder, model, data)
  return folder


def _parse(*argv: str) -> None:
  FLAGS.unparse_flags()
  FLAGS(["prog", *argv])


def test_model_dir_alone_rebuilds_the_trained_encoder(data_dir, tmp_path):
  model_dir = _run(str(tmp_path / "run"), data_dir)
  with flagsaver.flagsaver():
    _parse(f"--model_dir={model_dir}", "--split=test")
    config = eval_flags.eval_config_from_flags()
  assert config.model == TRAINED
  assert config.data_dir == os.path.abspath(data_dir)
  # The weights load into the rebuilt encoder (a wrong width would fail to load).
  encoder = evaluation.load_encoder(config, data_files.load_manifest(config.data_dir))
  assert encoder.count_params() == builder.build_encoder(
      TRAINED, data_files.load_manifest(data_dir)).count_params()


@pytest.mark.parametrize("argument, message", [
    ("--hidden_dim=256", r"^--hidden_dim=256 contradicts hidden_dim=16 in .*run/"
                         r"model_config\.json \(the run was trained with it\); drop the flag$"),
    ("--num_layers=2", r"^--num_layers=2 contradicts num_layers=1 in "),
    ("--trainable_seeds", r"^--trainable_seeds=true contradicts trainable_seeds=false in "),
])
def test_a_contradicting_flag_is_one_line_naming_both_values(data_dir, tmp_path, argument,
                                                             message):
  model_dir = _run(str(tmp_path / "run"), data_dir)
  with flagsaver.flagsaver():
    _parse(f"--model_dir={model_dir}", argument)
    with pytest.raises(flags.ValidationError, match=message):
      eval_main.main(["eval_main"])


def test_agreeing_flags_and_dropout_are_accepted(data_dir, tmp_path):
  model_dir = _run(str(tmp_path / "run"), data_dir)
  flagfile = tmp_path / "arch.flags"
  flagfile.write_text("--hidden_dim=16\n--num_layers=1\n--dropout_rate=0.0\n")
  with flagsaver.flagsaver():
    _parse(f"--flagfile={flagfile}", f"--model_dir={model_dir}", f"--data_dir={data_dir}")
    config = eval_flags.eval_config_from_flags()
  # dropout_rate only acts in training: the run's value is kept, the flag not compared.
  assert config.model == TRAINED and config.data_dir == data_dir


def test_weights_of_another_run_bring_that_runs_model(data_dir, tmp_path):
  other = _run(str(tmp_path / "other"), data_dir,
               configs.ModelConfig(hidden_dim=8, num_layers=1, num_heads=1))
  model_dir = _run(str(tmp_path / "run"), data_dir)
  with flagsaver.flagsaver():
    _parse(f"--model_dir={model_dir}",
           f"--weights={os.path.join(other, weights_io.BEST_WEIGHTS)}")
    assert eval_flags.eval_config_from_flags().model.hidden_dim == 8


def test_runs_without_the_file_use_the_flags(data_dir, tmp_path):
  model_dir = str(tmp_path / "older")
  os.makedirs(model_dir)
  with flagsaver.flagsaver():
    _parse(f"--model_dir={model_dir}", f"--data_dir={data_dir}", "--hidden_dim=32",
           "--num_heads=4")
    config = eval_flags.eval_config_from_flags()
    assert (config.model.hidden_dim, config.model.num_heads) == (32, 4)
    _parse(f"--model_dir={model_dir}")
    with pytest.raises(flags.ValidationError, match=r"^--data_dir is required$"):
      eval_flags.eval_config_from_flags()


def test_export_serve_and_index_read_the_run_too(data_dir, tmp_path):
  model_dir = _run(str(tmp_path / "run"), data_dir)
  with flagsaver.flagsaver():
    _parse(f"--model_dir={model_dir}")
    export = export_flags.export_config_from_flags()
    serve = serve_flags.serve_config_from_flags()
    index = index_flags.index_config_from_flags()
  assert export.model == serve.model == TRAINED
  assert export.data_dir == serve.data_dir == index.data_dir == os.path.abspath(data_dir)
  assert serve.index_dir == os.path.join(model_dir, "index", "exact")
  with flagsaver.flagsaver():
    _parse(f"--model_dir={model_dir}", "--hidden_dim=64")
    for convert in (export_flags.export_config_from_flags,
                    serve_flags.serve_config_from_flags):
      with pytest.raises(flags.ValidationError, match=r"--hidden_dim=64 contradicts"):
        convert()


def test_a_run_whose_data_moved_asks_for_data_dir(data_dir, tmp_path):
  model_dir = _run(str(tmp_path / "run"), data_dir)
  run_config.write(model_dir, TRAINED, str(tmp_path / "moved"))
  with flagsaver.flagsaver():
    _parse(f"--model_dir={model_dir}")
    with pytest.raises(flags.ValidationError, match=r"model_config\.json: the run's data_dir "
                                                    r".*moved does not exist; pass --data_dir"):
      eval_flags.eval_config_from_flags()
    _parse(f"--model_dir={model_dir}", f"--data_dir={data_dir}")
    assert eval_flags.eval_config_from_flags().data_dir == data_dir
