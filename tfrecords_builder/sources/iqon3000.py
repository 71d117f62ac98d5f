"""IQON3000 outfits: one set of fashion items per coordinate (outfit) of a user.

Layout:
  <root>/<user_id>/<coordinate_id>/<coordinate_id>.json   {"items": [{"itemId": int|str,
      "category x color" | "categoryName" | "category": {"name"}: str, "imgUrl": str,
      "itemName": str, ...}, ...]}
  <root>/<user_id>/<coordinate_id>/<itemId>_m.jpg         the item's image

Rules, in order (the counts after each step are logged and returned by `load_with_counts`):
  1. Users and coordinates are read in sorted order (numeric ids numerically), never in
     listdir order. A coordinate folder without its json is skipped and counted; malformed
     JSON raises naming the file and field.
  2. Each itemId lives only in its first coordinate; later occurrences are dropped and
     counted (the first coordinate keeps the item even if it is dropped later).
  3. An item's image is `<itemId>_m.jpg` beside the json, else the file named like the
     basename of its imgUrl there, else none.
  4. Items without a feature are dropped: absent from `--features`, or, with `--encoder`,
     without an image (or, with `--skip_bad_images`, with an unreadable one). No
     placeholder image is ever used.
  5. Coordinates keep >= 4 items.
  6. The class is the declared category text mapped by `iqon_categories` (no brand or
     item-name overrides); texts the table does not know become "others", and the most
     frequent of them are reported.
  7. Split by user, seeded: users are permuted with `seed` and a user's sets go to train
     while fewer than 70 % of the sets are assigned, to val while fewer than 80 %, else to
     test (about 70/10/20 of sets). Since items are in one coordinate, splits share no item.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Any

from absl import logging
import numpy as np

from tfrecords_builder import json_files
from tfrecords_builder import raw_dataset
from tfrecords_builder.sources import image_features
from tfrecords_builder.sources import iqon_categories

MIN_ITEMS = 4
TRAIN_UNTIL, VAL_UNTIL = 0.70, 0.80
TOP_UNKNOWN = 20


@dataclasses.dataclass(frozen=True)
class Coordinate:
  user_id: str
  coordinate_id: str
  items: tuple[str, ...]
  origin: str


@dataclasses.dataclass(frozen=True)
class Item:
  category_text: str
  image: str


def sort_key(name: str) -> tuple[int, int, str]:
  """Numeric names in numeric order, then the others in text order."""
  return (0, int(name), name) if name.isdigit() else (1, 0, name)


def _subfolders(folder: str) -> list[str]:
  return sorted((n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n))),
                key=sort_key)


def _read_items(path: str) -> list[tuple[str, dict[str, Any]]]:
  record = json_files.read(path)
  if not isinstance(record, dict) or not isinstance(record.get("items"), list):
    raise ValueError(f"{path}: field 'items' must be a list")
  items = []
  for index, item in enumerate(record["items"]):
    where = f"{path}: items[{index}]"
    if not isinstance(item, dict):
      raise ValueError(f"{where}: must be an object, got {type(item).__name__}")
    item_id = json_files.identity(item.get("itemId"), where, "itemId")
    if not isinstance(item.get("imgUrl", ""), (str, type(None))):
      raise ValueError(f"{where}: field 'imgUrl' must be a string")
    items.append((item_id, item))
  return items


def read_coordinates(root: str, counts: collections.Counter
                     ) -> tuple[list[Coordinate], dict[str, Item]]:
  """Reads every coordinate under `root`, each item in its first coordinate only."""
  coordinates, items = [], {}
  for key in ("users", "coordinates_without_json", "items_read", "items_repeated"):
    counts.setdefault(key, 0)
  for user_id in _subfolders(root):
    counts["users"] += 1
    for coordinate_id in _subfolders(os.path.join(root, user_id)):
      folder = os.path.join(root, user_id, coordinate_id)
      path = os.path.join(folder, f"{coordinate_id}.json")
      if not os.path.isfile(path):
        counts["coordinates_without_json"] += 1
        continue
      files = set(os.listdir(folder))
      kept = []
      for item_id, record in _read_items(path):
        counts["items_read"] += 1
        if item_id in items:
          counts["items_repeated"] += 1
          continue
        image = f"{item_id}_m.jpg"
        if image not in files:
          image = os.path.basename(record.get("imgUrl") or "")
        image = os.path.join(os.path.abspath(folder), image) if image in files else ""
        items[item_id] = Item(iqon_categories.category_text(record), image)
        kept.append(item_id)
      coordinates.append(Coordinate(user_id, coordinate_id, tuple(kept), path))
  counts["coordinates_read"] = len(coordinates)
  return coordinates, items


def assign_user_splits(sets_per_user: dict[str, int], seed: int) -> dict[str, str]:
  """Split of each user: seeded order, train until 70 % of sets, val until 80 %, test."""
  users = sorted(sets_per_user, key=sort_key)
  total = sum(sets_per_user.values())
  splits, assigned = {}, 0
  for index in np.random.default_rng(seed).permutation(len(users)):
    fraction = assigned / total
    splits[users[index]] = ("train" if fraction < TRAIN_UNTIL else
                            "val" if fraction < VAL_UNTIL else "test")
    assigned += sets_per_user[users[index]]
  return splits


def unknown_category_report(texts: collections.Counter, top: int = TOP_UNKNOWN) -> str:
  """`'text' x count` of the most frequent unknown category texts, most frequent first."""
  shown = ", ".join(f"{text or '<missing>'!r} x {count}" for text, count in
                    sorted(texts.items(), key=lambda kv: (-kv[1], kv[0]))[:top])
  more = f" and {len(texts) - top} more" if len(texts) > top else ""
  return shown + more


def load_with_counts(root: str, options: image_features.FeatureOptions, seed: int = 0
                     ) -> tuple[raw_dataset.RawDataset, dict[str, int], collections.Counter]:
  """Reads an IQON3000 folder.

  Returns:
    The dataset, the count after each rule, and the unknown category texts with their
    item counts.
  """
  if not os.path.isdir(root):
    raise FileNotFoundError(f"{root}: IQON3000 folder not found")
  counts = collections.Counter()
  coordinates, items = read_coordinates(root, counts)
  logging.info("%s: %d users, %d coordinates (%d without json skipped), %d items read, %d "
               "repeats of an earlier coordinate's item dropped", root, counts["users"],
               counts["coordinates_read"], counts["coordinates_without_json"],
               counts["items_read"], counts["items_repeated"])

  candidates = [i for c in coordinates if len(c.items) >= MIN_ITEMS for i in c.items]
  embedded = image_features.embed(candidates, [items[i].image for i in candidates], options,
                                  root)
  for reason, count in embedded.dropped.items():
    counts[f"items_{reason.replace(' ', '_')}"] = count
  has_feature = set(embedded.item_ids.tolist())
  logging.info("%s: %d of %d items of coordinates with >= %d items have a feature "
               "(dropped: %s)", root, len(has_feature), len(candidates), MIN_ITEMS,
               embedded.dropped)

  coordinates = [dataclasses.replace(c, items=tuple(i for i in c.items if i in has_feature))
                 for c in coordinates]
  counts["coordinates_too_small"] = sum(len(c.items) < MIN_ITEMS for c in coordinates)
  coordinates = [c for c in coordinates if len(c.items) >= MIN_ITEMS]
  if not coordinates:
    raise ValueError(f"{root}: no coordinate has {MIN_ITEMS} items with features")
  item_ids = [i for c in coordinates for i in c.items]
  counts["coordinates_kept"], counts["items_kept"] = len(coordinates), len(item_ids)
  logging.info("%s: kept %d coordinates with >= %d items (%d dropped) and %d items", root,
               len(coordinates), MIN_ITEMS, counts["coordinates_too_small"], len(item_ids))

  class_of, unknown = {}, collections.Counter()
  for item_id in item_ids:
    text = items[item_id].category_text
    class_of[item_id] = iqon_categories.classify(text)
    if class_of[item_id] is None:
      class_of[item_id] = "others"
      unknown[text] += 1
  counts["items_unknown_category"] = sum(unknown.values())
  if unknown:
    logging.warning("%s: %d items (%d distinct category texts) not in the IQON category "
                    "table became 'others': %s", root, counts["items_unknown_category"],
                    len(unknown), unknown_category_report(unknown))

  split_of = assign_user_splits(
      collections.Counter(c.user_id for c in coordinates), seed)
  sets = [raw_dataset.RawSet(
      set_id=f"{c.user_id}/{c.coordinate_id}", items=c.items,
      categories=tuple(class_of[i] for i in c.items), split=split_of[c.user_id],
      group=c.user_id, images=tuple(items[i].image for i in c.items), origin=c.origin)
          for c in coordinates]
  row_of = {item: row for row, item in enumerate(embedded.item_ids.tolist())}
  rows = np.asarray([row_of[i] for i in item_ids], np.int64)
  dataset = raw_dataset.RawDataset(
      name="iqon3000", sets=sets, item_ids=np.asarray(item_ids, dtype=str),
      features=embedded.features[rows], features_origin=embedded.origin,
      category_names=iqon_categories.CLASS_NAMES)
  return dataset, dict(counts), unknown


def load(root: str, options: image_features.FeatureOptions, seed: int = 0
         ) -> raw_dataset.RawDataset:
  """Reads an IQON3000 folder into a RawDataset (see the module docstring)."""
  return load_with_counts(root, options, seed)[0]
