"""README.md and docs/ stay honest: relative links resolve, commands use defined flags.

Every `--flag` written after an entry point's name on the same command (a line, with its
`\\` continuation lines, up to `|`, `&&`, `;`, a `#` comment or the end of inline code) must
be a flag that entry point defines. An entry point's flags are found without running it:
the `flags.DEFINE_*` calls in the repository modules it imports, followed transitively,
plus absl's own flags. `test_static_flags_match_absl` checks that reading against absl.
"""

from __future__ import annotations

import ast
import functools
import glob
import os
import re

from absl import app  # pylint: disable=unused-import  (defines absl's app flags)
from absl import flags
from absl import logging  # pylint: disable=unused-import  (defines absl's logging flags)
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_SCRIPTS = ("train_main", "eval_main", "index_main", "serve_main", "export_main",
                 "conditional_main")
ENTRY_POINT = re.compile(
    r"(?<![\w.-])(?:(?P<script>" + "|".join(ENTRY_SCRIPTS) + r")\.py"
    r"|-m\s+(?P<module>tfrecords_builder|bench\.\w+)"
    r"|(?P<bench>bench/\w+)\.py)(?![\w.])")
COMMAND_END = re.compile(r"\||&&|;|`|\s#")
FLAG = re.compile(r"(?<![\w-])--([A-Za-z]\w*)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
IMG_SRC = re.compile(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", re.IGNORECASE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
# absl's flags that every absl program accepts (help flags are defined by app.run).
ABSL_ALWAYS = {"flagfile", "undefok", "help", "helpshort", "helpfull", "helpxml"}


def doc_files() -> list[str]:
  return [os.path.join(ROOT, "README.md")] + sorted(
      glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))


def broken_links(text: str, folder: str) -> list[str]:
  """Relative link targets in markdown `text` that do not exist below `folder`."""
  prose = FENCE.sub("", text)
  targets = LINK.findall(prose) + REFERENCE.findall(prose) + IMG_SRC.findall(prose)
  broken = []
  for target in targets:
    if re.match(r"^([a-z][a-z0-9+.-]*:|#|//)", target, re.IGNORECASE):
      continue
    path = re.split(r"[#?]", target, maxsplit=1)[0]
    if path and not os.path.exists(os.path.join(folder, path)):
      broken.append(target)
  return broken


def _module_file(name: str) -> str | None:
  """The repository file of module `name` (a package's __init__.py), or None."""
  base = os.path.join(ROOT, *name.split("."))
  for path in (base + ".py", os.path.join(base, "__init__.py")):
    if os.path.isfile(path):
      return path
  return None


@functools.lru_cache(maxsize=None)
def _parsed(path: str) -> ast.Module:
  with open(path, encoding="utf-8") as stream:
    return ast.parse(stream.read(), path)


def _imported_files(path: str) -> set[str]:
  """Repository files that `path` imports anywhere in it (function bodies included)."""
  names = []
  for node in ast.walk(_parsed(path)):
    if isinstance(node, ast.Import):
      names += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
  return {f for f in map(_module_file, names) if f}


def defines(path: str) -> tuple[set[str], set[str]]:
  """(flag names, boolean flag names) of the `flags.DEFINE_*` calls in one file."""
  names, booleans = set(), set()
  for node in ast.walk(_parsed(path)):
    if not isinstance(node, ast.Call) or not node.args:
      continue
    function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
        node.func, "id", "")
    first = node.args[0]
    if function.startswith("DEFINE_") and isinstance(first, ast.Constant) and isinstance(
        first.value, str):
      names.add(first.value)
      if function in ("DEFINE_bool", "DEFINE_boolean"):
        booleans.add(first.value)
  return names, booleans


@functools.lru_cache(maxsize=None)
def entry_flags_of(entry_file: str) -> tuple[frozenset[str], frozenset[str]] | None:
  """(flags, boolean flags) `entry_file` accepts; None when it defines no absl flags."""
  seen, pending = set(), [entry_file]
  while pending:
    path = pending.pop()
    if path not in seen:
      seen.add(path)
      pending += _imported_files(path) - seen
  names, booleans = set(), set()
  for path in seen:
    found, found_booleans = defines(path)
    names |= found
    booleans |= found_booleans
  if not names:
    return None
  absl = {f.name: f.boolean for module, module_flags in flags.FLAGS.flags_by_module_dict().items()
          if module.startswith("absl.") for f in module_flags}
  names |= set(absl) | ABSL_ALWAYS
  booleans |= {name for name, boolean in absl.items() if boolean}
  return frozenset(names), frozenset(booleans)


def _entry_file(match: re.Match) -> str:
  if match["script"]:
    return os.path.join(ROOT, match["script"] + ".py")
  if match["bench"]:
    return os.path.join(ROOT, match["bench"] + ".py")
  module = match["module"]
  return _module_file(module + ".__main__") or _module_file(module) or module


def commands(text: str) -> list[tuple[str, str, list[str]]]:
  """(entry point as written, its file, the --flags written after it) of every command."""
  joined = re.sub(r"\\\n", " ", text)
  found = []
  for line in joined.splitlines():
    matches = list(ENTRY_POINT.finditer(line))
    for i, match in enumerate(matches):
      end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
      stop = COMMAND_END.search(line, match.end(), end)
      tail = line[match.end():stop.start() if stop else end]
      found.append((match[0], _entry_file(match), FLAG.findall(tail)))
  return found


def unknown_flags(text: str) -> list[str]:
  """`entry point --flag` for every flag in `text` its entry point does not define."""
  unknown = []
  for written, entry_file, names in commands(text):
    if not os.path.isfile(entry_file):
      unknown.append(f"{written}: no such entry point")
      continue
    accepted = entry_flags_of(entry_file)
    if accepted is None:  # a script that reads sys.argv itself
      continue
    defined, booleans = accepted
    for name in names:
      negated = name.startswith("no") and name[2:] in booleans
      if name not in defined and not negated:
        unknown.append(f"{written} --{name}")
  return unknown


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_every_relative_link_resolves(path):
  with open(path, encoding="utf-8") as stream:
    assert broken_links(stream.read(), os.path.dirname(path)) == []


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_every_flag_after_an_entry_point_is_defined(path):
  with open(path, encoding="utf-8") as stream:
    assert unknown_flags(stream.read()) == []


def test_the_checks_catch_made_up_flags_and_links(tmp_path):
  text = "\n".join([
      "```",
      "python train_main.py --flagfile=experiments/ikea/cst.flags \\",
      "    --epochs=3 --made_up_flag=1   # --comment_flag is not read",
      "python -m tfrecords_builder --source=synthetic --nooverwrite --hidden_dim=8",
      "python eval_main.py --split=test | tee --append log.txt",
      "```",
      "Run `python index_main.py --backend=exact` then `serve_main.py --port=8000 "
      "--no_port`; `python -m bench.index_recall --num_items=0 --typo_items=1`.",
      "`python bench/no_such_bench.py --x=1` names a script that does not exist.",
      "[ok](docs) [missing](docs/nope.md#part) [web](https://example.com) [here](#top)",
      "![shot](img/none.png)",
      "[ref]: missing_ref.md",
  ])
  assert unknown_flags(text) == [
      "train_main.py --made_up_flag", "-m tfrecords_builder --hidden_dim",
      "serve_main.py --no_port", "-m bench.index_recall --typo_items",
      "bench/no_such_bench.py: no such entry point"]
  (tmp_path / "docs").mkdir()
  assert broken_links(text, str(tmp_path)) == ["docs/nope.md#part", "img/none.png",
                                               "missing_ref.md"]


def test_static_flags_match_absl():
  """The AST reading of each flags module finds exactly the flags absl registered."""
  for path in sorted(glob.glob(os.path.join(ROOT, "flags", "*_flags.py"))):
    module = "flags." + os.path.basename(path)[:-3]
    __import__(module)
    registered = {f.name for f in flags.FLAGS.get_flags_for_module(module)}
    assert defines(path)[0] == registered, module
  train = entry_flags_of(os.path.join(ROOT, "train_main.py"))[0]
  builder = entry_flags_of(os.path.join(ROOT, "tfrecords_builder", "__main__.py"))[0]
  assert {"epochs", "hidden_dim", "data_dir", "flagfile", "verbosity"} <= train
  assert {"input", "set_image_dir", "flagfile"} <= builder
  assert "hidden_dim" not in builder and "input" not in train
