"""The outfit-protocol question files in the Polyvore Outfits layout: read, check, write.

Polyvore Outfits (Vasileva et al., ECCV 2018) ships its fill-in-the-blank (FITB) and
compatibility questions as files that name items by outfit position; every dataset we
build gets its questions in the same three files per split, beside the shards, under
`questions/` (see `question_generation` and the Polyvore source):

  <split>.json                 [{"set_id": str, "items": [{"item_id": str, "index": int}]}]
                               the outfits whose positions the questions name
  fill_in_blank_<split>.json   [{"question": [token], "answers": [token] (4),
                                 "blank_position": int}]
  compatibility_<split>.txt    one outfit a line: a label (1 real, 0 random), then tokens

A token is `<set_id>_<index>`: item `index` of outfit `set_id` (split at the last "_",
so set ids may hold underscores). The correct FITB answer is the one whose set id is the
question's, as in the official loader (mvasil/fashion-compatibility). `questions.json`
says where the questions came from (official files or generated with a seed).

Every reader error names the file, the record (question number from 0, or line number
from 1) and what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterable

from tfrecords_builder import atomic_io
from tfrecords_builder import json_files

FOLDER = "questions"
PROVENANCE = "questions.json"
FITB_ANSWERS = 4


def outfits_name(split: str) -> str:
  return f"{split}.json"


def fitb_name(split: str) -> str:
  return f"fill_in_blank_{split}.json"


def compatibility_name(split: str) -> str:
  return f"compatibility_{split}.txt"


@dataclasses.dataclass(frozen=True)
class Outfit:
  """One outfit of an outfits file: its id and (item_id, index) pairs."""

  set_id: str
  items: tuple[tuple[str, int], ...]


@dataclasses.dataclass(frozen=True)
class FitbQuestion:
  """One FITB question: the outfit's other items, the candidate answers, the blank."""

  question: tuple[str, ...]
  answers: tuple[str, ...]
  blank_position: int
  correct: int


@dataclasses.dataclass(frozen=True)
class CompatibilityQuestion:
  """One compatibility outfit: 1 for a real outfit, 0 for a random one."""

  label: int
  items: tuple[str, ...]
  line: int = 0


@dataclasses.dataclass(frozen=True)
class SplitQuestions:
  """The question files of one split as read (official files of a source)."""

  outfits: tuple[Outfit, ...]
  fitb: tuple[FitbQuestion, ...]
  compatibility: tuple[CompatibilityQuestion, ...]
  origin: str


def token(set_id: str, index: int) -> str:
  return f"{set_id}_{index}"


def parse_token(text: Any, where: str) -> tuple[str, int]:
  """(set_id, index) of a `<set_id>_<index>` token; ValueError naming `where` if bad."""
  if not isinstance(text, str) or "_" not in text:
    raise ValueError(f"{where}: {text!r} is not an item token '<set_id>_<index>'")
  set_id, index = text.rsplit("_", 1)
  if not set_id or not index.isdigit():
    raise ValueError(f"{where}: {text!r} is not an item token '<set_id>_<index>'")
  return set_id, int(index)


def _load_json(path: str) -> Any:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: question file not found")
  return json_files.read(path)


def _string_list(value: Any, where: str, field: str) -> tuple[str, ...]:
  if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
    raise ValueError(f"{where}: field '{field}' must be a list of strings")
  return tuple(value)


def read_outfits(path: str) -> list[Outfit]:
  """Reads an outfits file (official `<split>.json` layout); extra fields are ignored."""
  records = _load_json(path)
  if not isinstance(records, list):
    raise ValueError(f"{path}: must hold a JSON list of outfits")
  outfits = []
  for number, record in enumerate(records):
    where = f"{path}: outfit {number}"
    if not isinstance(record, dict) or not isinstance(record.get("items"), list):
      raise ValueError(f"{where}: must be an object with a list 'items'")
    set_id = json_files.identity(record.get("set_id"), where, "set_id")
    items = []
    for position, item in enumerate(record["items"]):
      here = f"{where} (set_id {set_id}): items[{position}]"
      if not isinstance(item, dict):
        raise ValueError(f"{here}: must be an object")
      item_id = json_files.identity(item.get("item_id"), here, "item_id")
      index = item.get("index")
      if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"{here}: field 'index' must be an integer >= 0, got {index!r}")
      items.append((item_id, index))
    outfits.append(Outfit(set_id, tuple(items)))
  return outfits


def outfit_keys(outfits: Iterable[Outfit], path: str) -> dict[str, str]:
  """Token -> item_id of every outfit position; a repeated (set_id, index) raises."""
  keys = {}
  for outfit in outfits:
    for item_id, index in outfit.items:
      key = token(outfit.set_id, index)
      if key in keys:
        raise ValueError(f"{path}: set_id {outfit.set_id}: index {index} appears twice")
      keys[key] = item_id
  return keys


def read_fitb(path: str) -> list[FitbQuestion]:
  """Reads a FITB file; each question must have `FITB_ANSWERS` answers, one correct.

  The correct answer is the one whose set id is the question's; every question token
  must share that set id.
  """
  records = _load_json(path)
  if not isinstance(records, list):
    raise ValueError(f"{path}: must hold a JSON list of questions")
  questions = []
  for number, record in enumerate(records):
    where = f"{path}: question {number}"
    if not isinstance(record, dict):
      raise ValueError(f"{where}: must be an object")
    question = _string_list(record.get("question"), where, "question")
    answers = _string_list(record.get("answers"), where, "answers")
    if not question:
      raise ValueError(f"{where}: field 'question' is empty")
    if len(answers) != FITB_ANSWERS:
      raise ValueError(f"{where}: has {len(answers)} answers, expected {FITB_ANSWERS}")
    blank = record.get("blank_position", 0)
    if isinstance(blank, bool) or not isinstance(blank, int):
      raise ValueError(f"{where}: field 'blank_position' must be an integer")
    sets = {parse_token(t, f"{where}: question")[0] for t in question}
    if len(sets) != 1:
      raise ValueError(f"{where}: question items come from {len(sets)} outfits "
                       f"{sorted(sets)}, expected one")
    answer_sets = [parse_token(t, f"{where}: answers")[0] for t in answers]
    correct = [k for k, s in enumerate(answer_sets) if s in sets]
    if len(correct) != 1:
      raise ValueError(f"{where}: {len(correct)} answers are from the question's outfit "
                       f"{next(iter(sets))}, expected exactly one")
    questions.append(FitbQuestion(question, answers, blank, correct[0]))
  return questions


def read_compatibility(path: str) -> list[CompatibilityQuestion]:
  """Reads a compatibility file: `<label> <token> <token> ...` per line, >= 2 items."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: question file not found")
  questions = []
  with open(path, encoding="utf-8") as stream:
    for number, line in enumerate(stream, start=1):
      fields = line.split()
      if not fields:
        continue
      where = f"{path}: line {number}"
      if fields[0] not in ("0", "1"):
        raise ValueError(f"{where}: label must be 0 or 1, got {fields[0]!r}")
      if len(fields) < 3:
        raise ValueError(f"{where}: needs at least 2 items, got {len(fields) - 1}")
      for text in fields[1:]:
        parse_token(text, where)
      questions.append(CompatibilityQuestion(int(fields[0]), tuple(fields[1:]), number))
  return questions


def _check_token_text(text: str, what: str) -> str:
  if any(c.isspace() for c in text):
    raise ValueError(f"{what} {text!r} contains white space, which the compatibility "
                     "file format cannot hold")
  return text


def _write_json_list(path: str, records: Iterable[dict]) -> int:
  """Streams `records` as a JSON list into `path` atomically; returns how many."""
  count = 0
  with atomic_io.atomic_open(path) as stream:
    stream.write(b"[")
    for record in records:
      stream.write((",\n" if count else "\n").encode())
      stream.write(json.dumps(record, ensure_ascii=False).encode("utf-8"))
      count += 1
    stream.write(b"\n]\n")
  return count


def write_outfits(path: str, outfits: Iterable[Outfit]) -> int:
  return _write_json_list(path, (
      {"set_id": _check_token_text(o.set_id, "set_id"),
       "items": [{"item_id": i, "index": k} for i, k in o.items]} for o in outfits))


def write_fitb(path: str, questions: Iterable[FitbQuestion]) -> int:
  return _write_json_list(path, (
      {"question": list(q.question), "answers": list(q.answers),
       "blank_position": q.blank_position} for q in questions))


def write_compatibility(path: str, questions: Iterable[CompatibilityQuestion]) -> int:
  """Streams `questions` into `path` atomically; returns how many lines."""
  count = 0
  with atomic_io.atomic_open(path) as stream:
    for question in questions:
      stream.write(f"{question.label} {' '.join(question.items)}\n".encode("utf-8"))
      count += 1
  return count


def read_provenance(folder: str) -> dict[str, Any]:
  path = os.path.join(folder, PROVENANCE)
  record = _load_json(path)
  if not isinstance(record, dict) or "kind" not in record:
    raise ValueError(f"{path}: must be an object with a field 'kind'")
  return record
