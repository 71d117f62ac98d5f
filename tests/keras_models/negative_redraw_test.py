"""The TPaNeg random pool's contract: one table per (seed, epoch), assigned at every epoch
start, and redrawn by a resumed run exactly as by an uninterrupted one.

Every TPaNeg recipe (`experiments/*/tpaneg.flags`, `--use_tpaneg` alone) uses this pool.
The resume test uses the kill hook of resume.py (see resume_test.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import h5py
import keras
import numpy as np
import tensorflow as tf

from keras_models import callbacks
from keras_models import configs
from keras_models import data_files
from keras_models import resume
from keras_models import training
from tests import tiny_data

data_dir = tiny_data.shards_fixture(num_shards=2, num_sets=40, num_categories=3,
                                    feature_dim=8, min_items=3, max_items=5)
GAMMA_START, GAMMA_END, RAMP = -0.3, 0.3, 2
NUM_NEGATIVES = 2


def _config(data_dir: str, seed: int = 0) -> configs.TrainConfig:
  return configs.TrainConfig(
      data_dir=data_dir, model_dir="unused", seed=seed, loss=configs.LossConfig(
          use_tpaneg=True, tpaneg_pool="random", candidate_neg_num=NUM_NEGATIVES,
          tpaneg_gamma_start=GAMMA_START, tpaneg_gamma_end=GAMMA_END,
          tpaneg_curriculum_epochs=RAMP))


def _eligible(table: data_files.ItemTable, threshold: float) -> list[set[int]]:
  """Per item: same category, not itself, no shared train set, cos >= threshold."""
  unit = table.features / np.linalg.norm(table.features, axis=1, keepdims=True)
  cosine = unit.astype(np.float64) @ unit.T.astype(np.float64)
  sets_of = [set() for _ in table.item_ids]
  for s in range(len(table.set_offsets) - 1):
    for item in table.set_items[table.set_offsets[s]:table.set_offsets[s + 1]]:
      sets_of[item].add(s)
  return [{j for j in range(len(unit)) if j != i and table.categories[j] == table.categories[i]
           and not sets_of[i] & sets_of[j] and cosine[i, j] >= threshold}
          for i in range(len(unit))]


def test_epoch_table_is_a_function_of_seed_and_epoch(data_dir):
  manifest = data_files.load_manifest(data_dir)
  table = data_files.load_item_table(manifest, "train")
  draws = {}
  for seed, epoch in [(0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (0, 1)]:
    negatives = training.negative_table(_config(data_dir, seed), table, epoch=epoch)
    assert negatives.shape == (len(table.item_ids), NUM_NEGATIVES)
    # T_gamma(e) = start + (end - start) * min(e / ramp, 1), worked out by hand.
    threshold = {0: -0.3, 1: 0.0, 2: 0.3, 3: 0.3}[epoch]
    for row, allowed in zip(negatives, _eligible(table, threshold)):
      chosen = row[row >= 0].tolist()
      assert len(chosen) == min(NUM_NEGATIVES, len(allowed))
      assert len(set(chosen)) == len(chosen) and set(chosen) <= allowed
    draws.setdefault((seed, epoch), []).append(negatives)
  np.testing.assert_array_equal(*draws[(0, 1)])
  # Epochs 2 and 3 share T_gamma, so only the (seed, epoch) draw tells them apart.
  for other in [(0, 0), (0, 2), (1, 1)]:
    assert not np.array_equal(draws[(0, 1)][0], draws[other][0]), other
  assert not np.array_equal(draws[(0, 2)][0], draws[(0, 3)][0])


class _TableReader(keras.Model):
  """Trains nothing; each step reports the sum of the table variable it reads."""

  def __init__(self, table: tf.Variable):
    super().__init__()
    self.table = table
    self.weight = self.add_weight(shape=(), initializer="zeros")

  def train_step(self, data):
    del data
    return {"table_sum": tf.cast(tf.reduce_sum(self.table), tf.float32)}


class _PerBatch(keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.seen = []

  def on_train_batch_end(self, batch, logs=None):
    self.seen.append((self.epoch, int(logs["table_sum"])))

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch


def test_callback_assigns_the_variable_at_every_epoch_start():
  # draw(e) is a 2 x 3 table of the value e + 1: the step sees 6 * (e + 1).
  variable = tf.Variable(np.full((2, 3), -1, np.int32), trainable=False)
  calls = []

  def draw(epoch):
    calls.append(epoch)
    return np.full((2, 3), epoch + 1, np.int64)

  data = tf.data.Dataset.from_tensors(tf.zeros([1])).repeat()
  for initial_epoch, epochs in [(0, 3), (2, 4)]:  # a whole run, then one resumed at 2
    calls.clear()
    model = _TableReader(variable)
    model.compile(optimizer="sgd")
    probe = _PerBatch()
    model.fit(data, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=2, verbose=0,
              shuffle=False, callbacks=[callbacks.NegativeRedraw(variable, draw), probe])
    assert calls == list(range(initial_epoch, epochs))
    assert probe.seen == [(e, 6 * (e + 1)) for e in range(initial_epoch, epochs)
                          for _ in range(2)]
    assert variable.dtype == tf.int32


def _train(data_dir: str, model_dir: str, kill_after_step: int | None = None):
  """train_main on TPaNeg's random pool: 3 epochs of 2 steps, a checkpoint every step."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=tiny_data.ROOT)
  env.pop(resume.KILL_ENV, None)
  if kill_after_step is not None:
    env[resume.KILL_ENV] = str(kill_after_step)
  command = [sys.executable, os.path.join(tiny_data.ROOT, "train_main.py"),
             "--flagfile=experiments/smoke/tpaneg.flags", f"--data_dir={data_dir}",
             f"--model_dir={model_dir}", "--deterministic", "--tpaneg_pool=random",
             f"--candidate_neg_num={NUM_NEGATIVES}", "--tpaneg_gamma_start=-0.3",
             "--tpaneg_gamma_end=0.3", "--tpaneg_curriculum_epochs=2", "--tpaneg_epsilon=2",
             "--hidden_dim=8", "--epochs=3", "--steps_per_epoch=2",
             "--checkpoint_every_steps=1"]
  return subprocess.Popen(command, cwd=tiny_data.ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen) -> tuple[int, str]:
  output, _ = process.communicate(timeout=300)
  return process.returncode, output


def _weights(path: str) -> dict[str, np.ndarray]:
  arrays = {}
  with h5py.File(path, "r") as stream:
    stream.visititems(lambda name, node: arrays.__setitem__(name, node[()])
                      if isinstance(node, h5py.Dataset) else None)
  return arrays


def test_resumed_run_redraws_the_epoch_table_of_an_uninterrupted_run(data_dir, tmp_path):
  whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
  # Killed after the first step of the second epoch (epoch index 1).
  runs = [_train(data_dir, whole), _train(data_dir, killed, kill_after_step=3)]
  (whole_code, whole_log), (killed_code, killed_log) = [_finish(p) for p in runs]
  assert whole_code == 0, whole_log[-3000:]
  assert killed_code == -signal.SIGKILL, killed_log[-3000:]
  code, log = _finish(_train(data_dir, killed))
  assert code == 0, log[-3000:]
  assert "from epoch 2 step 1" in log
  # The table is not in the checkpoint: the resumed run draws epoch 1's table again, and
  # replace mode trains on nothing but those negatives, so any other table would show.
  assert log.count("TPaNeg random candidates") == 2, log[-3000:]
  expected = _weights(os.path.join(whole, "final.weights.h5"))
  actual = _weights(os.path.join(killed, "final.weights.h5"))
  assert sorted(actual) == sorted(expected)
  for name, value in expected.items():
    np.testing.assert_array_equal(actual[name], value, err_msg=name)
