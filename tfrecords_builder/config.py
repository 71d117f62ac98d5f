"""Typed configuration of one shard build."""

from __future__ import annotations

import dataclasses

from tfrecords_builder.sources import synthetic

# Sources that read images: they need `features` (precomputed) or an `encoder`.
IMAGE_SOURCES = ("deepfurniture", "iqon3000", "polyvore_outfits")
POLYVORE_VERSIONS = ("nondisjoint", "disjoint")
POLYVORE_CATEGORIES = ("semantic", "fine")


@dataclasses.dataclass(frozen=True)
class BuilderConfig:
  """What to read and where to write.

  Attributes:
    source: Registered source name (see `sources.SOURCES`).
    input: Source input path (file or folder); unused by `synthetic`.
    features: Features `.npz` (`item_ids`, `features`): optional for the generic source;
      for deepfurniture/iqon3000 precomputed features keyed by furniture_id / itemId.
    image_dir: Optional folder of `<item_id>.jpg` images for the generic source.
    set_image_dir: Optional folder of `<set_id>.jpg` set photos (rooms, outfits) for the
      generic source.
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
    polyvore_version: Polyvore Outfits version read by `polyvore_outfits`.
    polyvore_categories: "semantic" (11 types) or "fine" (`category_id`, about 150).
    question_seed: Seed of the FITB / compatibility questions generated for datasets that
      ship none (written to questions/ beside the shards).
    question_sets: Sets per split that get generated questions (a seeded uniform sample
      when the split has more), so that scoring them costs the same at any size; 0 = all.
  """

  source: str
  output_dir: str
  input: str = ""
  features: str = ""
  image_dir: str = ""
  set_image_dir: str = ""
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
  polyvore_version: str = "nondisjoint"
  polyvore_categories: str = "semantic"
  question_seed: int = 0
  question_sets: int = 3000

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
    if self.question_sets < 0:
      raise ValueError(f"--question_sets must be >= 0 (0: every set), got {self.question_sets}")
    if self.source == "synthetic":
      self.synthetic.validate()
    if self.polyvore_version not in POLYVORE_VERSIONS:
      raise ValueError(f"--polyvore_version must be one of {POLYVORE_VERSIONS}, got "
                       f"{self.polyvore_version!r}")
    if self.polyvore_categories not in POLYVORE_CATEGORIES:
      raise ValueError(f"--polyvore_categories must be one of {POLYVORE_CATEGORIES}, got "
                       f"{self.polyvore_categories!r}")
    if self.set_image_dir and self.source != "generic":
      raise ValueError(f"--set_image_dir is only used by --source=generic, not {self.source}")
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
