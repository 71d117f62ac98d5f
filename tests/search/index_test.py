"""Index build -> write -> load -> search round trip against a NumPy oracle, and its errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from keras_models import data_files
from search import configs
from search import exact_backend
from search import index


def _config(served_model, output_dir, **overrides) -> configs.IndexConfig:
  return configs.IndexConfig(data_dir=served_model.data_dir, output_dir=str(output_dir),
                             **overrides)


def _all_items(data_dir):
  """Oracle gallery: every split's items, first occurrence kept, rows normalised."""
  manifest = data_files.load_manifest(data_dir)
  ids, categories, features = [], [], []
  for split in ("train", "val", "test"):
    table = data_files.load_item_table(manifest, split)
    for item_id, category, feature in zip(table.item_ids, table.categories, table.features):
      if item_id not in ids:
        ids.append(item_id)
        categories.append(category)
        features.append(feature / np.linalg.norm(feature))
  return np.array(ids), np.array(categories), np.array(features, np.float32)


@pytest.mark.parametrize("backend", ["exact", "faiss_flat"])
def test_round_trip_matches_oracle(backend, served_model, tmp_path):
  output = tmp_path / backend
  manifest = index.build(_config(served_model, output, backend=backend))
  loaded = index.SearchIndex(str(output))
  ids, categories, features = _all_items(served_model.data_dir)
  assert sorted(loaded.item_ids) == sorted(ids)
  assert manifest["num_items"] == len(ids) == sum(
      c["items"] for c in manifest["categories"].values())
  assert manifest["backend"] == backend and manifest["synthetic"]
  order = np.argsort(ids)
  np.testing.assert_allclose(loaded.features[np.argsort(loaded.item_ids)], features[order],
                             atol=1e-6)
  queries = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
  for category in range(1, 5):
    scores, rows = loaded.search(category, queries, 7)
    members = np.flatnonzero(categories == category)
    exact = queries @ features[members].T
    top = np.argsort(-exact, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(loaded.item_ids[rows], ids[members][top])
    np.testing.assert_allclose(scores, np.take_along_axis(exact, top, 1), atol=1e-5)
    assert loaded.manifest["categories"][loaded.category_names[category - 1]]["items"] == len(
        members)


def test_split_gallery_and_features_file(served_model, tmp_path):
  test_table = data_files.load_item_table(data_files.load_manifest(served_model.data_dir),
                                          "test")
  loaded_path = tmp_path / "test"
  index.build(_config(served_model, loaded_path, split="test"))
  assert sorted(index.SearchIndex(str(loaded_path)).item_ids) == sorted(test_table.item_ids)
  features = tmp_path / "features.npz"
  vectors = np.random.default_rng(2).standard_normal((3, 16)).astype(np.float32)
  np.savez(features, item_ids=test_table.item_ids[:3], features=vectors)
  index.build(_config(served_model, tmp_path / "file", split="test", features=str(features)))
  loaded = index.SearchIndex(str(tmp_path / "file"))
  np.testing.assert_array_equal(loaded.item_ids, test_table.item_ids[:3])
  np.testing.assert_array_equal(loaded.categories, test_table.categories[:3])
  np.testing.assert_allclose(loaded.features,
                             vectors / np.linalg.norm(vectors, axis=1, keepdims=True), atol=1e-6)
  np.savez(features, item_ids=np.array(["nope"]), features=vectors[:1])
  with pytest.raises(ValueError, match=r"features.npz: item_id 'nope' \(row 0\) is not an item"):
    index.build(_config(served_model, tmp_path / "bad", features=str(features)))
  np.savez(features, item_ids=test_table.item_ids[:1], features=vectors[:1, :5])
  with pytest.raises(ValueError, match="'features' have dim 5, the data .* has 16"):
    index.build(_config(served_model, tmp_path / "bad", features=str(features)))


def test_existing_folder_needs_overwrite_and_failed_build_leaves_nothing(
    served_model, tmp_path, monkeypatch):
  output = tmp_path / "index"
  index.build(_config(served_model, output))
  with pytest.raises(FileExistsError, match="index folder is not empty; pass --overwrite"):
    index.build(_config(served_model, output, backend="faiss_flat"))
  index.build(_config(served_model, output, backend="faiss_flat", overwrite=True))
  assert index.SearchIndex(str(output)).backend == "faiss_flat"

  def broken_save(self, folder):
    raise OSError("disk full")

  monkeypatch.setattr(exact_backend.ExactBackend, "save", broken_save)
  with pytest.raises(OSError, match="disk full"):
    index.build(_config(served_model, output, overwrite=True))
  with pytest.raises(OSError, match="disk full"):
    index.build(_config(served_model, tmp_path / "new"))
  assert sorted(os.listdir(tmp_path)) == ["index"]
  assert index.SearchIndex(str(output)).backend == "faiss_flat"


def test_load_errors_name_the_file(served_model, tmp_path):
  with pytest.raises(FileNotFoundError, match="index_manifest.json: not found"):
    index.SearchIndex(str(tmp_path))
  output = tmp_path / "index"
  index.build(_config(served_model, output))
  path = output / index.INDEX_MANIFEST
  manifest = json.loads(path.read_text())
  path.write_text(json.dumps({**manifest, "format_version": 99}))
  with pytest.raises(ValueError, match="index_manifest.json: format_version 99"):
    index.SearchIndex(str(output))
  path.write_text("{")
  with pytest.raises(ValueError, match="index_manifest.json: not valid JSON"):
    index.SearchIndex(str(output))


def test_config_errors():
  with pytest.raises(ValueError, match="unknown backend 'annoy'"):
    configs.IndexConfig(data_dir="d", output_dir="o", backend="annoy").validate()
  with pytest.raises(ValueError, match="ivf_nprobe must be >= 1"):
    configs.IndexConfig(data_dir="d", output_dir="o", ivf_nprobe=0).validate()
  with pytest.raises(ValueError, match="output_dir is required"):
    configs.IndexConfig(data_dir="d", output_dir="").validate()
