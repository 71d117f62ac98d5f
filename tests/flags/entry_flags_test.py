"""Entry points end in one `error:` line (traceback only with --verbosity=1), quietly."""

from __future__ import annotations

import os
import subprocess
import sys

from absl.testing import flagsaver
import pytest

from flags import entry_flags
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


def test_missing_weights_is_one_line_and_start_up_is_quiet(data_dir, tmp_path):
  model_dir = str(tmp_path / "never_trained")
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
