"""Reading the JSON files of raw datasets with errors that name the file and the field."""

from __future__ import annotations

import json
from typing import Any


def read(path: str) -> Any:
  """The parsed JSON of `path` (UTF-8); malformed text is a ValueError naming the file."""
  try:
    with open(path, "rb") as stream:
      return json.loads(stream.read().decode("utf-8"))
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise ValueError(f"{path}: not valid JSON ({error})") from None


def identity(value: Any, where: str, field: str) -> str:
  """An id field as text: an int or a non-empty string (a bool is neither)."""
  if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
    raise ValueError(f"{where}: field '{field}' must be an int or a non-empty string, "
                     f"got {value!r}")
  return str(value)
