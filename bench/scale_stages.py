"""The stages of `bench/scale.py`: each runs one entry point at one size and reads its cost.

Every stage is a command of the repository's own entry points, run as a measured child
process (`scale_process`), followed by a reading of what the command wrote (manifest,
history.csv, metrics.json, index manifest) to count the stage's own unit of work.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import statistics
import sys
import time
from typing import Any, Callable

import httpx
import numpy as np
import pandas as pd

from bench import scale_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = ("iqon3000", "deepfurniture")
STAGES = ("build", "train_cst", "train_integrated", "eval", "index_exact", "index_hnsw",
          "export", "serve", "conditional", "icfrr")
# /v1/complete requests timed by the serve stage (after one warm-up request).
COMPLETE_REQUESTS = 40


@dataclasses.dataclass(frozen=True)
class Preset:
  """A scale preset: its build flagfile and the experiment folder whose recipes it runs."""

  name: str
  num_sets: int
  catalog_size: int

  @property
  def build_flagfile(self) -> str:
    return os.path.join("experiments", "build", "scale", f"{self.name}.flags")

  def experiment(self, method: str) -> str:
    return os.path.join("experiments", self.name, f"{method}.flags")


def load_preset(name: str) -> Preset:
  """Reads the set count and catalog size from the preset's build flagfile."""
  path = os.path.join(ROOT, "experiments", "build", "scale", f"{name}.flags")
  with open(path, encoding="utf-8") as stream:
    text = stream.read()
  values = {key: int(value) for key, value in
            re.findall(r"^--(synthetic_num_sets|synthetic_catalog_size)=(\d+)$", text, re.M)}
  return Preset(name, values["synthetic_num_sets"], values["synthetic_catalog_size"])


@dataclasses.dataclass(frozen=True)
class Context:
  """Where one (preset, fraction) point of the bench reads and writes."""

  preset: Preset
  fraction: float
  work_dir: str
  train_steps: int
  timeout: float

  @property
  def num_sets(self) -> int:
    return max(100, round(self.preset.num_sets * self.fraction))

  @property
  def catalog_size(self) -> int:
    return max(1000, round(self.preset.catalog_size * self.fraction))

  @property
  def tag(self) -> str:
    return f"{self.preset.name}-{self.fraction:g}"

  @property
  def data_dir(self) -> str:
    return os.path.join(self.work_dir, self.tag, "data")

  def run_dir(self, name: str) -> str:
    return os.path.join(self.work_dir, self.tag, "runs", name)

  def log(self, stage: str) -> str:
    return os.path.join(self.work_dir, self.tag, "logs", f"{stage}.log")

  def manifest(self) -> dict[str, Any]:
    with open(os.path.join(self.data_dir, "manifest.json"), encoding="utf-8") as stream:
      return json.load(stream)


def _python(*args: str) -> list[str]:
  return [sys.executable, *args]


def _env() -> dict[str, str]:
  return {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _measure(context: Context, stage: str, command: list[str]) -> scale_process.Measured:
  measured = scale_process.run(command, context.log(stage), ROOT, _env(), context.timeout)
  if measured.exit_code != 0:
    with open(measured.log_path, encoding="utf-8", errors="replace") as stream:
      tail = stream.read()[-2000:]
    raise RuntimeError(f"{stage} exited with {measured.exit_code}; log "
                       f"{measured.log_path}:\n{tail}")
  return measured


def _row(context: Context, stage: str, measured: scale_process.Measured, work: float,
         unit: str, disk_path: str = "", **extra: Any) -> dict[str, Any]:
  return {"preset": context.preset.name, "fraction": context.fraction,
          "num_sets": context.num_sets, "stage": stage, "seconds": round(measured.seconds, 2),
          "peak_rss_mb": round(measured.peak_rss_bytes / 2**20, 1),
          "disk_mb": round(scale_process.disk_bytes(disk_path) / 2**20, 1) if disk_path else 0.0,
          "work": work, "unit": unit,
          "rate": round(work / measured.seconds, 3) if measured.seconds else float("nan"),
          **extra}


def build(context: Context) -> dict[str, Any]:
  measured = _measure(context, "build", _python(
      "-m", "tfrecords_builder", f"--flagfile={context.preset.build_flagfile}",
      f"--output_dir={context.data_dir}", "--overwrite",
      f"--synthetic_num_sets={context.num_sets}",
      f"--synthetic_catalog_size={context.catalog_size}"))
  manifest = context.manifest()
  items = sum(split["items"] for split in manifest["splits"].values())
  return _row(context, "build", measured, context.num_sets, "sets/s", context.data_dir,
              items_per_split=items, feature_dim=manifest["feature_dim"])


def _history(model_dir: str) -> dict[str, float]:
  history = pd.read_csv(os.path.join(model_dir, "history.csv"))
  return {column: float(history[column].iloc[-1]) for column in history.columns}


def _train(context: Context, stage: str, method: str) -> dict[str, Any]:
  model_dir = context.run_dir(method)
  # A fresh run every time: a finished run folder would make train_main resume, not train.
  shutil.rmtree(model_dir, ignore_errors=True)
  measured = _measure(context, stage, _python(
      "train_main.py", f"--flagfile={context.preset.experiment(method)}",
      f"--data_dir={context.data_dir}", f"--model_dir={model_dir}", "--epochs=1",
      f"--steps_per_epoch={context.train_steps}", "--verbose=2"))
  history = _history(model_dir)
  manifest = context.manifest()
  with open(os.path.join(model_dir, "flags.txt"), encoding="utf-8") as stream:
    batch = int(re.search(r"^--batch_size=(\d+)$", stream.read(), re.M).group(1))
  step = history["time/step_seconds"]
  steps_per_epoch = manifest["splits"]["train"]["sets"] // batch
  extra = {"step_seconds": round(step, 4), "val_seconds": round(history["time/val_seconds"], 2),
           "first_step_seconds": round(history["time/train_seconds"]
                                       - step * (context.train_steps - 1), 2),
           "epoch_seconds_extrapolated": round(step * steps_per_epoch
                                               + history["time/val_seconds"], 1)}
  if "time/negative_table_seconds" in history:
    categories = _train_categories(context)
    pairs = float(np.sum(np.bincount(categories).astype(np.float64) ** 2))
    extra.update(negative_table_seconds=round(history["time/negative_table_seconds"], 2),
                 negative_table_items=len(categories), negative_table_pairs=pairs)
  row = _row(context, stage, measured, context.train_steps, "steps/s", model_dir, **extra)
  # The unit of training work is the step: its rate is the median step's, not the process's
  # (start-up, the first step's tracing and validation are reported beside it).
  return {**row, "rate": round(1.0 / step, 3) if step else float("nan")}


def _train_categories(context: Context) -> np.ndarray:
  path = os.path.join(context.data_dir, context.manifest()["splits"]["train"]["item_table"])
  with np.load(path) as table:
    return table["categories"]


def train_cst(context: Context) -> dict[str, Any]:
  return _train(context, "train_cst", "cst")


def train_integrated(context: Context) -> dict[str, Any]:
  return _train(context, "train_integrated", "paper_integrated")


def _eval_command(context: Context, *extra: str) -> list[str]:
  return _python("eval_main.py", f"--flagfile={context.preset.experiment('cst')}",
                 f"--data_dir={context.data_dir}", f"--model_dir={context.run_dir('cst')}",
                 "--split=test", *extra)


def _eval_row(context: Context, stage: str, measured: scale_process.Measured) -> dict[str, Any]:
  """The test split's ranking rate (query x gallery pairs per second of ranking) and the
  rest of eval's timing, from its metrics.json; `seconds` is the whole process."""
  path = os.path.join(context.run_dir("cst"), "eval", "test", "metrics.json")
  with open(path, encoding="utf-8") as stream:
    timing = json.load(stream)["timing"]
  row = _row(context, stage, measured, float(timing["pairs_ranked"]), "pairs/s",
             os.path.join(context.run_dir("cst"), "eval"),
             **{f"eval_{k}": v for k, v in timing.items()})
  return {**row, "rate": round(timing["pairs_ranked"] / max(timing["rank_seconds"], 1e-9), 1)}


def evaluate(context: Context) -> dict[str, Any]:
  return _eval_row(context, "eval", _measure(context, "eval", _eval_command(context)))


def icfrr_row(row: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
  """An eval row turned into ICFRR's: queries re-ranked per second of ICFRR (both protocols).

  `seconds` and the memory stay the whole eval_main process's (ICFRR runs after the plain
  evaluation in it); `report` is its rerank_icfrr.json.
  """
  seconds = report["seconds"]
  spent = float(sum(seconds.values()))
  return {**row, "work": float(report["num_queries"]), "unit": "queries/s (ICFRR)",
          "rate": round(report["num_queries"] / max(spent, 1e-9), 3),
          "icfrr_task_seconds": seconds.get("task"),
          "icfrr_category_seconds": seconds.get("category_level"),
          "icfrr_gallery": report["gallery_size"]}


def icfrr(context: Context) -> dict[str, Any]:
  row = _eval_row(context, "icfrr", _measure(context, "icfrr",
                                             _eval_command(context, "--rerank=icfrr")))
  path = os.path.join(context.run_dir("cst"), "eval", "test", "rerank_icfrr.json")
  with open(path, encoding="utf-8") as stream:
    return icfrr_row(row, json.load(stream))


def _index(context: Context, stage: str, backend: str) -> dict[str, Any]:
  index_dir = os.path.join(context.run_dir("cst"), "index", backend)
  measured = _measure(context, stage, _python(
      "index_main.py", f"--flagfile={context.preset.experiment('cst')}",
      f"--data_dir={context.data_dir}", f"--model_dir={context.run_dir('cst')}",
      f"--backend={backend}", f"--index_dir={index_dir}", "--index_overwrite"))
  with open(os.path.join(index_dir, "index_manifest.json"), encoding="utf-8") as stream:
    items = json.load(stream)["num_items"]
  return _row(context, stage, measured, items, "items/s", index_dir)


def index_exact(context: Context) -> dict[str, Any]:
  return _index(context, "index_exact", "exact")


def index_hnsw(context: Context) -> dict[str, Any]:
  return _index(context, "index_hnsw", "faiss_hnsw")


def export(context: Context) -> dict[str, Any]:
  export_dir = os.path.join(context.run_dir("cst"), "export", "1")
  measured = _measure(context, "export", _python(
      "export_main.py", f"--flagfile={context.preset.experiment('cst')}",
      f"--data_dir={context.data_dir}", f"--model_dir={context.run_dir('cst')}",
      f"--export_dir={export_dir}", "--export_overwrite"))
  items = sum(split["items"] for split in context.manifest()["splits"].values())
  return _row(context, "export", measured, items, "items/s", export_dir)


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def serve(context: Context) -> dict[str, Any]:
  """Start-up to /healthz, the page's first load, then /v1/complete p50 over a test set."""
  port = _free_port()
  child = scale_process.Child(_python(
      "serve_main.py", f"--flagfile={context.preset.experiment('cst')}",
      f"--data_dir={context.data_dir}", f"--model_dir={context.run_dir('cst')}",
      "--backend=faiss_hnsw",
      f"--index_dir={os.path.join(context.run_dir('cst'), 'index', 'faiss_hnsw')}",
      "--host=127.0.0.1", f"--port={port}"), context.log("serve"), ROOT, _env())
  url = f"http://127.0.0.1:{port}"
  try:
    with httpx.Client(base_url=url, timeout=600.0) as client:
      startup = _wait_healthy(client, child, context.timeout)
      start = time.perf_counter()
      client.get("/").raise_for_status()
      sample = client.get("/v1/sets/random", params={"split": "test"})
      sample.raise_for_status()
      body = _complete_body(sample.json())
      client.post("/v1/complete", json=body).raise_for_status()
      first_load = time.perf_counter() - start
      latencies = []
      for _ in range(COMPLETE_REQUESTS):
        start = time.perf_counter()
        client.post("/v1/complete", json=body).raise_for_status()
        latencies.append(time.perf_counter() - start)
  finally:
    child.terminate()
  measured = child.wait(60.0)
  p50 = statistics.median(latencies)
  row = _row(context, "serve", measured, float(COMPLETE_REQUESTS), "requests/s (1 client)",
             startup_seconds=round(startup, 2), page_first_load_seconds=round(first_load, 3),
             complete_p50_ms=round(1000 * p50, 2))
  # The rate of the served requests alone, not of the whole process's life.
  return {**row, "rate": round(1.0 / p50, 2)}


def _wait_healthy(client: httpx.Client, child: scale_process.Child, timeout: float) -> float:
  start = time.perf_counter()
  while time.perf_counter() - start < timeout:
    if child.process.poll() is not None:
      raise RuntimeError(f"serve_main exited during start-up; log {child.log_path}")
    try:
      if client.get("/healthz", timeout=2.0).status_code == 200:
        return time.perf_counter() - start
    except httpx.TransportError:
      pass
    time.sleep(0.2)
  raise RuntimeError(f"serve_main not healthy after {timeout} s; log {child.log_path}")


def _complete_body(page_set: dict[str, Any]) -> dict[str, Any]:
  """Half the set's items as the query, the other half's categories as wanted."""
  items = page_set["items"]
  half = max(1, len(items) // 2)
  return {"items": [{"item_id": item["item_id"]} for item in items[:half]],
          "categories": sorted({item["category"] for item in items[half:]}) or
                        [items[0]["category"]], "k": 10}


def conditional(context: Context) -> dict[str, Any]:
  output_dir = context.run_dir("conditional")
  measured = _measure(context, "conditional", _python(
      "conditional_main.py", f"--data_dir={context.data_dir}", f"--model_dir={output_dir}"))
  with open(os.path.join(output_dir, "conditional.json"), encoding="utf-8") as stream:
    report = json.load(stream)
  queries = report.get("num_queries") or report.get("config", {}).get("num_queries", 0)
  # The queries (1,000) and the student's pairs are fixed by the defaults; what grows with
  # the data is the classifier's fit over every train item, so that is the unit.
  train_items = context.manifest()["splits"]["train"]["items"]
  return _row(context, "conditional", measured, float(train_items), "train items/s",
              output_dir, conditional_queries=queries,
              conditional_gallery=report.get("gallery_size"))


RUNNERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "build": build, "train_cst": train_cst, "train_integrated": train_integrated,
    "eval": evaluate, "index_exact": index_exact, "index_hnsw": index_hnsw, "export": export,
    "serve": serve, "conditional": conditional, "icfrr": icfrr}


def remove_point(context: Context) -> None:
  """Deletes one point's data and runs (the logs stay)."""
  for path in (context.data_dir, os.path.join(context.work_dir, context.tag, "runs")):
    shutil.rmtree(path, ignore_errors=True)
