"""Our `flags/` package must never shadow absl's `flags`: import it as `from flags import x`."""

from __future__ import annotations

import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FORBIDDEN = re.compile(r"^\s*import flags(\.|\s|$)|^\s*from flags\.", re.MULTILINE)


def _python_files() -> list[str]:
  listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True,
                          text=True, check=False).stdout.split()
  if not listed:
    listed = [os.path.relpath(os.path.join(d, f), ROOT) for d, _, files in os.walk(ROOT)
              for f in files if f.endswith(".py") and ".venv" not in d]
  return listed


def test_no_module_imports_flags_package_directly():
  offenders = []
  for path in _python_files():
    with open(os.path.join(ROOT, path), encoding="utf-8") as stream:
      if FORBIDDEN.search(stream.read()):
        offenders.append(path)
  assert not offenders, f"use `from flags import x_flags`: {offenders}"


def test_flag_modules_are_named_flags():
  modules = [f for f in os.listdir(os.path.join(ROOT, "flags")) if f.endswith(".py")]
  assert all(f == "__init__.py" or f.endswith("_flags.py") for f in modules), modules


def test_library_code_does_not_read_flags():
  offenders = []
  for path in _python_files():
    if path.startswith(("keras_models/", "tfrecords_builder/", "search/")) and not path.endswith("__main__.py"):
      with open(os.path.join(ROOT, path), encoding="utf-8") as stream:
        if "FLAGS." in stream.read():
          offenders.append(path)
  assert not offenders, offenders
