"""Load test of the query service on 127.0.0.1: p50/p99 latency and requests/second.

  python bench/serve_load.py --serve_flagfile=experiments/serve/demo.flags
  python bench/serve_load.py --quick --serve_flagfile=...      # a few requests (CI)

Starts `serve_main.py --flagfile=<serve_flagfile>` in a subprocess on a free 127.0.0.1
port, waits for /healthz, then for each concurrency level runs that many async httpx
clients, each sending POST /v1/complete back to back, until `--requests` requests are
done or `--max_seconds` have passed. Request bodies are drawn (seeded) from the index's
gallery: `--items` query items by id, `--categories` wanted categories, k = `--k`.
Any non-200 answer or transport error counts as an error; the script exits non-zero if
there was one. Client and server share the machine's cores.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import time

from absl import app
from absl import flags
import httpx
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SERVE_FLAGFILE = flags.DEFINE_string("serve_flagfile", "experiments/serve/demo.flags",
                                     "Flagfile of serve_main.py (model, data, index).")
URL = flags.DEFINE_string("url", "", "Load an already running service instead of starting "
                          "one, e.g. http://127.0.0.1:8000.")
QUICK = flags.DEFINE_bool("quick", False, "A few requests per level (CI smoke run).")
CONCURRENCY = flags.DEFINE_list("concurrency", ["1", "8", "32"], "Concurrent clients.")
REQUESTS = flags.DEFINE_integer("requests", 2000, "Requests per level (upper bound).")
MAX_SECONDS = flags.DEFINE_float("max_seconds", 30.0, "Time bound per level.")
ITEMS = flags.DEFINE_integer("items", 3, "Query items per request.")
CATEGORIES = flags.DEFINE_integer("categories", 2, "Wanted categories per request.")
K = flags.DEFINE_integer("k", 10, "Results per category.")
STARTUP_SECONDS = flags.DEFINE_float("startup_seconds", 180.0, "Time bound of server start.")
OUTPUT = flags.DEFINE_string("output", "", "Optional JSON file of the results.")


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def start_server(flagfile: str, port: int) -> subprocess.Popen:
  env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
  return subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "serve_main.py"), f"--flagfile={flagfile}",
       "--host=127.0.0.1", f"--port={port}"], cwd=ROOT, env=env)


def wait_ready(server: subprocess.Popen, url: str, seconds: float) -> None:
  deadline = time.monotonic() + seconds
  while time.monotonic() < deadline:
    if server.poll() is not None:
      raise RuntimeError(f"server exited with code {server.returncode} before it was ready")
    try:
      if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
        return
    except httpx.TransportError:
      pass
    time.sleep(0.5)
  raise TimeoutError(f"server not ready at {url} after {seconds} s")


def request_bodies(info: dict, count: int, seed: int = 0) -> list[dict]:
  """Seeded random request bodies over the served gallery."""
  with np.load(os.path.join(info["index"]["index_dir"], "items.npz")) as items:
    item_ids = items["item_ids"].astype(str)
  names = [c["name"] for c in info["categories"] if c["items"]]
  rng = np.random.default_rng(seed)
  wanted = min(CATEGORIES.value, len(names))
  return [{"items": [{"item_id": str(i)} for i in rng.choice(item_ids, ITEMS.value, False)],
           "categories": [str(c) for c in rng.choice(names, wanted, False)], "k": K.value}
          for _ in range(count)]


async def run_level(url: str, bodies: list[dict], concurrency: int, total: int,
                    max_seconds: float) -> dict:
  """`concurrency` clients send requests back to back; returns the level's figures."""
  latencies, errors, next_index = [], [], 0
  start = time.perf_counter()
  deadline = start + max_seconds
  limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
  async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

    async def worker():
      nonlocal next_index
      while next_index < total and time.perf_counter() < deadline:
        body = bodies[next_index % len(bodies)]
        next_index += 1
        sent = time.perf_counter()
        try:
          answer = await client.post("/v1/complete", json=body)
          if answer.status_code != 200:
            errors.append(f"{answer.status_code}: {answer.text[:200]}")
        except httpx.HTTPError as error:
          errors.append(repr(error))
        latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
  seconds = time.perf_counter() - start
  milliseconds = 1000 * np.asarray(latencies)
  return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors),
          "first_errors": errors[:3], "seconds": round(seconds, 2),
          "p50_ms": round(float(np.percentile(milliseconds, 50)), 2),
          "p99_ms": round(float(np.percentile(milliseconds, 99)), 2),
          "requests_per_s": round(len(latencies) / seconds, 1)}


def main(argv):
  del argv
  logging.getLogger("httpx").setLevel(logging.WARNING)
  total, max_seconds = REQUESTS.value, MAX_SECONDS.value
  if QUICK.value:
    total, max_seconds = 40, 10.0
  url, server = URL.value, None
  if not url:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(SERVE_FLAGFILE.value, port)
  try:
    if server:
      wait_ready(server, url, STARTUP_SECONDS.value)
    info = httpx.get(f"{url}/v1/info", timeout=10).json()
    bodies = request_bodies(info, 500)
    for body in bodies[:5]:
      httpx.post(f"{url}/v1/complete", json=body, timeout=60).raise_for_status()
    results = []
    print(f"{info['dataset']['label']}, {info['index']['backend']} index of "
          f"{info['index']['num_items']} items, {ITEMS.value} query items, "
          f"{CATEGORIES.value} categories, k={K.value}")
    print(f"{'clients':>8} {'requests':>9} {'errors':>7} {'p50_ms':>9} {'p99_ms':>9} "
          f"{'req/s':>8}")
    for level in CONCURRENCY.value:
      result = asyncio.run(run_level(url, bodies, int(level), total, max_seconds))
      results.append(result)
      print(f"{result['concurrency']:>8} {result['requests']:>9} {result['errors']:>7} "
            f"{result['p50_ms']:>9.2f} {result['p99_ms']:>9.2f} "
            f"{result['requests_per_s']:>8.1f}", flush=True)
      for error in result["first_errors"]:
        print(f"  error: {error}")
  finally:
    if server:
      server.terminate()
      try:
        server.wait(timeout=20)
      except subprocess.TimeoutExpired:
        server.kill()
  if OUTPUT.value:
    with open(OUTPUT.value, "w", encoding="utf-8") as stream:
      json.dump({"label": info["dataset"]["label"], "backend": info["index"]["backend"],
                 "levels": results}, stream, indent=1)
  if any(r["errors"] for r in results):
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
