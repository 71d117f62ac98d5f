"""Kill -9 mid-epoch, rerun the same command: the final weights equal an uninterrupted run's.

The killed process uses the test hook of resume.py: SETRETRIEVAL_TEST_KILL_AFTER_STEP=N
makes it SIGKILL itself right after writing the checkpoint of global step N.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd

from keras_models import resume
from tests import tiny_data

ROOT = tiny_data.ROOT


data_dir = tiny_data.shards_fixture(num_shards=2, num_sets=40, num_categories=3,
                                    feature_dim=8, min_items=3, max_items=5)


def _train(data_dir: str, model_dir: str, kill_after_step: int | None = None):
  """Starts train_main on 2 epochs of 2 steps, with dropout, checkpointing every step."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  env.pop(resume.KILL_ENV, None)
  if kill_after_step is not None:
    env[resume.KILL_ENV] = str(kill_after_step)
  command = [sys.executable, os.path.join(ROOT, "train_main.py"),
             "--flagfile=experiments/smoke/cst.flags", f"--data_dir={data_dir}",
             f"--model_dir={model_dir}", "--deterministic", "--dropout_rate=0.2",
             "--hidden_dim=8", "--epochs=2", "--steps_per_epoch=2",
             "--checkpoint_every_steps=1", "--reduce_lr_patience=1"]
  return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _weights(path: str) -> dict[str, np.ndarray]:
  arrays = {}
  with h5py.File(path, "r") as stream:
    stream.visititems(lambda name, node: arrays.__setitem__(name, node[()])
                      if isinstance(node, h5py.Dataset) else None)
  return arrays


def _finish(process: subprocess.Popen) -> tuple[int, str]:
  output, _ = process.communicate(timeout=300)
  return process.returncode, output


def test_sigkill_mid_epoch_then_rerun_matches_uninterrupted_run(data_dir, tmp_path):
  whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
  # Both first runs at once: the machine has 2 cores and each is mostly single-threaded.
  runs = [_train(data_dir, whole), _train(data_dir, killed, kill_after_step=3)]
  (whole_code, whole_log), (killed_code, killed_log) = [_finish(p) for p in runs]
  assert whole_code == 0, whole_log[-3000:]
  assert killed_code == -signal.SIGKILL, killed_log[-3000:]
  # Killed in the second epoch, after its first step: nothing final was written.
  backup = os.path.join(killed, "backup")
  with open(os.path.join(backup, resume.LATEST), encoding="utf-8") as stream:
    folder = json.load(stream)["folder"]
  assert folder == "step-000000003"
  assert set(os.listdir(backup)) == {resume.LATEST, folder}
  assert not os.path.exists(os.path.join(killed, "final.weights.h5"))

  code, log = _finish(_train(data_dir, killed))
  assert code == 0, log[-3000:]
  assert "resumed from" in log and "from epoch 2 step 1" in log
  assert not os.path.exists(backup)
  expected, actual = _weights(os.path.join(whole, "final.weights.h5")), _weights(
      os.path.join(killed, "final.weights.h5"))
  assert sorted(actual) == sorted(expected)
  for name, value in expected.items():
    np.testing.assert_array_equal(actual[name], value, err_msg=name)
  # The resumed epoch's running loss means and the callbacks' state were restored too;
  # only the wall-clock columns (time/...) may differ. A running mean may differ by one
  # float32 ulp: on this fixture the second epoch's step losses (9.7478714, 8.8926325)
  # sum to an exact tie between two float32 values, and the logged mean came out one ulp
  # apart in 5 of 6 runs (weights bit-equal; cause not found). A lost restore would be
  # off by far more (the epoch's mean would be its last step's loss).
  histories = [pd.read_csv(os.path.join(run, "history.csv")) for run in (whole, killed)]
  timed = [c for c in histories[0].columns if c.startswith("time/")]
  assert "time/step_seconds" in timed and list(histories[0].columns) == list(histories[1].columns)
  pd.testing.assert_frame_equal(histories[0].drop(columns=timed),
                                histories[1].drop(columns=timed), check_exact=False,
                                rtol=2.5e-7, atol=0.0)
