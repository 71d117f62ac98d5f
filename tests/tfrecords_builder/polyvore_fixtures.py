"""A tiny Polyvore Outfits tree in the archive's real layout, written by tests.

  <root>/polyvore_item_metadata.json, categories.csv, images/<item_id>.jpg, features.npz
  <root>/{nondisjoint,disjoint}/{train,valid,test}.json, fill_in_blank_{valid,test}.json,
      compatibility_{valid,test}.txt
Outfits hold a top, a bottom and shoes, and some a bag; item `index` values have gaps (as
in the archive, where removed items leave holes). The nondisjoint version shares two items
between train and test and reuses items across test outfits; the "disjoint" one still
shares one item between train and test, as the published audit found.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

DIM = 6
TYPES = ("tops", "bottoms", "shoes", "bags")
FINE = {"tops": ("11", "12"), "bottoms": ("21",), "shoes": ("31",), "bags": ("41",)}
FINE_NAMES = {"11": "T-Shirts", "12": "Blouses", "21": "Jeans", "31": "Sneakers", "41": "Totes"}


def _item_id(kind: str, number: int) -> str:
  return str(1000 * (TYPES.index(kind) + 1) + number)


def _outfit(set_id: str, items: list[str], gap: bool) -> dict:
  indices = [1, 2, 4, 5][:len(items)] if gap else list(range(1, len(items) + 1))
  return {"set_id": set_id, "name": f"outfit {set_id}", "likes": 3,
          "items": [{"item_id": i, "index": k} for i, k in zip(items, indices)]}


def _split_outfits(first_set: int, count: int, numbers: range, shared: dict[int, int]):
  """`count` outfits of items numbered from `numbers`; `shared` maps slot -> item number."""
  outfits = []
  for o in range(count):
    number = numbers[o]
    items = [_item_id("tops", shared.get(o, number)), _item_id("bottoms", number),
             _item_id("shoes", number)]
    if o % 2 == 0:
      items.append(_item_id("bags", number))
    outfits.append(_outfit(str(first_set + o), items, gap=o == 1))
  return outfits


def _token(outfit: dict, position: int) -> str:
  return f"{outfit['set_id']}_{outfit['items'][position]['index']}"


def _questions(outfits: list[dict], rng: np.random.Generator):
  """FITB: blank = shoes (position 2), wrong answers = shoes of 3 other outfits."""
  fitb, lines = [], []
  for o, outfit in enumerate(outfits):
    others = [outfits[(o + k) % len(outfits)] for k in (1, 2, 3)]
    answers = [_token(outfit, 2)] + [_token(other, 2) for other in others]
    rng.shuffle(answers)
    fitb.append({"question": [_token(outfit, p) for p in range(len(outfit["items"])) if p != 2],
                 "answers": answers, "blank_position": 3})
    lines.append("1 " + " ".join(_token(outfit, p) for p in range(len(outfit["items"]))))
    mixed = [_token(outfits[(o + p + 1) % len(outfits)], p) for p in range(3)]
    lines.append("0 " + " ".join(mixed))
  return fitb, lines


def write_tree(root: str) -> dict:
  """Writes the tree under `root`; returns {item_id: feature} and the outfits by version."""
  rng = np.random.default_rng(0)
  versions = {
      # Items 0..7 in train, 10..13 in val, 20..23 in test; test outfit 0 and 2 reuse
      # train tops 0 and 1, and test outfit 3 reuses test outfit 1's top.
      "nondisjoint": {"train": _split_outfits(100, 8, range(0, 8), {}),
                      "valid": _split_outfits(200, 4, range(10, 14), {}),
                      "test": _split_outfits(300, 4, range(20, 24), {0: 0, 2: 1, 3: 21})},
      "disjoint": {"train": _split_outfits(500, 8, range(0, 8), {}),
                   "valid": _split_outfits(600, 4, range(10, 14), {}),
                   "test": _split_outfits(700, 4, range(20, 24), {1: 5})},
  }
  items = sorted({i["item_id"] for v in versions.values() for outfits in v.values()
                  for o in outfits for i in o["items"]})
  metadata = {}
  for item_id in items:
    kind = TYPES[int(item_id) // 1000 - 1]
    fine = FINE[kind][int(item_id) % len(FINE[kind])]
    metadata[item_id] = {"url_name": f"item {item_id}", "description": "", "title": f"t{item_id}",
                         "catgeories": [kind], "related": [], "category_id": fine,
                         "semantic_category": kind}
  os.makedirs(os.path.join(root, "images"))
  with open(os.path.join(root, "polyvore_item_metadata.json"), "w") as stream:
    json.dump(metadata, stream)
  with open(os.path.join(root, "categories.csv"), "w") as stream:
    for fine, name in FINE_NAMES.items():
      kind = next(k for k, v in FINE.items() if fine in v)
      stream.write(f"{fine},{name},{kind}\n")
  for k, item_id in enumerate(items):
    Image.new("RGB", (4, 4), (k * 9 % 255, 80, 200)).save(
        os.path.join(root, "images", f"{item_id}.jpg"), "JPEG")
  features = rng.normal(size=(len(items), DIM)).astype(np.float32)
  np.savez(os.path.join(root, "features.npz"), item_ids=np.asarray(items), features=features)
  for version, splits in versions.items():
    folder = os.path.join(root, version)
    os.makedirs(folder)
    for split, outfits in splits.items():
      with open(os.path.join(folder, f"{split}.json"), "w") as stream:
        json.dump(outfits, stream)
      if split == "train":
        continue
      fitb, lines = _questions(outfits, rng)
      with open(os.path.join(folder, f"fill_in_blank_{split}.json"), "w") as stream:
        json.dump(fitb, stream)
      with open(os.path.join(folder, f"compatibility_{split}.txt"), "w") as stream:
        stream.write("\n".join(lines) + "\n")
  return {"features": dict(zip(items, features)), "versions": versions}
