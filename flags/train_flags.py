"""Flags of train_main.py."""

from __future__ import annotations

from absl import flags

from flags import common_flags
from keras_models import configs

_TRAIN = configs.TrainConfig(data_dir="", model_dir="")
_LOSS = configs.LossConfig()

BATCH_SIZE = flags.DEFINE_integer("batch_size", _TRAIN.batch_size,
                                  "Global batch size (sets), split over replicas.")
EPOCHS = flags.DEFINE_integer("epochs", _TRAIN.epochs, "Maximum epochs.")
STEPS_PER_EPOCH = flags.DEFINE_integer("steps_per_epoch", _TRAIN.steps_per_epoch,
                                       "Steps per epoch; 0 = one pass over the train sets.")
LEARNING_RATE = flags.DEFINE_float("learning_rate", _TRAIN.learning_rate, "Adam learning rate.")
LR_SCHEDULE = flags.DEFINE_enum("lr_schedule", _TRAIN.lr_schedule, list(configs.LR_SCHEDULES),
                                "constant (with ReduceLROnPlateau) or cosine decay.")
WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", _TRAIN.warmup_steps,
                                    "Linear warmup steps of the cosine schedule.")
EARLY_STOPPING_PATIENCE = flags.DEFINE_integer(
    "early_stopping_patience", _TRAIN.early_stopping_patience,
    "Epochs without a better validation Top-10% before stopping.")
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
USE_TPANEG = flags.DEFINE_bool("use_tpaneg", _LOSS.use_tpaneg,
                               "Use target- and prediction-aware hard negatives.")
CANDIDATE_NEG_NUM = flags.DEFINE_integer("candidate_neg_num", _LOSS.candidate_neg_num,
                                         "TPaNeg candidates per train item.")
TPANEG_GAMMA_START = flags.DEFINE_float("tpaneg_gamma_start", _LOSS.tpaneg_gamma_start,
                                        "T_gamma at epoch 0 (and candidate threshold).")
TPANEG_GAMMA_END = flags.DEFINE_float("tpaneg_gamma_end", _LOSS.tpaneg_gamma_end,
                                      "T_gamma after the curriculum.")
TPANEG_CURRICULUM_EPOCHS = flags.DEFINE_integer(
    "tpaneg_curriculum_epochs", _LOSS.tpaneg_curriculum_epochs, "Epochs of the T_gamma ramp.")
TPANEG_EPSILON = flags.DEFINE_float("tpaneg_epsilon", _LOSS.tpaneg_epsilon,
                                    "Prediction-aware margin epsilon.")
TPANEG_POOL = flags.DEFINE_enum(
    "tpaneg_pool", _LOSS.tpaneg_pool, list(configs.TPANEG_POOLS),
    "nearest: the candidate_neg_num most similar candidates (fixed); random: a uniform draw "
    "among the candidates above the current T_gamma, re-drawn every epoch (the original's).")
TPANEG_MAX_SIMILARITY = flags.DEFINE_float(
    "tpaneg_max_similarity", _LOSS.tpaneg_max_similarity,
    "Drop TPaNeg candidates more similar than this to the target (near duplicates such as "
    "colour variants are likely false negatives); 1 keeps all.")
TPANEG_MODE = flags.DEFINE_enum(
    "tpaneg_mode", _LOSS.tpaneg_mode, list(configs.TPANEG_MODES),
    "replace: softmax over the positive and the kept hard negatives (the paper); add: one "
    "softmax over the positive, the in-batch negatives and the kept hard negatives.")
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


def train_config_from_flags() -> configs.TrainConfig:
  """Converts the parsed flags into a validated TrainConfig."""
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
      model=common_flags.model_config_from_flags(), loss=loss, batch_size=BATCH_SIZE.value,
      epochs=EPOCHS.value, steps_per_epoch=STEPS_PER_EPOCH.value,
      learning_rate=LEARNING_RATE.value, lr_schedule=LR_SCHEDULE.value,
      warmup_steps=WARMUP_STEPS.value, early_stopping_patience=EARLY_STOPPING_PATIENCE.value,
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
