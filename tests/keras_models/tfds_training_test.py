"""Training from tensorflow-datasets batches: 2 epochs on 200 SYNTHETIC sets, autotune off.

docs/data.md's tfds recipe: `training.run(config, train_dataset=tfds_source.make_dataset(
...).repeat())` with `config.data_dir` at shards of the same sets (validation reads them).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from keras_models import configs
from keras_models import data_files
from keras_models import input_pipeline
from keras_models import tfds_source
from keras_models import training
from tfrecords_builder import build
from tfrecords_builder import config as builder_config
from tfrecords_builder.sources import synthetic
from tfrecords_builder.tfds import set_retrieval

SETS = synthetic.SyntheticConfig(num_sets=200, feature_dim=16, num_categories=4)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """The tfds build of 200 SYNTHETIC sets and our shards of the same sets."""
  root = tmp_path_factory.mktemp("tfds200")
  builder = set_retrieval.SetRetrieval(
      config=set_retrieval.SetRetrievalConfig(name="s200", source="synthetic", synthetic=SETS),
      data_dir=str(root / "tfds"))
  builder.download_and_prepare()
  shards = str(root / "shards")
  build.run(builder_config.BuilderConfig(source="synthetic", output_dir=shards, num_shards=2,
                                         synthetic=SETS))
  return builder, shards


def test_two_epochs_from_tfds_batches(prepared, tmp_path):
  builder, shards = prepared
  train = tfds_source.make_dataset(builder.as_dataset(split="train"), 32, training=True,
                                   **tfds_source.shapes_from_info(builder.info))
  assert train.options().autotune.enabled is False
  config = configs.TrainConfig(
      data_dir=shards, model_dir=str(tmp_path / "run"), epochs=2, batch_size=32, verbose=0,
      model=configs.ModelConfig(hidden_dim=16, num_layers=1, num_heads=2))
  result = training.run(config, train_dataset=train.repeat())
  assert result.epochs_run == 2
  history = pd.read_csv(os.path.join(config.model_dir, training.HISTORY))
  assert len(history) == 2 and np.isfinite(history["loss"]).all()
  # 140 train sets: 4 steps of 32 per epoch, and the loss falls over the run.
  assert data_files.load_manifest(shards).num_sets("train") == 140
  assert history["loss"].iloc[1] < history["loss"].iloc[0]
  for name in ("best.weights.h5", "final.weights.h5"):
    assert os.path.isfile(os.path.join(config.model_dir, name)), name


def test_every_pipeline_runs_without_the_autotune_thread(prepared):
  builder, shards = prepared
  manifest = data_files.load_manifest(shards)
  evaluation = input_pipeline.make_dataset(manifest, "val", 8, training=False)
  assert evaluation.options().autotune.enabled is False
  held_out = tfds_source.make_dataset(builder.as_dataset(split="val"), 8, training=False,
                                      **tfds_source.shapes_from_info(builder.info))
  assert held_out.options().autotune.enabled is False
  # Any stream injected into training.run goes through `distribute`, which turns it off.
  injected = tf.data.Dataset.range(4).map(lambda x: {"x": x},
                                          num_parallel_calls=tf.data.AUTOTUNE)
  assert injected.options().autotune.enabled is not False
  default = input_pipeline.distribute(tf.distribute.get_strategy(), injected)
  assert default.options().autotune.enabled is False
