"""Times one bank InfoNCE term (forward + backward) against in-batch InfoNCE on a real gallery.

  python -m bench.bank_loss --data_dir=../main/data/synthetic --batch_size=64
  python -m bench.bank_loss --data_dir=../main/data/ikea --batch_size=32

Prints CPU seconds per call (process time, so a busy shared machine inflates wall time but
not this much) for the in-batch term and the bank term at several chunk sizes.
"""

from __future__ import annotations

import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from keras_models import data_files
from keras_models.losses import bank
from keras_models.losses import infonce

DATA_DIR = flags.DEFINE_string("data_dir", None, "Built dataset.", required=True)
BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Sets per batch.")
CHUNK_SIZES = flags.DEFINE_list("chunk_sizes", ["256", "1024", "8192"], "Bank chunk sizes.")
REPEATS = flags.DEFINE_integer("repeats", 10, "Timed calls per variant.")


def _cpu_seconds(step) -> float:
  step()
  start = time.process_time()
  for _ in range(REPEATS.value):
    step()
  return (time.process_time() - start) / REPEATS.value


def main(argv: list[str]) -> None:
  del argv
  manifest = data_files.load_manifest(DATA_DIR.value)
  table = data_files.load_item_table(manifest, "train")
  static = bank.build_bank(table.features, table.categories, manifest.num_categories)
  rng = np.random.default_rng(0)
  index = rng.integers(0, len(table.categories), size=(BATCH_SIZE.value, manifest.half_size))
  index = tf.constant(index.astype(np.int32))
  categories = tf.constant(table.categories[index.numpy()])
  mask = tf.ones_like(categories, tf.bool)
  features = tf.constant(table.features[index.numpy()])
  predictions = tf.Variable(rng.normal(size=(BATCH_SIZE.value, manifest.num_categories,
                                             manifest.feature_dim)).astype(np.float32))
  bank_features, offsets, item_rows = (tf.constant(static.features),
                                       tf.constant(static.offsets),
                                       tf.constant(static.item_rows))

  def timed(loss_fn):
    @tf.function
    def step():
      with tf.GradientTape() as tape:
        loss_sum, _ = loss_fn()
      return tape.gradient(loss_sum, predictions)
    return _cpu_seconds(step)

  print(f"{manifest.data_label()}: {len(static.features)} bank rows, "
        f"{BATCH_SIZE.value} sets x {manifest.half_size} items, dim {manifest.feature_dim}")
  print(f"in-batch InfoNCE        {timed(lambda: infonce.category_infonce(predictions, features, categories, mask, 0.1)) * 1e3:8.1f} ms CPU")
  for chunk in (int(c) for c in CHUNK_SIZES.value):
    seconds = timed(lambda c=chunk: bank.bank_infonce(
        predictions, categories, mask, index, item_rows, bank_features, offsets, 0.1, c))
    print(f"bank InfoNCE chunk {chunk:5d} {seconds * 1e3:8.1f} ms CPU")


if __name__ == "__main__":
  app.run(main)
