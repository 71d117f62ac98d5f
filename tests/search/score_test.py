"""The outfit score: POST /v1/score and the SavedModel `score` signature vs a NumPy oracle."""

from __future__ import annotations

from absl import flags
from absl.testing import flagsaver
from fastapi import testclient
import numpy as np
import pytest
import tensorflow as tf

import export_main
from keras_models import data_files
from keras_models import weights_io
from keras_models.models import builder
from search import configs
from search import index as index_lib
from search import service
from tests.search import conftest

LIMITS = dict(max_items=5, max_k=20, max_body_bytes=20_000, request_timeout_s=30.0)


def _encoder(served_model):
  manifest = data_files.load_manifest(served_model.data_dir)
  encoder = builder.build_encoder(conftest.MODEL, manifest)
  encoder.load_weights(f"{served_model.model_dir}/{weights_io.BEST_WEIGHTS}")
  return encoder


def _oracle(encoder, features, categories):
  """score = mean_i cos(p(items minus i, c_i), x_i) with one unpadded model call per item."""
  unit = features / np.linalg.norm(features, axis=1, keepdims=True)
  cosines = []
  for i in range(len(unit)):
    others = [j for j in range(len(unit)) if j != i]
    predicted = encoder({"features": unit[others][None],
                         "categories": categories[others][None].astype(np.int32),
                         "mask": np.ones([1, len(others)], bool)}, training=False).numpy()[0]
    p = predicted[categories[i] - 1]
    cosines.append(float(p @ unit[i] / np.linalg.norm(p)))
  return float(np.mean(cosines)), cosines


@pytest.fixture(scope="module")
def client(served_model):
  app = service.build_app(configs.ServeConfig(
      data_dir=served_model.data_dir, model_dir=served_model.model_dir,
      index_dir=served_model.index_dir, model=conftest.MODEL, **LIMITS))
  with testclient.TestClient(app) as test_client:
    yield test_client


@pytest.fixture(scope="module")
def export_dir(served_model, tmp_path_factory):
  path = str(tmp_path_factory.mktemp("score_export") / "export" / "1")
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog", f"--flagfile={served_model.flagfile}", f"--export_dir={path}"])
    export_main.main(["export_main"])
  return path


def test_score_endpoint_matches_oracle(client, served_model):
  index = index_lib.SearchIndex(served_model.index_dir)
  encoder = _encoder(served_model)
  for rows in ([0, 5], [3, 8, 20, 41], [1, 2, 3, 4, 60]):
    body = {"items": [{"item_id": str(index.item_ids[r])} for r in rows]}
    answer = client.post("/v1/score", json=body)
    assert answer.status_code == 200, answer.text
    score, cosines = _oracle(encoder, index.features[rows], index.categories[rows])
    assert answer.json()["score"] == pytest.approx(score, abs=1e-5)
    np.testing.assert_allclose(answer.json()["item_scores"], cosines, atol=1e-5)
  # A raw feature and category name is the same item as its id.
  by_feature = {"items": [{"item_id": str(index.item_ids[0])},
                          {"feature": (3.0 * index.features[5]).tolist(),
                           "category": index.category_names[index.categories[5] - 1]}]}
  by_id = {"items": [{"item_id": str(index.item_ids[r])} for r in (0, 5)]}
  assert client.post("/v1/score", json=by_feature).json()["score"] == pytest.approx(
      client.post("/v1/score", json=by_id).json()["score"], abs=1e-5)


@pytest.mark.parametrize("body, field, message", [
    ({"items": [{"item_id": "syn000000-00"}]}, "items", "at least 2 items"),
    ({"items": [{"item_id": "syn000000-00"}] * 6}, "items", "at most 5 items"),
    ({"items": [{"item_id": "syn000000-00"}, {"item_id": "nope"}]}, "items.1.item_id",
     "unknown item id 'nope'"),
    ({"items": [{"item_id": "syn000000-00"}, {"feature": [1.0] * 3, "category": "cat01"}]},
     "items.1.feature", "has 3 values, the model's feature dimension is 16"),
    ({"items": [{"item_id": "syn000000-00"}, {"item_id": "syn000000-01"}], "k": 3}, "k",
     "Extra inputs are not permitted"),
])
def test_bad_score_requests_name_the_field(client, body, field, message):
  answer = client.post("/v1/score", json=body)
  assert answer.status_code == 422, answer.text
  error = answer.json()["error"]
  assert error["field"] == field and message in error["message"]


def test_saved_model_score_signature_matches_oracle(export_dir, served_model):
  index = index_lib.SearchIndex(served_model.index_dir)
  encoder = _encoder(served_model)
  rows = [3, 8, 20, 41]
  score, cosines = _oracle(encoder, index.features[rows], index.categories[rows])
  # A masked garbage row (category 0, huge values) must change nothing.
  features = np.concatenate([2.0 * index.features[rows], np.full([1, 16], 1e6)]).astype(
      np.float32)
  categories = np.append(index.categories[rows], 0).astype(np.int32)
  mask = np.array([True] * 4 + [False])
  signature = tf.saved_model.load(export_dir).signatures["score"]
  answer = signature(item_features=tf.constant(features), item_categories=tf.constant(categories),
                     mask=tf.constant(mask))
  assert float(answer["score"]) == pytest.approx(score, abs=1e-5)
  np.testing.assert_allclose(answer["item_scores"].numpy(), cosines + [0.0], atol=1e-5)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"mask: the score needs at least two real items; got\] \[1\]"):
    signature(item_features=tf.constant(features), item_categories=tf.constant(categories),
              mask=tf.constant([True, False, False, False, False]))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"item_categories \(where mask\): category ids must be in 1\.\.4"):
    signature(item_features=tf.constant(features), item_categories=tf.constant(categories),
              mask=tf.constant([True] * 5))


def test_service_from_saved_model_scores_like_the_index(export_dir, served_model, client):
  app = service.build_app(configs.ServeConfig(
      data_dir=served_model.data_dir, model_dir=served_model.model_dir,
      index_dir=served_model.index_dir, saved_model=export_dir, model=conftest.MODEL,
      **LIMITS))
  index = index_lib.SearchIndex(served_model.index_dir)
  body = {"items": [{"item_id": str(index.item_ids[r])} for r in (7, 30, 44)]}
  with testclient.TestClient(app) as export_client:
    mine = export_client.post("/v1/score", json=body).json()
  theirs = client.post("/v1/score", json=body).json()
  assert mine["score"] == pytest.approx(theirs["score"], abs=1e-5)
  np.testing.assert_allclose(mine["item_scores"], theirs["item_scores"], atol=1e-5)
