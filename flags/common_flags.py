"""Flags shared by train_main and eval_main: data, model folder and architecture.

Readers of a trained run (eval, export, serve, index) take the architecture and the data
folder from the run's `model_config.json` (keras_models/run_config.py) when it has one:
`model_config_of_run` and `data_dir_of_run`. A flag set on the command line or in a
flagfile that contradicts the run fails naming both values.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from absl import flags

from keras_models import configs
from keras_models import data_files
from keras_models import defaults
from keras_models import run_config

_MODEL = configs.ModelConfig()

DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of shards written by "
                               "`python -m tfrecords_builder`.")
MODEL_DIR = flags.DEFINE_string("model_dir", None, "Run folder: weights, history, logs, eval.")
MODEL = flags.DEFINE_string("model", _MODEL.model, "Registered model name (cst).")
_RULE = ("Default: chosen from the number of train sets (keras_models/defaults.py, "
         "docs/training_defaults.md); a trained run's from its model_config.json.")
HIDDEN_DIM = flags.DEFINE_integer("hidden_dim", None, "Width of attention and "
                                  "feed-forward blocks. " + _RULE)
NUM_LAYERS = flags.DEFINE_integer("num_layers", None, "Transformer blocks. " + _RULE)
NUM_HEADS = flags.DEFINE_integer("num_heads", _MODEL.num_heads, "Attention heads.")
DROPOUT_RATE = flags.DEFINE_float("dropout_rate", None, "Dropout while training. " + _RULE)
TRAINABLE_SEEDS = flags.DEFINE_bool("trainable_seeds", _MODEL.trainable_seeds,
                                    "Train the category seeds (initialised from the "
                                    "category centers).")
SEED = flags.DEFINE_integer("seed", 0, "Seed of initialisation, shuffling and the "
                            "random baseline.")
EVAL_SPLIT_SEED = flags.DEFINE_integer(
    "eval_split_seed", 0, "Seed of the fixed val/test X/Y split; keep it when comparing "
    "runs of different --seed so they are scored on the same queries.")
GALLERY_CHUNK_SIZE = flags.DEFINE_integer("gallery_chunk_size",
                                          configs.GALLERY_CHUNK_SIZE,
                                          "Gallery items scored per compiled call.")


# ModelConfig field -> its flag. dropout_rate acts only while training, so a reader of
# the run may be given another value without contradicting the weights.
ARCHITECTURE = {"model": MODEL, "hidden_dim": HIDDEN_DIM, "num_layers": NUM_LAYERS,
                "num_heads": NUM_HEADS, "dropout_rate": DROPOUT_RATE,
                "trainable_seeds": TRAINABLE_SEEDS}
NOT_COMPARED = ("dropout_rate",)


def train_sets_of_data() -> int:
  """Sets in the train split of --data_dir (the input of the data-sized defaults)."""
  return data_files.load_manifest(require(DATA_DIR)).num_sets("train")


def model_config_from_flags(settings: Mapping[str, Any] | None = None) -> configs.ModelConfig:
  """The architecture named by the flags.

  Args:
    settings: Resolved values of the rule's settings (defaults.resolve); None:
      the flags left unset are chosen by the rule for --data_dir's train sets, as for a
      run trained with them.
  """
  given = {name: ARCHITECTURE[name].value for name in defaults.MODEL_SETTINGS}
  if settings is None and None in given.values():
    settings = defaults.resolve(train_sets_of_data(), given)
  if settings is not None:
    given = {name: settings[name] for name in defaults.MODEL_SETTINGS}
  return configs.ModelConfig(model=MODEL.value, num_heads=NUM_HEADS.value,
                             trainable_seeds=TRAINABLE_SEEDS.value, **given)


def require(flag_holder: flags.FlagHolder) -> str:
  """Value of a required string flag, with a clear error when it is missing."""
  if not flag_holder.value:
    raise flags.ValidationError(f"--{flag_holder.name} is required")
  return flag_holder.value


def saved_run(weights: str = "") -> run_config.RunModel | None:
  """The `model_config.json` of the run being read: beside `weights`, else in --model_dir.

  None for runs trained before the file existed (or no --model_dir): readers then use the
  architecture flags as given.
  """
  folder = os.path.dirname(os.path.abspath(weights)) if weights else (MODEL_DIR.value or "")
  return run_config.read(folder) if folder else None


def _explicit(flag_holder: flags.FlagHolder) -> bool:
  """Whether the flag was set (command line, flagfile or code) rather than defaulted."""
  return not flags.FLAGS[flag_holder.name].using_default_value


def model_config_of_run(run: run_config.RunModel | None) -> configs.ModelConfig:
  """The architecture `run` was trained with; the flags' when `run` is None.

  Raises:
    flags.ValidationError: a flag that was set contradicts the run, naming both values:
      `--hidden_dim=256 contradicts hidden_dim=128 in RUN/model_config.json ...`.
  """
  if run is None:
    return model_config_from_flags()
  for name, flag_holder in ARCHITECTURE.items():
    saved = getattr(run.model, name)
    if (name not in NOT_COMPARED and _explicit(flag_holder)
        and flag_holder.value != saved):
      raise flags.ValidationError(
          f"--{flag_holder.name}={_text(flag_holder.value)} contradicts {name}="
          f"{_text(saved)} in {run.path} (the run was trained with it); drop the flag")
  return run.model


def _text(value) -> str:
  """A flag value as typed: booleans lower-case."""
  return str(value).lower() if isinstance(value, bool) else str(value)


def data_dir_of_run(run: run_config.RunModel | None) -> str:
  """--data_dir, else the data folder `run` trained on; fails when there is neither."""
  if DATA_DIR.value:
    return DATA_DIR.value
  if run is None or not run.data_dir:
    return require(DATA_DIR)
  if not os.path.isdir(run.data_dir):
    raise flags.ValidationError(f"{run.path}: the run's data_dir {run.data_dir} does not "
                                "exist; pass --data_dir")
  return run.data_dir
