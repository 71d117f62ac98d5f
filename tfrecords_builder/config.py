"""Typed configuration of one shard build."""

from __future__ import annotations

import dataclasses

from tfrecords_builder.sources import synthetic

# Sources that read images: they need `features` (precomputed) or an `encoder`.
IMAGE_SOURCES = ("deepfurniture", "iqon3000")


@dataclasses.dataclass(frozen=True)
class BuilderConfig:
  """What to read and where to write.

  Attributes:
    source: Registered source name (see `sources.SOURCES`).
    input: Source input path (file or folder); unused by `synthetic`.
    features: Features `.npz` (`item_ids`, `features`): optional for the generic source;
      for deepfurniture/iqon3000 precomputed features keyed by furniture_id / itemId.
    image_dir: Optional folder of `<item_id>.jpg` images for the generic source.
    output_dir: Folder that receives shards, item tables, centers and manifest.
    num_shards: Shards per split (capped at the number of sets).
    overwrite: Replace a non-empty `output_dir`.
    seed: Seed of the 70/15/15 split of sets without a `split` field, and of the
      iqon3000 user split.
    l2_normalize: L2-normalise features before writing (cosine geometry).
    min_set_size: Smaller sets are skipped with a counted warning.
    synthetic: Parameters of the synthetic source.
    encoder: Image encoder of deepfurniture/iqon3000 when `features` is not given: "clip"
      or "keras:<model.keras>"; "" = none.
    encoder_path: Encoder weights, e.g. a local keras-hub CLIP preset folder.
    encoder_batch_size: Images per encoder batch.
    skip_bad_images: Drop (and count) unreadable images instead of failing.
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
  encoder: str = ""
  encoder_path: str = ""
  encoder_batch_size: int = 32
  skip_bad_images: bool = False

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
    self._validate_encoder()

  def _validate_encoder(self) -> None:
    if self.encoder and self.source not in IMAGE_SOURCES:
      raise ValueError(f"--encoder is only used by --source={'|'.join(IMAGE_SOURCES)}, "
                       f"not {self.source}")
    if self.source not in IMAGE_SOURCES:
      return
    if not self.features and not self.encoder:
      raise ValueError(f"--source={self.source} needs --features (a precomputed features "
                       ".npz keyed by item id) or --encoder (clip | keras:<model.keras>)")
    if self.features and self.encoder:
      raise ValueError(f"--source={self.source}: give --features or --encoder, not both")
    if self.encoder and self.encoder != "clip" and (
        not self.encoder.startswith("keras:") or self.encoder == "keras:"):
      raise ValueError(f"--encoder must be 'clip' or 'keras:<model.keras>', got "
                       f"{self.encoder!r}")
    if self.encoder_batch_size < 1:
      raise ValueError(f"--encoder_batch_size must be >= 1, got {self.encoder_batch_size}")
