"""Flags of eval_main.py."""

from __future__ import annotations

from absl import flags

from flags import common_flags
from keras_models import configs

_EVAL = configs.EvalConfig(data_dir="", model_dir="")

SPLIT = flags.DEFINE_enum("split", _EVAL.split, ["train", "val", "test"], "Split to evaluate.")
WEIGHTS = flags.DEFINE_string("weights", _EVAL.weights,
                              "Encoder weights; default <model_dir>/best.weights.h5.")
EVAL_BATCH_SIZE = flags.DEFINE_integer("eval_batch_size", _EVAL.batch_size,
                                       "Sets per forward pass.")
GALLERY = flags.DEFINE_enum("gallery", _EVAL.gallery, list(configs.GALLERIES),
                            "targets: deduplicated target items of the split; items: every "
                            "item of the split.")
TOP_PERCENTS = flags.DEFINE_list("top_percents", [str(p) for p in _EVAL.top_percents],
                                 "K of the Top-K% metrics.")
RECALL_KS = flags.DEFINE_list("recall_ks", [str(k) for k in _EVAL.recall_ks],
                              "k of Recall@k (absolute).")
MAP_KS = flags.DEFINE_list("map_ks", [str(k) for k in _EVAL.map_ks], "k of mAP@k.")
NUM_COLLAGES = flags.DEFINE_integer("num_collages", _EVAL.num_collages,
                                    "Collages to draw when items have images.")
METHOD_NAME = flags.DEFINE_string("method_name", _EVAL.method_name,
                                  "Row name in the tables; default: the model_dir name.")


def _ints(flag_holder: flags.FlagHolder) -> tuple[int, ...]:
  try:
    return tuple(int(v) for v in flag_holder.value)
  except ValueError:
    raise flags.ValidationError(
        f"--{flag_holder.name} must be a list of integers, got {flag_holder.value}") from None


def eval_config_from_flags() -> configs.EvalConfig:
  """Converts the parsed flags into a validated EvalConfig."""
  config = configs.EvalConfig(
      data_dir=common_flags.require(common_flags.DATA_DIR),
      model_dir=common_flags.require(common_flags.MODEL_DIR),
      model=common_flags.model_config_from_flags(), split=SPLIT.value, weights=WEIGHTS.value,
      batch_size=EVAL_BATCH_SIZE.value, gallery=GALLERY.value,
      gallery_chunk_size=common_flags.GALLERY_CHUNK_SIZE.value,
      top_percents=_ints(TOP_PERCENTS), recall_ks=_ints(RECALL_KS), map_ks=_ints(MAP_KS),
      num_collages=NUM_COLLAGES.value, seed=common_flags.SEED.value,
      eval_split_seed=common_flags.EVAL_SPLIT_SEED.value,
      method_name=METHOD_NAME.value)
  config.validate()
  return config
