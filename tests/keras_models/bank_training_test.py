"""Bank negatives through training.run (add mode from --init_weights) and config errors."""

from __future__ import annotations

import os

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pandas as pd
import pytest

from flags import train_flags
from keras_models import configs
from keras_models import data_files
from keras_models import input_pipeline
from keras_models import training
from keras_models.models import builder
from tests import tiny_data

FLAGS = flags.FLAGS
ROOT = tiny_data.ROOT


data_dir = tiny_data.shards_fixture(num_sets=60, num_categories=4, feature_dim=12,
                                    min_items=3, max_items=6)


def _config(flagfile, data_dir, model_dir, *extra):
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["prog", f"--flagfile={os.path.join(ROOT, flagfile)}", f"--data_dir={data_dir}",
           f"--model_dir={model_dir}", "--epochs=1", *extra])
    return train_flags.train_config_from_flags()


def _predictions(encoder, manifest):
  batch = next(iter(input_pipeline.make_dataset(manifest, "val", 16, training=False)))
  return encoder(input_pipeline.model_inputs(batch, "query"), training=False).numpy()


def test_two_stage_bank_add_from_init_weights(data_dir, tmp_path):
  manifest = data_files.load_manifest(data_dir)
  stage1 = _config("experiments/smoke/cst.flags", data_dir, str(tmp_path / "stage1"))
  first = builder.build_encoder(stage1.model, manifest)
  best = str(tmp_path / "stage1.weights.h5")
  first.save_weights(best)
  fresh = builder.build_encoder(stage1.model, manifest)
  assert not np.allclose(_predictions(fresh, manifest), _predictions(first, manifest))
  training.load_init_weights(fresh, best)
  np.testing.assert_allclose(_predictions(fresh, manifest), _predictions(first, manifest),
                             atol=1e-6)

  # Replace mode runs in distribution_test's two-replica check.
  stage2 = _config("experiments/smoke/bank_add.flags", data_dir, str(tmp_path / "stage2"),
                   f"--init_weights={best}")
  result = training.run(stage2)
  history = pd.read_csv(os.path.join(stage2.model_dir, "history.csv"))
  assert {"loss/x_to_y", "loss/y_to_x", "loss/bank_x_to_y", "loss/bank_y_to_x"} <= set(
      history.columns)
  assert np.isfinite(history["loss"]).all()
  # Categories hold tens of bank rows here, so the mean bank loss is well above log(2).
  assert history["loss/bank_x_to_y"].iloc[0] > np.log(2)
  assert result.epochs_run == 1

  wider = builder.build_encoder(configs.ModelConfig(hidden_dim=32, num_layers=1), manifest)
  with pytest.raises(ValueError, match=r"weights do not fit the model \(init_weights.*has shape"):
    training.load_init_weights(wider, best)
  with pytest.raises(FileNotFoundError, match=r"none.weights.h5: init_weights file does not"):
    training.load_init_weights(fresh, str(tmp_path / "none.weights.h5"))


def test_bank_config_errors():
  with pytest.raises(ValueError, match=r"bank_mode=replace replaces TPaNeg's negatives"):
    configs.LossConfig(use_bank_negatives=True, bank_mode="replace", use_tpaneg=True).validate()
  with pytest.raises(ValueError, match=r"bank_temperature must be > 0, got 0.0"):
    configs.LossConfig(use_bank_negatives=True, bank_temperature=0.0).validate()
  with pytest.raises(ValueError, match=r"bank_mode must be one of"):
    configs.LossConfig(use_bank_negatives=True, bank_mode="swap").validate()
  with pytest.raises(ValueError, match=r"init_weights must be a .weights.h5 file"):
    configs.TrainConfig(data_dir="d", model_dir="m", init_weights="run/best.h5").validate()
