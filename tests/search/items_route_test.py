"""GET /v1/items takes item ids as free text: commas, spaces and '&' inside an id."""

from __future__ import annotations

import json

import fastapi
from fastapi import testclient
import numpy as np
import pytest

from keras_models import data_files
from search import completion
from search import page
from search import page_data
from search import service
from tfrecords_builder import build
from tfrecords_builder import config as builder_config

# Item id -> category; every id but "plain" would be cut or changed by a comma split.
ITEMS = {"sofa, grey": "sofa", " lamp ": "lamp", "x&y=1": "chair", "plain": "lamp",
         "a,b,c": "chair", "ü/é": "sofa"}
SETS = [
    {"set_id": "s1", "split": "train", "items": [
        {"item_id": "sofa, grey", "category": "sofa"}, {"item_id": " lamp ", "category": "lamp"}]},
    {"set_id": "s2", "split": "val", "items": [
        {"item_id": "x&y=1", "category": "chair"}, {"item_id": "plain", "category": "lamp"}]},
    {"set_id": "s3", "split": "test", "items": [
        {"item_id": "a,b,c", "category": "chair"}, {"item_id": "ü/é", "category": "sofa"}]},
]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
  root = tmp_path_factory.mktemp("free_text_ids")
  raw = root / "raw"
  raw.mkdir()
  with open(raw / "sets.jsonl", "w", encoding="utf-8") as stream:
    stream.writelines(json.dumps(line) + "\n" for line in SETS)
  features = np.random.default_rng(0).standard_normal((len(ITEMS), 4)).astype(np.float32)
  np.savez(raw / "features.npz", item_ids=np.asarray(list(ITEMS)), features=features)
  output = str(root / "shards")
  build.run(builder_config.BuilderConfig(source="generic", input=str(raw), output_dir=output,
                                         num_shards=1))
  data = page_data.PageData(data_files.load_manifest(output), str(root / "run"))
  app = fastapi.FastAPI()

  @app.exception_handler(completion.ApiError)
  async def api_error(_, error: completion.ApiError):
    return service.error_response(error.status, error.field, error.message)

  page.add_routes(app, data)
  with testclient.TestClient(app) as test_client:
    yield test_client


def test_each_id_parameter_is_one_id_as_sent(client):
  wanted = ["sofa, grey", " lamp ", "x&y=1", "a,b,c", "ü/é", "plain"]
  answer = client.get("/v1/items", params=[("id", i) for i in wanted])
  assert answer.status_code == 200, answer.text
  items = answer.json()["items"]
  assert [i["item_id"] for i in items] == wanted
  assert [i["category"] for i in items] == [ITEMS[i] for i in wanted]


def test_ids_shorthand_splits_on_commas(client):
  items = client.get("/v1/items", params={"ids": "plain, x&y=1"}).json()["items"]
  assert [i["item_id"] for i in items] == ["plain", "x&y=1"]
  # The shorthand cannot carry a comma: "a,b,c" becomes three unknown ids.
  answer = client.get("/v1/items", params={"ids": "a,b,c"})
  assert answer.status_code == 404
  assert answer.json()["error"]["message"] == "unknown item id 'a'"


def test_no_id_and_unknown_id_name_the_problem(client):
  answer = client.get("/v1/items")
  assert answer.status_code == 422
  assert answer.json()["error"]["field"] == "id"
  assert answer.json()["error"]["message"] == "give at least one item id: ?id=<id>&id=<id>"
  answer = client.get("/v1/items", params=[("id", "sofa, grey"), ("id", "sofa")])
  assert answer.status_code == 404
  assert answer.json()["error"]["message"] == "unknown item id 'sofa'"
