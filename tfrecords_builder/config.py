"""Typed configuration of one shard build."""

from __future__ import annotations

import dataclasses

from tfrecords_builder.sources import synthetic


@dataclasses.dataclass(frozen=True)
class BuilderConfig:
  """What to read and where to write.

  Attributes:
    source: Registered source name (see `sources.SOURCES`).
    input: Source input path (file or folder); unused by `synthetic`.
    features: Optional features `.npz` for the generic source.
    image_dir: Optional folder of `<item_id>.jpg` images for the generic source.
    output_dir: Folder that receives shards, item tables, centers and manifest.
    num_shards: Shards per split (capped at the number of sets).
    overwrite: Replace a non-empty `output_dir`.
    seed: Seed of the 70/15/15 split of sets without a `split` field.
    l2_normalize: L2-normalise features before writing (cosine geometry).
    min_set_size: Smaller sets are skipped with a counted warning.
    synthetic: Parameters of the synthetic source.
  """

  source: str
  output_dir: str
  input: str = ""
  features: str = ""
  image_dir: str = ""
  num_shards: int = 4
  overwrite: bool = False
  seed: int = 0
  l2_normalize: bool = True
  min_set_size: int = 2
  synthetic: synthetic.SyntheticConfig = synthetic.SyntheticConfig()

  def validate(self) -> None:
    from tfrecords_builder import sources  # pylint: disable=g-import-not-at-top
    if self.source not in sources.SOURCES:
      raise ValueError(f"unknown --source '{self.source}'; known: {', '.join(sorted(sources.SOURCES))}")
    if self.source != "synthetic" and not self.input:
      raise ValueError(f"--input is required for --source={self.source}")
    if not self.output_dir:
      raise ValueError("--output_dir is required")
    if self.num_shards < 1:
      raise ValueError(f"--num_shards must be >= 1, got {self.num_shards}")
    if self.source == "synthetic":
      self.synthetic.validate()
