"""The model a run directory holds: `<model_dir>/model_config.json`, written by training.

As with tf-models and big_vision, where an experiment's config travels with its
checkpoint, a run folder says which encoder its weights belong to. Training writes the
resolved architecture (after any defaults chosen from the data) and the data folder it
trained on; evaluation, export and the query service rebuild the encoder from it instead of
asking for every architecture flag again. Runs written before this file existed have none,
and their readers fall back to the flags.

  {"format_version": 1, "model": {"model": "cst", "hidden_dim": 128, ...},
   "data_dir": "/abs/path/of/the/shards"}
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from keras_models import configs
from tfrecords_builder import atomic_io

MODEL_CONFIG = "model_config.json"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class RunModel:
  """What a run folder records about its encoder.

  Attributes:
    path: The `model_config.json` it was read from.
    model: The architecture the weights were trained with.
    data_dir: Absolute path of the shards the run trained on.
  """

  path: str
  model: configs.ModelConfig
  data_dir: str


def write(model_dir: str, model: configs.ModelConfig, data_dir: str) -> str:
  """Writes `<model_dir>/model_config.json` atomically; returns its path."""
  path = os.path.join(model_dir, MODEL_CONFIG)
  atomic_io.write_json(path, {"format_version": FORMAT_VERSION,
                              "model": dataclasses.asdict(model),
                              "data_dir": os.path.abspath(data_dir)})
  return path


def read(run_dir: str) -> RunModel | None:
  """The run model of `run_dir`, or None when the folder has no `model_config.json`.

  Raises:
    ValueError: the file is not JSON, or a field is missing, unknown or of the wrong type,
      naming the file and the field.
  """
  path = os.path.join(run_dir, MODEL_CONFIG)
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding="utf-8") as stream:
      raw: Any = json.load(stream)
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise ValueError(f"{path}: not valid JSON ({error})") from None
  if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
    raise ValueError(f"{path}: missing object field 'model'")
  fields = [f.name for f in dataclasses.fields(configs.ModelConfig)]
  model = raw["model"]
  unknown = sorted(set(model) - set(fields))
  if unknown:
    raise ValueError(f"{path}: model field '{unknown[0]}' is not one of {sorted(fields)}")
  defaults = configs.ModelConfig()
  values = {}
  for name in fields:
    if name not in model:
      raise ValueError(f"{path}: model field '{name}' is missing")
    value, expected = model[name], type(getattr(defaults, name))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
      value = float(value)
    if type(value) is not expected:
      raise ValueError(f"{path}: model field '{name}' must be {expected.__name__}, got "
                       f"{value!r}")
    values[name] = value
  config = configs.ModelConfig(**values)
  try:
    config.validate()
  except ValueError as error:
    raise ValueError(f"{path}: {error}") from None
  data_dir = raw.get("data_dir", "")
  if not isinstance(data_dir, str):
    raise ValueError(f"{path}: field 'data_dir' must be a string, got {data_dir!r}")
  return RunModel(path=path, model=config, data_dir=data_dir)
