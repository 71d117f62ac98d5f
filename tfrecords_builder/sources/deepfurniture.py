"""DeepFurniture scenes: one set of furniture identities per rendered scene.

Layout (the uncompressed `byliu/DeepFurniture` dataset):
  furnitures/**/<furniture_id>.{jpg,jpeg,png}   preview image of each identity
  scenes/<scene_id>/annotation.json             {"scene": {"sceneTaskID": ...}, "instances":
      [{"identityID": int|str, "categoryID": int, "categoryName"?: str}, ...]}
  metadata/furnitures.jsonl                     optional; {"furniture_id", "category_id"}
  metadata/categories.json                      optional; category names by id

Rules, in order (the counts after each step are logged and returned by `load_with_counts`):
  1. Scene folders are read in sorted order; one without annotation.json is skipped and
     counted (an incomplete download); malformed JSON raises naming the file and field.
  2. Instances of one identityID in a scene are one item (4 identical chairs -> 1 item).
     An item's category is the categoryID of its first instance (scenes in sorted order);
     a later, different categoryID is counted as a conflict and ignored.
  3. With metadata/furnitures.jsonl, items it does not list are dropped (as the original).
  4. Items without a feature are dropped: absent from `--features`, or, with `--encoder`,
     without an image file (or, with `--skip_bad_images`, with an unreadable one). Only
     items of scenes that still have 4 items are encoded.
  5. Scenes keep 4..20 items.
  6. A scene whose item set is a strict subset of another's is dropped, and of identical
     sets only the first scene id (sorted) is kept (`remove_subsets`, index-based).
  7. Sets carry group = sceneTaskID (else the scene id) and no split, so the builder's
     seeded 70/15/15 draw by group applies (`--split_seed`); items are shared across
     splits, as in the paper.

Category names (ids 1..K in id order): metadata/categories.json, else the categoryName of
the annotations, else category_name in furnitures.jsonl, else GUESSED_CATEGORY_NAMES.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from typing import Sequence

from absl import logging
import numpy as np

from tfrecords_builder import json_files
from tfrecords_builder import raw_dataset
from tfrecords_builder.sources import image_features

MIN_ITEMS = 4
MAX_ITEMS = 20
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# The first-commit README of the original code; the dataset does not confirm it (a guess).
GUESSED_CATEGORY_NAMES = {
    1: "cabinet_shelf", 2: "table", 3: "chair_stool", 4: "lamp", 5: "door", 6: "bed",
    7: "sofa", 8: "plant", 9: "decoration", 10: "curtain", 11: "home_appliance"}


@dataclasses.dataclass(frozen=True)
class Scene:
  scene_id: str
  group: str
  items: tuple[str, ...]
  origin: str


def read_scenes(scenes_dir: str, counts: collections.Counter
                ) -> tuple[list[Scene], dict[str, int], dict[int, str]]:
  """Reads every `<scene_id>/annotation.json` under `scenes_dir`.

  Returns:
    Scenes (sorted by id, items deduplicated), the category id of each item, and the
    categoryName of each category id seen in the annotations.
  """
  scenes, category_of, names = [], {}, {}
  for key in ("scenes_without_annotation", "instances", "duplicate_instances",
              "category_conflicts"):
    counts.setdefault(key, 0)
  for scene_id in sorted(os.listdir(scenes_dir)):
    folder = os.path.join(scenes_dir, scene_id)
    path = os.path.join(folder, "annotation.json")
    if not os.path.isdir(folder):
      continue
    if not os.path.isfile(path):
      counts["scenes_without_annotation"] += 1
      continue
    record = json_files.read(path)
    if not isinstance(record, dict) or not isinstance(record.get("instances"), list):
      raise ValueError(f"{path}: field 'instances' must be a list")
    scene = record.get("scene")
    task = scene.get("sceneTaskID") if isinstance(scene, dict) else None
    group = scene_id if task is None else json_files.identity(task, path, "scene.sceneTaskID")
    items, seen = [], set()
    for index, instance in enumerate(record["instances"]):
      where = f"{path}: instances[{index}]"
      if not isinstance(instance, dict):
        raise ValueError(f"{where}: must be an object, got {type(instance).__name__}")
      item = json_files.identity(instance.get("identityID"), where, "identityID")
      category = instance.get("categoryID")
      if isinstance(category, bool) or not isinstance(category, int):
        raise ValueError(f"{where}: field 'categoryID' must be an int, got {category!r}")
      counts["instances"] += 1
      if item in seen:
        counts["duplicate_instances"] += 1
        continue
      items.append(item)
      seen.add(item)
      if category_of.setdefault(item, category) != category:
        counts["category_conflicts"] += 1
      name = instance.get("categoryName")
      if isinstance(name, str) and name.strip():
        names.setdefault(category, name.strip())
    scenes.append(Scene(scene_id, group, tuple(items), path))
  counts["scenes_read"] = len(scenes)
  return scenes, category_of, names


def read_furnitures(path: str) -> tuple[set[str], dict[int, str]]:
  """Reads furnitures.jsonl: the listed furniture ids and any category names by id."""
  listed, names = set(), {}
  with open(path, "rb") as stream:
    for number, line in enumerate(stream, start=1):
      if not line.strip():
        continue
      where = f"{path}:{number}"
      try:
        record = json.loads(line.decode("utf-8"))
      except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{where}: not valid JSON ({error})") from None
      if not isinstance(record, dict):
        raise ValueError(f"{where}: a furniture must be a JSON object")
      listed.add(json_files.identity(record.get("furniture_id"), where, "furniture_id"))
      name = record.get("category_name", record.get("categoryName"))
      if isinstance(record.get("category_id"), int) and isinstance(name, str) and name.strip():
        names.setdefault(record["category_id"], name.strip())
  return listed, names


def read_category_names(path: str) -> dict[int, str]:
  """Reads categories.json: {id: name | {"name": ...}} or [{"id": .., "name": ..}, ...]."""
  record = json_files.read(path)
  if isinstance(record, dict):
    entries = list(record.items())
  elif isinstance(record, list) and all(isinstance(e, dict) for e in record):
    entries = [(next((e[k] for k in ("id", "categoryID", "category_id") if k in e), None), e)
               for e in record]
  else:
    raise ValueError(f"{path}: expected an object or a list of objects")
  names = {}
  for key, value in entries:
    if isinstance(value, dict):
      value = next((value[k] for k in ("name", "categoryName", "category_name") if k in value),
                   None)
    if not str(key).isdigit() or not isinstance(value, str) or not value.strip():
      raise ValueError(f"{path}: entry {key!r}: expected an integer id and a name")
    names[int(key)] = value.strip()
  return names


def find_images(folder: str) -> dict[str, str]:
  """Maps file stem -> path for every image under `folder` (first in sorted order wins)."""
  found = {}
  for dirpath, dirnames, filenames in os.walk(folder):
    dirnames.sort()
    for name in sorted(filenames):
      stem, extension = os.path.splitext(name)
      if extension.lower() in IMAGE_EXTENSIONS:
        found.setdefault(stem, os.path.join(os.path.abspath(dirpath), name))
  return found


def remove_subsets(item_sets: Sequence[frozenset[str]], set_ids: Sequence[str]
                   ) -> tuple[list[int], int, int]:
  """Drops sets contained in another set, without comparing all pairs.

  Sets are visited largest first (ties by id), so every kept set visited earlier is at
  least as large; a set is dropped when the posting lists (item -> kept sets) of all its
  items intersect, i.e. some kept set holds all its items. Of identical sets the first id
  is kept; a strict subset of a dropped set is also a strict subset of a kept one.

  Returns:
    Sorted indices of the kept sets, the number of strict subsets and of duplicates dropped.
  """
  order = sorted(range(len(item_sets)), key=lambda i: (-len(item_sets[i]), set_ids[i]))
  postings = collections.defaultdict(list)
  kept, strict, duplicate = [], 0, 0
  for i in order:
    lists = sorted((postings.get(item, []) for item in item_sets[i]), key=len)
    common = set(lists[0]) if lists else set()
    for other in lists[1:]:
      if not common:
        break
      common.intersection_update(other)
    if common:
      if any(len(item_sets[j]) == len(item_sets[i]) for j in common):
        duplicate += 1
      else:
        strict += 1
      continue
    kept.append(i)
    for item in item_sets[i]:
      postings[item].append(i)
  return sorted(kept), strict, duplicate


def _keep_items(scenes: list[Scene], keep: set[str]) -> list[Scene]:
  return [dataclasses.replace(s, items=tuple(i for i in s.items if i in keep)) for s in scenes]


def _vocabulary(ids: list[int], sources: list[dict[int, str]], root: str) -> dict[int, str]:
  """Name of each category id: the first source that names it, else the guess."""
  names = {}
  for category in ids:
    name = next((s[category] for s in sources if category in s),
                GUESSED_CATEGORY_NAMES.get(category, f"category_{category}"))
    names[category] = name
  repeated = [n for n, c in collections.Counter(names.values()).items() if c > 1]
  if repeated:
    raise ValueError(f"{root}: category name {repeated[0]!r} is used by several category ids "
                     f"({sorted(c for c, n in names.items() if n == repeated[0])})")
  if len(ids) != len(GUESSED_CATEGORY_NAMES):
    logging.warning("%s: %d categories (the paper has %d)", root, len(ids),
                    len(GUESSED_CATEGORY_NAMES))
  return names


def load_with_counts(root: str, options: image_features.FeatureOptions
                     ) -> tuple[raw_dataset.RawDataset, dict[str, int]]:
  """Reads a DeepFurniture folder; returns the dataset and the count after each rule."""
  scenes_dir = os.path.join(root, "scenes")
  if not os.path.isdir(scenes_dir):
    raise FileNotFoundError(f"{scenes_dir}: scenes folder not found")
  counts = collections.Counter()
  scenes, category_of, annotation_names = read_scenes(scenes_dir, counts)
  counts["items"] = len(category_of)
  logging.info("%s: %d scenes (%d without annotation.json skipped), %d instances, %d items "
               "(%d repeated instances merged, %d category conflicts)", root,
               counts["scenes_read"], counts["scenes_without_annotation"], counts["instances"],
               counts["items"], counts["duplicate_instances"], counts["category_conflicts"])

  jsonl_names = {}
  furnitures_path = os.path.join(root, "metadata", "furnitures.jsonl")
  if os.path.isfile(furnitures_path):
    listed, jsonl_names = read_furnitures(furnitures_path)
    counts["items_not_in_furnitures_jsonl"] = len(set(category_of) - listed)
    scenes = _keep_items(scenes, listed)
    logging.info("%s: dropped %d items not in %s", root,
                 counts["items_not_in_furnitures_jsonl"], furnitures_path)

  images_dir = os.path.join(root, "furnitures")
  if os.path.isdir(images_dir):
    images = find_images(images_dir)
  elif options.encoder:
    raise FileNotFoundError(f"{images_dir}: furniture image folder not found")
  else:
    images = {}
  candidates = sorted({i for s in scenes if len(s.items) >= MIN_ITEMS for i in s.items})
  embedded = image_features.embed(candidates, [images.get(i, "") for i in candidates],
                                  options, root)
  for reason, count in embedded.dropped.items():
    counts[f"items_{reason.replace(' ', '_')}"] = count
  scenes = _keep_items(scenes, set(embedded.item_ids.tolist()))
  logging.info("%s: %d of %d items of scenes with >= %d items have a feature (dropped: %s)",
               root, len(embedded.item_ids), len(candidates), MIN_ITEMS, embedded.dropped)

  counts["scenes_too_small"] = sum(len(s.items) < MIN_ITEMS for s in scenes)
  counts["scenes_too_large"] = sum(len(s.items) > MAX_ITEMS for s in scenes)
  scenes = [s for s in scenes if MIN_ITEMS <= len(s.items) <= MAX_ITEMS]
  logging.info("%s: %d scenes with %d..%d items (%d smaller, %d larger dropped)", root,
               len(scenes), MIN_ITEMS, MAX_ITEMS, counts["scenes_too_small"],
               counts["scenes_too_large"])

  kept, counts["scenes_strict_subset"], counts["scenes_duplicate"] = remove_subsets(
      [frozenset(s.items) for s in scenes], [s.scene_id for s in scenes])
  scenes = [scenes[i] for i in kept]
  if not scenes:
    raise ValueError(f"{root}: no scene has {MIN_ITEMS}..{MAX_ITEMS} items with features")
  item_ids = sorted({i for s in scenes for i in s.items})
  counts["scenes_kept"], counts["items_kept"] = len(scenes), len(item_ids)
  logging.info("%s: kept %d scenes and %d items (%d strict subsets and %d duplicate scenes "
               "dropped)", root, len(scenes), len(item_ids), counts["scenes_strict_subset"],
               counts["scenes_duplicate"])

  sources = [annotation_names, jsonl_names]
  categories_path = os.path.join(root, "metadata", "categories.json")
  if os.path.isfile(categories_path):
    sources.insert(0, read_category_names(categories_path))
  names = _vocabulary(sorted({category_of[i] for i in item_ids}), sources, root)
  sets = [raw_dataset.RawSet(
      set_id=s.scene_id, items=s.items,
      categories=tuple(names[category_of[i]] for i in s.items), group=s.group,
      images=tuple(images.get(i, "") for i in s.items) if images else None, origin=s.origin)
          for s in scenes]
  row_of = {item: row for row, item in enumerate(embedded.item_ids.tolist())}
  rows = np.asarray([row_of[i] for i in item_ids], np.int64)
  dataset = raw_dataset.RawDataset(
      name="deepfurniture", sets=sets, item_ids=np.asarray(item_ids, dtype=str),
      features=embedded.features[rows], features_origin=embedded.origin,
      category_names=tuple(names[c] for c in sorted(names)))
  return dataset, dict(counts)


def load(root: str, options: image_features.FeatureOptions) -> raw_dataset.RawDataset:
  """Reads a DeepFurniture folder into a RawDataset (see the module docstring)."""
  return load_with_counts(root, options)[0]
