"""Flags of conditional_main.py (Backward Search + distilled student on item features)."""

from __future__ import annotations

from absl import flags

from flags import common_flags
from keras_models.conditional import config as conditional_config

_DEFAULT = conditional_config.ConditionalConfig(data_dir="", output_dir="")

CONDITIONAL_SPLIT = flags.DEFINE_enum("conditional_split", _DEFAULT.split,
                                      ["train", "val", "test"],
                                      "Split whose items are the queries and the gallery.")
LAMBDAS = flags.DEFINE_list("conditional_lambdas", [f"{v:g}" for v in _DEFAULT.lambdas],
                            "lambda of the L1 term, one search and one student each.")
NUM_QUERIES = flags.DEFINE_integer("conditional_num_queries", _DEFAULT.num_queries,
                                   "Query items (all items of the split if fewer).")
QUERY_SEED = flags.DEFINE_integer("conditional_query_seed", _DEFAULT.query_seed,
                                  "Seed of the query items and their conditions; keep it "
                                  "fixed across --seed so every seed scores the same queries.")
MIN_CONDITION_ITEMS = flags.DEFINE_integer(
    "conditional_min_condition_items", _DEFAULT.min_condition_items,
    "A category is a condition only if the gallery holds at least this many of its items.")
TOP_K = flags.DEFINE_integer("conditional_top_k", _DEFAULT.top_k, "Results per query.")
STANDARDIZE = flags.DEFINE_bool("conditional_standardize", _DEFAULT.standardize,
                                "Search in per-dimension standardised feature space.")
PCA_DIM = flags.DEFINE_integer(
    "conditional_pca_dim", _DEFAULT.pca_dim,
    "Search only along the top principal axes of the (standardised) train features; "
    "0 searches the full space.")
CLASSIFIER_EPOCHS = flags.DEFINE_integer("classifier_epochs", _DEFAULT.classifier_epochs,
                                         "Epochs of the classifier head.")
CLASSIFIER_LR = flags.DEFINE_float("classifier_learning_rate",
                                   _DEFAULT.classifier_learning_rate, "Adam lr of the head.")
SEARCH_LR = flags.DEFINE_float("search_learning_rate", _DEFAULT.search_learning_rate,
                               "Adam lr of Backward Search.")
SEARCH_STEPS = flags.DEFINE_integer("search_steps", _DEFAULT.search_steps,
                                    "Adam steps of Backward Search.")
SEARCH_PATIENCE = flags.DEFINE_integer("search_patience", _DEFAULT.search_patience,
                                       "Non-improving steps before a query's z is frozen.")
STORE_AFTER_STEP = flags.DEFINE_bool("search_store_after_step", _DEFAULT.store_after_step,
                                     "Reproduce the reference's off-by-one (store the z "
                                     "after the step whose loss was measured before it).")
STUDENT_HIDDEN_DIM = flags.DEFINE_integer("student_hidden_dim", _DEFAULT.student_hidden_dim,
                                          "Width of the student's hidden layers.")
STUDENT_TRAIN_QUERIES = flags.DEFINE_integer(
    "student_train_queries", _DEFAULT.student_train_queries,
    "Train-split (item, random condition) pairs whose teacher z* the student learns.")
STUDENT_EPOCHS = flags.DEFINE_integer("student_epochs", _DEFAULT.student_epochs,
                                      "Student epochs.")
STUDENT_LR = flags.DEFINE_float("student_learning_rate", _DEFAULT.student_learning_rate,
                                "Adam lr of the student.")
TIMING_REPEATS = flags.DEFINE_integer("timing_repeats", _DEFAULT.timing_repeats,
                                      "Timed repeats (best kept) of search and student.")


def input_path_flags() -> list[flags.FlagHolder]:
  """Flags naming paths that must exist (--model_dir is this run's output folder)."""
  return [common_flags.DATA_DIR]


def conditional_config_from_flags() -> conditional_config.ConditionalConfig:
  """Converts the parsed flags into a validated ConditionalConfig."""
  try:
    lambdas = tuple(float(v) for v in LAMBDAS.value)
  except ValueError:
    raise flags.ValidationError(
        f"--conditional_lambdas must be a list of numbers, got {LAMBDAS.value}") from None
  config = conditional_config.ConditionalConfig(
      data_dir=common_flags.require(common_flags.DATA_DIR),
      output_dir=common_flags.require(common_flags.MODEL_DIR),
      split=CONDITIONAL_SPLIT.value, lambdas=lambdas, num_queries=NUM_QUERIES.value,
      query_seed=QUERY_SEED.value, min_condition_items=MIN_CONDITION_ITEMS.value,
      top_k=TOP_K.value, seed=common_flags.SEED.value, standardize=STANDARDIZE.value,
      pca_dim=PCA_DIM.value,
      classifier_epochs=CLASSIFIER_EPOCHS.value,
      classifier_learning_rate=CLASSIFIER_LR.value, search_learning_rate=SEARCH_LR.value,
      search_steps=SEARCH_STEPS.value, search_patience=SEARCH_PATIENCE.value,
      store_after_step=STORE_AFTER_STEP.value, student_hidden_dim=STUDENT_HIDDEN_DIM.value,
      student_train_queries=STUDENT_TRAIN_QUERIES.value, student_epochs=STUDENT_EPOCHS.value,
      student_learning_rate=STUDENT_LR.value, timing_repeats=TIMING_REPEATS.value)
  config.validate()
  return config
