"""How every entry point starts and fails: quiet TensorFlow start-up, one-line errors.

  from flags import entry_flags  # among the flags imports: before anything loads TF
  ...
  if __name__ == "__main__":
    entry_flags.run(main)

It lives in flags/ because it is the command-line half of every entry point: it parses the
flags (flagfile lines located by `common_flags.check_flagfiles`) and gives absl's
`--verbosity` its meaning for errors. It must be imported before anything that loads
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
flagfile line also ends with one `error:` line (status 1).
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Callable

from absl import app
from absl import flags
from absl import logging

from flags import common_flags

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
  if isinstance(error, (ValueError, OSError, flags.Error)) and message:
    return message
  return f"{type(error).__name__}: {message}" if message else type(error).__name__


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing whose errors are one `error:` line naming the flag (or flagfile line)."""
  try:
    common_flags.check_flagfiles(argv[1:])
    return FLAGS(argv)
  except flags.Error as error:
    sys.stderr.write(f"error: {one_line(error)} (see --helpshort)\n")
    sys.exit(EXIT_ERROR)


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
    except (app.UsageError, SystemExit, KeyboardInterrupt):
      raise
    except Exception as error:  # pylint: disable=broad-except
      if FLAGS.verbosity >= 1:
        logging.exception("%s failed", os.path.basename(sys.argv[0]))
      sys.stderr.write(f"error: {one_line(error)}\n")
      sys.exit(EXIT_ERROR)

  app.run(guarded, flags_parser=parse_flags)
