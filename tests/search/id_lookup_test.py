"""IdLookup finds every id's row and answers None for ids it does not hold."""

from __future__ import annotations

import numpy as np

from search import id_lookup


def test_rows_of_ids_and_misses():
  ids = np.array(["b,1", "a", "room 7/chair", "a2", "Z", "é"])
  lookup = id_lookup.IdLookup(ids)
  for row, item_id in enumerate(ids):
    assert lookup.row(item_id) == row
  for missing in ("", "a1", "zz", "room 7", "b"):
    assert lookup.row(missing) is None
  assert id_lookup.IdLookup(np.array([], str)).row("a") is None
