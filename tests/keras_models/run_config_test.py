"""`<model_dir>/model_config.json`: written atomically by training, read back with checks."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from keras_models import configs
from keras_models import run_config

MODEL = configs.ModelConfig(hidden_dim=48, num_layers=3, num_heads=4, dropout_rate=0.25,
                            trainable_seeds=True)


def test_round_trip_records_the_absolute_data_folder(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = run_config.write(str(tmp_path), MODEL, "shards")
  assert path == str(tmp_path / run_config.MODEL_CONFIG)
  assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no temp file left
  with open(path, encoding="utf-8") as stream:
    raw = json.load(stream)
  assert raw == {"format_version": 1, "model": dataclasses.asdict(MODEL),
                 "data_dir": str(tmp_path / "shards")}
  run = run_config.read(str(tmp_path))
  assert run == run_config.RunModel(path=path, model=MODEL, data_dir=str(tmp_path / "shards"))


def test_a_run_without_the_file_reads_as_none(tmp_path):
  assert run_config.read(str(tmp_path)) is None
  assert run_config.read(str(tmp_path / "missing")) is None


def _written(tmp_path, content) -> str:
  path = tmp_path / run_config.MODEL_CONFIG
  path.write_text(content if isinstance(content, str) else json.dumps(content))
  return str(tmp_path)


def _model(**changes):
  return {"model": dict(dataclasses.asdict(MODEL), **changes), "data_dir": "/d"}


@pytest.mark.parametrize("content, message", [
    ("{not json", r"model_config\.json: not valid JSON"),
    ({"data_dir": "/d"}, r"model_config\.json: missing object field 'model'"),
    (_model(hidden_size=3), r"model field 'hidden_size' is not one of"),
    ({"model": {"model": "cst"}}, r"model field 'hidden_dim' is missing"),
    (_model(hidden_dim="128"), r"model field 'hidden_dim' must be int, got '128'"),
    (_model(trainable_seeds=1), r"model field 'trainable_seeds' must be bool, got 1"),
    (_model(num_heads=5), r"model_config\.json: hidden_dim \(48\) must be divisible by "
                          r"num_heads \(5\)"),
    (_model(model="nope"), r"model_config\.json: .*nope"),
    (dict(_model(), data_dir=7), r"field 'data_dir' must be a string, got 7"),
])
def test_bad_files_name_the_file_and_field(tmp_path, content, message):
  with pytest.raises(ValueError, match=message):
    run_config.read(_written(tmp_path, content))


def test_integral_dropout_reads_as_float(tmp_path):
  run = run_config.read(_written(tmp_path, _model(dropout_rate=0)))
  assert run.model.dropout_rate == 0.0 and isinstance(run.model.dropout_rate, float)
