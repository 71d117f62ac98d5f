"""Row of an item id by binary search over the sorted ids.

A dict of 10^6 Python strings costs about 150 MB beside the gallery; two arrays (the
sorted ids and their rows) cost a fraction of that and answer in O(log N).
"""

from __future__ import annotations

import numpy as np


class IdLookup:
  """Maps ids [N] (str) to their row; where an id repeats, to its first row."""

  def __init__(self, item_ids: np.ndarray) -> None:
    self._sorted, first = np.unique(np.asarray(item_ids).astype(str), return_index=True)
    self._rows = first.astype(np.int64)

  def row(self, item_id: str) -> int | None:
    """Row of `item_id`, None when it is not one of the ids."""
    at = int(np.searchsorted(self._sorted, item_id))
    if at < len(self._sorted) and self._sorted[at] == item_id:
      return int(self._rows[at])
    return None
