"""Atomic file writes: write to a temporary name in the same folder, then rename.

A crash mid-write leaves the previous file (or nothing), never a truncated file that
looks valid.
"""

from __future__ import annotations

import contextlib
import json
import os
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


@contextlib.contextmanager
def atomic_open(path: str) -> Iterator[BinaryIO]:
  """Yields a binary stream whose content replaces `path` only if the block succeeds."""
  folder = os.path.dirname(os.path.abspath(path))
  descriptor, temp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
  try:
    os.chmod(temp_path, default_mode())
    with os.fdopen(descriptor, "wb") as stream:
      yield stream
      stream.flush()
      os.fsync(stream.fileno())
    os.replace(temp_path, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(temp_path)
    raise


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
