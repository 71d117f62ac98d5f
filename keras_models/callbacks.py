"""Training callbacks: TPaNeg curriculum, full-gallery validation with best weights, LR log,
and where each epoch's time goes (`time/...` columns of history.csv)."""

from __future__ import annotations

import csv
import io
import math
import time
from typing import Callable

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from keras_models import evaluator as evaluator_lib
from keras_models.losses import tpaneg
from tfrecords_builder import atomic_io

VAL_PREFIX = "val_"
LOGGED = ("micro/top_5_percent", "micro/top_10_percent", "micro/top_20_percent", "micro/mrr",
          "micro/median_percentile_rank", "macro/top_10_percent")


class GammaCurriculum(keras.callbacks.Callback):
  """Sets the trainer's T_gamma variable at the start of every epoch.

  T_gamma(e) = start + (end - start) * e / curriculum_epochs for e < curriculum_epochs,
  then end. It lives in a variable: a Python float would be frozen into the traced step.
  """

  def __init__(self, gamma_start: float, gamma_end: float, curriculum_epochs: int):
    super().__init__()
    self.gamma_start, self.gamma_end = gamma_start, gamma_end
    self.curriculum_epochs = curriculum_epochs

  def on_epoch_begin(self, epoch, logs=None):
    value = float(tpaneg.curriculum_gamma(epoch, self.gamma_start, self.gamma_end,
                                          self.curriculum_epochs))
    self.model.tpaneg_gamma.assign(value)

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["tpaneg/gamma"] = float(np.asarray(self.model.tpaneg_gamma.numpy()))


class NegativeRedraw(keras.callbacks.Callback):
  """Replaces the TPaNeg table with a fresh draw at the start of every epoch.

  `draw(epoch)` returns the `[num_items, candidate_neg_num]` int32 table of a 0-based
  epoch (the random pool: a new uniform subset above that epoch's T_gamma).
  """

  def __init__(self, table: tf.Variable, draw: Callable[[int], np.ndarray]):
    super().__init__()
    self.table, self.draw = table, draw
    self.seconds = math.nan

  def on_epoch_begin(self, epoch, logs=None):
    start = time.perf_counter()
    self.table.assign(self.draw(epoch).astype(np.int32))
    self.seconds = time.perf_counter() - start

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["time/negative_table_seconds"] = self.seconds


class StepTiming(keras.callbacks.Callback):
  """Adds the epoch's training time and its median step time to the epoch logs.

  `time/train_seconds` runs from the epoch's start to its last step; `time/step_seconds`
  is the median step time without the epoch's first step, which traces the step and fills
  the input pipeline, so it compares across dataset sizes and machines.
  """

  def __init__(self):
    super().__init__()
    self._times: list[float] = []

  def on_epoch_begin(self, epoch, logs=None):
    self._times = [time.perf_counter()]

  def on_train_batch_end(self, batch, logs=None):
    self._times.append(time.perf_counter())

  def on_epoch_end(self, epoch, logs=None):
    steps = np.diff(self._times)
    if logs is not None and len(steps):
      logs["time/train_seconds"] = float(self._times[-1] - self._times[0])
      logs["time/step_seconds"] = float(np.median(steps[1:] if len(steps) > 1 else steps))


class RetrievalValidation(keras.callbacks.Callback):
  """Ranks the full validation gallery after each epoch and keeps the best weights.

  Adds `val_<metric>` entries (micro averages `val_top_{5,10,20}_percent`, `val_mrr`,
  `val_median_percentile_rank`, and `val_macro_top_10_percent`) to the epoch logs, so EarlyStopping, ReduceLROnPlateau, CSVLogger and TensorBoard placed
  after this callback see them. Saves `best.weights.h5` of the encoder atomically when
  `monitor` improves (mode max).
  """

  def __init__(self, evaluator: evaluator_lib.Evaluator, encoder: keras.Model, best_path: str,
               monitor: str = "val_top_10_percent", is_chief: bool = True):
    super().__init__()
    self.evaluator, self.encoder = evaluator, encoder
    self.best_path, self.monitor = best_path, monitor
    self.is_chief = is_chief
    self.best = -np.inf
    self.best_epoch = -1

  def on_epoch_end(self, epoch, logs=None):
    start = time.perf_counter()
    summary, _, _ = self.evaluator.evaluate(self.encoder)
    values = {}
    for key in LOGGED:
      scope, name = key.split("/", 1)
      prefix = VAL_PREFIX if scope == "micro" else VAL_PREFIX + "macro_"
      values[prefix + name] = float(summary[key])
    if logs is not None:
      logs.update(values)
    current = values[self.monitor]
    if current > self.best:
      self.best, self.best_epoch = current, epoch
      if self.is_chief:
        save_weights_atomically(self.encoder, self.best_path)
    if logs is not None:
      # Validation and saving the best weights: the epoch's cost beside training's.
      logs["time/val_seconds"] = time.perf_counter() - start
    logging.info("epoch %d: %s = %.4f (best %.4f at epoch %d)", epoch + 1, self.monitor,
                 current, self.best, self.best_epoch + 1)

  def get_state(self) -> dict:
    return {"best": float(self.best), "best_epoch": self.best_epoch}

  def set_state(self, state: dict) -> None:
    self.best, self.best_epoch = state["best"], state["best_epoch"]


class HistoryCSV(keras.callbacks.Callback):
  """Writes the logs of every finished epoch to a CSV, replacing the file atomically.

  Unlike keras.callbacks.CSVLogger, which appends to an open file, a crash mid-write
  leaves the previous complete file; the rows are part of the resumable state, so a
  resumed run rewrites exactly the epochs its checkpoint had finished.
  """

  def __init__(self, path: str, is_chief: bool = True):
    super().__init__()
    self.path, self.is_chief = path, is_chief
    self.rows: list[dict] = []

  def on_epoch_end(self, epoch, logs=None):
    row = {"epoch": epoch}
    for key, value in sorted((logs or {}).items()):
      row[key] = float(np.asarray(keras.ops.convert_to_numpy(value)))
    self.rows.append(row)
    if self.is_chief:
      columns = list(dict.fromkeys(key for r in self.rows for key in r))
      text = io.StringIO()
      writer = csv.DictWriter(text, columns, lineterminator="\n")
      writer.writeheader()
      writer.writerows(self.rows)
      atomic_io.write_text(self.path, text.getvalue())

  def get_state(self) -> dict:
    return {"rows": self.rows}  # Python's json keeps NaN and infinities.

  def set_state(self, state: dict) -> None:
    self.rows = [dict(row) for row in state["rows"]]

  def history(self) -> dict[str, list[float]]:
    """Column -> values over every epoch, as keras.callbacks.History holds them."""
    return {key: [row.get(key, math.nan) for row in self.rows]
            for key in dict.fromkeys(k for r in self.rows for k in r) if key != "epoch"}


class LearningRateLogger(keras.callbacks.Callback):
  """Adds the optimizer's current learning rate to the epoch logs."""

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      optimizer = self.model.optimizer
      rate = optimizer.learning_rate
      if callable(rate):
        rate = rate(optimizer.iterations)
      logs["learning_rate"] = float(np.asarray(keras.ops.convert_to_numpy(rate)))


def save_weights_atomically(model: keras.Model, path: str) -> None:
  """Writes `model.save_weights` to a temporary `.weights.h5` name, then renames."""
  with atomic_io.atomic_path(path) as temp_path:
    model.save_weights(temp_path)
