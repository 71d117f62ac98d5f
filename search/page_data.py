"""What the browser page shows of a data folder: sets, items, images and eval outputs.

The page shows ids, categories and photos, never features, so only those arrays of each
split's item table (`items-<split>.npz`) are read: at IQON3000 size (670,000 items of
512 float32) the features alone would be 1.4 GB. Items and sets are found through sorted
id arrays (`np.searchsorted`), not Python dicts of every row, so the memory held is the
arrays themselves.

Image paths in the item tables are absolute. Item photos are served relative to their
common folder, set photos (rooms, outfits) relative to theirs; page.py answers a file
request only when it resolves inside that folder.
"""

from __future__ import annotations

import csv
import os
import random
from typing import Any

import numpy as np

from keras_models import data_files
from search import completion
from search import id_lookup

# Arrays of an item table the page reads (not "features").
PAGE_ARRAYS = ("item_ids", "categories", "images", "set_ids", "set_offsets", "set_items",
               "set_images")
EVAL_SUFFIXES = (".png", ".jpg", ".txt", ".csv", ".json")
MAX_LISTED_SETS = 100
ITEM_IMAGES_URL = "/images/"
SET_IMAGES_URL = "/set-images/"


def _common_folder(paths: np.ndarray) -> str | None:
  """The deepest folder holding every non-empty path, or None when all are empty."""
  folders = {os.path.dirname(p) for p in np.unique(paths) if p}
  return os.path.commonpath(sorted(folders)) if folders else None


def _url(prefix: str, root: str | None, path: str) -> str | None:
  if not path or root is None:
    return None
  return prefix + os.path.relpath(path, root).replace(os.sep, "/")


class PageData:
  """The sets and items of every split of a data folder, for the page.

  Args:
    manifest: The data folder's manifest.
    model_dir: Run folder whose `eval/<split>/` outputs the evaluation view shows.
  """

  def __init__(self, manifest: data_files.Manifest, model_dir: str) -> None:
    self.model_dir = model_dir
    self.category_names = tuple(manifest.categories)
    self.tables = {split: data_files.load_table_columns(manifest, split, PAGE_ARRAYS)
                   for split in manifest.splits}
    self._set_rows = {split: id_lookup.IdLookup(table["set_ids"])
                      for split, table in self.tables.items()}
    # Every split's items, concatenated in manifest order (the split tables keep none):
    # an item in several splits is found at its first row.
    sizes = [len(t["item_ids"]) for t in self.tables.values()]
    self._offsets = dict(zip(self.tables, np.cumsum([0] + sizes[:-1]).tolist()))
    self._item_ids = np.concatenate([t.pop("item_ids").astype(str)
                                     for t in self.tables.values()])
    self._item_categories = np.concatenate([t.pop("categories")
                                            for t in self.tables.values()])
    self._item_images = np.concatenate([t.pop("images").astype(str)
                                        for t in self.tables.values()])
    self._item_rows = id_lookup.IdLookup(self._item_ids)
    self.image_root = _common_folder(self._item_images)
    self.set_image_root = _common_folder(np.concatenate(
        [t["set_images"].astype(str) for t in self.tables.values()]))

  @property
  def splits(self) -> list[str]:
    return sorted(self.tables)

  def item(self, item_id: str) -> dict[str, Any]:
    """{"item_id", "category", "image_url" (None without image)}; ApiError when unknown."""
    row = self._item_rows.row(item_id)
    if row is None:
      raise completion.ApiError(404, "ids", f"unknown item id {item_id!r}")
    return {"item_id": item_id,
            "category": self.category_names[int(self._item_categories[row]) - 1],
            "image_url": _url(ITEM_IMAGES_URL, self.image_root, str(self._item_images[row]))}

  def _table(self, split: str) -> dict[str, np.ndarray]:
    if split not in self.tables:
      raise completion.ApiError(404, "split", f"no split {split!r}; have "
                                f"{', '.join(self.splits)}")
    return self.tables[split]

  def find_sets(self, split: str, query: str, limit: int) -> list[str]:
    """Ids of the first `limit` sets of `split` whose id contains `query`."""
    set_ids = self._table(split)["set_ids"].astype(str)
    matches = np.flatnonzero(np.char.find(set_ids, query) >= 0)
    return [str(set_ids[i]) for i in matches[:max(0, min(limit, MAX_LISTED_SETS))]]

  def random_set(self, split: str) -> str:
    return str(random.choice(self._table(split)["set_ids"]))

  def set_detail(self, split: str, set_id: str) -> dict[str, Any]:
    """{"split", "set_id", "image_url" (the set's photo or None), "items": [item, ...]}."""
    table = self._table(split)
    row = self._set_rows[split].row(set_id)
    if row is None:
      raise completion.ApiError(404, "set_id", f"no set {set_id!r} in split {split!r}")
    start, end = table["set_offsets"][row], table["set_offsets"][row + 1]
    members = self._item_ids[self._offsets[split] + table["set_items"][start:end]]
    return {"split": split, "set_id": set_id,
            "image_url": _url(SET_IMAGES_URL, self.set_image_root,
                              str(table["set_images"][row])),
            "items": [self.item(str(i)) for i in members]}

  def evaluation(self) -> dict[str, Any]:
    """Per split with eval outputs: the summary rows, the text table and the figure names."""
    result = {}
    folder = os.path.join(self.model_dir, "eval")
    for split in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
      names = sorted(n for n in os.listdir(os.path.join(folder, split))
                     if n.endswith(EVAL_SUFFIXES))
      entry: dict[str, Any] = {"figures": [n for n in names if n.endswith((".png", ".jpg"))]}
      if "results_summary.csv" in names:
        with open(os.path.join(folder, split, "results_summary.csv"), encoding="utf-8") as f:
          entry["summary"] = list(csv.reader(f))
      if "percentage_table.txt" in names:
        with open(os.path.join(folder, split, "percentage_table.txt"), encoding="utf-8") as f:
          entry["table"] = f.read()
      result[split] = entry
    return result
