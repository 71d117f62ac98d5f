"""Serves the HTTP API from an exported SavedModel instead of weights + an index folder.

`serve_main.py --saved_model=<model_dir>/export/<version>` loads the export with
`tf.saved_model.load` and gives `completion.Completer` the same two parts it gets today:
an encoder (the export's `predict`, on the same padded input as `QueryEncoder`) and an
index (the gallery read back from the export's variables, searched by its in-graph
`search`). The request checks, exclusion of query items and the JSON answer are the
Completer's, so the API and the results are those of the exact index.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import tensorflow as tf

from search import completion
from search import configs
from search import id_lookup
from search import saved_model_export

BACKEND = "saved_model"


class SavedModelEncoder:
  """`completion.SetEncoder` over the export's `predict` function."""

  def __init__(self, loaded: Any, feature_dim: int, max_items: int) -> None:
    self._loaded = loaded
    self.feature_dim, self.max_items = int(feature_dim), int(max_items)

  def predict(self, features: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """`[n, D]` features and `[n]` category ids -> `[K, D]` unit predictions."""
    padded, ids, mask = completion.pad_one_set(features, categories, self.max_items)
    return self._loaded.predict(padded, ids, mask)["predictions"][0].numpy()


class SavedModelIndex:
  """The export's gallery, with the interface of `index.SearchIndex` that Completer uses.

  Rows are the export's (sorted by category); item_ids and categories are read back from
  its variables, and a query item's feature is gathered from the export's gallery
  variable, so the gallery is held once (by the loaded SavedModel), not copied.
  """

  def __init__(self, export_dir: str, loaded: Any) -> None:
    self.index_dir, self._loaded, self.backend = export_dir, loaded, BACKEND
    path = os.path.join(export_dir, saved_model_export.EXPORT_MANIFEST)
    with open(path, encoding="utf-8") as stream:
      self.manifest = json.load(stream)
    self.item_ids = loaded.gallery_item_ids.numpy().astype(str)
    self.categories = loaded.gallery_categories.numpy()
    self.category_names = tuple(n.decode() for n in loaded.category_names.numpy())
    self._sizes = loaded.category_sizes.numpy()
    self._lookup = id_lookup.IdLookup(self.item_ids)

  @property
  def feature_dim(self) -> int:
    return int(self._loaded.gallery_features.shape[1])

  def feature(self, row: int) -> np.ndarray:
    """`[D]` unit feature of a gallery row, gathered from the export's variable."""
    return self._loaded.gallery_features[row].numpy()

  def category_size(self, category_id: int) -> int:
    return int(self._sizes[category_id - 1])

  def row_of(self, item_id: str) -> int | None:
    return self._lookup.row(item_id)

  def search(self, category_id: int, queries: np.ndarray,
             k: int) -> tuple[np.ndarray, np.ndarray]:
    """`[q, D]` queries -> (`[q, k]` scores, -inf when empty; `[q, k]` rows, -1 when empty)."""
    queries = np.asarray(queries, np.float32)
    answer = self._loaded.search(queries, np.full([len(queries)], category_id, np.int32),
                                 tf.constant(k, tf.int32))
    return answer["scores"].numpy(), answer["rows"].numpy()


def completer_and_info(config: configs.ServeConfig) -> tuple[completion.Completer, dict]:
  """Loads `config.saved_model`, warms it up; returns the Completer and GET /v1/info."""
  path = os.path.join(config.saved_model, "saved_model.pb")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: not found; export the model with export_main.py")
  loaded = tf.saved_model.load(config.saved_model)
  index = SavedModelIndex(config.saved_model, loaded)
  max_k = int(loaded.metadata()["max_k"])
  if config.max_k + config.max_items > max_k:
    raise ValueError(f"{config.saved_model}: exported with max_k {max_k}; the service "
                     f"needs max_k + max_items = {config.max_k + config.max_items}")
  completer = completion.Completer(
      SavedModelEncoder(loaded, index.feature_dim, config.max_items), index)
  # Trace nothing at request time: run every category once before the first request.
  completer.complete([completion.QueryItem(item_id=str(index.item_ids[0]))],
                     [n for i, n in enumerate(index.category_names, 1)
                      if index.category_size(i)], 1)
  manifest = index.manifest
  model = manifest["config"]["model"]
  info = {
      "model": {"name": model["model"], "model_dir": manifest["config"]["model_dir"],
                "weights": manifest["weights"], "hidden_dim": model["hidden_dim"],
                "num_layers": model["num_layers"]},
      "dataset": {**manifest["dataset"], "feature_dim": manifest["feature_dim"]},
      "categories": [{"name": name, "items": index.category_size(i)}
                     for i, name in enumerate(index.category_names, start=1)],
      "index": {"backend": BACKEND, "saved_model": config.saved_model,
                "num_items": manifest["num_items"], "created": manifest["created"],
                "params": {"chunk_size": manifest["config"]["chunk_size"], "max_k": max_k}},
      "limits": {"max_items": config.max_items, "max_k": config.max_k,
                 "max_body_bytes": config.max_body_bytes,
                 "request_timeout_s": config.request_timeout_s,
                 "max_concurrent": config.max_concurrent}}
  return completer, info
