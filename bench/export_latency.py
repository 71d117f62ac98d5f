"""SavedModel export: export time, size on disk and `complete` latency vs the service path.

  python -m bench.export_latency --output_json=export_latency.json   # 100k and 1M x 512
  python -m bench.export_latency --quick                              # tiny shapes (CI)

For each gallery size: a RANDOM gallery (seeded unit rows, categories drawn uniformly
from 1..K, no data folder) and a CST encoder with random weights (latency does not depend
on training). Measures
  - export: building the module (sort, variables, id table) + tf.saved_model.save, and
    the SavedModel's bytes on disk; then tf.saved_model.load time;
  - one-set latency (p50 / p99 over --repeats calls, after warm-up) of
      service today:        completion.Completer over QueryEncoder + exact per-category
                            index (ChunkedRanker), what serve_main.py runs now;
      export `complete`:    the exported signature alone (encode + in-graph search);
      service from export:  completion.Completer over the export (serve_main.py
                            --saved_model).
Every request: --query_items gallery items (excluded from results), --categories wanted
categories, k = --k. All in this one process, one after the other.
"""

from __future__ import annotations

import gc
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from bench import harness
from keras_models import configs as model_configs
from keras_models import data_files
from keras_models.models import builder
from search import completion
from search import configs
from search import exact_backend
from search import gallery as gallery_lib
from search import query_encoder
from search import saved_model_backend
from search import saved_model_export

NUM_ITEMS = flags.DEFINE_list("num_items", ["100000", "1000000"], "Gallery sizes.")
FEATURE_DIM = flags.DEFINE_integer("feature_dim", 512, "D.")
NUM_CATEGORIES = flags.DEFINE_integer("num_categories", 11, "K.")
HIDDEN_DIM = flags.DEFINE_integer("hidden_dim", 512, "CST hidden size.")
NUM_LAYERS = flags.DEFINE_integer("num_layers", 2, "CST layers.")
QUERY_ITEMS = flags.DEFINE_integer("query_items", 5, "Items of the query set.")
CATEGORIES = flags.DEFINE_integer("categories", 2, "Wanted categories per request.")
K = flags.DEFINE_integer("k", 10, "Results per category.")
REPEATS = flags.DEFINE_integer("repeats", 50, "Timed requests per path.")
CHUNK_SIZE = flags.DEFINE_integer("chunk_size", configs.ExportConfig("", "", "").chunk_size,
                                  "Export: gallery rows per in-graph search step.")
QUICK = flags.DEFINE_bool("quick", False, "Tiny shapes (2,000 x 32, hidden 32).")
OUTPUT_JSON = flags.DEFINE_string("output_json", "", "Optional JSON file of the results.")
MAX_ITEMS = 16


class _ExactIndex:
  """The slice of index.SearchIndex that Completer uses, in memory (no data folder)."""

  def __init__(self, gallery: gallery_lib.Gallery) -> None:
    self.item_ids, self.categories = gallery.item_ids, gallery.categories
    self.features, self.category_names = gallery.features, gallery.category_names
    self.feature_dim, self.backend = gallery.features.shape[1], "exact"
    self._row_of = {item_id: row for row, item_id in enumerate(self.item_ids)}
    index_config = configs.IndexConfig(data_dir="-", output_dir="-")
    self._rows = {c: np.flatnonzero(self.categories == c)
                  for c in range(1, len(self.category_names) + 1)}
    self._backends = {c: exact_backend.ExactBackend.build(self.features[rows], index_config)
                      for c, rows in self._rows.items()}

  def row_of(self, item_id):
    return self._row_of.get(item_id)

  def search(self, category_id, queries, k):
    scores, local = self._backends[category_id].search(queries, k)
    return scores, np.where(local >= 0, self._rows[category_id][np.maximum(local, 0)], -1)


def _gallery(num_items: int, dim: int, num_categories: int) -> gallery_lib.Gallery:
  rng = np.random.default_rng(0)
  features = rng.standard_normal((num_items, dim), dtype=np.float32)
  features /= np.linalg.norm(features, axis=1, keepdims=True)
  return gallery_lib.Gallery(
      item_ids=np.array([f"item{i:07d}" for i in range(num_items)]),
      categories=rng.integers(1, num_categories + 1, num_items).astype(np.int32),
      features=features, category_names=tuple(f"cat{c:02d}" for c in range(num_categories)),
      source={"random": True}, synthetic=True)


def _latency(call, repeats: int) -> dict[str, float]:
  for _ in range(3):
    call()
  seconds = harness.timed_windows(call, repeats)
  return {"p50_ms": 1000 * float(np.percentile(seconds, 50)),
          "p99_ms": 1000 * float(np.percentile(seconds, 99))}


def _measure(num_items: int, dim: int, hidden: int, layers: int) -> list[dict]:
  gallery = _gallery(num_items, dim, NUM_CATEGORIES.value)
  manifest = data_files.Manifest(
      data_dir="-", source="random", synthetic=True, feature_dim=dim,
      num_categories=NUM_CATEGORIES.value, categories=gallery.category_names,
      max_set_size=2 * MAX_ITEMS, splits={})
  encoder = builder.build_encoder(model_configs.ModelConfig(
      hidden_dim=hidden, num_layers=layers, num_heads=2, dropout_rate=0.0), manifest)
  rng = np.random.default_rng(1)
  rows = rng.choice(num_items, QUERY_ITEMS.value, replace=False)
  wanted = [str(n) for n in rng.choice(gallery.category_names, CATEGORIES.value, replace=False)]
  items = [completion.QueryItem(item_id=str(gallery.item_ids[r])) for r in rows]
  common = {"num_items": num_items, "D": dim, "load_1min": harness.load_average()}
  results = []

  completer = completion.Completer(query_encoder.QueryEncoder(encoder, dim, MAX_ITEMS),
                                   _ExactIndex(gallery))
  results.append({**common, "path": "service today (QueryEncoder + exact index)",
                  **_latency(lambda: completer.complete(items, wanted, K.value), REPEATS.value)})
  del completer
  gc.collect()
  with tempfile.TemporaryDirectory() as root:
    start = time.perf_counter()
    module = saved_model_export.build_module(encoder, gallery, CHUNK_SIZE.value, 1000, root)
    written = saved_model_export.write(module, f"{root}/export/1", {})
    export_seconds = time.perf_counter() - start
    del module
    gc.collect()
    start = time.perf_counter()
    loaded = tf.saved_model.load(f"{root}/export/1")
    load_seconds = time.perf_counter() - start
    request = {"item_features": tf.constant(gallery.features[rows]),
               "item_categories": tf.constant(gallery.categories[rows]),
               "mask": tf.ones([len(rows)], tf.bool),
               "item_ids": tf.constant(gallery.item_ids[rows]),
               "categories": tf.constant([gallery.category_names.index(n) + 1 for n in wanted],
                                         tf.int32), "k": tf.constant(K.value)}
    signature = loaded.signatures["complete"]
    export_info = {"export_s": export_seconds, "save_s": written["save_seconds"],
                   "size_mb": written["bytes"] / 2**20, "load_s": load_seconds}
    results.append({**common, "path": "export `complete` signature", **export_info,
                    **_latency(lambda: signature(**request)["scores"].numpy(), REPEATS.value)})
    served = completion.Completer(
        saved_model_backend.SavedModelEncoder(loaded, dim, MAX_ITEMS),
        saved_model_backend.SavedModelIndex(f"{root}/export/1", loaded))
    results.append({**common, "path": "service from export (--saved_model)",
                    **_latency(lambda: served.complete(items, wanted, K.value),
                               REPEATS.value)})
  return results


def main(argv: list[str]) -> None:
  del argv
  quick = QUICK.value
  sizes = [2000] if quick else [int(n) for n in NUM_ITEMS.value]
  dim, hidden = (32, 32) if quick else (FEATURE_DIM.value, HIDDEN_DIM.value)
  rows = []
  for num_items in sizes:
    rows.extend(_measure(num_items, dim, hidden, 1 if quick else NUM_LAYERS.value))
  payload = {"machine": harness.machine_info(), "results": rows,
             "request": {"query_items": QUERY_ITEMS.value, "categories": CATEGORIES.value,
                         "k": K.value, "chunk_size": CHUNK_SIZE.value}}
  harness.emit("SavedModel export and one-set latency (RANDOM gallery, random weights)", rows,
               ["num_items", "D", "path", "export_s", "size_mb", "load_s", "p50_ms",
                "p99_ms", "load_1min"], payload, OUTPUT_JSON.value)


if __name__ == "__main__":
  app.run(main)
