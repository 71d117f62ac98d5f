"""Measures the cost of one resumable checkpoint (save and restore) for a model size.

  PYTHONPATH=. python bench/checkpoint_cost.py --hidden_dim=256 --num_layers=2 --feature_dim=512

Builds SYNTHETIC shards in a temporary folder (the figures depend on the model size, not
on the data), compiles the trainer with Adam, then times `resume.Checkpointer.save` and
`restore` and prints the checkpoint size.
"""

from __future__ import annotations

import os
import tempfile
import time

from absl import app
from absl import flags
import keras
import numpy as np

from keras_models import configs
from keras_models import data_files
from keras_models import resume
from keras_models import retrieval_trainer
from keras_models.models import builder
from tfrecords_builder import build
from tfrecords_builder import config as builder_config
from tfrecords_builder.sources import synthetic

HIDDEN_DIM = flags.DEFINE_integer("hidden_dim", 256, "Model width.")
NUM_LAYERS = flags.DEFINE_integer("num_layers", 2, "Transformer blocks.")
FEATURE_DIM = flags.DEFINE_integer("feature_dim", 512, "Item feature dimension D.")
REPEATS = flags.DEFINE_integer("repeats", 5, "Timed saves and restores.")


def main(argv: list[str]) -> None:
  del argv
  with tempfile.TemporaryDirectory() as folder:
    data = os.path.join(folder, "data")
    build.run(builder_config.BuilderConfig(
        source="synthetic", output_dir=data, num_shards=1,
        synthetic=synthetic.SyntheticConfig(num_sets=40, num_categories=11,
                                            feature_dim=FEATURE_DIM.value)))
    manifest = data_files.load_manifest(data)
    model = configs.ModelConfig(hidden_dim=HIDDEN_DIM.value, num_layers=NUM_LAYERS.value)
    trainer = retrieval_trainer.SetRetrievalTrainer(
        builder.build_encoder(model, manifest), configs.LossConfig())
    trainer.compile(optimizer=keras.optimizers.Adam())
    backup = os.path.join(folder, "backup")
    checkpointer = resume.Checkpointer(backup, trainer, {"bench": True})
    saves, restores = [], []
    for step in range(1, REPEATS.value + 1):
      start = time.perf_counter()
      checkpointer.save(step, [])
      saves.append(time.perf_counter() - start)
      start = time.perf_counter()
      checkpointer.restore()
      restores.append(time.perf_counter() - start)
    size = sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(backup) for name in names)
    count = sum(int(np.prod(v.shape)) for v in resume.trainer_variables(trainer))
    print(f"hidden_dim={HIDDEN_DIM.value} num_layers={NUM_LAYERS.value} "
          f"D={FEATURE_DIM.value}: {count:,} values in {len(resume.trainer_variables(trainer))} "
          f"variables, checkpoint {size / 2**20:.1f} MiB, save median "
          f"{sorted(saves)[len(saves) // 2] * 1000:.0f} ms, restore median "
          f"{sorted(restores)[len(restores) // 2] * 1000:.0f} ms")


if __name__ == "__main__":
  app.run(main)
