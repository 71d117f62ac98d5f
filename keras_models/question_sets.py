"""Reads a split's question files (`<data_dir>/questions/`) as rows of its item table.

The shard builder writes, beside the shards, FITB and compatibility questions in the
Polyvore Outfits format (`tfrecords_builder.question_files`): official files where the
dataset ships them, else generated with a seed. Here every `<set_id>_<index>` token is
mapped, through the split's outfits file, to an item id and then to its row in
`items-<split>.npz`, so the protocols can gather features by row. A token that names no
outfit position, or an item that is not in the item table, raises naming the file, the
question and the token.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from keras_models import data_files
from tfrecords_builder import question_files
from tfrecords_builder import question_writer


@dataclasses.dataclass(frozen=True)
class FitbRows:
  """FITB questions as item-table rows.

  Attributes:
    offsets: [Q + 1] int64 CSR offsets of each question's set into `rows`.
    rows: [total] int64 item rows of the question sets.
    answers: [Q, A] int64 item rows of the answers.
    correct: [Q] int64 index of the correct answer.
  """

  offsets: np.ndarray
  rows: np.ndarray
  answers: np.ndarray
  correct: np.ndarray

  def __len__(self) -> int:
    return len(self.correct)


@dataclasses.dataclass(frozen=True)
class CompatibilityRows:
  """Compatibility outfits as item-table rows: CSR `offsets` [O + 1], `rows`, `labels` [O]."""

  offsets: np.ndarray
  rows: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class SplitQuestions:
  """One split's questions; `label` is "official" or "generated (seed N)"."""

  fitb: FitbRows
  compatibility: CompatibilityRows
  label: str
  provenance: dict


def folder(data_dir: str) -> str:
  return os.path.join(data_dir, question_files.FOLDER)


def available(data_dir: str, split: str) -> bool:
  """Whether the shards in `data_dir` have question files for `split`."""
  path = folder(data_dir)
  return all(os.path.isfile(os.path.join(path, name)) for name in (
      question_files.PROVENANCE, question_files.outfits_name(split),
      question_files.fitb_name(split), question_files.compatibility_name(split)))


class _Resolver:
  """Token -> item-table row, with errors that name the file and the record."""

  def __init__(self, outfits_path: str, table: data_files.ItemTable) -> None:
    self.outfits_path = outfits_path
    self.keys = question_files.outfit_keys(question_files.read_outfits(outfits_path),
                                           outfits_path)
    self.row_of = {item_id: row for row, item_id in enumerate(table.item_ids.tolist())}

  def rows(self, tokens, where: str) -> list[int]:
    found = []
    for text in tokens:
      item_id = self.keys.get(text)
      if item_id is None:
        raise ValueError(f"{where}: {text!r} is not an item of any outfit in "
                         f"{self.outfits_path}")
      if item_id not in self.row_of:
        raise ValueError(f"{where}: {text!r} is item {item_id!r}, which is not in the "
                         "split's item table (rebuild the shards and their questions)")
      found.append(self.row_of[item_id])
    return found


def _csr(groups: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
  offsets = np.concatenate([[0], np.cumsum([len(g) for g in groups])]).astype(np.int64)
  rows = np.fromiter((r for g in groups for r in g), np.int64, count=int(offsets[-1]))
  return offsets, rows


def load(data_dir: str, split: str, table: data_files.ItemTable) -> SplitQuestions:
  """Reads the questions of `split` as rows of `table` (that split's item table).

  Raises:
    FileNotFoundError: a question file is missing.
    ValueError: a malformed file, or a token that does not resolve (file, record, token).
  """
  path = folder(data_dir)
  provenance = question_files.read_provenance(path)
  resolver = _Resolver(os.path.join(path, question_files.outfits_name(split)), table)
  fitb_path = os.path.join(path, question_files.fitb_name(split))
  sets, answers, correct = [], [], []
  for number, question in enumerate(question_files.read_fitb(fitb_path)):
    where = f"{fitb_path}: question {number}"
    sets.append(resolver.rows(question.question, where))
    answers.append(resolver.rows(question.answers, where))
    correct.append(question.correct)
  offsets, rows = _csr(sets)
  fitb = FitbRows(offsets, rows,
                  np.asarray(answers, np.int64).reshape(len(answers),
                                                        question_files.FITB_ANSWERS),
                  np.asarray(correct, np.int64))
  compatibility_path = os.path.join(path, question_files.compatibility_name(split))
  outfits, labels = [], []
  for question in question_files.read_compatibility(compatibility_path):
    outfits.append(resolver.rows(question.items, f"{compatibility_path}: line {question.line}"))
    labels.append(question.label)
  offsets, rows = _csr(outfits)
  return SplitQuestions(fitb, CompatibilityRows(offsets, rows, np.asarray(labels, np.int64)),
                        question_writer.label(provenance), provenance)
