"""Flags of train_main.py."""

from __future__ import annotations

from typing import Any

from absl import flags
from absl import logging

from flags import common_flags
from keras_models import configs
from keras_models import defaults

_TRAIN = configs.TrainConfig(data_dir="", model_dir="")
_LOSS = configs.LossConfig()
_RULE = ("Default: chosen from the number of train sets (keras_models/defaults.py, "
         "docs/training_defaults.md).")

BATCH_SIZE = flags.DEFINE_integer("batch_size", None,
                                  "Global batch size (sets), split over replicas. " + _RULE)
EPOCHS = flags.DEFINE_integer("epochs", None, "Epoch budget (early stopping ends a run "
                              "that has converged before it). " + _RULE)
STEPS_PER_EPOCH = flags.DEFINE_integer("steps_per_epoch", _TRAIN.steps_per_epoch,
                                       "Steps per epoch; 0 = one pass over the train sets.")
LEARNING_RATE = flags.DEFINE_float("learning_rate", None,
                                   "Adam learning rate (peak of the cosine). " + _RULE)
LR_SCHEDULE = flags.DEFINE_enum("lr_schedule", None, list(configs.LR_SCHEDULES),
                                "constant (with ReduceLROnPlateau) or cosine decay over "
                                "--epochs. " + _RULE)
WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", None,
                                    "Linear warmup steps of the cosine schedule. " + _RULE)
EARLY_STOPPING_PATIENCE = flags.DEFINE_integer(
    "early_stopping_patience", None,
    "Epochs without a better validation Top-10% before stopping. " + _RULE)
REDUCE_LR_PATIENCE = flags.DEFINE_integer(
    "reduce_lr_patience", _TRAIN.reduce_lr_patience,
    "Epochs without a better validation Top-10% before the LR is reduced; 0 = off.")
REDUCE_LR_FACTOR = flags.DEFINE_float("reduce_lr_factor", _TRAIN.reduce_lr_factor,
                                      "Factor of each LR reduction.")
MIN_LEARNING_RATE = flags.DEFINE_float("min_learning_rate", _TRAIN.min_learning_rate,
                                       "Lower bound of LR reductions.")
STRATEGY = flags.DEFINE_enum("strategy", _TRAIN.strategy, list(configs.STRATEGIES),
                             "Distribution strategy.")
NUM_GPUS = flags.DEFINE_integer("num_gpus", _TRAIN.num_gpus, "GPUs for mirrored; -1 = all.")
DETERMINISTIC = flags.DEFINE_bool("deterministic", _TRAIN.deterministic,
                                  "Enable TF op determinism.")
JIT_COMPILE = flags.DEFINE_bool("jit_compile", _TRAIN.jit_compile, "XLA-compile the train step.")
MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision", _TRAIN.mixed_precision, list(configs.MIXED_PRECISION),
    "Keras dtype policy of the encoder; losses stay float32 (mixed_float16 adds loss "
    "scaling).")
SHUFFLE_BUFFER = flags.DEFINE_integer("shuffle_buffer", _TRAIN.shuffle_buffer,
                                      "Sets in the shuffle buffer.")
TEMPERATURE = flags.DEFINE_float("temperature", _LOSS.temperature, "Softmax temperature tau.")
USE_CYCLE_LOSS = flags.DEFINE_bool("use_cycle_loss", _LOSS.use_cycle_loss,
                                   "Add the cycle terms X->Y'->X'' and Y->X'->Y''.")
CYCLE_LAMBDA = flags.DEFINE_float("cycle_lambda", _LOSS.cycle_lambda, "Weight of cycle terms.")
USE_TPANEG = flags.DEFINE_bool(
    "use_tpaneg", _LOSS.use_tpaneg,
    "Use target- and prediction-aware hard negatives. Alone it is the original code's "
    "TPaNeg: every --tpaneg_* and --candidate_neg_num default is the value the original "
    "run.py gives it (replace mode, random pool, N 50, T_gamma 0.2 -> 0.4 over 100 epochs, "
    "eps 0.2; why: keras_models/configs.py LossConfig); tuned recipes are in "
    "experiments/<dataset>/tpaneg.flags.")
CANDIDATE_NEG_NUM = flags.DEFINE_integer(
    "candidate_neg_num", _LOSS.candidate_neg_num,
    "TPaNeg candidates per train item (default: the original run.py's).")
TPANEG_GAMMA_START = flags.DEFINE_float(
    "tpaneg_gamma_start", _LOSS.tpaneg_gamma_start,
    "T_gamma at epoch 0, and the candidate threshold of the nearest pool (default: the "
    "original run.py's --taneg_t_gamma_init).")
TPANEG_GAMMA_END = flags.DEFINE_float(
    "tpaneg_gamma_end", _LOSS.tpaneg_gamma_end,
    "T_gamma after the curriculum (default: the original run.py's --taneg_t_gamma_final).")
TPANEG_CURRICULUM_EPOCHS = flags.DEFINE_integer(
    "tpaneg_curriculum_epochs", _LOSS.tpaneg_curriculum_epochs,
    "Epochs of the T_gamma ramp (default: the original run.py's).")
TPANEG_EPSILON = flags.DEFINE_float(
    "tpaneg_epsilon", _LOSS.tpaneg_epsilon,
    "Prediction-aware margin epsilon, in cosine units (default: the original run.py's "
    "--paneg_epsilon, which it pairs with tau 0.8).")
TPANEG_POOL = flags.DEFINE_enum(
    "tpaneg_pool", _LOSS.tpaneg_pool, list(configs.TPANEG_POOLS),
    "random (default, the original's): a uniform draw among the candidates above the "
    "current T_gamma, re-drawn every epoch from (--seed, epoch); nearest: the "
    "candidate_neg_num most similar candidates above --tpaneg_gamma_start, fixed.")
TPANEG_MAX_SIMILARITY = flags.DEFINE_float(
    "tpaneg_max_similarity", _LOSS.tpaneg_max_similarity,
    "Drop TPaNeg candidates more similar than this to the target (near duplicates such as "
    "colour variants are likely false negatives); 1 (default, as the original) keeps all.")
TPANEG_MODE = flags.DEFINE_enum(
    "tpaneg_mode", _LOSS.tpaneg_mode, list(configs.TPANEG_MODES),
    "replace (default, the paper's): softmax over the positive and the kept hard "
    "negatives; add: one softmax over the positive, the in-batch negatives and the kept "
    "hard negatives.")
REMOVE_ACCIDENTAL_HITS = flags.DEFINE_bool(
    "remove_accidental_hits", _LOSS.remove_accidental_hits,
    "Never use a target's own item, met in another set of the batch, as its negative.")
CYCLE_NORMALIZE = flags.DEFINE_bool(
    "cycle_normalize", _LOSS.cycle_normalize,
    "L2-normalise the predictions before feeding them back in the cycle pass (real inputs "
    "are unit vectors).")
CHECKPOINT_EVERY_STEPS = flags.DEFINE_integer(
    "checkpoint_every_steps", _TRAIN.checkpoint_every_steps,
    "Also save the resumable state every N steps within an epoch (0: at epoch ends only).")
VERIFY_SHARDS = flags.DEFINE_bool("verify_shards", _TRAIN.verify_shards,
                                  "Check every train/val shard against the manifest's "
                                  "sha256 before training.")
USE_BANK_NEGATIVES = flags.DEFINE_bool(
    "use_bank_negatives", _LOSS.use_bank_negatives,
    "InfoNCE against every train item of the target's category (static negative bank).")
BANK_MODE = flags.DEFINE_enum("bank_mode", _LOSS.bank_mode, list(configs.BANK_MODES),
                              "add: in-batch/TPaNeg terms + bank_weight * bank terms; "
                              "replace: bank terms only.")
BANK_TEMPERATURE = flags.DEFINE_float("bank_temperature", _LOSS.bank_temperature,
                                      "Softmax temperature of the bank terms.")
BANK_WEIGHT = flags.DEFINE_float("bank_weight", _LOSS.bank_weight,
                                 "Weight of the bank terms with bank_mode=add.")
BANK_CHUNK_SIZE = flags.DEFINE_integer("bank_chunk_size", _LOSS.bank_chunk_size,
                                       "Bank rows per category scored at a time.")
INIT_WEIGHTS = flags.DEFINE_string(
    "init_weights", _TRAIN.init_weights,
    "Start from this finished run's .weights.h5 (two-stage schedule); '' = random init.")
VERBOSE = flags.DEFINE_integer("verbose", _TRAIN.verbose,
                               "Keras fit verbosity: 1 progress bar, 2 one line per epoch.")


_OPTIMISATION = {"batch_size": BATCH_SIZE, "learning_rate": LEARNING_RATE,
                 "lr_schedule": LR_SCHEDULE, "warmup_steps": WARMUP_STEPS, "epochs": EPOCHS,
                 "early_stopping_patience": EARLY_STOPPING_PATIENCE}


def input_path_flags() -> list[flags.FlagHolder]:
  """Flags naming paths that must exist (--model_dir is written, so it is not one)."""
  return [common_flags.DATA_DIR, INIT_WEIGHTS]


def rule_flags() -> dict[str, flags.FlagHolder]:
  """The flags whose default is the data-sized rule, by setting name (defaults.py)."""
  holders = {**common_flags.ARCHITECTURE, **_OPTIMISATION}
  return {name: holders[name] for name in defaults.RULE_SETTINGS}


def rule_values(config: configs.TrainConfig) -> dict[str, Any]:
  """The values `config` trains with for every setting of the rule, by flag name."""
  return {name: getattr(config.model if name in defaults.MODEL_SETTINGS else config, name)
          for name in defaults.RULE_SETTINGS}


def train_config_from_flags(num_train_sets: int | None = None) -> configs.TrainConfig:
  """Converts the parsed flags into a validated TrainConfig.

  A setting of the rule whose flag was given keeps it; the others are chosen by
  `defaults.resolve` for `num_train_sets` (None: counted in --data_dir's manifest), and
  logged.
  """
  given = {name: holder.value for name, holder in rule_flags().items()
           if holder.value is not None}
  settings = given
  if len(given) < len(defaults.RULE_SETTINGS):
    if num_train_sets is None:
      num_train_sets = common_flags.train_sets_of_data()
    settings = defaults.resolve(num_train_sets, given, STEPS_PER_EPOCH.value)
    logging.info(defaults.describe(num_train_sets, {name: value for name, value in
                                                    settings.items() if name not in given}))
  loss = configs.LossConfig(
      temperature=TEMPERATURE.value, use_cycle_loss=USE_CYCLE_LOSS.value,
      cycle_lambda=CYCLE_LAMBDA.value, use_tpaneg=USE_TPANEG.value,
      candidate_neg_num=CANDIDATE_NEG_NUM.value, tpaneg_gamma_start=TPANEG_GAMMA_START.value,
      tpaneg_gamma_end=TPANEG_GAMMA_END.value,
      tpaneg_curriculum_epochs=TPANEG_CURRICULUM_EPOCHS.value,
      tpaneg_epsilon=TPANEG_EPSILON.value, tpaneg_pool=TPANEG_POOL.value,
      tpaneg_max_similarity=TPANEG_MAX_SIMILARITY.value, tpaneg_mode=TPANEG_MODE.value,
      remove_accidental_hits=REMOVE_ACCIDENTAL_HITS.value,
      cycle_normalize=CYCLE_NORMALIZE.value, use_bank_negatives=USE_BANK_NEGATIVES.value,
      bank_mode=BANK_MODE.value, bank_temperature=BANK_TEMPERATURE.value,
      bank_weight=BANK_WEIGHT.value, bank_chunk_size=BANK_CHUNK_SIZE.value)
  config = configs.TrainConfig(
      data_dir=common_flags.require(common_flags.DATA_DIR),
      model_dir=common_flags.require(common_flags.MODEL_DIR),
      model=common_flags.model_config_from_flags(settings), loss=loss,
      batch_size=settings["batch_size"], epochs=settings["epochs"],
      steps_per_epoch=STEPS_PER_EPOCH.value, learning_rate=settings["learning_rate"],
      lr_schedule=settings["lr_schedule"], warmup_steps=settings["warmup_steps"],
      early_stopping_patience=settings["early_stopping_patience"],
      reduce_lr_patience=REDUCE_LR_PATIENCE.value, reduce_lr_factor=REDUCE_LR_FACTOR.value,
      min_learning_rate=MIN_LEARNING_RATE.value, strategy=STRATEGY.value,
      num_gpus=NUM_GPUS.value, seed=common_flags.SEED.value,
      deterministic=DETERMINISTIC.value, jit_compile=JIT_COMPILE.value,
      mixed_precision=MIXED_PRECISION.value,
      shuffle_buffer=SHUFFLE_BUFFER.value,
      gallery_chunk_size=common_flags.GALLERY_CHUNK_SIZE.value,
      eval_split_seed=common_flags.EVAL_SPLIT_SEED.value, verbose=VERBOSE.value,
      checkpoint_every_steps=CHECKPOINT_EVERY_STEPS.value, verify_shards=VERIFY_SHARDS.value,
      init_weights=INIT_WEIGHTS.value)
  config.validate()
  return config
