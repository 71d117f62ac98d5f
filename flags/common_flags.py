"""Flags shared by train_main and eval_main: data, model folder and architecture."""

from __future__ import annotations

from absl import flags

from keras_models import configs

_MODEL = configs.ModelConfig()

DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of shards written by "
                               "`python -m tfrecords_builder`.")
MODEL_DIR = flags.DEFINE_string("model_dir", None, "Run folder: weights, history, logs, eval.")
MODEL = flags.DEFINE_string("model", _MODEL.model, "Registered model name (cst).")
HIDDEN_DIM = flags.DEFINE_integer("hidden_dim", _MODEL.hidden_dim, "Width of attention and "
                                  "feed-forward blocks.")
NUM_LAYERS = flags.DEFINE_integer("num_layers", _MODEL.num_layers, "Transformer blocks.")
NUM_HEADS = flags.DEFINE_integer("num_heads", _MODEL.num_heads, "Attention heads.")
DROPOUT_RATE = flags.DEFINE_float("dropout_rate", _MODEL.dropout_rate, "Dropout while training.")
TRAINABLE_SEEDS = flags.DEFINE_bool("trainable_seeds", _MODEL.trainable_seeds,
                                    "Train the category seeds (initialised from the "
                                    "category centers).")
SEED = flags.DEFINE_integer("seed", 0, "Seed of initialisation, shuffling and the "
                            "random baseline.")
EVAL_SPLIT_SEED = flags.DEFINE_integer(
    "eval_split_seed", 0, "Seed of the fixed val/test X/Y split; keep it when comparing "
    "runs of different --seed so they are scored on the same queries.")
GALLERY_CHUNK_SIZE = flags.DEFINE_integer("gallery_chunk_size", 65536,
                                          "Gallery items scored per compiled call.")


def model_config_from_flags() -> configs.ModelConfig:
  """The architecture named by the flags."""
  return configs.ModelConfig(
      model=MODEL.value, hidden_dim=HIDDEN_DIM.value, num_layers=NUM_LAYERS.value,
      num_heads=NUM_HEADS.value, dropout_rate=DROPOUT_RATE.value,
      trainable_seeds=TRAINABLE_SEEDS.value)


def require(flag_holder: flags.FlagHolder) -> str:
  """Value of a required string flag, with a clear error when it is missing."""
  if not flag_holder.value:
    raise flags.ValidationError(f"--{flag_holder.name} is required")
  return flag_holder.value
