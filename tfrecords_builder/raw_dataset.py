"""In-memory form every source produces: sets of item ids plus one feature table.

Sources only parse their layout into a `RawDataset`; validation, the category vocabulary,
split assignment and shard writing live in one place (`dataset_builder.py`), so every
source gets the same checks and the same error messages.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class RawSet:
  """One set as a source read it.

  Attributes:
    set_id: Unique id of the set within the dataset.
    items: Item ids, in the order the source lists them.
    categories: Category name of each item (same length as `items`).
    split: "train", "val", "test", or None when the split is to be assigned.
    group: Sets sharing a group are kept in one split (e.g. photos of one room).
    images: Optional image path of each item ("" when unknown).
    origin: Where the set came from, for error messages ("sets.jsonl:17").
    image: Optional path of the set's own photograph (a room, an outfit), "" when none;
      collages and the browser page show it beside the query items.
  """

  set_id: str
  items: tuple[str, ...]
  categories: tuple[str, ...]
  split: str | None = None
  group: str | None = None
  images: tuple[str, ...] | None = None
  origin: str = ""
  image: str = ""


@dataclasses.dataclass(frozen=True)
class RawDataset:
  """A whole dataset: its sets and the feature table their items refer to.

  Attributes:
    name: Source name written to the manifest ("generic", "synthetic", ...).
    sets: All sets, any split.
    item_ids: [num_items] str, one row per feature vector.
    features: [num_items, dim] float array (any float dtype).
    features_origin: File (or description) of the feature table, for error messages.
    category_names: Explicit vocabulary order (ids 1..K in this order); None means the
      sorted unique category names of the sets.
    synthetic: True when the data is generated; every report labels it as such.
    questions: Official FITB / compatibility question files by split ("val", "test"),
      for sources that ship them (Polyvore Outfits); None: the builder generates them.
    report: Counts and findings of the source written to the manifest (`source_report`).
  """

  name: str
  sets: list[RawSet]
  item_ids: np.ndarray
  features: np.ndarray
  features_origin: str
  category_names: tuple[str, ...] | None = None
  synthetic: bool = False
  questions: dict[str, Any] | None = None
  report: dict[str, Any] | None = None
