"""Pickles of the original SetRetrieval code: `{train,validation,test}.pkl` in one folder.

Each file holds a tuple (REFERENCE.md 1.4) of N rows with P item slots per side (P = 10):
  0, 1  query / target features [N, P, D] float, zero-padded;
  2     scene ids [N], any type;
  3, 4  query / target categories [N, P] int, 0 = padding slot;
  5     set sizes [N] (zeros for DeepFurniture; shape-checked only);
  6, 7  query / target item ids [N, P] str, padding '' (DeepFurniture) or '0' (IQON3000);
  8     optional normalisation info (IQON3000; ignored).
Each row's stored X/Y split is undone (query items first, then target items) because the
builder draws its own. An optional `category_centers.pkl.gz` is only checked for its
feature dim: the original centers are recomputed from train. Loading a pickle can run
code, so only read files you trust.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import os
import pickle
from typing import Any, Callable

import numpy as np

from tfrecords_builder import raw_dataset

_SPLIT_FILES = (("train", "train.pkl"), ("val", "validation.pkl"), ("test", "test.pkl"))
_ELEMENTS = ("query features", "target features", "scene ids", "query categories",
             "target categories", "set sizes", "query item ids", "target item ids")
# Features stored twice for one item are copies of one CLIP output, up to float rounding.
_SHARED_FEATURE_ATOL = 1e-5


@dataclasses.dataclass(frozen=True)
class _SplitFile:
  path: str
  split: str
  scene_ids: list[str]
  features: tuple[np.ndarray, np.ndarray]  # Query, target: [N, P, D].
  categories: tuple[np.ndarray, np.ndarray]  # [N, P] int64, 0 = padding.
  item_ids: tuple[np.ndarray, np.ndarray]  # [N, P] object.


def _unpickle(path: str, opener: Callable[..., Any] = open) -> Any:
  try:
    with opener(path, "rb") as stream:
      return pickle.load(stream)
  except (pickle.UnpicklingError, EOFError, OSError, AttributeError, ImportError,
          IndexError, TypeError, ValueError) as error:
    raise ValueError(f"{path}: not a readable pickle ({type(error).__name__}: {error})") from None


def _as_text(value: Any) -> str:
  if isinstance(value, bytes):
    return value.decode("utf-8", errors="replace")
  return "" if value is None else str(value)


def _element(record: tuple[Any, ...], index: int, shape: tuple[int | None, ...], path: str,
             dtype: Any = None) -> np.ndarray:
  """Returns element `index` as an array of `shape` (None entries: any size)."""
  where = f"{path}: element {index} ({_ELEMENTS[index]})"
  try:
    array = np.asarray(record[index], dtype=dtype)
  except (ValueError, TypeError) as error:
    raise ValueError(f"{where} is not a rectangular array ({error})") from None
  expected = tuple(array.shape[i] if size is None and i < array.ndim else size
                   for i, size in enumerate(shape))
  if array.shape != expected:
    expected_text = str(expected).replace("None", "any")
    raise ValueError(f"{where} has shape {array.shape}, expected {expected_text}")
  return array


def _categories(array: np.ndarray, path: str, side: str) -> np.ndarray:
  """Returns [N, P] int64 category ids; raises naming the first id not an integer >= 0."""
  if np.issubdtype(array.dtype, np.integer):
    bad = array < 0
  elif np.issubdtype(array.dtype, np.floating):
    finite = np.isfinite(array)
    safe = np.where(finite, array, 0)
    bad = ~finite | (safe < 0) | (safe % 1 != 0)
  else:
    bad = np.vectorize(
        lambda v: isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0,
        otypes=[bool])(array)
  if bad.any():
    row, slot = np.argwhere(bad)[0]
    value = array[row, slot]
    value = value.item() if isinstance(value, np.generic) else value
    raise ValueError(f"{path}: row {row} {side} slot {slot}: category {value!r} is not an "
                     "integer >= 0")
  return array.astype(np.int64)


def _read_split_file(path: str, split: str) -> _SplitFile:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: split file not found")
  record = _unpickle(path)
  if not isinstance(record, (tuple, list)):
    raise ValueError(f"{path}: expected a tuple, got {type(record).__name__}")
  if len(record) < len(_ELEMENTS):
    raise ValueError(f"{path}: tuple has {len(record)} elements, expected at least 8")
  query_features = _element(record, 0, (None, None, None), path)
  n, p, d = query_features.shape
  features = (query_features, _element(record, 1, (n, p, d), path))
  if not all(np.issubdtype(array.dtype, np.floating) for array in features):
    raise ValueError(f"{path}: elements 0, 1 (features) must be float, got "
                     f"{features[0].dtype}, {features[1].dtype}")
  scene_ids = [_as_text(v) for v in _element(record, 2, (n,), path, dtype=object)]
  _element(record, 5, (n,), path)
  categories = (_categories(_element(record, 3, (n, p), path), path, "query"),
                _categories(_element(record, 4, (n, p), path), path, "target"))
  item_ids = (_element(record, 6, (n, p), path, dtype=object),
              _element(record, 7, (n, p), path, dtype=object))
  for side, side_features, side_categories in zip(("query", "target"), features, categories):
    bad = (side_categories > 0) & ~np.isfinite(side_features).all(axis=2)
    if bad.any():
      row, slot = np.argwhere(bad)[0]
      raise ValueError(f"{path}: row {row} {side} slot {slot}: feature has NaN or inf")
  return _SplitFile(path, split, scene_ids, features, categories, item_ids)


def _check_centers(path: str, dim: int) -> None:
  centers = _unpickle(path, opener=gzip.open)
  if not isinstance(centers, dict):
    raise ValueError(f"{path}: expected a dict {{category: vector}}, got {type(centers).__name__}")
  for category, vector in centers.items():
    shape = np.shape(vector)
    if shape != (dim,):
      raise ValueError(f"{path}: category {category!r}: center has shape {shape}, expected "
                       f"({dim},) like the split pickles")


def _merge_rows(files: list[_SplitFile]) -> tuple[list[raw_dataset.RawSet], list[str],
                                                 list[str], list[np.ndarray]]:
  """Returns the sets and, per item occurrence in set order, its id, origin and feature."""
  scene_counts = collections.Counter(s for f in files for s in f.scene_ids)
  sets, ids, origins, vectors = [], [], [], []
  for f in files:
    for row, scene_id in enumerate(f.scene_ids):
      items, categories = [], []
      for side, letter in ((0, "q"), (1, "t")):
        slots = np.flatnonzero(f.categories[side][row] > 0)
        for slot in slots:
          stored = _as_text(f.item_ids[side][row, slot])
          items.append(stored if stored not in ("", "0") else f"{f.split}/{row}/{letter}{slot}")
          categories.append(str(f.categories[side][row, slot]))
          origins.append(f"{f.path}: row {row} {('query', 'target')[side]} slot {slot}")
        vectors.append(f.features[side][row, slots])
      # Repeated scenes (DeepFurniture keeps identical-set scenes) may sit at the same row
      # of two files, so the suffix names the split as well as the row.
      set_id = scene_id if scene_counts[scene_id] == 1 else f"{scene_id}#{f.split}/{row}"
      sets.append(raw_dataset.RawSet(
          set_id=set_id, items=tuple(items), categories=tuple(categories), split=f.split,
          origin=f"{f.path}: row {row}"))
      ids.extend(items)
  return sets, ids, origins, vectors


def _feature_table(ids: list[str], vectors: list[np.ndarray],
                   origins: list[str]) -> tuple[np.ndarray, np.ndarray]:
  """Returns item ids [M] and features [M, D] float32, one row per id at its first use."""
  all_ids = np.array(ids, dtype=str)
  all_features = np.concatenate(vectors).astype(np.float32, copy=False)
  _, first, inverse = np.unique(all_ids, return_index=True, return_inverse=True)
  first_of_each = first[inverse.reshape(-1)]
  later = np.flatnonzero(first_of_each != np.arange(len(all_ids)))
  difference = np.zeros(len(later), np.float32)
  # Chunked so that memory stays small when most occurrences repeat an earlier item.
  for start in range(0, len(later), 8192):
    chunk = later[start:start + 8192]
    difference[start:start + 8192] = np.abs(
        all_features[chunk] - all_features[first_of_each[chunk]]).max(axis=1, initial=0)
  if np.any(difference > _SHARED_FEATURE_ATOL):
    j = later[np.argmax(difference > _SHARED_FEATURE_ATOL)]
    k = first_of_each[j]
    raise ValueError(f"{origins[j]}: item {str(all_ids[j])!r} has features that differ from "
                     f"its occurrence at {origins[k]} (atol {_SHARED_FEATURE_ATOL})")
  order = np.sort(first)
  return all_ids[order], all_features[order]


def load(input_dir: str) -> raw_dataset.RawDataset:
  """Loads the three split pickles of the original code as one dataset.

  Args:
    input_dir: Folder holding `train.pkl`, `validation.pkl`, `test.pkl` and optionally
      `category_centers.pkl.gz`.

  Returns:
    One set per row, split as stored ("validation.pkl" -> "val"); category names "1".."K"
    in id order; one feature row per distinct item id, from its first occurrence.

  Raises:
    FileNotFoundError: A split file is missing.
    ValueError: Naming the file and element for a bad layout, or the row and slot for a
      bad category, a non-finite feature, or features that differ for one item id.
  """
  files = [_read_split_file(os.path.join(input_dir, name), split) for split, name in _SPLIT_FILES]
  dim = files[0].features[0].shape[2]
  for split_file in files[1:]:
    if split_file.features[0].shape[2] != dim:
      raise ValueError(f"{split_file.path}: element 0 (query features) has dim "
                       f"{split_file.features[0].shape[2]}, but {files[0].path} has {dim}")
  centers_path = os.path.join(input_dir, "category_centers.pkl.gz")
  if os.path.isfile(centers_path):
    _check_centers(centers_path, dim)
  sets, ids, origins, vectors = _merge_rows(files)
  if not ids:
    raise ValueError(f"{input_dir}: no item slot has a category > 0")
  item_ids, features = _feature_table(ids, vectors, origins)
  num_categories = max(int(c.max(initial=0)) for f in files for c in f.categories)
  return raw_dataset.RawDataset(
      name="reference_pickles", sets=sets, item_ids=item_ids, features=features,
      features_origin=input_dir,
      category_names=tuple(str(i) for i in range(1, num_categories + 1)), synthetic=False)
