"""Flagfile mistakes are reported with the flagfile, the line and the flag."""

from __future__ import annotations

import glob
import os

from absl import flags
from absl.testing import flagsaver
import pytest

from flags import builder_flags  # pylint: disable=unused-import
from flags import common_flags  # pylint: disable=unused-import
from flags import entry_flags
from flags import eval_flags  # pylint: disable=unused-import
from flags import train_flags  # pylint: disable=unused-import

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _flagfile(folder, name: str, *lines: str) -> str:
  path = folder / name
  path.write_text("\n".join(["# header comment", *lines]) + "\n")
  return str(path)


@pytest.mark.parametrize("line, message", [
    ("--use_cycle_los", r"bad.flags:3: unknown flag --use_cycle_los$"),
    ("--batch_size=many", r"bad.flags:3: --batch_size=many: .*int"),
    ("--use_tpaneg=maybe", r"bad.flags:3: --use_tpaneg=maybe: "),
    ("--lr_schedule=linear", r"bad.flags:3: --lr_schedule=linear: .*constant"),
    ("--epochs", r"bad.flags:3: --epochs needs a value"),
    ("epochs=3", r"bad.flags:3: 'epochs=3' is not a flag"),
])
def test_bad_line_names_file_and_line(tmp_path, line, message):
  base = _flagfile(tmp_path, "base.flags", "--epochs=3")
  bad = _flagfile(tmp_path, "bad.flags", f"--flagfile={base}", line)
  with pytest.raises(flags.Error, match=message):
    entry_flags.check_flagfiles(["--model_dir=m", f"--flagfile={bad}"])


def test_nested_flagfile_error_names_the_inner_file(tmp_path):
  inner = _flagfile(tmp_path, "inner.flags", "--epochs=3", "--hidden_dimm=8")
  outer = _flagfile(tmp_path, "outer.flags", f"--flagfile={inner}")
  with pytest.raises(flags.Error, match=r"inner.flags:3: unknown flag --hidden_dimm"):
    entry_flags.check_flagfiles([f"--flagfile={outer}"])
  missing = _flagfile(tmp_path, "missing.flags", "--flagfile=nowhere.flags")
  with pytest.raises(flags.Error, match=r"missing.flags: --flagfile=nowhere.flags: file not "):
    entry_flags.check_flagfiles([f"--flagfile={missing}"])


def test_entry_point_parser_exits_with_the_located_message(tmp_path, capsys):
  bad = _flagfile(tmp_path, "bad.flags", "--nouse_tpaneg", "--epochs=-")
  with flagsaver.flagsaver(), pytest.raises(SystemExit):
    entry_flags.parse_flags(["train_main", f"--flagfile={bad}"])
  assert f"{bad}:3: --epochs=-:" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "experiments", "**",
                                                               "*.flags"), recursive=True)),
                         ids=lambda p: os.path.relpath(p, ROOT))
def test_every_experiment_passes_the_check(path, monkeypatch):
  monkeypatch.chdir(ROOT)
  entry_flags.check_flagfiles([f"--flagfile={path}"])
