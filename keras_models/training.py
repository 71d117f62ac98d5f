"""Library entry of training: `run(config)` builds data, model and callbacks, then fits.

Writes to `config.model_dir`: best.weights.h5 / final.weights.h5 (the encoder, Keras 3
format), model_config.json (the architecture, which evaluation, export and serving
rebuild the encoder from; see run_config.py), history.csv, TensorBoard logs under logs/,
the resumable state under backup/ (see resume.py; rerunning the same command continues
from the last checkpoint) and the TPaNeg negative table cache. Only the chief worker writes; every file but the
append-only TensorBoard logs is replaced atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Any

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from keras_models import callbacks
from keras_models import configs
from keras_models import data_files
from keras_models import distribution
from keras_models import evaluator as evaluator_lib
from keras_models import input_pipeline
from keras_models import resume
from keras_models import retrieval_trainer
from keras_models import run_config
from keras_models import weights_io
from keras_models.losses import bank
from keras_models.losses import negative_table as negative_table_lib
from keras_models.losses import tpaneg
from keras_models.models import builder
from tfrecords_builder import atomic_io

HISTORY = "history.csv"
BACKUP = "backup"
MONITOR = "val_top_10_percent"
STILL_IMPROVING = ("the best validation epoch is the last one: the model was still "
                   "improving when the epoch budget ended the run; raise --epochs")


def negative_table(config: configs.TrainConfig, table: data_files.ItemTable,
                   is_chief: bool = True, epoch: int = 0,
                   exclude_pairs: np.ndarray | None = None) -> np.ndarray:
  """TPaNeg candidates of every train item for a 0-based epoch.

  The nearest pool is fixed (threshold tpaneg_gamma_start) and cached in model_dir by
  the chief, keyed by its inputs. The random pool is drawn anew for every epoch among
  the candidates above that epoch's T_gamma, from (seed, epoch), so a resumed run draws
  the same table. `exclude_pairs` (`co_member_pairs` of the table) is computed when a
  table is built and none is given; the per-epoch redraw passes it so it is computed once.
  """
  loss = config.loss
  if loss.tpaneg_pool == "random":
    threshold = float(tpaneg.curriculum_gamma(epoch, loss.tpaneg_gamma_start,
                                              loss.tpaneg_gamma_end,
                                              loss.tpaneg_curriculum_epochs))
    return _build_negative_table(config, table, threshold, (config.seed, epoch),
                                 exclude_pairs)
  key = hashlib.sha256(json.dumps([
      "co-members-v2", loss.candidate_neg_num, loss.tpaneg_gamma_start,
      loss.tpaneg_max_similarity, len(table.item_ids),
      hashlib.sha256(table.features.tobytes()).hexdigest(),
      hashlib.sha256(table.set_items.tobytes()).hexdigest()]).encode()).hexdigest()[:16]
  path = os.path.join(config.model_dir, f"tpaneg_negatives-{key}.npy")
  if os.path.isfile(path):
    return np.load(path)
  negatives = _build_negative_table(config, table, loss.tpaneg_gamma_start, (0, 0),
                                    exclude_pairs)
  if is_chief:
    atomic_io.write_npy(path, negatives.astype(np.int32))
  return negatives


def _build_negative_table(config: configs.TrainConfig, table: data_files.ItemTable,
                          threshold: float, seed: tuple[int, int],
                          exclude_pairs: np.ndarray | None) -> np.ndarray:
  loss = config.loss
  start = time.time()
  if exclude_pairs is None:
    exclude_pairs = negative_table_lib.co_member_pairs(table.set_offsets, table.set_items)
  negatives = negative_table_lib.build_negative_table(
      table.features, table.categories, loss.candidate_neg_num, threshold,
      exclude_pairs=exclude_pairs,
      max_similarity=loss.tpaneg_max_similarity, pool=loss.tpaneg_pool, seed=seed)
  kept = (negatives >= 0).sum(axis=1)
  logging.info("TPaNeg %s candidates (cos in [%.2f, %.2f]): %d items, %.1f per item on "
               "average (%d with none), built in %.1f s", loss.tpaneg_pool, threshold,
               loss.tpaneg_max_similarity, len(kept), kept.mean(), int((kept == 0).sum()),
               time.time() - start)
  return negatives


def load_init_weights(encoder: keras.Model, path: str) -> None:
  """Loads a finished run's encoder weights (two-stage schedule) or says why it cannot."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: init_weights file does not exist")
  weights_io.load_weights_checked(encoder, path, "init_weights for this run's model flags")
  logging.info("initialised the encoder from %s", path)


def build_optimizer(config: configs.TrainConfig,
                    steps_per_epoch: int) -> keras.optimizers.Optimizer:
  """Adam with the configured schedule; loss-scaled under mixed_float16."""
  rate: Any = config.learning_rate
  if config.lr_schedule == "cosine":
    total = max(1, config.epochs * steps_per_epoch - config.warmup_steps)
    rate = keras.optimizers.schedules.CosineDecay(
        0.0 if config.warmup_steps else config.learning_rate, total, alpha=0.0,
        warmup_target=config.learning_rate if config.warmup_steps else None,
        warmup_steps=config.warmup_steps)
  optimizer = keras.optimizers.Adam(learning_rate=rate)
  if config.mixed_precision == "mixed_float16":
    return keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def _callbacks(config, encoder, evaluator, is_chief,
               redraw=None) -> list[keras.callbacks.Callback]:
  loss = config.loss
  chain: list[keras.callbacks.Callback] = []
  if loss.use_tpaneg:
    chain.append(callbacks.GammaCurriculum(loss.tpaneg_gamma_start, loss.tpaneg_gamma_end,
                                           loss.tpaneg_curriculum_epochs))
  if redraw is not None:
    chain.append(callbacks.NegativeRedraw(*redraw))
  chain += [
      callbacks.StepTiming(),
      callbacks.RetrievalValidation(
          evaluator, encoder, os.path.join(config.model_dir, weights_io.BEST_WEIGHTS), MONITOR,
          is_chief=is_chief),
      callbacks.LearningRateLogger(),
      keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max",
                                    patience=config.early_stopping_patience)]
  if config.lr_schedule == "constant" and config.reduce_lr_patience > 0:
    chain.append(keras.callbacks.ReduceLROnPlateau(
        monitor=MONITOR, mode="max", factor=config.reduce_lr_factor,
        patience=config.reduce_lr_patience, min_lr=config.min_learning_rate))
  chain.append(callbacks.HistoryCSV(os.path.join(config.model_dir, HISTORY), is_chief))
  if is_chief:
    # Event files are append-only logs: a resumed run adds a new file beside the old one.
    chain.append(keras.callbacks.TensorBoard(os.path.join(config.model_dir, "logs"),
                                             write_graph=False, profile_batch=0))
  return chain


def fingerprint(config: configs.TrainConfig, manifest: data_files.Manifest) -> dict:
  """What a checkpoint must agree on to be resumed: the run's settings and its data."""
  settings = dataclasses.asdict(config)
  for free in ("data_dir", "model_dir", "epochs", "verbose", "verify_shards"):
    settings.pop(free)
  return {**settings, "feature_dim": manifest.feature_dim,
          "categories": list(manifest.categories), "train_sets": manifest.num_sets("train")}


@dataclasses.dataclass
class TrainResult:
  """Summary over every epoch of the run, including those before a resume."""

  best_epoch: int
  best_value: float
  epochs_run: int
  seconds: float
  history: dict[str, list[float]]
  encoder: keras.Model
  start_step: int = 0

  @property
  def still_improving(self) -> bool:
    """Whether the best epoch is the last one: the run had not converged."""
    return self.epochs_run > 0 and self.best_epoch == self.epochs_run


def run(config: configs.TrainConfig, strategy: tf.distribute.Strategy | None = None,
        train_dataset: tf.data.Dataset | None = None) -> TrainResult:
  """Trains the encoder described by `config`, resuming from `<model_dir>/backup`.

  Args:
    config: The run; validated here before any work.
    strategy: Distribution strategy; default: from `config.strategy`.
    train_dataset: Endless batches to train on (tests inject tiny ones; a resume then
      restarts this dataset); default: `input_pipeline.training_stream` of the shards.
  """
  config.validate()
  manifest = data_files.load_manifest(config.data_dir)
  is_chief = distribution.is_chief()
  if is_chief:
    atomic_io.check_writable_dir(config.model_dir, "--model_dir")
    weights_io.write_signature(config.model_dir, manifest)
    run_config.write(config.model_dir, config.model, config.data_dir)
  if config.verify_shards:
    for split in ("train", "val"):
      data_files.verify_shards(manifest, split)
  keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  strategy = strategy or distribution.make_strategy(config.strategy, config.num_gpus)
  replicas = strategy.num_replicas_in_sync
  if config.batch_size % replicas:
    raise ValueError(f"batch_size {config.batch_size} is not divisible by the "
                     f"{replicas} replicas")
  steps = config.steps_per_epoch or max(1, manifest.num_sets("train") // config.batch_size)
  with data_files.shards_named_on_data_loss(manifest, ("val",)):
    evaluator = evaluator_lib.Evaluator(manifest, "val", chunk_size=config.gallery_chunk_size,
                                        seed=config.eval_split_seed)
  centers = data_files.load_centers(manifest)
  tables = bank_tables = redraw = None
  with strategy.scope():
    if config.loss.use_tpaneg or config.loss.use_bank_negatives:
      train_table = data_files.load_item_table(manifest, "train")
    if config.loss.use_tpaneg:
      if config.loss.tpaneg_pool == "random":
        # Drawn by the NegativeRedraw callback at the start of every epoch, from the
        # features variable: the redraw keeps no second copy of the train features.
        tables = retrieval_trainer.NegativeTables(
            tf.fill([len(train_table.item_ids), config.loss.candidate_neg_num], -1),
            train_table.features)
        pairs = negative_table_lib.co_member_pairs(train_table.set_offsets,
                                                   train_table.set_items)
        redrawn = dataclasses.replace(train_table, features=tables.features)
        redraw = (tables.negatives,
                  lambda epoch: negative_table(config, redrawn, is_chief, epoch, pairs))
      else:
        tables = retrieval_trainer.NegativeTables(negative_table(config, train_table, is_chief),
                                                  train_table.features)
    if config.loss.use_bank_negatives:
      static_bank = bank.build_bank(train_table.features, train_table.categories,
                                    manifest.num_categories)
      logging.info("negative bank: %d rows from %d train items", len(static_bank.features),
                   len(train_table.features))
      bank_tables = retrieval_trainer.BankTables(static_bank)
    if config.loss.use_tpaneg or config.loss.use_bank_negatives:
      del train_table  # Its features live in the tables' variables now (GBs at scale).
    encoder = builder.build_encoder(config.model, manifest, centers, config.mixed_precision)
    if config.init_weights:
      load_init_weights(encoder, config.init_weights)
    trainer = retrieval_trainer.SetRetrievalTrainer(encoder, config.loss, tables, bank_tables)
    trainer.compile(optimizer=build_optimizer(config, steps), jit_compile=config.jit_compile)
  checkpointer = resume.Checkpointer(os.path.join(config.model_dir, BACKUP), trainer,
                                     fingerprint(config, manifest), is_chief)
  start_step = checkpointer.restore()
  if train_dataset is None:
    train_dataset = input_pipeline.training_stream(
        manifest, config.batch_size, seed=config.seed, shuffle_buffer=config.shuffle_buffer,
        start_step=start_step)
  if config.jit_compile:
    train_dataset = input_pipeline.without_strings(train_dataset)
  chain = _callbacks(config, encoder, evaluator, is_chief, redraw)
  label = manifest.data_label()
  logging.info("training %s on %s: %d train sets, batch %d over %d replica(s), from epoch %d "
               "step %d", config.model.model, label, manifest.num_sets("train"),
               config.batch_size, replicas, start_step // steps + 1, start_step % steps)
  start = time.time()
  with data_files.shards_named_on_data_loss(manifest, ("train", "val")):
    trainer.fit(input_pipeline.distribute(strategy, train_dataset), epochs=config.epochs,
                initial_epoch=start_step // steps,
                steps_per_epoch=steps, verbose=config.verbose, shuffle=False,
                callbacks=resume.wrap_callbacks(checkpointer, chain, start_step, steps,
                                                config.checkpoint_every_steps))
  if is_chief:
    callbacks.save_weights_atomically(
        encoder, os.path.join(config.model_dir, weights_io.FINAL_WEIGHTS))
  # Only now: a kill before this point reruns from the last checkpoint, not from scratch.
  checkpointer.remove()
  seconds = time.time() - start
  history = next(c for c in chain if isinstance(c, callbacks.HistoryCSV)).history()
  values = history.get(MONITOR, [])
  best_epoch = int(np.argmax(values)) if values else -1
  result = TrainResult(best_epoch=best_epoch + 1, best_value=float(max(values, default=np.nan)),
                       epochs_run=len(values), seconds=seconds, history=history,
                       encoder=encoder, start_step=start_step)
  logging.info("done on %s: best %s %.4f at epoch %d of %d (%s), %.1f s; weights in %s",
               label, MONITOR, result.best_value, result.best_epoch, result.epochs_run,
               "the epoch budget ended it" if result.epochs_run >= config.epochs else
               f"early stopping after {config.early_stopping_patience} epochs without "
               "improvement", seconds, config.model_dir)
  if result.still_improving:
    logging.warning(STILL_IMPROVING)
  return result
