"""Flags of serve_main.py: where the model and index are, and the request bounds."""

from __future__ import annotations

from absl import flags

from flags import common_flags
from flags import eval_flags
from flags import index_flags
from keras_models import configs as model_configs
from search import configs

_SERVE = configs.ServeConfig(data_dir="", model_dir="", index_dir="")

HOST = flags.DEFINE_string("host", _SERVE.host, "Interface to listen on.")
PORT = flags.DEFINE_integer("port", _SERVE.port, "TCP port.")
MAX_BODY_BYTES = flags.DEFINE_integer("max_body_bytes", _SERVE.max_body_bytes,
                                      "Larger request bodies get 413.")
MAX_ITEMS = flags.DEFINE_integer("max_items", _SERVE.max_items,
                                 "Most query items per request (the model's padded set size).")
MAX_K = flags.DEFINE_integer("max_k", _SERVE.max_k, "Largest k a request may ask for.")
REQUEST_TIMEOUT_S = flags.DEFINE_float("request_timeout_s", _SERVE.request_timeout_s,
                                       "Per-request time bound: 503 when no worker frees up "
                                       "in time, 504 when the work itself overruns.")
MAX_CONCURRENT = flags.DEFINE_integer("max_concurrent", _SERVE.max_concurrent,
                                      "Requests computed at the same time.")

SAVED_MODEL = flags.DEFINE_string("saved_model", _SERVE.saved_model,
                                  "Serve from this SavedModel version folder (export_main.py) "
                                  "instead of the weights and the index folder.")


def input_path_flags() -> list[flags.FlagHolder]:
  """Flags naming paths that must exist: eval_main's, --index_dir and --saved_model.

  With --saved_model the export holds model and gallery, so --model_dir need not exist.
  """
  if SAVED_MODEL.value:
    return [common_flags.DATA_DIR, common_flags.MODEL_DIR, SAVED_MODEL]
  return eval_flags.input_path_flags() + [index_flags.INDEX_DIR]


def serve_config_from_flags() -> configs.ServeConfig:
  """Converts the parsed flags into a validated ServeConfig.

  From weights and an index, the architecture and (without --data_dir) the data folder
  come from the run's model_config.json when it has one. With --saved_model, --data_dir
  and --model_dir are optional: the export records both (they give the page its sets and
  the evaluation view), and no index folder is used.
  """
  if SAVED_MODEL.value:
    data_dir, model_dir = common_flags.DATA_DIR.value or "", common_flags.MODEL_DIR.value or ""
    # The export holds the encoder; without data to size the rule's settings from, the
    # (unused) architecture is the ModelConfig defaults.
    index_dir = ""
    model = common_flags.model_config_from_flags() if data_dir else model_configs.ModelConfig()
  else:
    run = common_flags.saved_run(eval_flags.WEIGHTS.value)
    data_dir = common_flags.data_dir_of_run(run)
    model_dir = common_flags.require(common_flags.MODEL_DIR)
    index_dir, model = index_flags.index_dir(), common_flags.model_config_of_run(run)
  config = configs.ServeConfig(
      data_dir=data_dir, model_dir=model_dir, index_dir=index_dir, model=model,
      weights=eval_flags.WEIGHTS.value, host=HOST.value, port=PORT.value,
      max_body_bytes=MAX_BODY_BYTES.value, max_items=MAX_ITEMS.value, max_k=MAX_K.value,
      request_timeout_s=REQUEST_TIMEOUT_S.value, max_concurrent=MAX_CONCURRENT.value,
      saved_model=SAVED_MODEL.value)
  config.validate()
  return config
