"""Atomic file writes: write to a temporary name in the same folder, then rename.

A crash mid-write leaves the previous file (or nothing), never a truncated file that
looks valid. A failed write (disk full, folder not writable) raises an OSError naming the
file and saying that the previous version was kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, BinaryIO, Iterator

import numpy as np


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def default_mode(directory: bool = False) -> int:
  """Permissions a plain open()/mkdir() would give, since mkstemp/mkdtemp use 0600/0700."""
  return (0o777 if directory else 0o666) & ~_umask()


def _write_error(path: str, error: OSError) -> OSError:
  kept = "the previous file is unchanged" if os.path.exists(path) else "nothing was written"
  return OSError(error.errno, f"{path}: write failed ({error.strerror or error}); {kept}")


@contextlib.contextmanager
def atomic_open(path: str) -> Iterator[BinaryIO]:
  """Yields a binary stream whose content replaces `path` only if the block succeeds."""
  with atomic_path(path) as temp_path:
    with open(temp_path, "wb") as stream:
      yield stream
      stream.flush()
      os.fsync(stream.fileno())


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary name beside `path` (same suffix) that replaces `path` on success.

  For writers that take a file name (h5py, Keras `save_weights`).
  """
  folder = os.path.dirname(os.path.abspath(path))
  name = os.path.basename(path)
  suffix = name[name.index("."):] if "." in name else ""
  try:
    descriptor, temp_path = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=folder)
  except OSError as error:
    raise _write_error(path, error) from error
  os.close(descriptor)
  try:
    os.chmod(temp_path, default_mode())
    yield temp_path
    os.replace(temp_path, path)
  except OSError as error:
    raise _write_error(path, error) from error
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.remove(temp_path)


def check_writable_dir(path: str, what: str = "output folder") -> None:
  """Creates `path` if needed and proves a file can be written there, before any work."""
  try:
    os.makedirs(path, exist_ok=True)
    descriptor, probe = tempfile.mkstemp(prefix=".write-probe.", dir=path)
    os.close(descriptor)
    os.remove(probe)
  except OSError as error:
    raise OSError(error.errno, f"{path}: {what} is not writable "
                  f"({error.strerror or error})") from error


def write_bytes(path: str, data: bytes) -> None:
  with atomic_open(path) as stream:
    stream.write(data)


def write_text(path: str, text: str) -> None:
  write_bytes(path, text.encode("utf-8"))


def write_json(path: str, value: Any) -> None:
  write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def write_npy(path: str, array: np.ndarray) -> None:
  with atomic_open(path) as stream:
    np.save(stream, array)


def write_npz(path: str, **arrays: np.ndarray) -> None:
  with atomic_open(path) as stream:
    np.savez(stream, **arrays)


@contextlib.contextmanager
def staged_dir(output_dir: str) -> Iterator[str]:
  """Yields a new folder beside `output_dir` that replaces it when the block succeeds.

  On any error, or an interrupt, the staging folder is removed and `output_dir` is left
  as it was.
  """
  staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.building-",
                             dir=os.path.dirname(output_dir))
  try:
    os.chmod(staging, default_mode(directory=True))
    yield staging
    swap_dir_into_place(staging, output_dir)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def swap_dir_into_place(staging: str, output_dir: str) -> None:
  """Renames `staging` to `output_dir`; an old folder is removed only after the swap."""
  old = None
  if os.path.isdir(output_dir):
    old = f"{staging}.old"
    os.replace(output_dir, old)
  try:
    os.replace(staging, output_dir)
  except BaseException:
    if old:
      os.replace(old, output_dir)
    raise
  if old:
    with contextlib.suppress(OSError):
      shutil.rmtree(old)
