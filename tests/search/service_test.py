"""The HTTP API: happy path against a NumPy oracle, every error answer, and the bounds."""

from __future__ import annotations

import threading

from fastapi import testclient
import numpy as np
import pytest

from keras_models import data_files
from keras_models import weights_io
from keras_models.models import builder
from search import completion
from search import configs
from search import service
from tests.search import conftest

LIMITS = dict(max_items=5, max_k=20, max_body_bytes=20_000, request_timeout_s=30.0)


@pytest.fixture(scope="module")
def app(served_model):
  return service.build_app(configs.ServeConfig(
      data_dir=served_model.data_dir, model_dir=served_model.model_dir,
      index_dir=served_model.index_dir, model=conftest.MODEL, **LIMITS))


@pytest.fixture(scope="module")
def client(app):
  with testclient.TestClient(app) as test_client:
    yield test_client


def _oracle(served_model, query_ids, wanted, k):
  """Expected answer: the model on the unpadded set, then brute force over the gallery."""
  index = service.index_lib.SearchIndex(served_model.index_dir)
  manifest = data_files.load_manifest(served_model.data_dir)
  encoder = builder.build_encoder(conftest.MODEL, manifest)
  encoder.load_weights(f"{served_model.model_dir}/{weights_io.BEST_WEIGHTS}")
  rows = [index.row_of(i) for i in query_ids]
  predicted = encoder({"features": index.features[rows][None],
                       "categories": index.categories[rows][None].astype(np.int32),
                       "mask": np.ones([1, len(rows)], bool)}, training=False).numpy()[0]
  expected = {}
  for name in wanted:
    category = index.category_names.index(name) + 1
    query = predicted[category - 1] / np.linalg.norm(predicted[category - 1])
    members = [r for r in np.flatnonzero(index.categories == category) if r not in rows]
    scores = index.features[members] @ query
    top = np.argsort(-scores, kind="stable")[:k]
    expected[name] = (list(index.item_ids[members][top]), scores[top])
  return expected


def test_health_and_info(client, served_model):
  assert client.get("/healthz").json() == {"status": "ok"}
  info = client.get("/v1/info").json()
  assert info["index"]["backend"] == "exact"
  assert info["dataset"]["synthetic"] and info["dataset"]["feature_dim"] == 16
  assert [c["name"] for c in info["categories"]] == ["cat01", "cat02", "cat03", "cat04"]
  assert info["model"]["model_dir"] == served_model.model_dir
  assert info["limits"]["max_k"] == 20


def test_complete_matches_oracle_and_never_retraces(client, app, served_model):
  index = app.state.completer.index
  for count in (1, 3, 5):
    query_ids = [str(i) for i in index.item_ids[10:10 + count]]
    body = {"items": [{"item_id": i} for i in query_ids], "categories": ["cat02", "cat04"],
            "k": 6}
    answer = client.post("/v1/complete", json=body)
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    expected = _oracle(served_model, query_ids, ["cat02", "cat04"], 6)
    assert [r["category"] for r in answer["results"]] == ["cat02", "cat04"]
    for result in answer["results"]:
      ids, scores = expected[result["category"]]
      assert result["item_ids"] == ids
      np.testing.assert_allclose(result["similarities"], scores, atol=1e-4)
      assert not set(result["item_ids"]) & set(query_ids)
      assert result["retrieval_ms"] >= 0
    assert answer["backend"] == "exact" and answer["total_ms"] >= answer["encode_ms"] >= 0
  assert app.state.completer.encoder.tracing_count() == 1


def test_raw_feature_item_equals_the_same_item_by_id(client, app):
  index = app.state.completer.index
  row = 3
  by_id = client.post("/v1/complete", json={
      "items": [{"item_id": str(index.item_ids[row])}], "categories": ["cat01"], "k": 4,
      "exclude_query_items": False}).json()
  by_feature = client.post("/v1/complete", json={
      "items": [{"feature": (3.0 * index.features[row]).tolist(),
                 "category": index.category_names[index.categories[row] - 1]}],
      "categories": ["cat01"], "k": 4}).json()
  assert by_id["results"][0]["item_ids"] == by_feature["results"][0]["item_ids"]
  np.testing.assert_allclose(by_id["results"][0]["similarities"],
                             by_feature["results"][0]["similarities"], atol=1e-5)


def _with_real_ids(body, app):
  """Replaces the placeholder item id "ITEM" by an id of the gallery."""
  if not isinstance(body, dict) or "items" not in body:
    return body
  real = str(app.state.completer.index.item_ids[0])
  items = [{**item, "item_id": real} if item.get("item_id") == "ITEM" else item
           for item in body["items"]]
  return {**body, "items": items}


@pytest.mark.parametrize("body, field, message", [
    ({"items": [{"item_id": "nope"}], "categories": ["cat01"]}, "items.0.item_id",
     "unknown item id 'nope'"),
    ({"items": [{"feature": [0.1] * 3, "category": "cat01"}], "categories": ["cat01"]},
     "items.0.feature", "has 3 values, the model's feature dimension is 16"),
    ({"items": [{"feature": [0.0] * 16, "category": "cat01"}], "categories": ["cat01"]},
     "items.0.feature", "non-zero norm"),
    ({"items": [{"feature": [0.1] * 16, "category": "sofa"}], "categories": ["cat01"]},
     "items.0.category", "unknown category 'sofa'; known: cat01, cat02, cat03, cat04"),
    ({"items": [{"feature": [0.1] * 16}], "categories": ["cat01"]}, "items.0.category",
     "required with feature"),
    ({"items": [{"item_id": "ITEM", "category": "cat01"}], "categories": ["cat01"]},
     "items.0.category", "not allowed with item_id"),
    ({"items": [{}], "categories": ["cat01"]}, "items.0",
     "give either item_id, or feature and category"),
    ({"items": [{"item_id": "ITEM", "colour": "red"}], "categories": ["cat01"]},
     "items.0.colour", "Extra inputs are not permitted"),
    ({"items": [{"item_id": "ITEM"}], "categories": ["cat01", "lamp"]}, "categories.1",
     "unknown category 'lamp'"),
    ({"items": [{"item_id": "ITEM"}], "categories": ["cat01", "cat01"]}, "categories.1",
     "duplicate category 'cat01'"),
    ({"items": [{"item_id": "ITEM"}], "categories": []}, "categories", "at least 1 item"),
    ({"items": [{"item_id": "ITEM"}], "categories": ["cat01"], "k": 0}, "k",
     "greater than or equal to 1"),
    ({"items": [{"item_id": "ITEM"}], "categories": ["cat01"], "k": 21}, "k",
     "less than or equal to 20"),
    ({"items": [{"item_id": "ITEM"}], "categories": ["cat01"], "k": "ten"}, "k",
     "valid integer"),
    ({"items": [], "categories": ["cat01"]}, "items", "at least 1 item"),
    ({"items": [{"item_id": "ITEM"}] * 6, "categories": ["cat01"]}, "items", "at most 5 items"),
    ({"categories": ["cat01"]}, "items", "Field required"),
    ([1, 2], "body", "valid dictionary"),
])
def test_bad_requests_name_the_field(client, app, body, field, message):
  answer = client.post("/v1/complete", json=_with_real_ids(body, app))
  assert answer.status_code == 422, answer.text
  error = answer.json()["error"]
  assert error["status"] == 422 and error["field"] == field
  assert message in error["message"]


def test_nan_feature_and_invalid_json(client):
  nan_body = ('{"items": [{"feature": [NaN' + ", 0.1" * 15 + '], "category": "cat01"}], '
              '"categories": ["cat01"]}')
  answer = client.post("/v1/complete", content=nan_body,
                       headers={"content-type": "application/json"})
  assert answer.status_code == 422
  assert answer.json()["error"]["field"] == "items.0.feature"
  answer = client.post("/v1/complete", content=b'{"items": [',
                       headers={"content-type": "application/json"})
  assert answer.status_code == 422
  assert answer.json()["error"]["field"] == "body"
  assert answer.json()["error"]["message"].startswith("invalid JSON")


def test_body_size_is_bounded_declared_and_streamed(client):
  answer = client.post("/v1/complete", content=b" " * 20_001,
                       headers={"content-type": "application/json"})
  assert answer.status_code == 413
  assert answer.json()["error"] == {"status": 413, "field": "body",
                                    "message": "request body is larger than 20000 bytes"}
  streamed = client.post("/v1/complete", content=(b" " * 4096 for _ in range(10)),
                         headers={"content-type": "application/json"})
  assert streamed.status_code == 413
  assert client.get("/healthz").status_code == 200


def test_unknown_path_and_method(client):
  assert client.get("/v2/complete").json()["error"]["status"] == 404
  assert client.get("/v1/complete").status_code == 405


class _Blocking:
  """A completer whose work waits until released, to make busy and slow requests."""

  def __init__(self):
    self.release = threading.Event()
    self.started = threading.Event()

  def complete(self, items, categories, k, exclude_query_items):
    self.started.set()
    self.release.wait(10)
    return {"results": []}


def test_busy_gives_503_and_overrun_gives_504():
  blocking = _Blocking()
  config = configs.ServeConfig(data_dir="d", model_dir="m", index_dir="i",
                               request_timeout_s=0.3, max_concurrent=1)
  body = {"items": [{"item_id": "a"}], "categories": ["c"], "k": 1}
  with testclient.TestClient(service.create_app(blocking, config, {})) as test_client:
    answers = {}
    first = threading.Thread(
        target=lambda: answers.setdefault("first", test_client.post("/v1/complete", json=body)))
    first.start()
    assert blocking.started.wait(10)
    second = test_client.post("/v1/complete", json=body)
    first.join(10)
    blocking.release.set()
  assert answers["first"].status_code == 504
  assert answers["first"].json()["error"]["message"] == "timed out after 0.3 s"
  assert second.status_code == 503
  assert second.json()["error"]["message"].startswith("busy")


def test_unexpected_error_is_a_500_not_a_crash():

  class Broken:
    def complete(self, *args):
      raise RuntimeError("boom")

  config = configs.ServeConfig(data_dir="d", model_dir="m", index_dir="i")
  app = service.create_app(Broken(), config, {})
  with testclient.TestClient(app, raise_server_exceptions=False) as test_client:
    answer = test_client.post("/v1/complete", json={"items": [{"item_id": "a"}],
                                                    "categories": ["c"]})
    assert answer.status_code == 500
    assert answer.json()["error"]["message"] == "internal error; see the service log"
    assert test_client.get("/healthz").status_code == 200


def test_completer_refuses_bad_input_directly(app):
  completer = app.state.completer
  with pytest.raises(completion.ApiError, match="items: needs 1..5 items, got 0"):
    completer.complete([], ["cat01"], 3)


def test_every_problem_is_listed(client):
  answer = client.post("/v1/complete", json={"items": [], "categories": ["cat01"], "k": 0})
  error = answer.json()["error"]
  assert answer.status_code == 422 and error["field"] == "items"
  assert [problem["field"] for problem in error["all"]] == ["items", "k"]
