"""Model classes by the name that configs and flags use."""

from __future__ import annotations

from keras_models.models import cst

MODELS: dict[str, type] = {"cst": cst.CSTModel}


def get_model_class(name: str) -> type:
  """Returns the model class registered as `name`.

  Raises:
    ValueError: If `name` is not registered; the message lists the known names.
  """
  try:
    return MODELS[name]
  except KeyError:
    raise ValueError(f"unknown model '{name}'; known: {', '.join(sorted(MODELS))}") from None
