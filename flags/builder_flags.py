"""Flags of `python -m tfrecords_builder`."""

from __future__ import annotations

from absl import flags

from tfrecords_builder import config as config_lib
from tfrecords_builder.sources import synthetic

SOURCE = flags.DEFINE_string("source", "synthetic",
                             "Raw layout: deepfurniture | generic | iqon3000 | "
                             "polyvore_outfits | reference_pickles | synthetic.")
INPUT = flags.DEFINE_string("input", "", "Source input: sets.jsonl or its folder, the "
                            "folder of reference pickles, or the DeepFurniture / IQON3000 "
                            "root.")
FEATURES = flags.DEFINE_string("features", "", "Features .npz: generic source (default: "
                               "features.npz or the only .npz beside sets.jsonl); "
                               "deepfurniture/iqon3000: precomputed features keyed by "
                               "furniture_id / itemId (else use --encoder).")
IMAGE_DIR = flags.DEFINE_string("image_dir", "", "Generic source: folder of "
                                "<item_id>.jpg|jpeg|png for items without an 'image' field.")
SET_IMAGE_DIR = flags.DEFINE_string("set_image_dir", "", "Generic source: folder of "
                                    "<set_id>.jpg|jpeg|png set photos (the room, the "
                                    "outfit) for sets without an 'image' field.")
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder to write shards into.")
NUM_SHARDS = flags.DEFINE_integer("num_shards", 4, "Shards per split.")
OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a non-empty --output_dir.")
SPLIT_SEED = flags.DEFINE_integer("split_seed", 0, "Seed of the 70/15/15 split of sets "
                                  "that have no split field, and of iqon3000's user split.")
L2_NORMALIZE = flags.DEFINE_bool("l2_normalize", True, "L2-normalise item features.")
MIN_SET_SIZE = flags.DEFINE_integer("min_set_size", 2, "Skip (and count) smaller sets.")
ENCODER = flags.DEFINE_string("encoder", "", "deepfurniture/iqon3000: image encoder when no "
                              "--features: clip | keras:<model.keras>.")
ENCODER_PATH = flags.DEFINE_string("encoder_path", "", "Encoder weights for --encoder=clip: "
                                   "a local keras-hub CLIP preset folder, or a transformers "
                                   "CLIP checkpoint folder (config.json + model.safetensors).")
ENCODER_BATCH_SIZE = flags.DEFINE_integer("encoder_batch_size", 32,
                                          "Images per encoder batch.")
SKIP_BAD_IMAGES = flags.DEFINE_bool("skip_bad_images", False, "Drop (and count) unreadable "
                                    "images instead of failing.")
POLYVORE_VERSION = flags.DEFINE_enum("polyvore_version", "nondisjoint",
                                     list(config_lib.POLYVORE_VERSIONS),
                                     "polyvore_outfits: which version's splits and questions.")
POLYVORE_CATEGORIES = flags.DEFINE_enum(
    "polyvore_categories", "semantic", list(config_lib.POLYVORE_CATEGORIES),
    "polyvore_outfits: semantic_category (11 types) or fine category_id (about 150).")
QUESTION_SEED = flags.DEFINE_integer(
    "question_seed", 0, "Seed of the FITB and compatibility questions generated for "
    "datasets without official ones (written to questions/ beside the shards).")
QUESTION_SETS = flags.DEFINE_integer(
    "question_sets", 3000, "Sets per split that get generated FITB and compatibility "
    "questions (a seeded uniform sample when the split has more, so that scoring them costs "
    "the same at any dataset size: 3,000 FITB questions give accuracy within about +-1.8 "
    "points at 95 %); 0 = every set.")

_DEFAULT = synthetic.SyntheticConfig()
SYN_NUM_SETS = flags.DEFINE_integer("synthetic_num_sets", _DEFAULT.num_sets, "Synthetic: sets.")
SYN_CATEGORIES = flags.DEFINE_integer("synthetic_num_categories", _DEFAULT.num_categories,
                                      "Synthetic: categories K.")
SYN_DIM = flags.DEFINE_integer("synthetic_feature_dim", _DEFAULT.feature_dim,
                               "Synthetic: feature dimension D.")
SYN_MIN_ITEMS = flags.DEFINE_integer("synthetic_min_items", _DEFAULT.min_items,
                                     "Synthetic: smallest set.")
SYN_MAX_ITEMS = flags.DEFINE_integer("synthetic_max_items", _DEFAULT.max_items,
                                     "Synthetic: largest set.")
SYN_NOISE = flags.DEFINE_float("synthetic_noise_scale", _DEFAULT.noise_scale,
                               "Synthetic: item noise scale.")
SYN_SEED = flags.DEFINE_integer("synthetic_seed", _DEFAULT.seed, "Synthetic: generator seed.")
SYN_CATALOG_SIZE = flags.DEFINE_integer(
    "synthetic_catalog_size", _DEFAULT.catalog_size, "Synthetic: distinct items that sets "
    "draw from, so items recur across sets as in real data; 0 = every item unique to its set.")
SYN_NUM_STYLES = flags.DEFINE_integer(
    "synthetic_num_styles", _DEFAULT.num_styles, "Synthetic: style prototypes of the "
    "catalog; 0 = catalog_size // (20 K), about 20 items per (style, category).")


def builder_config_from_flags() -> config_lib.BuilderConfig:
  """Converts the parsed flags into a validated BuilderConfig."""
  config = config_lib.BuilderConfig(
      source=SOURCE.value, input=INPUT.value, features=FEATURES.value,
      image_dir=IMAGE_DIR.value, set_image_dir=SET_IMAGE_DIR.value,
      output_dir=OUTPUT_DIR.value or "", num_shards=NUM_SHARDS.value,
      overwrite=OVERWRITE.value, seed=SPLIT_SEED.value, l2_normalize=L2_NORMALIZE.value,
      min_set_size=MIN_SET_SIZE.value, encoder=ENCODER.value,
      encoder_path=ENCODER_PATH.value, encoder_batch_size=ENCODER_BATCH_SIZE.value,
      skip_bad_images=SKIP_BAD_IMAGES.value, polyvore_version=POLYVORE_VERSION.value,
      polyvore_categories=POLYVORE_CATEGORIES.value, question_seed=QUESTION_SEED.value,
      question_sets=QUESTION_SETS.value,
      synthetic=synthetic.SyntheticConfig(
          num_sets=SYN_NUM_SETS.value, num_categories=SYN_CATEGORIES.value,
          feature_dim=SYN_DIM.value, min_items=SYN_MIN_ITEMS.value,
          max_items=SYN_MAX_ITEMS.value, noise_scale=SYN_NOISE.value, seed=SYN_SEED.value,
          catalog_size=SYN_CATALOG_SIZE.value, num_styles=SYN_NUM_STYLES.value))
  config.validate()
  return config


def input_path_flags() -> list[flags.FlagHolder]:
  """Flags naming paths that must exist (--output_dir is written, so it is not one)."""
  return [INPUT, FEATURES, IMAGE_DIR, SET_IMAGE_DIR, ENCODER_PATH]
