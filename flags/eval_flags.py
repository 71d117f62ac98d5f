"""Flags of eval_main.py."""

from __future__ import annotations

from absl import flags

from flags import common_flags
from keras_models import configs

_EVAL = configs.EvalConfig(data_dir="", model_dir="")
_ICFRR = _EVAL.icfrr

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
FITB_CANDIDATES = flags.DEFINE_integer(
    "fitb_candidates", _EVAL.fitb_candidates, "Candidates of FITB: the true item and this "
    "minus 1 distractors of its category, drawn with --eval_split_seed.")
RIDGE_LAMBDAS = flags.DEFINE_list(
    "ridge_lambdas", [f"{v:g}" for v in _EVAL.ridge_lambdas], "Grid of the ridge "
    "baseline's lambda; the best val Top-10% micro is used.")
NUM_COLLAGES = flags.DEFINE_integer("num_collages", _EVAL.num_collages,
                                    "Collages to draw when items have images.")
METHOD_NAME = flags.DEFINE_string("method_name", _EVAL.method_name,
                                  "Row name in the tables; default: the model_dir name.")

RERANK = flags.DEFINE_enum("rerank", _EVAL.rerank, list(configs.RERANKERS),
                           "Re-ranking after the plain evaluation: none, or icfrr (writes "
                           "rerank_icfrr.{json,txt,png}).")
ICFRR_KG = flags.DEFINE_integer("icfrr_kg", _ICFRR.k_g, "ICFRR K_G: neighbours stored per "
                                "gallery item (alpha is 0 beyond them).")
ICFRR_KQ = flags.DEFINE_integer("icfrr_kq", _ICFRR.k_q, "ICFRR K_Q: top items that vote.")
ICFRR_BETA = flags.DEFINE_float("icfrr_beta", _ICFRR.beta, "ICFRR weight of the votes.")
ICFRR_ITERATIONS = flags.DEFINE_integer("icfrr_iterations", _ICFRR.iterations,
                                        "ICFRR iterations.")
ICFRR_MODE = flags.DEFINE_enum("icfrr_mode", _ICFRR.mode, list(configs.ICFRR_MODES),
                               "positional: the reference code (position j keeps the j-th "
                               "initial score); accumulate: the paper (s += beta * Delta).")
ICFRR_SCORE = flags.DEFINE_enum("icfrr_score", _ICFRR.score, list(configs.ICFRR_SCORES),
                                "Initial score: -Euclidean distance (reference) or cosine.")
ICFRR_SHORTLIST = flags.DEFINE_integer(
    "icfrr_shortlist", _ICFRR.shortlist, "ICFRR T: each query's top-T initial list is "
    "re-ranked, items beyond it keep their initial rank (exact when T >= the gallery).")


def _ints(flag_holder: flags.FlagHolder) -> tuple[int, ...]:
  try:
    return tuple(int(v) for v in flag_holder.value)
  except ValueError:
    raise flags.ValidationError(
        f"--{flag_holder.name} must be a list of integers, got {flag_holder.value}") from None


def _floats(flag_holder: flags.FlagHolder) -> tuple[float, ...]:
  try:
    return tuple(float(v) for v in flag_holder.value)
  except ValueError:
    raise flags.ValidationError(
        f"--{flag_holder.name} must be a list of numbers, got {flag_holder.value}") from None


def input_path_flags() -> list[flags.FlagHolder]:
  """Flags naming paths that must exist: data, weights, the run folder unless --weights."""
  return [common_flags.DATA_DIR, WEIGHTS] + ([] if WEIGHTS.value else [common_flags.MODEL_DIR])


def eval_config_from_flags() -> configs.EvalConfig:
  """Converts the parsed flags into a validated EvalConfig.

  The architecture and, without --data_dir, the data folder come from the run's
  model_config.json when it has one (see common_flags.model_config_of_run).
  """
  run = common_flags.saved_run(WEIGHTS.value)
  config = configs.EvalConfig(
      data_dir=common_flags.data_dir_of_run(run),
      model_dir=common_flags.require(common_flags.MODEL_DIR),
      model=common_flags.model_config_of_run(run), split=SPLIT.value, weights=WEIGHTS.value,
      batch_size=EVAL_BATCH_SIZE.value, gallery=GALLERY.value,
      gallery_chunk_size=common_flags.GALLERY_CHUNK_SIZE.value,
      top_percents=_ints(TOP_PERCENTS), recall_ks=_ints(RECALL_KS), map_ks=_ints(MAP_KS),
      fitb_candidates=FITB_CANDIDATES.value, ridge_lambdas=_floats(RIDGE_LAMBDAS),
      num_collages=NUM_COLLAGES.value, seed=common_flags.SEED.value,
      eval_split_seed=common_flags.EVAL_SPLIT_SEED.value,
      method_name=METHOD_NAME.value, rerank=RERANK.value,
      icfrr=configs.IcfrrConfig(k_g=ICFRR_KG.value, k_q=ICFRR_KQ.value, beta=ICFRR_BETA.value,
                                iterations=ICFRR_ITERATIONS.value, mode=ICFRR_MODE.value,
                                score=ICFRR_SCORE.value, shortlist=ICFRR_SHORTLIST.value))
  config.validate()
  return config
