"""Flags shared by train_main and eval_main: data, model folder and architecture."""

from __future__ import annotations

import os

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
GALLERY_CHUNK_SIZE = flags.DEFINE_integer("gallery_chunk_size",
                                          configs.GALLERY_CHUNK_SIZE,
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


def _flagfile_lines(path: str, seen: tuple[str, ...]) -> list[tuple[str, int, str]]:
  """(path, line number, argument) of every flag in `path` and the flagfiles it includes."""
  if path in seen:
    raise flags.Error(f"{seen[-1]}: --flagfile={path} includes itself")
  if not os.path.isfile(path):
    where = f"{seen[-1]}: " if seen else ""
    raise flags.Error(f"{where}--flagfile={path}: file not found (paths are relative to the "
                      "working folder; run from the repository root)")
  found = []
  with open(path, encoding="utf-8") as stream:
    for number, line in enumerate(stream, start=1):
      text = line.strip()
      if not text or text.startswith(("#", "//")):
        continue
      if text.startswith("--flagfile="):
        found += _flagfile_lines(text.split("=", 1)[1], (*seen, path))
      else:
        found.append((path, number, text))
  return found


def check_flagfiles(argv: list[str]) -> None:
  """Checks every line of the flagfiles in `argv` against the defined flags.

  absl reports an unknown flag or a bad value without saying which flagfile and line it
  came from; this names them: `experiments/x.flags:3: --epochs=ten: ...`.

  Raises:
    flags.Error: naming the flagfile, the line and the flag.
  """
  for argument in argv:
    if not argument.startswith("--flagfile="):
      continue
    for path, number, text in _flagfile_lines(argument.split("=", 1)[1], ()):
      where = f"{path}:{number}"
      if not text.startswith("-"):
        raise flags.Error(f"{where}: {text!r} is not a flag (expected --name=value)")
      name, has_value, value = text.lstrip("-").partition("=")
      if name not in flags.FLAGS and name.startswith("no") and name[2:] in flags.FLAGS:
        if flags.FLAGS[name[2:]].boolean and not has_value:
          continue
      if name not in flags.FLAGS:
        raise flags.Error(f"{where}: unknown flag --{name}")
      flag = flags.FLAGS[name]
      if not has_value:
        if flag.boolean:
          continue
        raise flags.Error(f"{where}: --{name} needs a value (--{name}=...)")
      try:
        flag.parser.parse(value)
      except (ValueError, TypeError, flags.Error) as error:
        raise flags.Error(f"{where}: --{name}={value}: {error}") from None

