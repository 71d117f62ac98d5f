"""Corrupt shards, foreign weights, other data, stale backups: errors name file and field."""

from __future__ import annotations

import dataclasses
import os
import shutil

import keras
import numpy as np
import pytest

from keras_models import configs
from keras_models import data_files
from keras_models import input_pipeline
from keras_models import resume
from keras_models import run_config
from keras_models import training
from keras_models import weights_io
from keras_models.models import builder
from tests import tiny_data

MODEL = configs.ModelConfig(hidden_dim=8, num_layers=1, num_heads=2, dropout_rate=0.0)


SPEC = dict(num_shards=2, num_sets=40, num_categories=3, feature_dim=8, min_items=3,
            max_items=5)
data_dir = tiny_data.shards_fixture(**SPEC)


def _corrupt_copy(data_dir: str, folder: str, how: str) -> tuple[str, str]:
  """Copy of the data with val shard 0 truncated or with flipped bytes; (copy, shard)."""
  shutil.copytree(data_dir, folder)
  shard = data_files.load_manifest(folder).shard_paths("val")[0]
  with open(shard, "rb") as stream:
    data = bytearray(stream.read())
  if how == "truncated":
    data = data[:len(data) * 2 // 3]
  else:
    middle = len(data) // 2
    data[middle:middle + 4] = bytes(b ^ 0xFF for b in data[middle:middle + 4])
  with open(shard, "wb") as stream:
    stream.write(bytes(data))
  return folder, shard


@pytest.mark.parametrize("how", ["truncated", "flipped"])
def test_corrupt_shard_is_named(data_dir, tmp_path, how):
  folder, shard = _corrupt_copy(data_dir, str(tmp_path / "data"), how)
  manifest = data_files.load_manifest(folder)
  data_files.verify_shards(manifest, "train")
  with pytest.raises(ValueError, match=rf"{shard}: sha256 .* does not match the manifest"):
    data_files.verify_shards(manifest, "val")
  # Without --verify_shards, the DataLossError of tf.data (which names no file) is mapped.
  with pytest.raises(ValueError, match=rf"{shard}: record \d+: .*corrupt or truncated"):
    with data_files.shards_named_on_data_loss(manifest, ("train", "val")):
      for _ in input_pipeline.make_dataset(manifest, "val", 4, training=False):
        pass


def test_training_with_verify_shards_stops_before_work(data_dir, tmp_path):
  folder, shard = _corrupt_copy(data_dir, str(tmp_path / "data"), "flipped")
  config = configs.TrainConfig(data_dir=folder, model_dir=str(tmp_path / "run"), model=MODEL,
                               batch_size=4, epochs=1, verify_shards=True)
  with pytest.raises(ValueError, match=rf"{shard}: sha256"):
    training.run(config)
  assert sorted(os.listdir(tmp_path / "run")) == [weights_io.SIGNATURE, run_config.MODEL_CONFIG]


def test_unwritable_model_dir(data_dir, tmp_path):
  (tmp_path / "file").write_text("")
  config = configs.TrainConfig(data_dir=data_dir, model_dir=str(tmp_path / "file" / "run"),
                               model=MODEL, batch_size=4, epochs=1)
  with pytest.raises(OSError, match="file/run: --model_dir is not writable"):
    training.run(config)


def test_weights_of_another_architecture_name_first_variable(data_dir, tmp_path):
  manifest = data_files.load_manifest(data_dir)
  path = str(tmp_path / "best.weights.h5")
  builder.build_encoder(MODEL, manifest).save_weights(path)
  wider = builder.build_encoder(dataclasses.replace(MODEL, hidden_dim=12), manifest)
  with pytest.raises(ValueError, match=r"weights do not fit the model \(cst\): variable "
                                       r"\S+ has shape \(4, 8\) in the file, the model "
                                       r"expects \(4, 12\)"):
    weights_io.load_weights_checked(wider, path, "cst")
  deeper = builder.build_encoder(dataclasses.replace(MODEL, num_layers=2), manifest)
  with pytest.raises(ValueError, match=r"variable \S+block_1\S+ of the model .* not in the file"):
    weights_io.load_weights_checked(deeper, path, "cst")
  same = builder.build_encoder(MODEL, manifest)
  weights_io.load_weights_checked(same, path, "cst")


def test_shards_with_other_dimension_or_vocabulary(data_dir, tmp_path):
  trained_on = data_files.load_manifest(data_dir)
  weights_io.write_signature(str(tmp_path), trained_on)
  weights = str(tmp_path / "best.weights.h5")
  weights_io.check_signature(weights, trained_on)
  wider = data_files.load_manifest(
      tiny_data.build_synthetic(str(tmp_path / "d16"), **dict(SPEC, feature_dim=16)))
  with pytest.raises(ValueError, match=r"d16/manifest.json: feature_dim is 16, but .* was "
                                       "trained on feature_dim 8"):
    weights_io.check_signature(weights, wider)
  other = dataclasses.replace(trained_on, categories=(*trained_on.categories[:2], "lamp"))
  with pytest.raises(ValueError, match=r"category vocabulary differs .* category id 3 is "
                                       r"'lamp' here"):
    weights_io.check_signature(weights, other)


def _trainer(units: int) -> keras.Model:
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(units)])
  model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
  model.optimizer.build(model.trainable_variables)
  return model


def test_checkpoint_round_trip_and_refusals(tmp_path):
  backup = str(tmp_path / "backup")
  saved = _trainer(3)
  saved.layers[0].kernel.assign(np.arange(6, dtype=np.float32).reshape(2, 3))
  saved.optimizer.iterations.assign(7)
  early = keras.callbacks.EarlyStopping(patience=3)
  early.wait, early.best = 2, 0.25
  resume.Checkpointer(backup, saved, {"batch_size": 8}).save(7, [early])
  loaded = _trainer(3)
  checkpointer = resume.Checkpointer(backup, loaded, {"batch_size": 8})
  assert checkpointer.restore() == 7
  np.testing.assert_array_equal(loaded.layers[0].kernel.numpy(),
                                saved.layers[0].kernel.numpy())
  assert int(loaded.optimizer.iterations.numpy()) == 7
  assert checkpointer.callback_states["EarlyStopping"]["wait"] == 2
  with pytest.raises(ValueError, match=r"state.json: the backup was written by a different run "
                                       r"\(batch_size: 8 there, 16 now\)"):
    resume.Checkpointer(backup, _trainer(3), {"batch_size": 16}).restore()
  with pytest.raises(ValueError, match=r"variables.npz: variable '\S+kernel' has shape "
                                       r"\(2, 3\), the model expects \(2, 4\)"):
    resume.Checkpointer(backup, _trainer(4), {"batch_size": 8}).restore()
  assert resume.Checkpointer(str(tmp_path / "none"), _trainer(3), {}).restore() == 0
