"""Which method the validation split favours, with its spread over seeds.

Whether cycle consistency or TPaNeg helps depends on the data (docs/training_defaults.md):
on one dataset a component gains 3 points, on another it costs 7. So the choice is made
on the user's own validation split, over a few seeds, and reported with its spread: a
lead smaller than the seed-to-seed spread is no lead. bench/ablation.py trains the
methods and calls `choose`.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Spread:
  """Mean and sample standard deviation (ddof 1; 0 for one run) of a method's scores."""

  method: str
  mean: float
  std: float
  runs: int


@dataclasses.dataclass(frozen=True)
class Choice:
  """The method with the best mean score, and the next one.

  Attributes:
    best: The chosen method's spread.
    runner_up: The next best method's, None when only one method ran.
  """

  best: Spread
  runner_up: Spread | None

  @property
  def clear(self) -> bool:
    """Whether mean - std of the best is above mean + std of the next (no overlap)."""
    if self.runner_up is None:
      return True
    return self.best.mean - self.best.std > self.runner_up.mean + self.runner_up.std


def spread(method: str, scores: Sequence[float]) -> Spread:
  """Mean and standard deviation of `scores` ([runs]) of one method.

  Raises:
    ValueError: no score.
  """
  values = np.asarray(scores, float)
  if not len(values):
    raise ValueError(f"method '{method}' has no score")
  return Spread(method, float(values.mean()),
                float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values))


def choose(scores: Mapping[str, Sequence[float]]) -> Choice:
  """The method whose mean score is highest (ties: the first listed), and the runner-up.

  Args:
    scores: Method name -> its score on each seed (higher is better), e.g. validation
      Top-10 %.

  Raises:
    ValueError: no method, or a method with no score.
  """
  if not scores:
    raise ValueError("no method to choose from")
  ranked = sorted((spread(name, values) for name, values in scores.items()),
                  key=lambda s: -s.mean)
  return Choice(ranked[0], ranked[1] if len(ranked) > 1 else None)


def describe(choice: Choice, metric: str, scale: float = 100.0) -> str:
  """A sentence naming the choice, its spread and whether it is clear of the next method."""
  best = choice.best
  text = (f"best by {metric}: {best.method} {scale * best.mean:.2f} +- "
          f"{scale * best.std:.2f} over {best.runs} seed(s)")
  if choice.runner_up is None:
    return text
  other = choice.runner_up
  text += (f"; next: {other.method} {scale * other.mean:.2f} +- {scale * other.std:.2f}")
  if choice.clear:
    return text + " (mean - std of the best is above mean + std of the next: a clear lead)"
  return text + (" (the spreads overlap: not a clear lead; more seeds, or the simpler "
                 "method)")
