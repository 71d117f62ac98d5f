"""Tiny generic datasets (`sets.jsonl` + `features.npz`) written by the builder tests."""

from __future__ import annotations

import json

import numpy as np

DIM = 5

# Items: (item id, category). Names sort as bed < chair < lamp < sofa -> ids 1..4.
SETS = [
    {"set_id": "s1", "split": "train", "group": "room1",
     "items": [{"item_id": "a1", "category": "sofa", "image": "img/a1.jpg"},
               {"item_id": "a2", "category": "lamp"},
               {"item_id": "a3", "category": "chair", "image": "/abs/a3.png"}]},
    {"set_id": "s2", "split": "train",
     "items": [{"item_id": "b1", "category": "bed"}, {"item_id": "a2", "category": "lamp"}]},
    {"set_id": "s3", "split": "val",
     "items": [{"item_id": "c1", "category": "chair"}, {"item_id": "c2", "category": "sofa"},
               {"item_id": "c3", "category": "bed"}]},
    {"set_id": "s4", "split": "test",
     "items": [{"item_id": "d1", "category": "lamp"}, {"item_id": "d2", "category": "bed"}]},
    # An integer set id is accepted and read as text.
    {"set_id": 5, "split": "test",
     "items": [{"item_id": "d3", "category": "sofa"}, {"item_id": "d1", "category": "lamp"}]},
]
ITEM_IDS = ["a1", "a2", "a3", "b1", "c1", "c2", "c3", "d1", "d2", "d3"]
NAMES = ("bed", "chair", "lamp", "sofa")


def _write_lines(path, lines):
  """Writes `lines` (dicts become JSON, strings are written as they are)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", encoding="utf-8") as stream:
    for line in lines:
      stream.write((line if isinstance(line, str) else json.dumps(line)) + "\n")


def _features(item_ids, seed=0):
  """[N, DIM] float16 features, away from zero so that every row can be normalised."""
  rng = np.random.default_rng(seed)
  return (rng.standard_normal((len(item_ids), DIM)) + 0.5).astype(np.float16)


def _write_dataset(folder, sets=SETS, item_ids=ITEM_IDS, features=None,
                   name="features.npz"):
  """Writes sets.jsonl and a features .npz into `folder`; returns the float16 features."""
  if features is None:
    features = _features(item_ids)
  _write_lines(folder / "sets.jsonl", sets)
  np.savez(folder / name, item_ids=np.asarray(item_ids), features=features)
  return features


def _normalised(features):
  features = np.asarray(features, np.float32)
  return features / np.linalg.norm(features, axis=1, keepdims=True)


def _replace_line(number, line):
  lines = list(SETS)
  lines[number - 1] = line
  return lines
