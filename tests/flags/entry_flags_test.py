"""Entry points end in one `error:` line (traceback only with --verbosity=1), quietly.

Bad flags, stray arguments and missing input paths included.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from absl import app
from absl.testing import flagsaver
import pytest

from flags import common_flags
from flags import entry_flags
from flags import eval_flags
from tests import tiny_data

data_dir = tiny_data.shards_fixture(num_sets=60, num_categories=3, feature_dim=8)


def _eval_main(data_dir: str, model_dir: str, *extra: str) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if k != entry_flags.LOG_LEVEL_ENV}
  return subprocess.run(
      [sys.executable, os.path.join(tiny_data.ROOT, "eval_main.py"), f"--data_dir={data_dir}",
       f"--model_dir={model_dir}", "--split=test", *extra],
      capture_output=True, text=True, env=env, cwd=tiny_data.ROOT, timeout=300, check=False)


def test_one_line_keeps_the_message_and_names_unclear_types():
  assert entry_flags.one_line(ValueError("a.h5: bad\n  details")) == "a.h5: bad"
  assert entry_flags.one_line(FileNotFoundError("x: missing")) == "x: missing"
  assert entry_flags.one_line(KeyError("cat09")) == "KeyError: 'cat09'"
  assert entry_flags.one_line(RuntimeError()) == "RuntimeError"


def test_a_bad_flag_is_one_error_line(capsys):
  with flagsaver.flagsaver(), pytest.raises(SystemExit) as exit_info:
    entry_flags.parse_flags(["train_main.py", "--no_such_flag=1"])
  assert exit_info.value.code == entry_flags.EXIT_ERROR
  assert capsys.readouterr().err == (
      "error: Unknown command line flag 'no_such_flag' (see --helpshort)\n")


def test_a_stray_argument_is_one_error_line(capsys):
  with flagsaver.flagsaver(), pytest.raises(SystemExit) as exit_info:
    entry_flags.parse_flags(["eval_main.py", "--split=test", "test"])
  assert exit_info.value.code == entry_flags.EXIT_ERROR
  assert capsys.readouterr().err == (
      "error: unexpected argument 'test'; every option is a --flag=value (see --helpshort)\n")


def test_a_usage_error_out_of_main_is_one_line(capsys, monkeypatch):
  def main(argv):
    del argv
    raise app.UsageError("--split and --gallery disagree\nsecond line")

  monkeypatch.setattr(sys, "argv", ["eval_main.py"])
  with flagsaver.flagsaver(), pytest.raises(SystemExit) as exit_info:
    entry_flags.run(main)
  assert exit_info.value.code == entry_flags.EXIT_ERROR
  assert capsys.readouterr().err.splitlines()[-1] == (
      "error: --split and --gallery disagree (see --helpshort)")


def test_missing_input_paths_are_named_by_their_flag(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "here").mkdir()
  with flagsaver.flagsaver(data_dir="here", weights="", model_dir=str(tmp_path / "nope")):
    entry_flags.check_input_paths([common_flags.DATA_DIR, eval_flags.WEIGHTS])
    with pytest.raises(FileNotFoundError, match=(
        rf"^--model_dir={re.escape(str(tmp_path))}/nope: no such file or directory$")):
      entry_flags.check_input_paths([common_flags.DATA_DIR, common_flags.MODEL_DIR])
  with flagsaver.flagsaver(data_dir="data"):
    with pytest.raises(FileNotFoundError, match=(
        rf"^--data_dir=data: no such file or directory \(relative to "
        rf"{re.escape(str(tmp_path))}\)$")):
      entry_flags.check_input_paths([common_flags.DATA_DIR])


def test_a_mistyped_builder_input_is_named_as_missing(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != entry_flags.LOG_LEVEL_ENV}
  completed = subprocess.run(
      [sys.executable, "-m", "tfrecords_builder", "--source=generic", "--input=/no/such/dir",
       f"--output_dir={tmp_path / 'out'}"],
      capture_output=True, text=True, env=env, cwd=tiny_data.ROOT, timeout=300, check=False)
  assert completed.returncode == entry_flags.EXIT_ERROR
  assert completed.stderr.strip().splitlines()[-1] == (
      "error: --input=/no/such/dir: no such file or directory"), completed.stderr
  assert not os.path.exists(tmp_path / "out")


def test_missing_weights_is_one_line_and_start_up_is_quiet(data_dir, tmp_path):
  model_dir = str(tmp_path / "never_trained")
  os.makedirs(model_dir)
  completed = _eval_main(data_dir, model_dir)
  assert completed.returncode == entry_flags.EXIT_ERROR
  lines = completed.stderr.strip().splitlines()
  assert lines[-1] == (f"error: {model_dir}/best.weights.h5: weights not found; train first "
                       "or pass --weights"), completed.stderr
  assert "Traceback" not in completed.stderr
  assert any("devices: CPU:0" in line for line in lines), completed.stderr
  if not entry_flags.HAS_NVIDIA:
    for noise in ("cuInit", "cudart_stub", "oneDNN", "absl::InitializeLog"):
      assert noise not in completed.stderr, completed.stderr
  verbose = _eval_main(data_dir, model_dir, "--verbosity=1")
  assert verbose.returncode == entry_flags.EXIT_ERROR
  assert "Traceback" in verbose.stderr
  assert verbose.stderr.strip().splitlines()[-1] == lines[-1]
