"""SavedModel export: a fresh process with TF only vs the Python encoder and a NumPy oracle.

The gallery is the tiny served model's items with some features duplicated (exact score
ties across the export's 5-row chunks), given as a features.npz (the --index_features
gallery choice). The HTTP service is then run from the export and from an exact index
of the same gallery, and must answer the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from absl import flags
from absl.testing import flagsaver
from fastapi import testclient
import numpy as np
import pytest

import export_main
from flags import export_flags
from flags import serve_flags
from keras_models import configs as model_configs
from keras_models import data_files
from keras_models import evaluation
from search import configs
from search import index as index_lib
from search import saved_model_export
from search import service
from tests import tiny_data
from tests.search import conftest

FLAGS = flags.FLAGS
CHUNK_SIZE = 5
# Run in a fresh interpreter: only tensorflow and numpy, nothing of this repository.
_CLIENT = r"""
import json, sys
import numpy as np
import tensorflow as tf
export_dir, requests_path, output_path = sys.argv[1:]
model = tf.saved_model.load(export_dir)
requests = np.load(requests_path)
out = {}
out["predictions"] = model.signatures["predict"](
    item_features=tf.constant(requests["batch_features"]),
    item_categories=tf.constant(requests["batch_categories"]),
    mask=tf.constant(requests["batch_mask"]))["predictions"].numpy()
base = dict(item_features=requests["features"], item_categories=requests["categories"],
            mask=requests["mask"], item_ids=requests["item_ids"])
for name, k in (("full", int(requests["k_full"])), ("top2", 2)):
  wanted = requests["wanted_" + name]
  answer = model.signatures["serving_default"](**{key: tf.constant(value) for key, value in
      base.items()}, categories=tf.constant(wanted), k=tf.constant(k))
  out[name + "_ids"] = answer["item_ids"].numpy().astype(str)
  out[name + "_scores"] = answer["scores"].numpy()
by_name = model.signatures["complete_by_name"](
    item_features=tf.constant(base["item_features"]),
    item_category_names=tf.constant(requests["category_names"]),
    mask=tf.constant(base["mask"]), item_ids=tf.constant(base["item_ids"]),
    category_names=tf.constant(requests["wanted_names"]), k=tf.constant(int(requests["k_full"])))
out["by_name_ids"] = by_name["item_ids"].numpy().astype(str)
meta = {k: v.numpy() for k, v in model.signatures["metadata"]().items()}
out["meta_names"] = meta["category_names"].astype(str)
out["meta_sizes"] = meta["category_sizes"]
out["meta_dims"] = np.array([meta["feature_dim"], meta["num_items"], meta["num_categories"]])
errors = {}
bad = {"wrong_dim": dict(base, item_features=np.zeros([3, 17], np.float32)),
       "unknown_category": dict(base, categories=np.array([5], np.int32)),
       "k_zero": dict(base, k=np.int32(0))}
for name, request in bad.items():
  request = {"categories": np.array([1], np.int32), "k": np.int32(3), **request}
  try:
    model.signatures["complete"](**{key: tf.constant(value) for key, value in request.items()})
    errors[name] = "no error"
  except tf.errors.InvalidArgumentError as error:
    errors[name] = "InvalidArgumentError: " + error.message
try:
  model.signatures["complete_by_name"](
      item_features=tf.constant(base["item_features"]),
      item_category_names=tf.constant(requests["category_names"]),
      mask=tf.constant(base["mask"]), item_ids=tf.constant(base["item_ids"]),
      category_names=tf.constant(["nope"]), k=tf.constant(3))
  errors["unknown_name"] = "no error"
except tf.errors.InvalidArgumentError as error:
  errors["unknown_name"] = "InvalidArgumentError: " + error.message
ours = sorted(m for m in sys.modules if m.split(".")[0] in ("search", "keras_models", "flags"))
# `saved_model_cli show --all`: the console script's own main, without a second TF start-up.
import contextlib, io
from tensorflow.python.tools import saved_model_cli
shown = io.StringIO()
sys.argv = ["saved_model_cli", "show", "--all", "--dir", export_dir]
with contextlib.redirect_stdout(shown), contextlib.suppress(SystemExit):
  saved_model_cli.main()
np.savez(output_path, **out)
with open(output_path + ".json", "w") as stream:
  json.dump({"errors": errors, "our_modules": ours, "cli": shown.getvalue()}, stream)
"""


def _parse(*argv: str) -> None:
  FLAGS.unparse_flags()
  FLAGS(["prog", *argv])


@pytest.fixture(scope="module")
def exported(served_model, tmp_path_factory):
  """(export dir, gallery ids, categories, unit features) of a gallery with ties."""
  root = tmp_path_factory.mktemp("export")
  index = index_lib.SearchIndex(served_model.index_dir)
  ids, categories, features = index.item_ids, index.categories, index.features.copy()
  members = np.flatnonzero(categories == 2)
  features[members[[3, 9, 10]]] = features[members[0]]  # ties with a query item's twin
  features_path = str(root / "features.npz")
  np.savez(features_path, item_ids=ids, features=features)
  export_dir = str(root / "models" / "1")
  with flagsaver.flagsaver():
    _parse(f"--flagfile={served_model.flagfile}", f"--index_features={features_path}",
           f"--export_dir={export_dir}", f"--export_chunk_size={CHUNK_SIZE}")
    export_main.main(["export_main"])
  return export_dir, features_path, ids, categories, features


def _python_encoder(served_model):
  manifest = data_files.load_manifest(served_model.data_dir)
  return evaluation.load_encoder(model_configs.EvalConfig(
      data_dir=served_model.data_dir, model_dir=served_model.model_dir,
      model=conftest.MODEL), manifest)


@pytest.fixture(scope="module")
def client_run(exported, tmp_path_factory):
  """Requests, answers and report of the fresh TF-only process (run once)."""
  export_dir, _, ids, categories, features = exported
  tmp_path = tmp_path_factory.mktemp("client")
  rng = np.random.default_rng(0)
  query_rows = [np.flatnonzero(categories == 2)[0], np.flatnonzero(categories == 1)[4],
                np.flatnonzero(categories == 3)[2]]
  sizes = np.bincount(categories, minlength=5)[1:]
  k_full = int(sizes.max()) + 3  # beyond every category: padded slots
  # One padded slot with garbage: masked, so it must change nothing.
  query_features = np.concatenate([features[query_rows], rng.normal(size=[1, 16])], 0)
  query_features = query_features.astype(np.float32)
  requests = {
      "features": query_features, "mask": np.array([True, True, True, False]),
      "categories": np.append(categories[query_rows], 0).astype(np.int32),
      "item_ids": np.append(ids[query_rows], ""), "k_full": k_full,
      "wanted_full": np.array([2, 4, 1], np.int32), "wanted_top2": np.array([3], np.int32),
      "category_names": np.array(["cat02", "cat01", "cat03", ""]),
      "wanted_names": np.array(["cat02", "cat04", "cat01"]),
      "batch_features": rng.normal(size=[2, 5, 16]).astype(np.float32),
      "batch_categories": rng.integers(1, 5, size=[2, 5]).astype(np.int32),
      "batch_mask": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)}
  requests_path, output_path = str(tmp_path / "requests.npz"), str(tmp_path / "out.npz")
  np.savez(requests_path, **requests)
  subprocess.run([sys.executable, "-c", _CLIENT, export_dir, requests_path, output_path],
                 check=True, cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": ""})
  with open(output_path + ".json", encoding="utf-8") as stream:
    report = json.load(stream)
  return requests, dict(np.load(output_path)), report


def test_fresh_process_matches_encoder_and_oracle(exported, client_run, served_model):
  _, _, ids, categories, features = exported
  requests, out, report = client_run
  assert report["our_modules"] == []
  query_rows = [np.flatnonzero(categories == 2)[0], np.flatnonzero(categories == 1)[4],
                np.flatnonzero(categories == 3)[2]]
  sizes = np.bincount(categories, minlength=5)[1:]
  k_full = int(requests["k_full"])
  query_features = requests["features"]

  encoder = _python_encoder(served_model)
  expected = encoder({"features": requests["batch_features"],
                      "categories": requests["batch_categories"],
                      "mask": requests["batch_mask"]}, training=False).numpy()
  expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
  np.testing.assert_allclose(out["predictions"], expected, atol=1e-5)

  unit = query_features[:3] / np.linalg.norm(query_features[:3], axis=1, keepdims=True)
  predicted = encoder({"features": unit[None], "categories": categories[query_rows][None],
                       "mask": np.ones([1, 3], bool)}, training=False).numpy()[0]
  predicted /= np.linalg.norm(predicted, axis=-1, keepdims=True)
  for name, wanted, k in (("full", requests["wanted_full"], k_full),
                          ("top2", requests["wanted_top2"], 2)):
    for position, category in enumerate(wanted):
      members = [r for r in np.flatnonzero(categories == category) if r not in query_rows]
      scores = features[members] @ predicted[category - 1]
      top = np.argsort(-scores, kind="stable")[:k]  # ties: gallery order
      padding = k - len(top)
      assert list(out[f"{name}_ids"][position]) == list(ids[members][top]) + [""] * padding
      np.testing.assert_allclose(out[f"{name}_scores"][position][:len(top)], scores[top],
                                 atol=1e-5)
      assert np.all(np.isneginf(out[f"{name}_scores"][position][len(top):]))
  twins = [list(out["full_ids"][0]).index(ids[r])
           for r in np.flatnonzero(categories == 2)[[3, 9, 10]]]
  assert twins == list(range(twins[0], twins[0] + 3))  # exact ties, in gallery order
  np.testing.assert_array_equal(out["by_name_ids"], out["full_ids"])
  assert list(out["meta_names"]) == ["cat01", "cat02", "cat03", "cat04"]
  np.testing.assert_array_equal(out["meta_sizes"], sizes)
  np.testing.assert_array_equal(out["meta_dims"], [16, len(ids), 4])

  errors = report["errors"]
  assert ("item_features: last dimension must be the feature dimension of the model, 16; "
          "got] [17]") in errors["wrong_dim"]
  assert "categories: category ids must be in 1..4; got] [5]" in errors["unknown_category"]
  assert "k must be in 1..1000; got] [0]" in errors["k_zero"]
  assert "category_names: unknown category names] [nope]" in errors["unknown_name"]
  assert all(e.startswith("InvalidArgumentError") for e in errors.values()), errors


def test_saved_model_cli_lists_signatures(client_run):
  shown = client_run[2]["cli"]
  for name in ("serving_default", "predict", "complete", "complete_by_name", "search",
               "metadata"):
    assert f"signature_def['{name}']" in shown
  for tensor in ("item_features", "item_category_names", "category_names", "item_ids",
                 "scores", "predictions"):
    assert f"['{tensor}'] tensor_info" in shown


def test_service_from_export_answers_like_exact_index(exported, served_model, tmp_path):
  export_dir, features_path, ids, _, _ = exported
  index_dir = str(tmp_path / "exact")
  index_lib.build(configs.IndexConfig(data_dir=served_model.data_dir, output_dir=index_dir,
                                      features=features_path))
  common = dict(data_dir=served_model.data_dir, model_dir=served_model.model_dir,
                model=conftest.MODEL, max_items=5, max_k=20)
  from_index = service.build_app(configs.ServeConfig(index_dir=index_dir, **common))
  from_export = service.build_app(configs.ServeConfig(index_dir=index_dir,
                                                      saved_model=export_dir, **common))
  bodies = [{"items": [{"item_id": str(i)} for i in ids[[0, 7, 30]]],
             "categories": ["cat02", "cat01", "cat04"], "k": 20},
            {"items": [{"item_id": str(ids[3])}, {"feature": [0.5] * 16, "category": "cat03"}],
             "categories": ["cat03"], "k": 4, "exclude_query_items": False},
            {"items": [{"item_id": str(ids[3])}], "categories": ["cat09"], "k": 4},
            {"items": [{"item_id": str(ids[3])}], "categories": ["cat01"], "k": 0}]
  with testclient.TestClient(from_index) as index_client, \
       testclient.TestClient(from_export) as export_client:
    info = export_client.get("/v1/info").json()
    assert info["index"]["backend"] == "saved_model"
    assert info["categories"] == index_client.get("/v1/info").json()["categories"]
    for body in bodies:
      want = index_client.post("/v1/complete", json=body)
      got = export_client.post("/v1/complete", json=body)
      assert got.status_code == want.status_code, got.text
      if want.status_code != 200:
        assert got.json() == want.json()
        continue
      for mine, theirs in zip(got.json()["results"], want.json()["results"], strict=True):
        assert mine["item_ids"] == theirs["item_ids"]
        np.testing.assert_allclose(mine["similarities"], theirs["similarities"], atol=1e-5)


def test_saved_model_alone_serves_the_page(exported, served_model, tmp_path):
  export_dir = exported[0]
  with flagsaver.flagsaver():
    _parse(f"--saved_model={export_dir}")
    config = serve_flags.serve_config_from_flags()
  assert (config.data_dir, config.model_dir, config.index_dir) == ("", "", "")
  with testclient.TestClient(service.build_app(config)) as client:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert client.get("/v1/splits").json()["splits"] == ["test", "train", "val"]
    detail = client.get("/v1/sets/random", params={"split": "test"}).json()
    answer = client.post("/v1/complete", json={
        "items": [{"item_id": i["item_id"]} for i in detail["items"][:-1]],
        "categories": [detail["items"][-1]["category"]], "k": 3})
    assert answer.status_code == 200 and len(answer.json()["results"][0]["item_ids"]) == 3
    assert client.get("/v1/evaluation").json()["model_dir"] == served_model.model_dir
  # An export copied alone (its data folder gone) still answers, without the page.
  alone = str(tmp_path / "alone")
  shutil.copytree(export_dir, alone)
  path = os.path.join(alone, saved_model_export.EXPORT_MANIFEST)
  with open(path, encoding="utf-8") as stream:
    manifest = json.load(stream)
  manifest["dataset"]["data_dir"] = str(tmp_path / "gone")
  with open(path, "w", encoding="utf-8") as stream:
    json.dump(manifest, stream)
  app = service.build_app(configs.ServeConfig(data_dir="", model_dir="", index_dir="",
                                              saved_model=alone))
  with testclient.TestClient(app) as client:
    assert client.get("/").status_code == 404
    assert client.get("/v1/info").json()["index"]["backend"] == "saved_model"
  with pytest.raises(ValueError, match=r"index_dir is required \(or saved_model\)"):
    configs.ServeConfig(data_dir="d", model_dir="m", index_dir="").validate()


def test_versions_and_refusing_to_overwrite(tmp_path, exported):
  for name in ("1", "3", "tmp", ".4.building-x"):
    os.makedirs(tmp_path / "export" / name)
  assert configs.next_export_dir(str(tmp_path)) == str(tmp_path / "export" / "4")
  assert configs.next_export_dir(str(tmp_path / "new")) == str(tmp_path / "new" / "export" / "1")
  with pytest.raises(FileExistsError, match="export folder is not empty"):
    saved_model_export.write(None, exported[0], {})


@pytest.mark.parametrize("name", ["demo", "ikea"])
def test_serve_flagfiles_convert_to_export_configs(name, monkeypatch):
  monkeypatch.chdir(tiny_data.ROOT)
  with flagsaver.flagsaver():
    _parse(f"--flagfile=experiments/serve/{name}.flags", "--export_chunk_size=4096")
    config = export_flags.export_config_from_flags()
  assert os.path.dirname(config.export_dir) == os.path.join(config.model_dir, "export")
  assert os.path.basename(config.export_dir).isdigit()
  assert config.chunk_size == 4096 and config.split == "all" and config.model.hidden_dim
