"""Recall@k against exact search, queries/second and build time of every index backend.

  python bench/index_recall.py                       # 1M-item SYNTHETIC gallery (minutes)
  python bench/index_recall.py --quick               # 5k items, a few seconds (CI)
  python bench/index_recall.py --num_items=0 --ikea_data_dir=data/ikea \
      --ikea_model_dir=runs/ikea/cst/seed0           # IKEA: model predictions as queries

SYNTHETIC gallery: a Gaussian mixture (`--num_clusters` random centres, each item = centre
+ `--noise` * N(0, I), L2-normalised), queries drawn from the same mixture. Clustered
data is used because uniform random vectors in high dimension have no neighbourhood
structure, on which every ANN method's recall is poor and says little about real
embeddings. The reference is the `exact` backend (our chunked TF scorer), itself checked
against a NumPy brute force on the first queries. Queries/second: all queries in one
batched call after a warm-up; latency: p50 of single-query calls. Prints a table per
gallery and optionally writes all rows as JSON (`--output`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from absl import app
from absl import flags
import numpy as np

from search import backends
from search import configs

QUICK = flags.DEFINE_bool("quick", False, "Tiny gallery for a smoke run.")
NUM_ITEMS = flags.DEFINE_integer("num_items", 1_000_000, "SYNTHETIC gallery size; 0 = skip.")
DIM = flags.DEFINE_integer("dim", 128, "SYNTHETIC feature dimension.")
NUM_CLUSTERS = flags.DEFINE_integer("num_clusters", 1000, "SYNTHETIC mixture components.")
NOISE = flags.DEFINE_float("noise", 0.6, "SYNTHETIC per-item noise scale.")
NUM_QUERIES = flags.DEFINE_integer("num_queries", 1000, "Queries per gallery.")
LATENCY_QUERIES = flags.DEFINE_integer("latency_queries", 100, "Single-query calls timed.")
K = flags.DEFINE_integer("k", 10, "Neighbours per query (recall@k).")
BACKENDS = flags.DEFINE_list("backends", list(configs.BACKENDS), "Backends to measure.")
IKEA_DATA_DIR = flags.DEFINE_string("ikea_data_dir", "", "IKEA shards; empty = skip IKEA.")
IKEA_MODEL_DIR = flags.DEFINE_string("ikea_model_dir", "", "Trained IKEA model (flags.txt "
                                     "and best.weights.h5) whose test predictions query.")
OUTPUT = flags.DEFINE_string("output", "", "Optional JSON file of all rows.")
IVF_NLIST = flags.DEFINE_integer("ivf_nlist", 1024, "faiss_ivf lists on the SYNTHETIC gallery.")
HNSW_M = flags.DEFINE_integer("hnsw_m", 16, "faiss_hnsw links per node.")
HNSW_EF_CONSTRUCTION = flags.DEFINE_integer("hnsw_ef_construction", 40, "faiss_hnsw build list.")
# Search efforts tried per approximate backend (the first is the index's default).
SWEEPS = {"faiss_ivf": ("ivf_nprobe", (16, 8, 32)),
          "faiss_hnsw": ("hnsw_ef_search", (64, 32, 128)),
          "scann": ("scann_leaves_to_search", (0, 25, 300))}


def clustered_gallery(num_items, num_queries, dim, num_clusters, noise, seed=0):
  """SYNTHETIC unit vectors from a Gaussian mixture: ([num_items, dim], [num_queries, dim])."""
  rng = np.random.default_rng(seed)
  centers = rng.standard_normal((num_clusters, dim)).astype(np.float32)

  def draw(count):
    out = np.empty((count, dim), np.float32)
    for start in range(0, count, 100_000):
      size = min(100_000, count - start)
      block = centers[rng.integers(0, num_clusters, size)]
      block += noise * rng.standard_normal((size, dim), dtype=np.float32)
      out[start:start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out

  return draw(num_items), draw(num_queries)


def recall(rows, reference):
  k = reference.shape[1]
  return float(np.mean([len(set(a[a >= 0]) & set(b)) / k for a, b in zip(rows, reference)]))


def _timed(function, *args):
  start = time.perf_counter()
  result = function(*args)
  return result, time.perf_counter() - start


def measure_backend(name, config, gallery, queries, k, reference, latency_queries):
  """Rows of one backend on one gallery: the default search effort, then the sweep."""
  backend, build_seconds = _timed(backends.get_backend_class(name).build, gallery, config)
  rows = []
  knob, values = SWEEPS.get(name, ("", (None,)))
  for value in values:
    if value is not None:
      backend.configure_search(dataclasses.replace(config, **{knob: value}))
    backend.search(queries[:8], k)
    (_, found), seconds = _timed(backend.search, queries, k)
    latencies = [_timed(backend.search, q[np.newaxis], k)[1] for q in queries[:latency_queries]]
    rows.append({"backend": name, "params": dict(backend.params),
                 "build_s": round(build_seconds, 2),
                 "recall": None if reference is None else round(recall(found, reference), 4),
                 "qps": round(len(queries) / seconds, 1),
                 "latency_ms_p50": round(1000 * float(np.median(latencies)), 3),
                 "found": found})
  return rows


def run_gallery(label, gallery, queries, config, k, names, latency_queries):
  """Measures `names` on one gallery; the exact backend is measured first as reference."""
  names = ["exact"] + [n for n in names if n != "exact"]
  rows, reference = [], None
  for name in names:
    for row in measure_backend(name, config, gallery, queries, k, reference, latency_queries):
      if reference is None:
        reference = row["found"]
        oracle = np.argsort(-(queries[:50] @ gallery.T), axis=1, kind="stable")[:, :k]
        row["recall"] = recall(reference[:50], oracle)
      rows.append({"gallery": label, **row})
      print(format_row(rows[-1], rows[0]["qps"]), flush=True)
  return rows


def format_row(row, exact_qps):
  return (f"{row['gallery']:<34} {row['backend']:<11} {json.dumps(row['params']):<78} "
          f"{row['build_s']:>8.2f} {row['recall']:>8.4f} {row['qps']:>10.1f} "
          f"{row['qps'] / exact_qps:>7.1f}x {row['latency_ms_p50']:>9.3f}")


HEADER = (f"{'gallery':<34} {'backend':<11} {'params':<78} {'build_s':>8} {'recall':>8} "
          f"{'qps':>10} {'vs exact':>8} {'p50_ms':>9}")


def ikea_gallery(data_dir, model_dir):
  """Every IKEA item (all splits) as gallery; the model's test-set predictions as queries."""
  # pylint: disable=g-import-not-at-top
  from keras_models import configs as model_configs
  from keras_models import data_files
  from keras_models import evaluation
  from keras_models import evaluator as evaluator_lib
  from search import gallery as gallery_lib
  manifest = data_files.load_manifest(data_dir)
  items = gallery_lib.load_gallery(configs.IndexConfig(data_dir=data_dir, output_dir="-"))
  with open(os.path.join(model_dir, "flags.txt"), encoding="utf-8") as stream:
    saved = dict(line.strip()[2:].split("=", 1) for line in stream if "=" in line)
  model = model_configs.ModelConfig(
      model=saved.get("model", "cst"), hidden_dim=int(saved["hidden_dim"]),
      num_layers=int(saved["num_layers"]), num_heads=int(saved["num_heads"]))
  encoder = evaluation.load_encoder(
      model_configs.EvalConfig(data_dir=data_dir, model_dir=model_dir, model=model), manifest)
  queries = evaluator_lib.Evaluator(manifest, "test").predictions(encoder)
  label = f"IKEA {len(items.item_ids)} x {manifest.feature_dim}"
  return items.features, queries.astype(np.float32), label


def main(argv):
  del argv
  num_items, dim, clusters = NUM_ITEMS.value, DIM.value, NUM_CLUSTERS.value
  num_queries, latency_queries = NUM_QUERIES.value, LATENCY_QUERIES.value
  ivf_nlist = IVF_NLIST.value
  if QUICK.value:
    num_items, dim, clusters, num_queries, latency_queries, ivf_nlist = 5000, 32, 50, 200, 5, 64
  config = configs.IndexConfig(
      data_dir="-", output_dir="-", ivf_nlist=ivf_nlist, hnsw_m=HNSW_M.value,
      hnsw_ef_construction=HNSW_EF_CONSTRUCTION.value,
      scann_min_partitioned=1000 if QUICK.value else 2000)
  print(HEADER)
  rows = []
  if num_items:
    gallery, queries = clustered_gallery(num_items, num_queries, dim, clusters, NOISE.value)
    label = f"SYNTHETIC {num_items} x {dim}"
    rows += run_gallery(label, gallery, queries, config, K.value, BACKENDS.value,
                        latency_queries)
    del gallery
  if IKEA_DATA_DIR.value:
    gallery, queries, label = ikea_gallery(IKEA_DATA_DIR.value, IKEA_MODEL_DIR.value)
    rows += run_gallery(label, gallery, queries, dataclasses.replace(config, ivf_nlist=0),
                        K.value, BACKENDS.value, latency_queries)
  if OUTPUT.value:
    with open(OUTPUT.value, "w", encoding="utf-8") as stream:
      json.dump([{k: v for k, v in r.items() if k != "found"} for r in rows], stream, indent=1)


if __name__ == "__main__":
  app.run(main)
