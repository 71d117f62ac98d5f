"""Seeded FITB and compatibility questions for datasets that ship none, in the official format.

So that every dataset reports the outfit protocols of Polyvore Outfits the same way, the
shard builder writes, for val and test, questions drawn from the split's own sets:

- Positions: item k (1-based) of a set in stored order is the token `<set_id>_<k>`; an
  item that is not in the question's set is named by the first set of the split that
  holds it.
- FITB: one question per set. The blank is a uniform position b of the set; the question
  is the set's other items in stored order (`blank_position` = b + 1); the answers are
  the blank item and 3 wrong answers, distinct items of the blank's category from the
  same split that are not in the set, drawn uniformly, then the 4 answers in a uniform
  random order. A set whose blank category has fewer than 3 such items gets no question
  (counted as `fitb_skipped`).
- Compatibility: per set, the set itself (label 1) and one random outfit (label 0) that
  replaces each item by a distinct uniform item of the same category from the same split,
  never an item of the set. A set with a category lacking such items gets no negative
  (counted as `compatibility_negatives_skipped`).

A split with more than `max_sets` usable sets gets questions for a seeded uniform sample
of `max_sets` of them (the same sets for both protocols), so that scoring the questions,
which runs the model once per question and once per outfit item, costs the same at any
dataset size. A set whose id holds white space cannot be named in the compatibility
file's tokens: it gets no question and is not a candidate (counted as
`sets_with_white_space_in_id`). Draws are rejection samples from the category's items,
so the work is linear in the number of questions; the stream is
`np.random.default_rng([seed, split, kind])`.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from tfrecords_builder import dataset_builder
from tfrecords_builder import question_files

_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}
_FITB, _COMPATIBILITY, _SAMPLE = 0, 1, 2
WRONG_ANSWERS = question_files.FITB_ANSWERS - 1


class _Split:
  """Tokens, category pools and set members of one built split."""

  def __init__(self, data: dataset_builder.SplitData) -> None:
    self.data = data
    self.usable = [usable(set_id) for set_id in data.set_ids]
    self.item_token = [""] * len(data.item_ids)
    for set_id, rows, ok in zip(data.set_ids, data.set_items, self.usable):
      for position, row in enumerate(rows.tolist(), start=1):
        if not ok:
          break
        if not self.item_token[row]:
          self.item_token[row] = question_files.token(set_id, position)
    # Only items some set holds can be named by a token (a built table has no others).
    members = np.flatnonzero(np.asarray(self.item_token) != "")
    order = members[np.argsort(data.categories[members], kind="stable")]
    bounds = np.searchsorted(data.categories[order], np.arange(data.categories.max() + 2))
    self.pools = {c: order[bounds[c]:bounds[c + 1]] for c in range(1, len(bounds) - 1)}

  def draw(self, rng: np.random.Generator, category: int, count: int,
           excluded: set[int]) -> list[int] | None:
    """`count` distinct uniform rows of `category` outside `excluded`; None if too few."""
    pool = self.pools.get(category, np.zeros(0, np.int64))
    inside = sum(1 for row in excluded if self.data.categories[row] == category)
    if len(pool) - inside < count:
      return None
    chosen: list[int] = []
    taken = set(excluded)
    while len(chosen) < count:
      row = int(pool[rng.integers(len(pool))])
      if row not in taken:
        taken.add(row)
        chosen.append(row)
    return chosen


def asked(data: dataset_builder.SplitData, split: str, seed: int,
          max_sets: int) -> np.ndarray:
  """[num_sets] bool: the sets that get questions (all usable ones, or a sample)."""
  chosen = np.array([usable(set_id) for set_id in data.set_ids], bool)
  candidates = np.flatnonzero(chosen)
  if max_sets and len(candidates) > max_sets:
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split], _SAMPLE])
    chosen[:] = False
    chosen[rng.choice(candidates, size=max_sets, replace=False)] = True
  return chosen


def usable(set_id: str) -> bool:
  """Whether a set id can be written in a token (the compatibility file splits on space)."""
  return not any(c.isspace() for c in set_id)


def outfits(data: dataset_builder.SplitData) -> Iterator[question_files.Outfit]:
  """The split's usable sets as outfits, positions 1..n in stored order."""
  for set_id, rows in zip(data.set_ids, data.set_items):
    if not usable(set_id):
      continue
    yield question_files.Outfit(set_id, tuple(
        (str(data.item_ids[row]), position) for position, row in enumerate(rows, start=1)))


def fitb_questions(data: dataset_builder.SplitData, split: str, seed: int,
                   counts: dict[str, int], max_sets: int = 0
                   ) -> Iterator[question_files.FitbQuestion]:
  """One FITB question per asked set (module docstring); adds `fitb_skipped` to `counts`."""
  state = _Split(data)
  rng = np.random.default_rng([seed, _SPLIT_STREAM[split], _FITB])
  counts.setdefault("fitb_skipped", 0)
  counts.setdefault("sets_with_white_space_in_id", 0)
  chosen = asked(data, split, seed, max_sets)
  for set_id, rows, ok, ask in zip(data.set_ids, data.set_items, state.usable, chosen):
    if not ok:
      counts["sets_with_white_space_in_id"] += 1
      continue
    if not ask:
      continue
    rows = rows.tolist()
    blank = int(rng.integers(len(rows)))
    wrong = state.draw(rng, int(data.categories[rows[blank]]), WRONG_ANSWERS, set(rows))
    if wrong is None:
      counts["fitb_skipped"] += 1
      continue
    answers = [question_files.token(set_id, blank + 1)] + [state.item_token[r] for r in wrong]
    order = rng.permutation(len(answers))
    yield question_files.FitbQuestion(
        question=tuple(question_files.token(set_id, k + 1) for k in range(len(rows))
                       if k != blank),
        answers=tuple(answers[k] for k in order), blank_position=blank + 1,
        correct=int(np.flatnonzero(order == 0)[0]))


def compatibility_questions(data: dataset_builder.SplitData, split: str, seed: int,
                            counts: dict[str, int], max_sets: int = 0
                            ) -> Iterator[question_files.CompatibilityQuestion]:
  """Each asked set (label 1) and its random outfit (label 0); adds the skipped count."""
  state = _Split(data)
  rng = np.random.default_rng([seed, _SPLIT_STREAM[split], _COMPATIBILITY])
  counts.setdefault("compatibility_negatives_skipped", 0)
  chosen = asked(data, split, seed, max_sets)
  for set_id, rows, ok, ask in zip(data.set_ids, data.set_items, state.usable, chosen):
    if not ok or not ask:
      continue
    rows = rows.tolist()
    yield question_files.CompatibilityQuestion(1, tuple(
        question_files.token(set_id, k) for k in range(1, len(rows) + 1)))
    taken, negative = set(rows), []
    for row in rows:
      drawn = state.draw(rng, int(data.categories[row]), 1, taken)
      if drawn is None:
        break
      taken.add(drawn[0])
      negative.append(drawn[0])
    if len(negative) < len(rows):
      counts["compatibility_negatives_skipped"] += 1
      continue
    yield question_files.CompatibilityQuestion(0, tuple(state.item_token[r] for r in negative))
