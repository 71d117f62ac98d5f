"""Trains 2 steps on 2 logical CPUs and on one device from the same weights; prints the gap.

Run as a subprocess by distribution_test.py: logical devices must be configured before
TensorFlow initialises, which a shared pytest process cannot guarantee.
  python tests/keras_models/two_replica_script.py DATA_DIR {inbatch|tpaneg|bank}
"""

from __future__ import annotations

import json
import sys

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
from keras_models.losses import bank  # pylint: disable=wrong-import-position
from keras_models.losses import negative_table  # pylint: disable=wrong-import-position
from keras_models.models import builder  # pylint: disable=wrong-import-position


def train_two_steps(strategy, manifest, loss_config, batches, initial_weights):
  with strategy.scope():
    keras.utils.set_random_seed(0)
    model_config = configs.ModelConfig(hidden_dim=16, num_layers=1, num_heads=2,
                                       dropout_rate=0.0)
    encoder = builder.build_encoder(model_config, manifest, data_files.load_centers(manifest))
    if initial_weights is not None:
      encoder.set_weights(initial_weights)
    tables = None
    if loss_config.use_tpaneg:
      table = data_files.load_item_table(manifest, "train")
      negatives = negative_table.build_negative_table(table.features, table.categories, 6, -1.0,
                                              set_ids=table.first_set)
      tables = retrieval_trainer.NegativeTables(negatives, table.features)
    bank_tables = None
    if loss_config.use_bank_negatives:
      table = data_files.load_item_table(manifest, "train")
      bank_tables = retrieval_trainer.BankTables(
          bank.build_bank(table.features, table.categories, manifest.num_categories))
    trainer = retrieval_trainer.SetRetrievalTrainer(encoder, loss_config, tables, bank_tables)
    # Plain SGD: Adam is scale-invariant and would hide a loss scaled by the replica count.
    trainer.compile(optimizer=keras.optimizers.SGD(0.5))
  start = [w.copy() for w in encoder.get_weights()]
  dataset = tf.data.Dataset.from_tensor_slices(batches).batch(8, drop_remainder=True)
  trainer.fit(dataset, epochs=1, verbose=0)
  return start, encoder.get_weights()


def main() -> None:
  keras.config.disable_traceback_filtering()
  data_dir, variant = sys.argv[1], sys.argv[2]
  manifest = data_files.load_manifest(data_dir)
  loss_config = configs.LossConfig(use_cycle_loss=True, use_tpaneg=variant == "tpaneg",
                                   tpaneg_gamma_start=-1.0, tpaneg_epsilon=2.0,
                                   use_bank_negatives=variant == "bank", bank_mode="replace",
                                   bank_chunk_size=5)
  dataset = input_pipeline.make_dataset(manifest, "train", 16, training=False,
                                        drop_remainder=True)
  batch = next(iter(dataset))
  batches = {k: v for k, v in batch.items() if k != "set_id"}
  two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  one = tf.distribute.OneDeviceStrategy("/cpu:0")
  start, after_two = train_two_steps(two, manifest, loss_config, batches, None)
  _, after_one = train_two_steps(one, manifest, loss_config, batches, start)
  gap = max(float(np.max(np.abs(a - b))) for a, b in zip(after_two, after_one))
  moved = max(float(np.max(np.abs(a - s))) for a, s in zip(after_one, start))
  print(json.dumps({"replicas": two.num_replicas_in_sync, "max_gap": gap, "max_update": moved}))


if __name__ == "__main__":
  main()
