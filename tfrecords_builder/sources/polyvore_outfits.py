"""Polyvore Outfits (Vasileva et al., ECCV 2018): outfits as sets, with the official splits.

Layout (the archive's `polyvore_outfits/` folder, read as the public loader
mvasil/fashion-compatibility `polyvore_outfits.py` reads it):
  polyvore_item_metadata.json   {item_id: {"semantic_category": str (11 types),
                                 "category_id": str|int (about 150 types), "title", ...}}
  categories.csv                category_id,fine name,semantic category (optional: names
                                the fine categories)
  images/<item_id>.jpg
  <version>/{train,valid,test}.json             [{"set_id", "items": [{"item_id", "index"}]}]
  <version>/fill_in_blank_{valid,test}.json     official FITB questions
  <version>/compatibility_{valid,test}.txt      official compatibility questions
with <version> `nondisjoint` or `disjoint`.

Rules:
  1. Splits are the files' (train, valid -> val, test), never re-drawn; outfits keep the
     files' order and item order.
  2. Categories are the items' `semantic_category` (`categories="fine"`: `category_id`,
     named "<id> <name>" from categories.csv when it is there). An outfit item missing
     from the metadata, or without the category field, raises naming the file and outfit.
  3. Every item gets a feature from `--features` (keyed by item_id) or its image
     `images/<item_id>.jpg` through `--encoder`. A missing feature or image raises naming
     the item and an outfit that holds it; with `--skip_bad_images` such items are
     dropped and counted instead, and the questions that name them are left out (counted
     in questions/questions.json).
  4. The official FITB and compatibility files of valid and test are read and checked
     (4 answers, one from the question's outfit, every token an item of the split's
     outfits) and handed to the builder, which writes them beside the shards.
  5. Items shared between splits are counted and reported (a published audit found the
     "disjoint" version still shares items between train and test), never assumed absent.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from absl import logging
import numpy as np

from tfrecords_builder import json_files
from tfrecords_builder import question_files
from tfrecords_builder import raw_dataset
from tfrecords_builder.sources import image_features

VERSIONS = ("nondisjoint", "disjoint")
CATEGORY_FIELDS = {"semantic": "semantic_category", "fine": "category_id"}
METADATA = "polyvore_item_metadata.json"
CATEGORIES_CSV = "categories.csv"
# Our split name -> the archive's file stem.
SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}


def _read_metadata(root: str) -> dict[str, Any]:
  path = os.path.join(root, METADATA)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: Polyvore item metadata not found (is --input the "
                            "polyvore_outfits folder?)")
  metadata = json_files.read(path)
  if not isinstance(metadata, dict):
    raise ValueError(f"{path}: must hold an object keyed by item_id")
  return metadata


def fine_category_names(root: str) -> dict[str, str]:
  """category_id -> "<id> <name>" from categories.csv; {} when the file is absent."""
  path = os.path.join(root, CATEGORIES_CSV)
  if not os.path.isfile(path):
    return {}
  names = {}
  with open(path, encoding="utf-8", newline="") as stream:
    for number, row in enumerate(csv.reader(stream), start=1):
      if not row or (number == 1 and not row[0].strip().isdigit()):
        continue
      if len(row) < 2 or not row[0].strip():
        raise ValueError(f"{path}: line {number}: expected 'category_id,name,...', got {row}")
      names[row[0].strip()] = f"{row[0].strip()} {row[1].strip()}"
  return names


def _category(metadata: dict[str, Any], item_id: str, field: str, where: str) -> str:
  record = metadata.get(item_id)
  if record is None:
    raise ValueError(f"{where}: item_id {item_id!r} is not in {METADATA}")
  value = record.get(field) if isinstance(record, dict) else None
  if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
    raise ValueError(f"{METADATA}: item {item_id!r}: field '{field}' must be a non-empty "
                     f"string, got {value!r}")
  return str(value)


def _read_questions(folder: str, split: str, outfits: list[question_files.Outfit],
                    outfits_path: str) -> question_files.SplitQuestions:
  """The official questions of `split`, every token checked against its outfits."""
  keys = question_files.outfit_keys(outfits, outfits_path)
  stem = SPLIT_FILES[split]
  fitb_path = os.path.join(folder, question_files.fitb_name(stem))
  fitb = question_files.read_fitb(fitb_path)
  for number, question in enumerate(fitb):
    for field, tokens in (("question", question.question), ("answers", question.answers)):
      for position, text in enumerate(tokens):
        if text not in keys:
          raise ValueError(f"{fitb_path}: question {number}: {field}[{position}] {text!r} "
                           f"is not an item of any outfit in {outfits_path}")
  compatibility_path = os.path.join(folder, question_files.compatibility_name(stem))
  compatibility = question_files.read_compatibility(compatibility_path)
  for question in compatibility:
    for text in question.items:
      if text not in keys:
        raise ValueError(f"{compatibility_path}: line {question.line}: {text!r} is not an "
                         f"item of any outfit in {outfits_path}")
  return question_files.SplitQuestions(tuple(outfits), tuple(fitb), tuple(compatibility),
                                       folder)


def shared_items(items_of: dict[str, set[str]]) -> dict[str, int]:
  """Items held by both splits of each pair, e.g. {"train-test": 84, ...}."""
  names = list(items_of)
  return {f"{a}-{b}": len(items_of[a] & items_of[b])
          for i, a in enumerate(names) for b in names[i + 1:]}


def load_with_counts(root: str, options: image_features.FeatureOptions,
                     version: str = "nondisjoint", categories: str = "semantic"
                     ) -> tuple[raw_dataset.RawDataset, dict[str, Any]]:
  """Reads a Polyvore Outfits folder (see the module docstring).

  Returns:
    The dataset (with its official questions) and the report written to the manifest.
  """
  if version not in VERSIONS:
    raise ValueError(f"polyvore version must be one of {VERSIONS}, got {version!r}")
  if categories not in CATEGORY_FIELDS:
    raise ValueError(f"polyvore categories must be one of {tuple(CATEGORY_FIELDS)}, got "
                     f"{categories!r}")
  if not os.path.isdir(root):
    raise FileNotFoundError(f"{root}: Polyvore Outfits folder not found")
  folder = os.path.join(root, version)
  metadata = _read_metadata(root)
  field = CATEGORY_FIELDS[categories]
  fine_names = fine_category_names(root) if categories == "fine" else {}

  outfits_of, category_of, where_of, items_of = {}, {}, {}, {}
  for split, stem in SPLIT_FILES.items():
    path = os.path.join(folder, question_files.outfits_name(stem))
    outfits_of[split] = question_files.read_outfits(path)
    items_of[split] = set()
    for number, outfit in enumerate(outfits_of[split]):
      where = f"{path}: outfit {number} (set_id {outfit.set_id})"
      for item_id, _ in outfit.items:
        if item_id not in category_of:
          category_of[item_id] = _category(metadata, item_id, field, where)
          where_of[item_id] = where
        items_of[split].add(item_id)
  shared = shared_items(items_of)
  logging.info("%s: items shared between splits: %s", folder, shared)
  if version == "disjoint" and any(shared.values()):
    logging.warning("%s: the 'disjoint' version shares items between splits: %s", folder,
                    shared)

  candidates = list(category_of)
  image_dir = os.path.join(root, "images")
  images = [os.path.join(image_dir, f"{i}.jpg") for i in candidates]
  if options.encoder:
    missing = [i for i, p in zip(candidates, images) if not os.path.isfile(p)]
    if missing and not options.skip_bad_images:
      raise FileNotFoundError(
          f"{os.path.join(image_dir, missing[0] + '.jpg')}: image of item {missing[0]!r} "
          f"({where_of[missing[0]]}) not found; {len(missing)} images missing in all "
          "(--skip_bad_images drops and counts them)")
    images = [p if os.path.isfile(p) else "" for p in images]
  embedded = image_features.embed(candidates, images, options, root)
  kept = set(embedded.item_ids.tolist())
  dropped = [i for i in candidates if i not in kept]
  if dropped and not options.skip_bad_images:
    raise ValueError(f"{embedded.origin}: item {dropped[0]!r} ({where_of[dropped[0]]}) has "
                     f"no feature; {len(dropped)} items without one in all "
                     "(--skip_bad_images drops and counts them)")
  if dropped:
    logging.warning("%s: dropped %d items without a feature or image: %s", root,
                    len(dropped), embedded.dropped)

  def name(item_id: str) -> str:
    text = category_of[item_id]
    return fine_names.get(text, text)

  sets = []
  for split, stem in SPLIT_FILES.items():
    path = os.path.join(folder, question_files.outfits_name(stem))
    for number, outfit in enumerate(outfits_of[split]):
      items = tuple(i for i, _ in outfit.items if i in kept)
      sets.append(raw_dataset.RawSet(
          set_id=outfit.set_id, items=items, categories=tuple(name(i) for i in items),
          split=split, images=tuple(os.path.join(image_dir, f"{i}.jpg") for i in items),
          origin=f"{path}: outfit {number}"))
  questions = {split: _read_questions(folder, split, outfits_of[split],
                                      os.path.join(folder, question_files.outfits_name(
                                          SPLIT_FILES[split])))
               for split in ("val", "test")}
  report = {
      "version": version, "categories": categories,
      "outfits": {s: len(o) for s, o in outfits_of.items()},
      "items": {s: len(i) for s, i in items_of.items()},
      "items_shared_between_splits": shared,
      "items_dropped": {k.replace(" ", "_"): v for k, v in embedded.dropped.items() if v},
      "fitb_questions": {s: len(q.fitb) for s, q in questions.items()},
      "compatibility_questions": {s: len(q.compatibility) for s, q in questions.items()}}
  row_of = {item: row for row, item in enumerate(embedded.item_ids.tolist())}
  order = [i for i in candidates if i in kept]
  dataset = raw_dataset.RawDataset(
      name="polyvore_outfits", sets=sets, item_ids=np.asarray(order, dtype=str),
      features=embedded.features[np.asarray([row_of[i] for i in order], np.int64)],
      features_origin=embedded.origin, questions=questions, report=report)
  return dataset, report


def load(root: str, options: image_features.FeatureOptions, version: str = "nondisjoint",
         categories: str = "semantic") -> raw_dataset.RawDataset:
  """Reads a Polyvore Outfits folder into a RawDataset (see the module docstring)."""
  return load_with_counts(root, options, version, categories)[0]
