"""Exact top-k over a large SYNTHETIC gallery: our chunked ranker vs faiss vs NumPy.

  python -m bench.eval_scale --output_json=/tmp/eval_scale.json   # 1M x 512, 10k queries
  python -m bench.eval_scale --quick                              # under a minute

All methods search the same unit vectors (one category, so every method ranks the whole
gallery), in interleaved order, `--repeats` times; the median is reported. Peak memory is
the largest resident-set growth above the level just before each call, sampled every 5 ms.
The rank path that `Evaluator` runs (`ChunkedRanker.ranks`) is timed too, against NumPy
rank counting.
"""

from __future__ import annotations

import threading
import time

from absl import app
from absl import flags
import faiss
import numpy as np
import psutil

from bench import harness
from keras_models.metrics import streaming

METHODS = ("ours_top_k", "faiss_flat_ip_top_k", "numpy_top_k", "ours_ranks", "numpy_ranks")
QUICK = dict(gallery_size=20000, num_queries=500, feature_dim=64, gallery_chunk_size=4096,
             query_chunk_size=256, numpy_query_block=128, repeats=2)

_QUICK = flags.DEFINE_bool("quick", False, f"Tiny run (overrides sizes: {QUICK}).")
_GALLERY = flags.DEFINE_integer("gallery_size", 1_000_000, "Gallery items.")
_QUERIES = flags.DEFINE_integer("num_queries", 10_000, "Queries.")
_DIM = flags.DEFINE_integer("feature_dim", 512, "Vector size.")
_K = flags.DEFINE_integer("k", 10, "Neighbours returned per query.")
_CHUNK = flags.DEFINE_integer("gallery_chunk_size", streaming.DEFAULT_CHUNK_SIZE,
                              "Our gallery rows per fold.")
_QUERY_CHUNK = flags.DEFINE_integer("query_chunk_size", streaming.DEFAULT_QUERY_CHUNK_SIZE,
                                    "Our queries per block.")
_NUMPY_BLOCK = flags.DEFINE_integer("numpy_query_block", 256, "NumPy queries per block.")
_REPEATS = flags.DEFINE_integer("repeats", 1, "Interleaved rounds; the median is kept.")
_METHODS = flags.DEFINE_multi_enum(
    "methods", list(METHODS), list(METHODS),
    "Methods to time (faiss_flat_ip_top_k is always run: it is the reference).")
_OUTPUT_JSON = flags.DEFINE_string("output_json", "", "Also write the results here.")


class PeakMemory:
  """Largest resident-set growth (bytes) of this process while the block runs."""

  def __enter__(self):
    self._process = psutil.Process()
    self.baseline = self._process.memory_info().rss
    self.peak = self.baseline
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._sample, daemon=True)
    self._thread.start()
    return self

  def _sample(self):
    while not self._stop.wait(0.005):
      self.peak = max(self.peak, self._process.memory_info().rss)

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self.peak = max(self.peak, self._process.memory_info().rss)
    self.extra_bytes = self.peak - self.baseline


def unit_rows(rng: np.random.Generator, rows: int, dim: int, block: int = 65536) -> np.ndarray:
  out = np.empty((rows, dim), np.float32)
  for start in range(0, rows, block):
    chunk = rng.standard_normal((min(block, rows - start), dim), dtype=np.float32)
    out[start:start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
  return out


def numpy_top_k(queries, gallery, k, block):
  """Blocked matmul + argpartition + sort of the k best: the plain NumPy way."""
  ids = np.empty((len(queries), k), np.int64)
  for start in range(0, len(queries), block):
    scores = queries[start:start + block] @ gallery.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    ids[start:start + block] = np.take_along_axis(top, order, axis=1)
  return ids


def numpy_ranks(queries, positives, gallery, block):
  """1 + number of other gallery items scoring at least the positive (ties count against)."""
  positive_scores = np.sum(queries * gallery[positives], axis=1)
  ranks = np.empty(len(queries), np.int64)
  for start in range(0, len(queries), block):
    scores = queries[start:start + block] @ gallery.T
    at_least = scores >= positive_scores[start:start + block, None]
    own = at_least[np.arange(len(scores)), positives[start:start + block]]
    ranks[start:start + block] = 1 + at_least.sum(1) - own
  return ranks


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  sizes = dict(gallery_size=_GALLERY.value, num_queries=_QUERIES.value,
               feature_dim=_DIM.value, gallery_chunk_size=_CHUNK.value,
               query_chunk_size=_QUERY_CHUNK.value, numpy_query_block=_NUMPY_BLOCK.value,
               repeats=_REPEATS.value)
  if _QUICK.value:
    sizes = QUICK
  g, q, d, k = sizes["gallery_size"], sizes["num_queries"], sizes["feature_dim"], _K.value
  rng = np.random.default_rng(0)
  gallery = unit_rows(rng, g, d)
  queries = unit_rows(rng, q, d)
  positives = rng.integers(0, g, q)
  ones_g, ones_q = np.ones(g, np.int32), np.ones(q, np.int32)
  gallery_ids = np.arange(g, dtype=np.int64)
  ranker = streaming.ChunkedRanker(query_chunk_size=sizes["query_chunk_size"])
  chunk = sizes["gallery_chunk_size"]
  index = faiss.IndexFlatIP(d)
  index.add(gallery)

  methods = {
      "ours_top_k": lambda: ranker.top_k(queries, ones_q, gallery, ones_g, gallery_ids, k,
                                         chunk)[1],
      "faiss_flat_ip_top_k": lambda: index.search(queries, k)[1],
      "numpy_top_k": lambda: numpy_top_k(queries, gallery, k, sizes["numpy_query_block"]),
      "ours_ranks": lambda: ranker.ranks(queries, ones_q, positives, gallery[positives],
                                         gallery, ones_g, gallery_ids, chunk),
      "numpy_ranks": lambda: numpy_ranks(queries, positives, gallery,
                                         sizes["numpy_query_block"]),
  }
  chosen = set(_METHODS.value) | {"faiss_flat_ip_top_k"}
  if "ours_ranks" in chosen:
    chosen.add("numpy_ranks")  # the reference of the rank agreement
  methods = {name: method for name, method in methods.items() if name in chosen}
  ranker.top_k(queries[:2], ones_q[:2], gallery[:chunk], ones_g[:chunk], gallery_ids[:chunk],
               k, chunk)  # traces the folds outside the timed calls
  ranker.ranks(queries[:2], ones_q[:2], positives[:2], gallery[positives[:2]],
               gallery[:chunk], ones_g[:chunk], gallery_ids[:chunk], chunk)
  timings = {name: [] for name in methods}
  memory, outputs, loads = {}, {}, {name: [] for name in methods}
  for _ in range(sizes["repeats"]):
    for name, method in methods.items():
      with PeakMemory() as peak:
        start = time.perf_counter()
        outputs[name] = method()
        timings[name].append(time.perf_counter() - start)
      memory[name] = max(memory.get(name, 0), peak.extra_bytes)
      loads[name].append(harness.load_average())
  reference = outputs["faiss_flat_ip_top_k"]
  rows = []
  for name in methods:
    seconds = harness.median(timings[name])
    row = {"method": name, "queries_per_second": q / seconds, "seconds": seconds,
           "peak_extra_mb": memory[name] / 2**20, "load_average_1min": max(loads[name]),
           "all_seconds": timings[name]}
    if name.endswith("top_k"):
      row["top1_agreement_with_faiss"] = float(np.mean(outputs[name][:, 0] == reference[:, 0]))
    else:
      row["rank_agreement_with_numpy"] = float(np.mean(outputs[name] == outputs["numpy_ranks"]))
    rows.append(row)
  faiss_rate = q / harness.median(timings["faiss_flat_ip_top_k"])
  for row in rows:
    row["speed_vs_faiss"] = row["queries_per_second"] / faiss_rate
  payload = {"benchmark": "eval_scale", "data": "SYNTHETIC", "quick": _QUICK.value,
             "machine": harness.machine_info(), "faiss": faiss.__version__,
             "sizes": dict(sizes, k=k),
             "bounds_mb": {"ours_score_block": sizes["query_chunk_size"] * chunk * 4 / 2**20,
                           "numpy_score_block": sizes["numpy_query_block"] * g * 4 / 2**20,
                           "gallery": g * d * 4 / 2**20},
             "results": rows}
  harness.emit(f"Exact search, SYNTHETIC gallery {g} x {d}, {q} queries, k={k}", rows, [
      "method", "queries_per_second", "speed_vs_faiss", "peak_extra_mb",
      "top1_agreement_with_faiss", "rank_agreement_with_numpy", "load_average_1min"],
      payload, _OUTPUT_JSON.value)


if __name__ == "__main__":
  app.run(main)
