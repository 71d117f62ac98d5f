"""Analytic matmul FLOP count of one CST training step (the numerator of achieved FLOP/s).

Counts 2*m*n*k per matmul of every dense projection, attention product and loss score
matrix, with padded slots included (the hardware computes them). Element-wise work
(LayerNorm, GELU, softmax, masks, Adam) is left out, as in the usual "model FLOPs"
convention, so the ratio to the dense-matmul rate says how close the step runs to the
rate of its own matmuls. Backward costs twice the forward (input and weight gradients),
except where the input needs no gradient (features and frozen seeds into their first
projection, target features in the losses): there it costs once the forward.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class StepShape:
  """Sizes of one step: B sets per batch, n padded items per half, K categories."""

  batch_size: int = 64
  half_size: int = 10
  num_categories: int = 11
  feature_dim: int = 512
  hidden_dim: int = 512
  num_layers: int = 2
  candidate_neg_num: int = 100


def encoder_forward_flops(shape: StepShape) -> tuple[float, float]:
  """(FLOPs of the first projections, FLOPs of the rest) of one encoder pass over B sets."""
  b, n, k = shape.batch_size, shape.half_size, shape.num_categories
  h, d = shape.hidden_dim, shape.feature_dim
  first = 2 * b * n * d * h + 2 * k * d * h  # input projection, seed projection
  item_block = 2 * b * n * h * (3 * h + h + 4 * h) + 4 * b * n * n * h
  seed_block = (2 * b * k * h * (h + h + 3 * h + h + 4 * h) + 2 * b * n * h * 2 * h
                + 4 * b * k * n * h + 4 * b * k * k * h)
  rest = shape.num_layers * (item_block + seed_block) + 2 * b * k * h * d
  return float(first), float(rest)


def train_step_flops(shape: StepShape, use_cycle_loss: bool, use_tpaneg: bool) -> float:
  """Matmul FLOPs of one training step (forward and backward) of the given variant."""
  first, rest = encoder_forward_flops(shape)
  pass_flops = 2 * first + 3 * rest
  # The cycle passes read predictions, so their input projection needs an input gradient.
  cycle_pass_flops = 3 * first + 3 * rest
  items = shape.batch_size * shape.half_size
  if use_tpaneg:
    # Scores against the positive and M negatives, forward + gradient to the prediction,
    # plus the target-to-negative scores of the selection (no gradient).
    term = 6.0 * items * (shape.candidate_neg_num + 1) * shape.feature_dim
  else:
    term = 4.0 * items * items * shape.feature_dim
  flops = 2 * pass_flops + 2 * term
  if use_cycle_loss:
    flops += 2 * cycle_pass_flops + 2 * term
  return flops
