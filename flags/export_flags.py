"""Flags of export_main.py (the gallery flags --gallery_split and --index_features are
index_main.py's, so one experiment flagfile chooses the same gallery for both)."""

from __future__ import annotations

from absl import flags

from flags import common_flags
from flags import eval_flags
from flags import index_flags
from search import configs

_EXPORT = configs.ExportConfig(data_dir="", model_dir="", export_dir="")

EXPORT_DIR = flags.DEFINE_string("export_dir", "", "SavedModel version folder; default "
                                 "<model_dir>/export/<highest existing version + 1>.")
EXPORT_CHUNK_SIZE = flags.DEFINE_integer("export_chunk_size", _EXPORT.chunk_size,
                                         "Gallery rows scored per step of the in-graph "
                                         "search.")
EXPORT_MAX_K = flags.DEFINE_integer("export_max_k", _EXPORT.max_k,
                                    "Largest k the exported model accepts.")
EXPORT_OVERWRITE = flags.DEFINE_bool("export_overwrite", _EXPORT.overwrite,
                                     "Replace an existing version folder.")


def input_path_flags() -> list[flags.FlagHolder]:
  """Flags naming paths that must exist: eval_main's and --index_features."""
  return eval_flags.input_path_flags() + [index_flags.INDEX_FEATURES]


def export_config_from_flags() -> configs.ExportConfig:
  """Converts the parsed flags into a validated ExportConfig (model as eval_main's)."""
  model_dir = common_flags.require(common_flags.MODEL_DIR)
  run = common_flags.saved_run(eval_flags.WEIGHTS.value)
  config = configs.ExportConfig(
      data_dir=common_flags.data_dir_of_run(run), model_dir=model_dir,
      export_dir=EXPORT_DIR.value or configs.next_export_dir(model_dir),
      model=common_flags.model_config_of_run(run), weights=eval_flags.WEIGHTS.value,
      split=index_flags.GALLERY_SPLIT.value, features=index_flags.INDEX_FEATURES.value,
      chunk_size=EXPORT_CHUNK_SIZE.value, max_k=EXPORT_MAX_K.value,
      overwrite=EXPORT_OVERWRITE.value)
  config.validate()
  return config
