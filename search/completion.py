"""Set completion queries: resolve and check the query items, encode the set, search.

Kept apart from HTTP so the logic is tested directly: every problem with a request is an
`ApiError` naming the request field (`items.2.item_id`, `categories.0`), which the service
turns into a 4xx JSON answer.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Protocol, Sequence

import numpy as np

from search import index as index_lib


class ApiError(Exception):
  """A request the service refuses: HTTP status, the offending field and why."""

  def __init__(self, status: int, field: str | None, message: str) -> None:
    super().__init__(f"{field}: {message}")
    self.status, self.field, self.message = status, field, message


def pad_one_set(features: np.ndarray, categories: np.ndarray, max_items: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One query set as the model's padded batch of one.

  Args:
    features: `[n, D]` item features, n <= max_items.
    categories: `[n]` category ids.
    max_items: padded set length.

  Returns:
    `[1, max_items, D]` float32 features, `[1, max_items]` int32 ids, `[1, max_items]` mask.
  """
  count = len(features)
  padded = np.zeros([1, max_items, features.shape[1]], np.float32)
  padded[0, :count] = features
  ids = np.zeros([1, max_items], np.int32)
  ids[0, :count] = categories
  mask = np.zeros([1, max_items], bool)
  mask[0, :count] = True
  return padded, ids, mask


class SetEncoder(Protocol):
  max_items: int

  def predict(self, features: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """[n, D] query features and [n] category ids -> [K, D] unit predictions."""


@dataclasses.dataclass(frozen=True)
class QueryItem:
  """One query item as the request gave it: an item id, or a feature and category name."""

  item_id: str | None = None
  feature: Sequence[float] | None = None
  category: str | None = None


def _elapsed_ms(start: float) -> float:
  return round((time.perf_counter() - start) * 1000.0, 3)


class Completer:
  """Answers "complete this set with the best items of categories c1, c2, ..."."""

  def __init__(self, encoder: SetEncoder, index: index_lib.SearchIndex) -> None:
    self.encoder = encoder
    self.index = index
    self.category_ids = {name: i for i, name in enumerate(index.category_names, start=1)}

  def _category_id(self, name: Any, field: str) -> int:
    if name not in self.category_ids:
      raise ApiError(422, field, f"unknown category {name!r}; known: "
                     f"{', '.join(self.category_ids)}")
    return self.category_ids[name]

  def _resolve(self, position: int, item: QueryItem) -> tuple[np.ndarray, int, int]:
    """(unit feature [D], category id, gallery row or -1) of one query item."""
    field = f"items.{position}"
    if (item.item_id is None) == (item.feature is None):
      raise ApiError(422, field, "give either item_id, or feature and category")
    if item.item_id is not None:
      if item.category is not None:
        raise ApiError(422, f"{field}.category", "not allowed with item_id (the gallery "
                       "knows the item's category)")
      row = self.index.row_of(item.item_id)
      if row is None:
        raise ApiError(422, f"{field}.item_id", f"unknown item id {item.item_id!r}")
      return self.index.feature(row), int(self.index.categories[row]), row
    if item.category is None:
      raise ApiError(422, f"{field}.category", "required with feature")
    category = self._category_id(item.category, f"{field}.category")
    feature = np.asarray(item.feature, np.float64)
    if feature.shape != (self.index.feature_dim,):
      raise ApiError(422, f"{field}.feature", f"has {feature.size} values, the model's "
                     f"feature dimension is {self.index.feature_dim}")
    norm = np.linalg.norm(feature)
    if not np.isfinite(feature).all() or not np.isfinite(norm) or norm == 0:
      raise ApiError(422, f"{field}.feature", "needs finite values and a non-zero norm")
    return (feature / norm).astype(np.float32), category, -1

  def resolve_items(self, items: Sequence[QueryItem]) -> tuple[np.ndarray, np.ndarray]:
    """`[n, D]` unit features and `[n]` category ids of request items (ApiError if bad)."""
    resolved = [self._resolve(position, item) for position, item in enumerate(items)]
    return (np.stack([feature for feature, _, _ in resolved]),
            np.array([category for _, category, _ in resolved], np.int32))

  def complete(self, items: Sequence[QueryItem], categories: Sequence[str], k: int,
               exclude_query_items: bool = True) -> dict[str, Any]:
    """Ranks the best `k` items of each wanted category for the query set `items`.

    Args:
      items: 1..max_items query items.
      categories: wanted category names, unique.
      k: results per category.
      exclude_query_items: drop query items (given by id) from the results.

    Returns:
      {"results": [{"category", "item_ids", "similarities", "retrieval_ms"}, ...],
       "encode_ms", "retrieval_ms", "backend"}; a category with fewer than k items
      returns all of them.

    Raises:
      ApiError: naming the first bad field.
    """
    if not 1 <= len(items) <= self.encoder.max_items:
      raise ApiError(422, "items", f"needs 1..{self.encoder.max_items} items, got {len(items)}")
    if not categories:
      raise ApiError(422, "categories", "needs at least one category")
    wanted = []
    for position, name in enumerate(categories):
      category = self._category_id(name, f"categories.{position}")
      if category in wanted:
        raise ApiError(422, f"categories.{position}", f"duplicate category {name!r}")
      wanted.append(category)
    resolved = [self._resolve(position, item) for position, item in enumerate(items)]
    features = np.stack([feature for feature, _, _ in resolved])
    item_categories = np.array([category for _, category, _ in resolved], np.int32)
    query_rows = {row for _, _, row in resolved if row >= 0} if exclude_query_items else set()
    start = time.perf_counter()
    predictions = self.encoder.predict(features, item_categories)
    encode_ms = _elapsed_ms(start)
    results = []
    for category in wanted:
      start = time.perf_counter()
      excluded = sum(1 for row in query_rows if self.index.categories[row] == category)
      scores, rows = self.index.search(category, predictions[category - 1][np.newaxis],
                                       k + excluded)
      keep = [(s, r) for s, r in zip(scores[0], rows[0]) if r >= 0 and r not in query_rows][:k]
      results.append({
          "category": self.index.category_names[category - 1],
          "item_ids": [str(self.index.item_ids[r]) for _, r in keep],
          "similarities": [round(float(s), 6) for s, _ in keep],
          "retrieval_ms": _elapsed_ms(start)})
    return {"results": results, "encode_ms": encode_ms,
            "retrieval_ms": round(sum(r["retrieval_ms"] for r in results), 3),
            "backend": self.index.backend}
