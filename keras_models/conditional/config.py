"""Configuration of a conditional-search run (Backward Search + distilled student)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ConditionalConfig:
  """One conditional_main run; defaults follow the Backward Search reference code.

  Search settings (lr, steps, patience) and the student's training are the reference's;
  `store_after_step` reproduces its off-by-one (it stores the z *after* the Adam step
  whose loss was measured *before* it); the default stores the z that was measured.
  """

  data_dir: str
  output_dir: str
  split: str = "test"
  lambdas: tuple[float, ...] = (0.5, 1.0, 2.0)
  num_queries: int = 1000
  query_seed: int = 0
  min_condition_items: int = 10
  top_k: int = 10
  seed: int = 0
  standardize: bool = True
  pca_dim: int = 0
  classifier_epochs: int = 20
  classifier_learning_rate: float = 1e-3
  classifier_batch_size: int = 256
  search_learning_rate: float = 0.2
  search_steps: int = 100
  search_patience: int = 10
  store_after_step: bool = False
  student_hidden_dim: int = 128
  student_train_queries: int = 20000
  student_epochs: int = 49
  student_learning_rate: float = 1e-3
  student_batch_size: int = 512
  timing_repeats: int = 3

  def validate(self) -> None:
    if not self.data_dir or not self.output_dir:
      raise ValueError("data_dir and output_dir are required")
    if self.split not in ("train", "val", "test"):
      raise ValueError(f"split must be train, val or test, got '{self.split}'")
    if not self.lambdas or any(lam < 0 for lam in self.lambdas):
      raise ValueError(f"lambdas must be a non-empty list of values >= 0, got {self.lambdas}")
    for name in ("num_queries", "top_k", "min_condition_items", "classifier_epochs",
                 "search_steps", "student_hidden_dim", "student_train_queries",
                 "student_epochs", "classifier_batch_size", "student_batch_size",
                 "timing_repeats"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.pca_dim < 0:
      raise ValueError(f"pca_dim must be >= 0 (0: the full space), got {self.pca_dim}")
    if self.search_patience < 0:
      raise ValueError(f"search_patience must be >= 0, got {self.search_patience}")
    for name in ("classifier_learning_rate", "search_learning_rate", "student_learning_rate"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
