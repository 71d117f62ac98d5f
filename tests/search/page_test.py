"""The browser page's routes: sets and items against the item tables, checked file paths."""

from __future__ import annotations

import os
import re

import fastapi
from fastapi import testclient
import numpy as np
import pytest

from keras_models import data_files
from search import completion
from search import configs
from search import id_lookup
from search import page
from search import page_data
from search import service
from tests.search import conftest
from tests.tfrecords_builder import generic_fixtures
from tfrecords_builder import build
from tfrecords_builder import config as builder_config


@pytest.fixture(scope="module")
def client(served_model):
  app = service.build_app(configs.ServeConfig(
      data_dir=served_model.data_dir, model_dir=served_model.model_dir,
      index_dir=served_model.index_dir, model=conftest.MODEL))
  with testclient.TestClient(app) as test_client:
    yield test_client


def _bare_client(data: page_data.PageData) -> testclient.TestClient:
  app = fastapi.FastAPI()

  @app.exception_handler(completion.ApiError)
  async def api_error(_, error: completion.ApiError):
    return service.error_response(error.status, error.field, error.message)

  page.add_routes(app, data)
  return testclient.TestClient(app)


def test_page_and_static_files_load_nothing_from_elsewhere(client):
  html = client.get("/")
  assert html.status_code == 200 and "text/html" in html.headers["content-type"]
  assert '<script src="/static/page.js"' in html.text
  for name in ("page.js", "page.css"):
    assert client.get(f"/static/{name}").status_code == 200
  for name in os.listdir(page.STATIC_DIR):
    with open(os.path.join(page.STATIC_DIR, name), encoding="utf-8") as stream:
      assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", stream.read()), name


def test_sets_and_items_match_the_item_tables(client, served_model):
  manifest = data_files.load_manifest(served_model.data_dir)
  table = data_files.load_item_table(manifest, "val")
  assert client.get("/v1/splits").json() == {"splits": ["test", "train", "val"],
                                             "images": False, "set_images": False}
  wanted = str(table.set_ids[3])
  found = client.get("/v1/sets", params={"split": "val", "query": wanted}).json()["set_ids"]
  assert wanted in found and all(wanted in s for s in found)
  detail = client.get(f"/v1/sets/val/{wanted}").json()
  rows = table.set_items[table.set_offsets[3]:table.set_offsets[4]]
  assert [i["item_id"] for i in detail["items"]] == [str(table.item_ids[r]) for r in rows]
  assert [i["category"] for i in detail["items"]] == [
      manifest.categories[table.categories[r] - 1] for r in rows]
  assert all(i["image_url"] is None for i in detail["items"])
  drawn = client.get("/v1/sets/random", params={"split": "val"}).json()
  assert drawn["set_id"] in set(table.set_ids.tolist())
  ids = [str(table.item_ids[r]) for r in rows[:2]]
  assert [i["item_id"] for i in client.get(
      "/v1/items", params={"ids": ",".join(ids)}).json()["items"]] == ids


def test_unknown_split_set_and_item_name_the_field(client):
  answer = client.get("/v1/sets", params={"split": "nope"})
  assert answer.status_code == 404 and answer.json()["error"]["field"] == "split"
  answer = client.get("/v1/sets/val/no-such-set")
  assert answer.status_code == 404 and answer.json()["error"]["field"] == "set_id"
  answer = client.get("/v1/items", params={"ids": "missing-item"})
  assert answer.status_code == 404
  assert answer.json()["error"]["message"] == "unknown item id 'missing-item'"


def test_inside_refuses_paths_leaving_the_folder(tmp_path):
  root = tmp_path / "images"
  (root / "sub").mkdir(parents=True)
  (root / "sub" / "a.png").write_bytes(b"png")
  (tmp_path / "secret.png").write_bytes(b"secret")
  os.symlink(tmp_path / "secret.png", root / "link.png")
  assert page.inside(str(root), "sub/a.png") == os.path.realpath(root / "sub" / "a.png")
  for bad in ("../secret.png", "sub/../../secret.png", str(tmp_path / "secret.png"),
              "link.png", "sub", "missing.png"):
    assert page.inside(str(root), bad) is None, bad


def _data_with_photos(root) -> str:
  """A generic data folder whose items and sets have photos, built by the shard builder.

  Item photos live in root/photos/items (a1, a2, d1), set photos in root/photos/rooms
  (sets s1 and s4 only).
  """
  sets = [dict(s, items=[{k: v for k, v in item.items() if k != "image"}
                         for item in s["items"]]) for s in generic_fixtures.SETS]
  for folder, names in (("items", ("a1", "a2", "d1")), ("rooms", ("s1", "s4"))):
    (root / "photos" / folder).mkdir(parents=True)
    for name in names:
      (root / "photos" / folder / f"{name}.png").write_bytes(f"png {name}".encode())
  (root / "secret.png").write_bytes(b"secret")
  (root / "photos" / "rooms" / "notes.txt").write_text("not an image")
  generic_fixtures._write_dataset(root / "raw", sets=sets)  # pylint: disable=protected-access
  build.run(builder_config.BuilderConfig(
      source="generic", input=str(root / "raw"), output_dir=str(root / "data"),
      image_dir=str(root / "photos" / "items"), set_image_dir=str(root / "photos" / "rooms"),
      num_shards=1))
  return str(root / "data")


def test_image_routes_serve_item_and_set_photos_only_below_their_roots(tmp_path):
  data_dir = _data_with_photos(tmp_path)
  data = page_data.PageData(data_files.load_manifest(data_dir), str(tmp_path))
  assert data.image_root == str(tmp_path / "photos" / "items")
  assert data.set_image_root == str(tmp_path / "photos" / "rooms")
  with _bare_client(data) as bare:
    assert bare.get("/v1/splits").json() == {"splits": ["test", "train", "val"],
                                             "images": True, "set_images": True}
    room = bare.get("/v1/sets/train/s1").json()
    assert room["image_url"] == "/set-images/s1.png"
    assert [(i["item_id"], i["image_url"]) for i in room["items"]] == [
        ("a1", "/images/a1.png"), ("a2", "/images/a2.png"), ("a3", None)]
    assert bare.get(room["image_url"]).content == b"png s1"
    assert bare.get("/images/a2.png").content == b"png a2"
    assert bare.get("/v1/sets/train/s2").json()["image_url"] is None
    assert bare.get("/v1/sets/test/s4").json()["image_url"] == "/set-images/s4.png"
    for bad in ("/images/%2e%2e/secret.png", "/images/..%2fsecret.png",
                "/images/%2e%2e%2fsecret.png", "/images/", "/set-images/notes.txt",
                "/set-images/%2e%2e/%2e%2e/secret.png", "/set-images/a1.png",
                "/images/s1.png"):
      answer = bare.get(bad)
      assert answer.status_code == 404 and answer.json()["error"]["status"] == 404, bad


def test_page_reads_no_features_and_indexes_ids(served_model, monkeypatch):
  manifest = data_files.load_manifest(served_model.data_dir)
  read = []
  original = np.lib.npyio.NpzFile.__getitem__

  def recording(self, key):
    read.append(key)
    return original(self, key)

  monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", recording)
  data = page_data.PageData(manifest, served_model.model_dir)
  monkeypatch.undo()
  assert read and "features" not in read
  assert set(read) <= set(page_data.PAGE_ARRAYS)
  # Oracle: the first split (manifest order) holding an item gives its category.
  for split in manifest.splits:
    table = data_files.load_item_table(manifest, split)
    for set_row in (0, len(table.set_ids) - 1):
      detail = data.set_detail(split, str(table.set_ids[set_row]))
      rows = table.set_items[table.set_offsets[set_row]:table.set_offsets[set_row + 1]]
      assert [i["item_id"] for i in detail["items"]] == [str(table.item_ids[r]) for r in rows]
  first_category = {}
  for split in manifest.splits:
    table = data_files.load_item_table(manifest, split)
    for item_id, category in zip(table.item_ids, table.categories):
      first_category.setdefault(str(item_id), manifest.categories[category - 1])
  for item_id in list(first_category)[::7]:
    assert data.item(item_id)["category"] == first_category[item_id]
  assert id_lookup.IdLookup(np.array(["b", "a", "b", "c"])).row("b") == 0
  assert id_lookup.IdLookup(np.array(["b", "a"])).row("zz") is None
  assert id_lookup.IdLookup(np.array([], str)).row("a") is None


def test_evaluation_view_lists_what_eval_main_wrote(served_model, tmp_path):
  folder = tmp_path / "eval" / "test"
  folder.mkdir(parents=True)
  (folder / "results_summary.csv").write_text("method,top_10_percent\ncst,0.5\n")
  (folder / "percentage_table.txt").write_text("table text\n")
  (folder / "per_category.png").write_bytes(b"png")
  (tmp_path / "secret.txt").write_text("secret")
  data = page_data.PageData(data_files.load_manifest(served_model.data_dir), str(tmp_path))
  assert data.evaluation() == {"test": {
      "figures": ["per_category.png"], "table": "table text\n",
      "summary": [["method", "top_10_percent"], ["cst", "0.5"]]}}
  with _bare_client(data) as bare:
    assert bare.get("/v1/evaluation").json()["splits"]["test"]["figures"] == [
        "per_category.png"]
    assert bare.get("/eval-files/test/per_category.png").content == b"png"
    assert bare.get("/eval-files/%2e%2e/secret.txt").status_code == 404
  empty = page_data.PageData(data_files.load_manifest(served_model.data_dir), str(tmp_path / "x"))
  assert empty.evaluation() == {}
