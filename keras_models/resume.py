"""Resumable training: checkpoints of the whole training state, and their restoration.

Keras' BackupAndRestore restores only the epoch: not the step within it, nor callback state
(early stopping, LR plateau, best validation value), and it overwrites its files in place.
Here a checkpoint is a folder `<backup>/step-<g>/` holding `variables.npz` (every variable
of the trainer: encoder weights, dropout seed states, the TPaNeg gamma, metric totals, and
the optimizer's slots, step counter and learning rate) and `state.json` (the step, the
callbacks' state and the configuration). `<backup>/latest.json` names the newest complete
folder and is replaced atomically after the folder is written, so a kill at any moment
leaves a consistent checkpoint. The input stream is a pure function of (seed, step)
(`input_pipeline.training_stream`), so with op determinism a resumed run gives the weights
of an uninterrupted one bit for bit.

Test hook: when the environment variable SETRETRIEVAL_TEST_KILL_AFTER_STEP is N, the
process SIGKILLs itself right after writing the checkpoint of global step N.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from typing import Any

from absl import logging
import keras
import numpy as np

from tfrecords_builder import atomic_io

LATEST = "latest.json"
STATE = "state.json"
VARIABLES = "variables.npz"
KILL_ENV = "SETRETRIEVAL_TEST_KILL_AFTER_STEP"
# Keras callbacks whose progress lives in plain attributes.
KERAS_STATE = {
    "EarlyStopping": ("wait", "stopped_epoch", "best", "best_epoch"),
    "ReduceLROnPlateau": ("wait", "cooldown_counter", "best"),
}


def _plain(value: Any) -> Any:
  """JSON-ready copy of a callback attribute (NumPy scalars become Python numbers)."""
  if isinstance(value, (np.generic, np.ndarray)):
    return value.item()
  return value


def callback_state(callback: keras.callbacks.Callback) -> dict | None:
  """The resumable state of `callback`, or None when it keeps none."""
  if hasattr(callback, "get_state"):
    return callback.get_state()
  names = KERAS_STATE.get(type(callback).__name__)
  return None if names is None else {n: _plain(getattr(callback, n, None)) for n in names}


def set_callback_state(callback: keras.callbacks.Callback, state: dict) -> None:
  if hasattr(callback, "set_state"):
    callback.set_state(state)
  else:
    for name, value in state.items():
      setattr(callback, name, value)


def trainer_variables(trainer: keras.Model) -> list:
  """Every variable `fit` changes, in a fixed order: the trainer's (weights, dropout seed
  states, gamma), the optimizer's (slots, step, learning rate), then the metrics' totals."""
  metric_variables = [v for metric in trainer.metrics for v in metric.variables]
  return list(trainer.variables) + list(trainer.optimizer.variables) + metric_variables


class Checkpointer:
  """Saves and restores the training state in `backup_dir` (see module docstring).

  Args:
    backup_dir: Folder of the checkpoints; `remove()` once the final outputs are written.
    trainer: The compiled trainer (weights, optimizer, metrics).
    fingerprint: JSON-able description of the run; a checkpoint written under another
      fingerprint is refused with the first differing field.
    is_chief: Only the chief writes (multi-worker); every worker restores.
  """

  def __init__(self, backup_dir: str, trainer: keras.Model, fingerprint: dict,
               is_chief: bool = True):
    self.backup_dir, self.trainer = backup_dir, trainer
    self.fingerprint, self.is_chief = fingerprint, is_chief
    self.callback_states: dict[str, dict] = {}
    self.metric_values: list[np.ndarray] = []

  def restore(self) -> int:
    """Loads the latest checkpoint into the trainer; returns its global step (0: none)."""
    latest = os.path.join(self.backup_dir, LATEST)
    if not os.path.isfile(latest):
      return 0
    with open(latest, encoding="utf-8") as stream:
      folder = os.path.join(self.backup_dir, json.load(stream)["folder"])
    with open(os.path.join(folder, STATE), encoding="utf-8") as stream:
      state = json.load(stream)
    self._check_fingerprint(state["fingerprint"], os.path.join(folder, STATE))
    variables = trainer_variables(self.trainer)
    path = os.path.join(folder, VARIABLES)
    with np.load(path) as stored:
      values = [stored[f"v{i}"] for i in range(len(stored.files))]
    if len(values) != len(variables):
      raise ValueError(f"{path}: {len(values)} variables, the model has {len(variables)}")
    for variable, value in zip(variables, values):
      if tuple(variable.shape) != value.shape:
        raise ValueError(f"{path}: variable '{variable.path}' has shape {value.shape}, the "
                         f"model expects {tuple(variable.shape)}")
      variable.assign(value)
    metric_ids = {id(v) for m in self.trainer.metrics for v in m.variables}
    self.metric_values = [(v, x) for v, x in zip(variables, values) if id(v) in metric_ids]
    self.callback_states = state["callbacks"]
    logging.info("resumed from %s (global step %d)", folder, state["step"])
    return int(state["step"])

  def _check_fingerprint(self, stored: dict, path: str) -> None:
    for key in sorted(set(stored) | set(self.fingerprint)):
      if stored.get(key) != self.fingerprint.get(key):
        raise ValueError(
            f"{path}: the backup was written by a different run ({key}: {stored.get(key)!r} "
            f"there, {self.fingerprint.get(key)!r} now); rerun with the original flags, or "
            f"delete {self.backup_dir} to start over")

  def restore_metrics(self) -> None:
    """Puts back the running loss means of a resumed epoch (fit resets them at its start)."""
    for variable, value in self.metric_values:
      variable.assign(value)
    self.metric_values = []

  def save(self, step: int, callbacks: list[keras.callbacks.Callback]) -> None:
    """Writes the checkpoint of global step `step`, then points latest.json at it."""
    # Every worker reads: reading a sync-on-read variable (metric totals) is a collective
    # op under MultiWorkerMirroredStrategy, which blocks unless all workers join.
    values = {f"v{i}": np.asarray(keras.ops.convert_to_numpy(v))
              for i, v in enumerate(trainer_variables(self.trainer))}
    if self.is_chief:
      name = f"step-{step:09d}"
      folder = os.path.join(self.backup_dir, name)
      os.makedirs(folder, exist_ok=True)
      atomic_io.write_npz(os.path.join(folder, VARIABLES), **values)
      states = {type(c).__name__: s for c in callbacks
                if (s := callback_state(c)) is not None}
      atomic_io.write_json(os.path.join(folder, STATE), {
          "step": step, "callbacks": states, "fingerprint": self.fingerprint})
      atomic_io.write_json(os.path.join(self.backup_dir, LATEST), {"folder": name})
      for other in os.listdir(self.backup_dir):
        if other.startswith("step-") and other != name:
          shutil.rmtree(os.path.join(self.backup_dir, other), ignore_errors=True)
    if os.environ.get(KILL_ENV) == str(step):
      logging.warning("%s=%d: killing this process after its checkpoint", KILL_ENV, step)
      os.kill(os.getpid(), signal.SIGKILL)

  def remove(self) -> None:
    if self.is_chief:
      shutil.rmtree(self.backup_dir, ignore_errors=True)


class _EndResumedEpochEarly(keras.callbacks.Callback):
  """First in the list: shortens the resumed epoch and restores its running loss means.

  fit cannot start an epoch at a given step, so the resumed epoch runs from step 0 of its
  own count and is ended after the steps that were left; resetting `stop_training` before
  EarlyStopping's on_epoch_end keeps that callback's decision intact.
  """

  def __init__(self, checkpointer: Checkpointer, steps_left: int):
    super().__init__()
    self.checkpointer, self.steps_left = checkpointer, steps_left
    self.ending = False

  def on_epoch_begin(self, epoch, logs=None):
    if self.steps_left:
      self.checkpointer.restore_metrics()

  def on_train_batch_end(self, batch, logs=None):
    if self.steps_left and batch + 1 >= self.steps_left:
      self.model.stop_training, self.ending, self.steps_left = True, True, 0

  def on_epoch_end(self, epoch, logs=None):
    if self.ending:
      self.model.stop_training, self.ending = False, False


class _SaveCheckpoints(keras.callbacks.Callback):
  """Last in the list: restores callback state, then saves every N steps and every epoch."""

  def __init__(self, checkpointer: Checkpointer, others: list, steps_per_epoch: int,
               every_steps: int):
    super().__init__()
    self.checkpointer, self.others = checkpointer, others
    self.steps_per_epoch, self.every_steps = steps_per_epoch, every_steps

  def _step(self) -> int:
    return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

  def on_train_begin(self, logs=None):
    # After the other callbacks' on_train_begin, which resets their state.
    for callback in self.others:
      state = self.checkpointer.callback_states.get(type(callback).__name__)
      if state is not None:
        set_callback_state(callback, state)

  def on_train_batch_end(self, batch, logs=None):
    step = self._step()
    # The last step of an epoch is saved by on_epoch_end, after validation.
    if self.every_steps and step % self.every_steps == 0 and step % self.steps_per_epoch:
      self.checkpointer.save(step, self.others)

  def on_epoch_end(self, epoch, logs=None):
    self.checkpointer.save(self._step(), self.others)


def wrap_callbacks(checkpointer: Checkpointer, chain: list, start_step: int,
                   steps_per_epoch: int, every_steps: int) -> list:
  """`chain` between the callbacks that resume at `start_step` and save checkpoints."""
  steps_left = (steps_per_epoch - start_step % steps_per_epoch) % steps_per_epoch
  return [_EndResumedEpochEarly(checkpointer, steps_left), *chain,
          _SaveCheckpoints(checkpointer, chain, steps_per_epoch, every_steps)]
