"""eval_main --rerank=icfrr on tiny shards with an untrained encoder's saved weights."""

from __future__ import annotations

import json
import os

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

import eval_main
from flags import train_flags
from keras_models import data_files
from keras_models import evaluator as evaluator_lib
from keras_models.models import builder
from keras_models.rerank import list_metrics
from tests import tiny_data
from tests.keras_models.rerank import icfrr_oracle

FLAGS = flags.FLAGS
ROOT = tiny_data.ROOT


def _parse(*argv: str) -> None:
  FLAGS.unparse_flags()
  FLAGS(["prog", *argv])


def test_eval_main_writes_the_icfrr_report(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(ROOT)
  data_dir = str(tmp_path / "syn")
  tiny_data.build_synthetic(data_dir, num_sets=80,
                            num_categories=3, feature_dim=8, min_items=3, max_items=6)
  model_dir = str(tmp_path / "run")
  common = ("--flagfile=experiments/smoke/cst.flags", f"--data_dir={data_dir}",
            f"--model_dir={model_dir}")
  with flagsaver.flagsaver():
    _parse(*common)
    config = train_flags.train_config_from_flags()
  manifest = data_files.load_manifest(data_dir)
  os.makedirs(model_dir)
  encoder = builder.build_encoder(config.model, manifest)
  encoder.save_weights(os.path.join(model_dir, "best.weights.h5"))
  with flagsaver.flagsaver():
    _parse(*common, "--split=test", "--gallery=items", "--rerank=icfrr", "--icfrr_kg=4",
           "--icfrr_kq=3", "--icfrr_iterations=2", "--icfrr_beta=1", "--num_collages=0")
    eval_main.main(["eval_main"])
  assert "category-level protocol" in capsys.readouterr().out
  out = os.path.join(model_dir, "eval", "test")
  assert os.path.isfile(os.path.join(out, "rerank_icfrr.png"))
  with open(os.path.join(out, "rerank_icfrr.json"), encoding="utf-8") as stream:
    report = json.load(stream)
  with open(os.path.join(out, "metrics.json"), encoding="utf-8") as stream:
    plain = json.load(stream)["methods"]["run"]["micro"]
  assert report["synthetic"] is True and report["icfrr"]["k_g"] == 4
  assert set(report["seconds"]) == {"task", "category_level"}
  task, category_level = report["protocols"]["task"], report["protocols"]["category_level"]
  assert len(task) == len(category_level) == 3
  # Iteration 0 is the plain evaluation (random float features: no exact ties).
  for name in ("top_10_percent", "mrr"):
    assert task[0][name] == pytest.approx(plain[name], abs=1e-6)
  # Category level, before re-ranking: brute-force NumPy over the whole gallery.
  evaluator = evaluator_lib.Evaluator(manifest, "test", gallery="items")
  vectors = evaluator.predictions(encoder)
  order = np.argsort(-(vectors @ evaluator.gallery_features.T), axis=1, kind="stable")
  hits = evaluator.gallery_categories[order] == evaluator.targets.categories[:, None]
  expected = list_metrics.summarize(hits)
  for name, value in expected.items():
    assert category_level[0][name] == pytest.approx(value, abs=1e-5), name
  # After re-ranking: the dense NumPy maths (the default shortlist covers this gallery).
  assert report["icfrr"]["shortlist"] >= len(evaluator.gallery_rows)
  scores = icfrr_oracle.initial_scores(vectors, evaluator.gallery_features, "neg_euclidean")
  final = icfrr_oracle.rerank(scores, evaluator.gallery_features, 4, 3, 1.0, 2,
                              "positional")[-1]
  hits = evaluator.gallery_categories[final] == evaluator.targets.categories[:, None]
  assert category_level[2]["map_all"] == pytest.approx(
      list_metrics.summarize(hits)["map_all"], abs=1e-5)
