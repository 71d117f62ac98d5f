"""Generic set files: `sets.jsonl` (one set per line) plus `features.npz`.

Line format:
  {"set_id": str, "split"?: "train"|"val"|"test", "group"?: str, "image"?: str,
   "items": [{"item_id": str, "category": str, "image"?: str}, ...]}
`features.npz` holds `item_ids` [N] str and `features` [N, D] of any float dtype.
The set's "image" is its own photograph (the room, the outfit), the item's "image" the
product photo. Image paths are taken relative to the folder of `sets.jsonl`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from tfrecords_builder import raw_dataset
from tfrecords_builder import feature_table

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _require_str(value: Any, where: str, field: str) -> str:
  if isinstance(value, bool) or not isinstance(value, (str, int)):
    raise ValueError(f"{where}: field '{field}' must be a string, got {type(value).__name__}")
  text = str(value)
  if not text:
    raise ValueError(f"{where}: field '{field}' is empty")
  try:
    text.encode("utf-8")
  except UnicodeEncodeError:
    raise ValueError(f"{where}: field '{field}' is not valid Unicode (a lone surrogate "
                     f"escape such as \\ud800): {text!r}") from None
  return text


def _image_path(record: dict, where: str, base_dir: str) -> str:
  """The optional "image" field of `record`, relative paths taken from `base_dir`."""
  image = record.get("image", "")
  if image is None:
    image = ""
  if not isinstance(image, str):
    raise ValueError(f"{where}: field 'image' must be a string, got {type(image).__name__}")
  if image and not os.path.isabs(image):
    image = os.path.join(base_dir, image)
  return image


def _parse_item(item: Any, where: str, base_dir: str) -> tuple[str, str, str]:
  if not isinstance(item, dict):
    raise ValueError(f"{where}: item must be an object, got {type(item).__name__}")
  for key in ("item_id", "category"):
    if key not in item:
      raise ValueError(f"{where}: item is missing field '{key}'")
  item_id = _require_str(item["item_id"], where, "item_id")
  category = _require_str(item["category"], where, "category")
  return item_id, category, _image_path(item, where, base_dir)


def parse_set_line(line: str, where: str, base_dir: str) -> raw_dataset.RawSet:
  """Parses one `sets.jsonl` line into a RawSet; raises ValueError naming `where`."""
  try:
    record = json.loads(line)
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise ValueError(f"{where}: not valid JSON ({error.msg if hasattr(error, 'msg') else error})") from None
  except RecursionError:
    raise ValueError(f"{where}: JSON nested too deeply") from None
  if not isinstance(record, dict):
    raise ValueError(f"{where}: a set must be a JSON object, got {type(record).__name__}")
  if "set_id" not in record:
    raise ValueError(f"{where}: missing field 'set_id'")
  set_id = _require_str(record["set_id"], where, "set_id")
  where = f"{where} (set {set_id!r})"
  split = record.get("split")
  if split is not None and split not in raw_dataset.SPLITS:
    raise ValueError(f"{where}: field 'split' is {split!r}, expected one of {raw_dataset.SPLITS}")
  group = record.get("group")
  if group is not None:
    group = _require_str(group, where, "group")
  items = record.get("items")
  if not isinstance(items, list):
    raise ValueError(f"{where}: field 'items' must be a list")
  parsed = [_parse_item(item, f"{where} item {i}", base_dir) for i, item in enumerate(items)]
  ids = [p[0] for p in parsed]
  if len(set(ids)) != len(ids):
    duplicate = next(i for i in ids if ids.count(i) > 1)
    raise ValueError(f"{where}: item {duplicate!r} appears twice in the set")
  images = tuple(p[2] for p in parsed)
  return raw_dataset.RawSet(
      set_id=set_id, items=tuple(ids), categories=tuple(p[1] for p in parsed),
      split=split, group=group, images=images if any(images) else None, origin=where,
      image=_image_path(record, where, base_dir))


def read_sets(sets_path: str) -> list[raw_dataset.RawSet]:
  """Reads every line of `sets_path`; blank lines are skipped, duplicate set ids raise."""
  if not os.path.isfile(sets_path):
    raise FileNotFoundError(f"{sets_path}: sets file not found")
  base_dir = os.path.dirname(os.path.abspath(sets_path))
  sets = []
  seen: dict[str, int] = {}
  with open(sets_path, "rb") as stream:
    for line_number, raw_line in enumerate(stream, start=1):
      where = f"{sets_path}:{line_number}"
      try:
        line = raw_line.decode("utf-8")
      except UnicodeDecodeError:
        raise ValueError(f"{where}: line is not valid UTF-8") from None
      if not line.strip():
        continue
      parsed = parse_set_line(line, where, base_dir)
      if parsed.set_id in seen:
        raise ValueError(
            f"{where}: duplicate set_id {parsed.set_id!r} (first on line {seen[parsed.set_id]})")
      seen[parsed.set_id] = line_number
      sets.append(parsed)
  if not sets:
    raise ValueError(f"{sets_path}: no sets in file")
  return sets


def _images_in(image_dir: str) -> dict[str, str]:
  """Image files of `image_dir` by stem and by full name ("a.jpg" is found as "a" too)."""
  if not os.path.isdir(image_dir):
    raise FileNotFoundError(f"{image_dir}: image folder not found")
  found = {}
  for name in sorted(os.listdir(image_dir)):
    stem, extension = os.path.splitext(name)
    if extension.lower() in IMAGE_EXTENSIONS:
      path = os.path.join(os.path.abspath(image_dir), name)
      found[name] = path
      found.setdefault(stem, path)
  return found


def attach_images(sets: list[raw_dataset.RawSet], image_dir: str) -> list[raw_dataset.RawSet]:
  """Fills missing item images with `<image_dir>/<item_id>.{jpg,jpeg,png}` where present."""
  found = _images_in(image_dir)
  result = []
  for raw_set in sets:
    images = list(raw_set.images or [""] * len(raw_set.items))
    images = [image or found.get(item, "") for image, item in zip(images, raw_set.items)]
    result.append(dataclasses.replace(raw_set, images=tuple(images) if any(images) else None))
  return result


def attach_set_images(sets: list[raw_dataset.RawSet],
                      set_image_dir: str) -> list[raw_dataset.RawSet]:
  """Fills missing set photos with `<set_image_dir>/<set_id>[.jpg|.jpeg|.png]` where present.

  A set id that is itself a file name ("room-17.jpg", as IKEA's are) matches that file.
  """
  found = _images_in(set_image_dir)
  return [raw_set if raw_set.image else dataclasses.replace(
      raw_set, image=found.get(raw_set.set_id, "")) for raw_set in sets]


def load(input_path: str, features_path: str | None = None, image_dir: str | None = None,
         set_image_dir: str | None = None) -> raw_dataset.RawDataset:
  """Loads a generic dataset.

  Args:
    input_path: A `sets.jsonl` file, or a folder holding `sets.jsonl` and one `*.npz`.
    features_path: The features `.npz`; default: `features.npz` beside the sets file, or
      the only `.npz` there.
    image_dir: Optional folder of `<item_id>.jpg|jpeg|png` for items without "image".
    set_image_dir: Optional folder of `<set_id>.jpg|jpeg|png` for sets without "image".

  Raises:
    FileNotFoundError: `input_path` does not exist (named as given).
  """
  if not os.path.exists(input_path):
    raise FileNotFoundError(f"{input_path}: no such file or directory")
  sets_path = input_path
  if os.path.isdir(input_path):
    sets_path = os.path.join(input_path, "sets.jsonl")
  if features_path is None:
    features_path = feature_table.find_npz(os.path.dirname(os.path.abspath(sets_path)))
  item_ids, features = feature_table.load_npz(features_path)
  sets = read_sets(sets_path)
  if image_dir:
    sets = attach_images(sets, image_dir)
  if set_image_dir:
    sets = attach_set_images(sets, set_image_dir)
  return raw_dataset.RawDataset(
      name="generic", sets=sets, item_ids=item_ids, features=features,
      features_origin=features_path)
