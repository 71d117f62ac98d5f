"""--strategy=multi_worker: 2 worker processes on 127.0.0.1 train 2 steps in lockstep."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from tests import tiny_data


ROOT = tiny_data.ROOT


data_dir = tiny_data.shards_fixture(num_shards=2, num_sets=40, num_categories=3,
                                    feature_dim=8, min_items=3, max_items=5)


def _free_ports(count: int) -> list[int]:
  sockets = [socket.socket() for _ in range(count)]
  for sock in sockets:
    sock.bind(("127.0.0.1", 0))
  ports = [sock.getsockname()[1] for sock in sockets]
  for sock in sockets:
    sock.close()
  return ports


def test_two_workers_train_in_lockstep_and_only_the_chief_writes(data_dir, tmp_path):
  cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
  processes = []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT, TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": index}}))
    # Separate folders stand for each worker's local disk, so the test sees who wrote.
    processes.append(subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tests", "keras_models", "multi_worker_script.py"),
         "--flagfile=experiments/smoke/cst.flags", f"--data_dir={data_dir}",
         f"--model_dir={tmp_path / f'worker{index}'}", "--strategy=multi_worker",
         "--hidden_dim=8", "--epochs=1", "--steps_per_epoch=2", "--deterministic"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  results = []
  for process in processes:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    # gRPC may log after the result line when the other worker shuts down first.
    results.append(json.loads([l for l in output.splitlines() if l.startswith('{"chief"')][-1]))
  assert [r["chief"] for r in results] == [True, False]
  assert results[0]["epochs"] == results[1]["epochs"] == 1
  assert results[0]["sha256"] == results[1]["sha256"]
  chief_files = set(os.listdir(tmp_path / "worker0"))
  assert {"flags.txt", "best.weights.h5", "final.weights.h5", "history.csv"} <= chief_files
  assert not os.path.exists(tmp_path / "worker1")
