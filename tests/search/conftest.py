"""A tiny SYNTHETIC data folder, an untrained (but weight-saved) CST model and its index."""

from __future__ import annotations

import dataclasses
import os

import pytest

from keras_models import configs as model_configs
from keras_models import data_files
from keras_models import weights_io
from keras_models.models import builder
from search import configs
from search import index
from tfrecords_builder import build
from tfrecords_builder import config as builder_config
from tfrecords_builder.sources import synthetic

MODEL = model_configs.ModelConfig(hidden_dim=16, num_layers=1, num_heads=2, dropout_rate=0.0)


@dataclasses.dataclass(frozen=True)
class ServedModel:
  data_dir: str
  model_dir: str
  index_dir: str
  flagfile: str


@pytest.fixture(scope="session")
def served_model(tmp_path_factory) -> ServedModel:
  root = tmp_path_factory.mktemp("served")
  data_dir, model_dir = str(root / "data"), str(root / "model")
  build.run(builder_config.BuilderConfig(
      source="synthetic", output_dir=data_dir, num_shards=1,
      synthetic=synthetic.SyntheticConfig(num_sets=120, num_categories=4, feature_dim=16,
                                          min_items=3, max_items=6)))
  manifest = data_files.load_manifest(data_dir)
  encoder = builder.build_encoder(MODEL, manifest, data_files.load_centers(manifest))
  os.makedirs(model_dir)
  encoder.save_weights(os.path.join(model_dir, weights_io.BEST_WEIGHTS))
  index_dir = configs.default_index_dir(model_dir, "exact")
  index.build(configs.IndexConfig(data_dir=data_dir, output_dir=index_dir, backend="exact",
                                  model_dir=model_dir))
  flagfile = root / "serve.flags"
  flagfile.write_text("\n".join([
      f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--backend=exact",
      f"--hidden_dim={MODEL.hidden_dim}", f"--num_layers={MODEL.num_layers}",
      f"--num_heads={MODEL.num_heads}", ""]))
  return ServedModel(data_dir, model_dir, index_dir, str(flagfile))
