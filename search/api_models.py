"""Request body parts shared by the service's routes (POST /v1/complete, /v1/score)."""

from __future__ import annotations

import pydantic


class RequestItem(pydantic.BaseModel):
  """One item of a request: a gallery id, or a feature with its category."""

  model_config = pydantic.ConfigDict(extra="forbid")
  item_id: str | None = pydantic.Field(None, max_length=1000)
  feature: list[float] | None = None
  category: str | None = pydantic.Field(None, max_length=1000)
