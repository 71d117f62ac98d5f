"""Shards -> train_main (every variant) -> reload best weights -> eval_main outputs."""

from __future__ import annotations

import json
import os

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import eval_main
from flags import eval_flags
from flags import train_flags
from keras_models import baselines
from keras_models import data_files
from keras_models import evaluator as evaluator_lib
from keras_models import input_pipeline
from keras_models import run_config
from keras_models import training
from keras_models.models import builder
from tests import tiny_data
import train_main
from tfrecords_builder import build
from tfrecords_builder import config as builder_config

FLAGS = flags.FLAGS
ROOT = tiny_data.ROOT
IKEA = os.path.join(ROOT, "..", "shared", "data", "ikea")


data_dir = tiny_data.shards_fixture(num_shards=2, num_sets=80, num_categories=4,
                                    feature_dim=16, min_items=3, max_items=6)


def _parse(*argv: str) -> None:
  FLAGS.unparse_flags()
  FLAGS(["prog", *argv])


def _predictions(encoder, manifest) -> np.ndarray:
  batch = next(iter(input_pipeline.make_dataset(manifest, "val", 16, training=False)))
  return encoder(input_pipeline.model_inputs(batch, "query"), training=False).numpy()


@pytest.mark.parametrize("variant", ["cst", "cycle", "tpaneg", "integrated"])
def test_variant_trains_and_best_weights_reload(variant, data_dir, tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)
  model_dir = str(tmp_path / variant)
  with flagsaver.flagsaver():
    _parse(f"--flagfile=experiments/smoke/{variant}.flags", f"--data_dir={data_dir}",
           f"--model_dir={model_dir}", "--epochs=1")
    config = train_flags.train_config_from_flags()
  result = training.run(config)
  for name in ("best.weights.h5", "final.weights.h5", "history.csv"):
    assert os.path.isfile(os.path.join(model_dir, name)), name
  assert os.listdir(os.path.join(model_dir, "logs"))
  history = pd.read_csv(os.path.join(model_dir, "history.csv"))
  assert {"loss", "loss/x_to_y", "loss/y_to_x", "val_top_10_percent", "learning_rate"} <= set(
      history.columns)
  assert np.isfinite(history["loss"]).all()
  if config.loss.use_cycle_loss:
    assert {"loss/cycle_x", "loss/cycle_y"} <= set(history.columns)
  if config.loss.use_tpaneg:
    assert history["tpaneg/kept_negatives_per_item"].iloc[0] > 0
    assert history["tpaneg/gamma"].iloc[0] == pytest.approx(config.loss.tpaneg_gamma_start)
  # One epoch: best == final == the trained encoder in memory.
  manifest = data_files.load_manifest(data_dir)
  fresh = builder.build_encoder(config.model, manifest)
  before = _predictions(fresh, manifest)
  fresh.load_weights(os.path.join(model_dir, "best.weights.h5"))
  reloaded = _predictions(fresh, manifest)
  assert not np.allclose(before, reloaded)
  np.testing.assert_allclose(reloaded, _predictions(result.encoder, manifest), atol=1e-6)


def test_train_main_then_eval_main(data_dir, tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(ROOT)
  model_dir = str(tmp_path / "run")
  with flagsaver.flagsaver():
    _parse("--flagfile=experiments/smoke/cst.flags", f"--data_dir={data_dir}",
           f"--model_dir={model_dir}")
    train_main.main(["train_main"])
  assert "best val Top-10%" in capsys.readouterr().out
  # flags.txt re-runs the same configuration.
  with flagsaver.flagsaver():
    _parse("--flagfile=experiments/smoke/cst.flags", f"--data_dir={data_dir}",
           f"--model_dir={model_dir}")
    expected = train_flags.train_config_from_flags()
    _parse(f"--flagfile={os.path.join(model_dir, 'flags.txt')}")
    assert train_flags.train_config_from_flags() == expected
  # model_config.json describes the encoder, so readers of the run need no architecture flag.
  saved = run_config.read(model_dir)
  assert saved.model == expected.model and saved.data_dir == os.path.abspath(data_dir)
  with flagsaver.flagsaver():
    _parse("--flagfile=experiments/smoke/cst.flags", f"--data_dir={data_dir}",
           f"--model_dir={model_dir}", "--split=test", "--gallery_chunk_size=7")
    eval_main.main(["eval_main"])
  printed = capsys.readouterr().out
  assert "SYNTHETIC" in printed and "category_mean" in printed and "random" in printed
  out = os.path.join(model_dir, "eval", "test")
  for name in ("metrics.json", "results_summary.csv", "percentage_table.txt",
               "per_category.png", "embedding_pca.png"):
    assert os.path.isfile(os.path.join(out, name)), name
  assert os.path.isfile(os.path.join(model_dir, "training_curves.png"))
  with open(os.path.join(out, "metrics.json"), encoding="utf-8") as stream:
    metrics = json.load(stream)
  manifest = data_files.load_manifest(data_dir)
  assert metrics["synthetic"] is True
  assert metrics["num_queries"] == sum(
      int(b["target_mask"].numpy().sum())
      for b in input_pipeline.make_dataset(manifest, "test", 16, training=False))
  assert set(metrics["methods"]) == {"run", *baselines.NAMES}
  for values in metrics["methods"].values():
    assert 0.0 <= values["micro"]["top_10_percent"] <= 1.0
    assert 0.0 <= values["micro"]["fitb_4"] <= 1.0
    assert values["micro"]["recall_at_30"] <= values["micro"]["recall_at_50"]
  assert metrics["ridge"]["lambda"] in metrics["ridge"]["lambdas"]
  # The centred baseline is built on the true category means, not on the unit centres.
  test = evaluator_lib.Evaluator(manifest, "test")
  for centres, same in ((data_files.load_category_means(manifest), True),
                        (data_files.load_centers(manifest), False)):
    ranks = test.ranks(baselines.predictions("centred_query_mean", test, centres))
    mrr = metrics["methods"]["centred_query_mean"]["micro"]["mrr"]
    assert (abs(mrr - test.summarize(ranks)["micro/mrr"]) < 1e-6) == same
  assert metrics["fitb"]["candidates"] == 4
  summary = pd.read_csv(os.path.join(out, "results_summary.csv"))
  assert set(summary["scope"]) >= {"overall_micro", "overall_macro"}
  assert {"fitb_4", "recall_at_50"} <= set(summary.columns)
  assert len(summary) == (1 + len(baselines.NAMES)) * (2 + manifest.num_categories)


def test_eval_main_rejects_weights_of_another_architecture(data_dir, tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)
  model_dir = str(tmp_path / "run")
  manifest = data_files.load_manifest(data_dir)
  with flagsaver.flagsaver():
    _parse("--flagfile=experiments/smoke/cst.flags", f"--data_dir={data_dir}",
           f"--model_dir={model_dir}")
    config = train_flags.train_config_from_flags()
  os.makedirs(model_dir)
  builder.build_encoder(config.model, manifest).save_weights(
      os.path.join(model_dir, "best.weights.h5"))
  with flagsaver.flagsaver():
    _parse("--flagfile=experiments/smoke/cst.flags", f"--data_dir={data_dir}",
           f"--model_dir={model_dir}", "--hidden_dim=32")
    with pytest.raises(ValueError, match="weights do not fit"):
      eval_main.main(["eval_main"])
  with flagsaver.flagsaver():
    _parse("--flagfile=experiments/smoke/cst.flags", f"--data_dir={data_dir}",
           f"--model_dir={tmp_path / 'none'}")
    with pytest.raises(FileNotFoundError, match="--model_dir=.*none: no such file"):
      eval_main.main(["eval_main"])
    os.makedirs(tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="weights not found"):
      eval_main.main(["eval_main"])


@pytest.mark.skipif(not os.path.isdir(IKEA), reason=f"real IKEA data not found at {IKEA}")
def test_ikea_end_to_end_with_collages(tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)
  data = str(tmp_path / "ikea")
  build.run(builder_config.BuilderConfig(source="generic", input=IKEA, output_dir=data,
                                         image_dir=os.path.join(IKEA, "images"),
                                         num_shards=1))
  model_dir = str(tmp_path / "run")
  with flagsaver.flagsaver():
    _parse("--flagfile=experiments/smoke/cst.flags", f"--data_dir={data}",
           f"--model_dir={model_dir}", "--epochs=1")
    training.run(train_flags.train_config_from_flags())
    _parse("--flagfile=experiments/smoke/cst.flags", f"--data_dir={data}",
           f"--model_dir={model_dir}", "--split=test", "--num_collages=2", "--gallery=items")
    config = eval_flags.eval_config_from_flags()
  from keras_models import evaluation  # pylint: disable=g-import-not-at-top
  result = evaluation.run(config)
  assert "SYNTHETIC" not in result.table
  collages = os.listdir(os.path.join(result.output_dir, "collages"))
  assert len(collages) == 2 and all(name.endswith(".jpg") for name in collages)
  assert tf.io.gfile.listdir(os.path.join(model_dir, "logs", "eval"))


def test_interrupted_run_resumes_from_backup(data_dir, tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)
  model_dir = str(tmp_path / "run")
  with flagsaver.flagsaver():
    _parse("--flagfile=experiments/smoke/cst.flags", f"--data_dir={data_dir}",
           f"--model_dir={model_dir}", "--epochs=3")
    config = train_flags.train_config_from_flags()
  from keras_models import callbacks  # pylint: disable=g-import-not-at-top
  original = callbacks.LearningRateLogger.on_epoch_end

  def crash_in_second_epoch(self, epoch, logs=None):
    if epoch == 1:
      raise KeyboardInterrupt("simulated kill")
    original(self, epoch, logs)

  monkeypatch.setattr(callbacks.LearningRateLogger, "on_epoch_end", crash_in_second_epoch)
  with pytest.raises(KeyboardInterrupt):
    training.run(config)
  assert os.listdir(os.path.join(model_dir, "backup"))
  monkeypatch.setattr(callbacks.LearningRateLogger, "on_epoch_end", original)
  result = training.run(config)
  # Epoch 2 crashed inside its end-of-epoch callbacks, before its checkpoint: the run
  # resumes after epoch 1 (2 steps), and the history holds each epoch once.
  assert result.start_step == 2
  assert result.epochs_run == 3
  assert pd.read_csv(os.path.join(model_dir, "history.csv"))["epoch"].tolist() == [0, 1, 2]
  assert not os.path.exists(os.path.join(model_dir, "backup"))


def test_chunked_and_one_shot_evaluation_give_identical_ranks(data_dir):
  from keras_models import configs  # pylint: disable=g-import-not-at-top
  from keras_models import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top
  manifest = data_files.load_manifest(data_dir)
  encoder = builder.build_encoder(configs.ModelConfig(hidden_dim=16, num_layers=1), manifest)
  one_shot = evaluator_lib.Evaluator(manifest, "test", batch_size=5, chunk_size=10**6)
  chunked = evaluator_lib.Evaluator(manifest, "test", batch_size=7, chunk_size=3)
  _, ranks, vectors = one_shot.evaluate(encoder)
  _, chunked_ranks, chunked_vectors = chunked.evaluate(encoder)
  np.testing.assert_array_equal(ranks, chunked_ranks)
  np.testing.assert_allclose(vectors, chunked_vectors, atol=1e-6)
  # Brute force: rank within the deduplicated target gallery of the query's category.
  gallery = one_shot.gallery_features
  categories = one_shot.gallery_categories
  positives = evaluator_lib.l2_normalize(
      one_shot.table.features[one_shot.targets.positive_rows])
  for q in range(0, len(ranks), 5):
    same = categories == one_shot.targets.categories[q]
    scores = gallery[same] @ vectors[q]
    positive = positives[q] @ vectors[q]
    others = one_shot.gallery_rows[same] != one_shot.targets.positive_rows[q]
    expected = 1 + np.sum(scores[others] >= positive)
    assert abs(ranks[q] - expected) <= 0 or np.isclose(scores[others], positive).any()
