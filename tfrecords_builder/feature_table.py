"""Reads and checks `features.npz` tables (`item_ids` [N] str, `features` [N, D] float)."""

from __future__ import annotations

import glob
import os
import zipfile

import numpy as np

# Rows per block of `check_finite`.
_BLOCK_ROWS = 65536


def find_npz(folder: str) -> str:
  """Returns `features.npz` in `folder`, else its only `.npz` file."""
  default = os.path.join(folder, "features.npz")
  if os.path.isfile(default):
    return default
  found = sorted(glob.glob(os.path.join(folder, "*.npz")))
  if len(found) != 1:
    raise FileNotFoundError(
        f"{folder}: expected features.npz or exactly one .npz file, found {len(found)}; "
        "pass --features")
  return found[0]


def load_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
  """Loads and validates a feature table.

  Returns:
    item_ids [N] str and features [N, D] float32.

  Raises:
    FileNotFoundError, ValueError: naming the file, the key and, for bad values, the row.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: features file not found")
  if not zipfile.is_zipfile(path):
    raise ValueError(f"{path}: not a readable .npz file (not a zip archive)")
  try:
    with np.load(path, allow_pickle=False) as data:
      files = data.files
      arrays = {key: data[key] for key in ("item_ids", "features") if key in files}
  except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
    raise ValueError(f"{path}: not a readable .npz file ({error})") from None
  missing = [key for key in ("item_ids", "features") if key not in arrays]
  if missing:
    raise ValueError(f"{path}: missing array(s) {missing}; found {files}")
  item_ids = arrays["item_ids"]
  features = arrays["features"]
  if item_ids.ndim != 1:
    raise ValueError(f"{path}: 'item_ids' must be 1-D, got shape {item_ids.shape}")
  if features.ndim != 2:
    raise ValueError(f"{path}: 'features' must be [N, D], got shape {features.shape}")
  if not np.issubdtype(features.dtype, np.floating):
    raise ValueError(f"{path}: 'features' must be a float array, got {features.dtype}")
  if len(item_ids) != len(features):
    raise ValueError(
        f"{path}: {len(item_ids)} item_ids but {len(features)} feature rows")
  item_ids = item_ids.astype(str)
  unique, counts = np.unique(item_ids, return_counts=True)
  if np.any(counts > 1):
    raise ValueError(f"{path}: item_id {str(unique[counts > 1][0])!r} appears "
                     f"{counts[counts > 1][0]} times")
  features = features.astype(np.float32)
  check_finite(features, item_ids, path)
  return item_ids, features


def check_finite(features: np.ndarray, item_ids: np.ndarray, origin: str) -> None:
  """Raises ValueError naming the first item whose feature has NaN or inf."""
  # Row blocks: a [N, D] bool temporary is hundreds of MB at 10^6 items.
  bad_rows = np.concatenate([
      start + np.flatnonzero(~np.isfinite(features[start:start + _BLOCK_ROWS]).all(axis=1))
      for start in range(0, len(features), _BLOCK_ROWS)] + [np.zeros(0, np.int64)])
  if len(bad_rows):
    row = bad_rows[0]
    raise ValueError(
        f"{origin}: feature of item {str(item_ids[row])!r} (row {row}) has NaN or inf "
        f"({len(bad_rows)} bad rows in all)")
