"""POST /v1/score: how well do these items go together (the leave-one-out outfit score).

The score is the one eval_main's compatibility AUC uses (`keras_models.metrics.
compatibility`): each item is predicted from the others for its own category, and the
cosines of the predictions with the items are averaged,

    score = (1/n) sum_i cos(p(items \\ {x_i}, c_i), x_i),   n >= 2,

in [-1, 1], higher for items the rest of the set calls for. Items are given like the
query items of /v1/complete (a gallery item id, or a feature and a category name), and
checked by the same `Completer`, so a bad item gets the same 422 naming its field.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import pydantic

from keras_models.metrics import compatibility
from search import api_models
from search import completion
from search import configs


def request_model(config: configs.ServeConfig) -> type[pydantic.BaseModel]:
  """The body of POST /v1/score: 2..max_items items."""

  class ScoreRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    items: list[api_models.RequestItem] = pydantic.Field(min_length=2,
                                                         max_length=config.max_items)

  return ScoreRequest


class Scorer:
  """Scores item sets with the completer's encoder and item checks."""

  def __init__(self, completer: completion.Completer) -> None:
    self.completer = completer

  def score(self, items: Sequence[completion.QueryItem]) -> dict[str, Any]:
    """The outfit score of `items` and each item's leave-one-out cosine.

    Returns:
      {"score": float, "item_scores": [float] (request order), "encode_ms": float}.

    Raises:
      completion.ApiError: fewer than 2 or more than max_items items, or a bad item.
    """
    encoder = self.completer.encoder
    if not 2 <= len(items) <= encoder.max_items:
      raise completion.ApiError(422, "items", f"needs 2..{encoder.max_items} items, got "
                                f"{len(items)}")
    features, categories = self.completer.resolve_items(items)
    start = time.perf_counter()
    outfit_of, left_out, members = compatibility.leave_one_out(np.array([len(items)]))
    predictions = np.stack([
        encoder.predict(features[others], categories[others])[categories[left] - 1]
        for left, others in zip(left_out, members)])
    similarities = compatibility.cosine(predictions, features[left_out])
    score = compatibility.outfit_scores(similarities, outfit_of, 1)[0]
    return {"score": round(float(score), 6),
            "item_scores": [round(float(s), 6) for s in similarities],
            "encode_ms": round((time.perf_counter() - start) * 1000.0, 3)}
