"""Many short trainings in one process and stream deletions on 1 and 2 logical CPUs;
prints the gaps as JSON.

Run as a subprocess by teardown_test.py (logical devices must be configured before
TensorFlow initialises):
  python tests/keras_models/teardown_script.py DATA_DIR MODEL_ROOT STREAM_SECONDS RUNS
"""

from __future__ import annotations

import json
import os
import sys
import time

import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import keras  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from keras_models import configs  # pylint: disable=wrong-import-position
from keras_models import data_files  # pylint: disable=wrong-import-position
from keras_models import input_pipeline  # pylint: disable=wrong-import-position
from keras_models import retrieval_trainer  # pylint: disable=wrong-import-position
from keras_models import training  # pylint: disable=wrong-import-position

DEVICES = {1: ["/cpu:0"], 2: ["/cpu:0", "/cpu:1"]}


def replica_rows_match(manifest) -> bool:
  """Each of 2 replicas gets its contiguous half of every global batch, in order."""
  stream = input_pipeline.training_stream(manifest, 8, seed=3, shuffle_buffer=64)
  whole = next(iter(stream))
  strategy = tf.distribute.MirroredStrategy(DEVICES[2])
  parts = next(iter(input_pipeline.distribute(strategy, stream)))
  for key, value in whole.items():
    halves = [t.numpy() for t in strategy.experimental_local_results(parts[key])]
    if not np.array_equal(np.concatenate(halves), value.numpy()):
      return False
  return True


def deletion_seconds(manifest, seconds: float) -> float:
  """Reads the distributed stream for `seconds`, then deletes it; returns the deletion time.

  An autotune thread would start with the first batch and sleep 10 ms, 20 ms, ... 5.12 s
  between optimizations (ending at 10 ms, 30 ms, ... 5.11 s, 10.23 s), so deleting just
  after 5.11 s could wait about 5 s for it.
  """
  strategy = tf.distribute.MirroredStrategy(DEVICES[1])
  stream = input_pipeline.training_stream(manifest, 8, seed=0, shuffle_buffer=64)
  iterator = iter(input_pipeline.distribute(strategy, stream))
  next(iterator)
  start = time.perf_counter()
  while time.perf_counter() - start < seconds:
    next(iterator)
  start = time.perf_counter()
  del iterator
  return time.perf_counter() - start


def _autotuned(stream: tf.data.Dataset) -> tf.data.Dataset:
  """`stream` with tf.data autotune on, as a user's own dataset (tfds batches) has it."""
  options = tf.data.Options()
  options.autotune.enabled = True
  return stream.with_options(options)


def training_gaps(data_dir: str, model_root: str, runs: int) -> list[float]:
  """Seconds from the callbacks' on_train_end to `fit` returning (the teardown), per run.

  `runs` short fits in this one process, on 1 and 2 replicas in turn; every other pair
  trains on an injected stream with autotune on (as `tfds_source` batches or a user's
  dataset arrive), which `input_pipeline.distribute` must turn off.
  """
  manifest = data_files.load_manifest(data_dir)
  stamps = {}
  on_train_end = keras.callbacks.CallbackList.on_train_end
  fit = retrieval_trainer.SetRetrievalTrainer.fit

  def ended(self, logs=None):
    on_train_end(self, logs)
    stamps["callbacks_done"] = time.perf_counter()

  def timed_fit(self, *args, **kwargs):
    history = fit(self, *args, **kwargs)
    stamps["fit_returned"] = time.perf_counter()
    return history

  keras.callbacks.CallbackList.on_train_end = ended
  retrieval_trainer.SetRetrievalTrainer.fit = timed_fit
  gaps = []
  for run in range(runs):
    replicas = 1 + run % 2
    injected = None
    if run % 4 >= 2:
      injected = _autotuned(input_pipeline.training_stream(manifest, 8, seed=run,
                                                           shuffle_buffer=64))
    config = configs.TrainConfig(
        data_dir=data_dir, model_dir=os.path.join(model_root, str(run)), epochs=2,
        steps_per_epoch=3, batch_size=8, shuffle_buffer=64, verbose=0, seed=run,
        model=configs.ModelConfig(hidden_dim=16, num_layers=1, num_heads=2))
    training.run(config, strategy=tf.distribute.MirroredStrategy(DEVICES[replicas]),
                 train_dataset=injected)
    gaps.append(round(stamps["fit_returned"] - stamps["callbacks_done"], 3))
  return gaps


def main() -> None:
  data_dir, model_root = sys.argv[1], sys.argv[2]
  manifest = data_files.load_manifest(data_dir)
  print(json.dumps({
      "replica_rows_match": replica_rows_match(manifest),
      "autotune": input_pipeline.training_stream(manifest, 8, seed=0).options().autotune.enabled,
      # Two tries: the lost wake-up hit about half of the deletions before the fix.
      "deletion_s": [round(deletion_seconds(manifest, float(sys.argv[3])), 3)
                     for _ in range(2)],
      "training_gaps_s": training_gaps(data_dir, model_root, int(sys.argv[4]))}))


if __name__ == "__main__":
  main()
