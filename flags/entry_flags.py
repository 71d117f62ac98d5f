"""How every entry point starts and fails: quiet TensorFlow start-up, one-line errors.

  from flags import entry_flags  # among the flags imports: before anything loads TF
  ...
  if __name__ == "__main__":
    entry_flags.run(main)

It lives in flags/ because it is the command-line half of every entry point: it parses the
flags (flagfile lines located by `check_flagfiles`), checks that the input paths given by
flags exist (`check_input_paths`) and gives absl's `--verbosity` its meaning for errors. It
defines no flags itself, so an entry point accepts exactly the flags of the `*_flags`
modules it imports. It must be imported before anything that loads
TensorFlow: importing it loads TF and lists its devices with the process's stderr captured,
then writes back every captured line except the start-up noise that says nothing on this
machine (`BENIGN`: the oneDNN and CPU-instruction notices, absl's pre-init warning, and,
where there is no NVIDIA device, the CUDA stub warning and the cuInit error). TF 2.21
prints those through absl before TF_CPP_MIN_LOG_LEVEL applies, so the variable alone cannot
hide them; it is still set (3 without an NVIDIA device, 2 with one: TF's C++ errors stay
visible). A TF_CPP_MIN_LOG_LEVEL set by the user turns all of this off (0 shows everything).
Each run logs, at INFO, the devices TF found (`devices: CPU:0, GPU:0`), so a GPU that is
missing is seen there.

An exception out of `main` ends the process with exit status 1 and one line on stderr,
`error: <message>`; with `--verbosity=1` the traceback is logged first. A bad flag or
flagfile line, an unknown flag and a stray positional argument also end with one `error:`
line (status 1), never absl's multi-line usage text.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable, NoReturn

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS
LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
NVIDIA_DEVICE = "/dev/nvidiactl"
EXIT_ERROR = 1

HAS_NVIDIA = os.path.exists(NVIDIA_DEVICE)
# Substrings of TF's start-up lines that are dropped (see module docstring).
BENIGN = ("All log messages before absl::InitializeLog() is called",
          "oneDNN custom operations are on", "cpu_feature_guard.cc",
          "To enable the following instructions") + (() if HAS_NVIDIA else (
              "Could not find cuda drivers", "failed call to cuInit"))


def _load_tensorflow_quietly() -> list[str]:
  """Imports TF and lists its devices, stderr filtered by BENIGN; returns the device names."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      devices = tf.config.list_physical_devices()
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      for line in captured.read().decode("utf-8", "replace").splitlines():
        if not any(noise in line for noise in BENIGN):
          sys.stderr.write(line + "\n")
  return _names(devices)


def _names(devices) -> list[str]:
  """`CPU:0`-style names of `tf.config.list_physical_devices()`."""
  return [d.name.replace("/physical_device:", "") for d in devices]


if LOG_LEVEL_ENV in os.environ:
  DEVICES = None
else:
  os.environ[LOG_LEVEL_ENV] = "2" if HAS_NVIDIA else "3"
  DEVICES = _load_tensorflow_quietly()


def one_line(error: BaseException) -> str:
  """The first line of `error`'s message; the type is named where the message alone is unclear."""
  lines = str(error).strip().splitlines()
  message = lines[0] if lines else ""
  if isinstance(error, (ValueError, OSError, flags.Error, app.UsageError)) and message:
    return message
  return f"{type(error).__name__}: {message}" if message else type(error).__name__


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


def _usage_error(message: str) -> NoReturn:
  """Ends the process with one `error:` line about the command line (status 1)."""
  sys.stderr.write(f"error: {message} (see --helpshort)\n")
  sys.exit(EXIT_ERROR)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing whose errors are one `error:` line naming the flag (or flagfile line).

  Positional arguments are refused here too: no entry point takes any, and one is usually
  a mistyped flag (`--use_cycle_loss true`: a boolean takes no separate value; `–split=test`
  with a dash a word processor changed).
  """
  try:
    check_flagfiles(argv[1:])
    remaining = FLAGS(argv)
  except flags.Error as error:
    _usage_error(one_line(error))
  if len(remaining) > 1:
    _usage_error(f"unexpected argument {remaining[1]!r}; every option is a --flag=value")
  return remaining


def check_input_paths(flag_holders: list[flags.FlagHolder]) -> None:
  """Fails naming the flag of the first given path that does not exist.

  Every entry point calls it with its `*_flags.input_path_flags()` before any work;
  without it a mistyped path is reported later as another one (the folder above it, or
  the working folder). Flags left empty are not checked.

  Raises:
    FileNotFoundError: `--input=/no/such/dir: no such file or directory`; relative paths
      add the working folder they were looked up in.
  """
  for holder in flag_holders:
    path = holder.value
    if path and not os.path.exists(path):
      where = "" if os.path.isabs(path) else f" (relative to {os.getcwd()})"
      raise FileNotFoundError(f"--{holder.name}={path}: no such file or directory{where}")


def log_devices() -> None:
  """Logs the devices TensorFlow found (lists them now where the import did not)."""
  names = DEVICES
  if names is None:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    names = _names(tf.config.list_physical_devices())
  gpus = any(name.startswith("GPU") for name in names)
  logging.info("devices: %s%s", ", ".join(names), "" if gpus else " (no GPU visible)")


def run(main: Callable[[list[str]], None]) -> None:
  """`app.run(main)` with this module's flag parsing, device log and one-line errors."""

  def guarded(argv: list[str]) -> None:
    try:
      log_devices()
      main(argv)
    except app.UsageError as error:
      _usage_error(one_line(error))
    except (SystemExit, KeyboardInterrupt):
      raise
    except Exception as error:  # pylint: disable=broad-except
      if FLAGS.verbosity >= 1:
        logging.exception("%s failed", os.path.basename(sys.argv[0]))
      sys.stderr.write(f"error: {one_line(error)}\n")
      sys.exit(EXIT_ERROR)

  app.run(guarded, flags_parser=parse_flags)
