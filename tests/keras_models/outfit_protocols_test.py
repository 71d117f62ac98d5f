"""eval_main's outfit protocols on a Polyvore-layout tree, against per-question NumPy oracles.

The oracles read the official question files of the raw tree themselves (not the copies
beside the shards), run the encoder on each unpadded question set, and count.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from keras_models import configs
from keras_models import data_files
from keras_models import evaluation
from keras_models import outfit_protocols
from keras_models import weights_io
from keras_models.models import builder
from tfrecords_builder import build
from tfrecords_builder import config as builder_config
from tests.tfrecords_builder import polyvore_fixtures

MODEL = configs.ModelConfig(hidden_dim=16, num_layers=1, num_heads=2, dropout_rate=0.0)
KS = (1, 2, 3)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("polyvore") / "polyvore_outfits")
  written = polyvore_fixtures.write_tree(root)
  data_dir, model_dir = str(tmp_path_factory.mktemp("shards") / "pv"), str(
      tmp_path_factory.mktemp("model"))
  build.run(builder_config.BuilderConfig(
      source="polyvore_outfits", input=root, output_dir=data_dir, num_shards=1,
      features=os.path.join(root, "features.npz")))
  manifest = data_files.load_manifest(data_dir)
  encoder = builder.build_encoder(MODEL, manifest, data_files.load_centers(manifest))
  encoder.save_weights(os.path.join(model_dir, weights_io.BEST_WEIGHTS))
  config = configs.EvalConfig(data_dir=data_dir, model_dir=model_dir, model=MODEL,
                              split="test", recall_ks=KS, num_collages=0, method_name="cst")
  result = evaluation.run(config)
  with open(os.path.join(result.output_dir, outfit_protocols.REPORT)) as stream:
    document = json.load(stream)
  return root, written, manifest, encoder, config, result, document


def _oracle(root, manifest, encoder, predict_all=None):
  """(FITB accuracy, AUC by pair count, {k: Recall@k}) straight from the raw files."""
  table = data_files.load_item_table(manifest, "test")
  row_of = {item: row for row, item in enumerate(table.item_ids)}
  with open(os.path.join(root, "nondisjoint", "test.json")) as stream:
    keys = {f"{o['set_id']}_{i['index']}": row_of[i["item_id"]]
            for o in json.load(stream) for i in o["items"]}
  features, categories = table.features, table.categories

  def predict(rows):  # [K, D] for the set of `rows`, unpadded
    if predict_all is not None:
      return predict_all(features[rows])
    return encoder({"features": features[rows][None], "categories": categories[rows][None],
                    "mask": np.ones([1, len(rows)], bool)}, training=False).numpy()[0]

  def cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

  with open(os.path.join(root, "nondisjoint", "fill_in_blank_test.json")) as stream:
    questions = json.load(stream)
  hits, ranks = [], []
  for question in questions:
    predicted = predict([keys[t] for t in question["question"]])
    own = question["question"][0].rsplit("_", 1)[0]
    scores = [cos(predicted[categories[keys[a]] - 1], features[keys[a]])
              for a in question["answers"]]
    correct = [a.rsplit("_", 1)[0] for a in question["answers"]].index(own)
    hits.append(all(scores[correct] > s for k, s in enumerate(scores) if k != correct))
    target = keys[question["answers"][correct]]
    query = predicted[categories[target] - 1]
    gallery = [g for g in range(len(features)) if categories[g] == categories[target]]
    mine = cos(query, features[target])
    theirs = [cos(query, features[g]) for g in gallery if g != target]
    ranks.append(1 + sum(s >= mine for s in theirs))  # ties count against
  outfit_scores, labels = [], []
  with open(os.path.join(root, "nondisjoint", "compatibility_test.txt")) as stream:
    for line in stream:
      label, *tokens = line.split()
      rows = [keys[t] for t in tokens]
      outfit_scores.append(np.mean([
          cos(predict(rows[:i] + rows[i + 1:])[categories[rows[i]] - 1], features[rows[i]])
          for i in range(len(rows))]))
      labels.append(int(label))
  pairs = [(p, n) for p, lp in zip(outfit_scores, labels) for n, ln in
           zip(outfit_scores, labels) if lp == 1 and ln == 0]
  auc = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
  return (float(np.mean(hits)), auc,
          {k: float(np.mean(np.array(ranks) <= k)) for k in KS})


def test_model_matches_oracle(evaluated):
  root, _, manifest, encoder, _, _, document = evaluated
  fitb, auc, recall = _oracle(root, manifest, encoder)
  model = document["methods"]["cst"]
  assert model["fitb"] == pytest.approx(fitb, abs=1e-9)
  assert model["compatibility_auc"] == pytest.approx(auc, abs=1e-6)
  assert {int(k): v for k, v in model["recall_at_k"].items()} == pytest.approx(recall)


def test_query_mean_baseline_matches_oracle(evaluated):
  root, _, manifest, encoder, _, _, document = evaluated

  def query_mean(items):
    mean = (items / np.linalg.norm(items, axis=1, keepdims=True)).mean(axis=0)
    return np.tile(mean, (manifest.num_categories, 1))

  fitb, auc, recall = _oracle(root, manifest, encoder, query_mean)
  values = document["methods"]["query_mean"]
  assert values["fitb"] == pytest.approx(fitb, abs=1e-9)
  assert values["compatibility_auc"] == pytest.approx(auc, abs=1e-6)
  assert {int(k): v for k, v in values["recall_at_k"].items()} == pytest.approx(recall)


def test_printed_table_and_report(evaluated):
  _, _, manifest, _, _, result, document = evaluated
  table = result.table
  assert "Top-10%" in table and "MRR" in table  # the retrieval table is still there
  assert "Outfit protocols on pv, split test: questions official; 4 FITB questions" in table
  assert "8 compatibility outfits (4 real)" in table
  for column in ("FITB", "AUC", "R@1", "R@3"):
    assert column in table
  for method in ("cst", "random", "category_mean", "query_mean"):
    assert any(line.startswith(method) for line in table.splitlines())
  assert document["questions"] == "official"
  assert document["num_fitb"] == 4 and document["num_compatibility"] == 8
  assert "among all 13 items of the test item table" in document["recall_gallery"]
  with open(os.path.join(result.output_dir, outfit_protocols.TABLE)) as stream:
    protocols = stream.read()
  assert protocols in table
  # One table holds every protocol: each method's Top-K % and MRR are the retrieval
  # evaluation's micro figures (metrics.json), beside its FITB, AUC and R@k.
  with open(os.path.join(result.output_dir, "metrics.json")) as stream:
    retrieval = json.load(stream)["methods"]
  header = next(line for line in protocols.splitlines() if line.startswith("method"))
  assert header.split()[2:7] == ["Top-5%", "Top-10%", "Top-20%", "MRR", "|"]
  for method in ("cst", "random", "category_mean", "query_mean"):
    micro = retrieval[method]["micro"]
    row = next(line for line in protocols.splitlines() if line.startswith(method + " "))
    cells = row.split("|")[1].split()
    assert cells == [f"{100 * micro['top_5_percent']:.2f}", f"{100 * micro['top_10_percent']:.2f}",
                     f"{100 * micro['top_20_percent']:.2f}", f"{micro['mrr']:.4f}"]
    assert document["methods"][method]["retrieval"]["mrr"] == pytest.approx(micro["mrr"])


def test_shards_without_questions_get_a_note(evaluated, tmp_path):
  _, _, manifest, encoder, config, _, _ = evaluated
  copy = str(tmp_path / "pv")
  shutil.copytree(manifest.data_dir, copy)
  shutil.rmtree(os.path.join(copy, "questions"))
  moved = data_files.load_manifest(copy)
  note = outfit_protocols.report(config, moved, data_files.load_item_table(moved, "test"),
                                 encoder, "cst", str(tmp_path))
  assert note.startswith("Outfit protocols: no question files for split test in ")
  assert not os.path.exists(tmp_path / outfit_protocols.REPORT)
