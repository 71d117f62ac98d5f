"""Library entry of training: `run(config)` builds data, model and callbacks, then fits.

Writes to `config.model_dir`: best.weights.h5 / final.weights.h5 (the encoder, Keras 3
format), history.csv, TensorBoard logs under logs/, a backup for resuming under backup/,
and the TPaNeg negative table cache.
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
from keras_models import retrieval_trainer
from keras_models.losses import bank
from keras_models.losses import tpaneg
from keras_models.models import registry
from tfrecords_builder import atomic_io

BEST_WEIGHTS = "best.weights.h5"
FINAL_WEIGHTS = "final.weights.h5"
MONITOR = "val_top_10_percent"


def build_encoder(model_config: configs.ModelConfig, manifest: data_files.Manifest,
                  centers: np.ndarray | None = None) -> keras.Model:
  """Creates the registered encoder for the data of `manifest` and builds its weights."""
  model_class = registry.get_model_class(model_config.model)
  encoder = model_class(
      num_categories=manifest.num_categories, feature_dim=manifest.feature_dim,
      hidden_dim=model_config.hidden_dim, num_layers=model_config.num_layers,
      num_heads=model_config.num_heads, dropout_rate=model_config.dropout_rate,
      category_centers=centers, trainable_seeds=model_config.trainable_seeds)
  encoder.build_for(manifest.half_size)
  return encoder


def negative_table(config: configs.TrainConfig, table: data_files.ItemTable) -> np.ndarray:
  """TPaNeg candidates of every train item, cached in model_dir keyed by its inputs."""
  loss = config.loss
  key = hashlib.sha256(json.dumps([
      loss.candidate_neg_num, loss.tpaneg_gamma_start, len(table.item_ids),
      hashlib.sha256(table.features.tobytes()).hexdigest()]).encode()).hexdigest()[:16]
  path = os.path.join(config.model_dir, f"tpaneg_negatives-{key}.npy")
  if os.path.isfile(path):
    return np.load(path)
  start = time.time()
  negatives = tpaneg.build_negative_table(
      table.features, table.categories, loss.candidate_neg_num, loss.tpaneg_gamma_start,
      set_ids=table.first_set)
  atomic_io.write_npy(path, negatives.astype(np.int32))
  kept = (negatives >= 0).sum(axis=1)
  logging.info("TPaNeg candidates: %d items, %.1f per item on average (%d with none), "
               "built in %.1f s", len(kept), kept.mean(), int((kept == 0).sum()),
               time.time() - start)
  return negatives


def load_init_weights(encoder: keras.Model, path: str) -> None:
  """Loads a finished run's encoder weights (two-stage schedule) or says why it cannot."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: init_weights file does not exist")
  try:
    encoder.load_weights(path)
  except ValueError as error:
    raise ValueError(f"{path}: init_weights do not fit this model ({encoder.name}); train "
                     f"with the stage-1 model flags: {error}") from error
  logging.info("initialised the encoder from %s", path)


def _optimizer(config: configs.TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
  rate: Any = config.learning_rate
  if config.lr_schedule == "cosine":
    total = max(1, config.epochs * steps_per_epoch - config.warmup_steps)
    rate = keras.optimizers.schedules.CosineDecay(
        0.0 if config.warmup_steps else config.learning_rate, total, alpha=0.0,
        warmup_target=config.learning_rate if config.warmup_steps else None,
        warmup_steps=config.warmup_steps)
  return keras.optimizers.Adam(learning_rate=rate)


def _callbacks(config, encoder, evaluator, is_chief) -> list[keras.callbacks.Callback]:
  loss = config.loss
  history_path = os.path.join(config.model_dir, "history.csv")
  chain: list[keras.callbacks.Callback] = [
      keras.callbacks.BackupAndRestore(os.path.join(config.model_dir, "backup"))]
  if loss.use_tpaneg:
    chain.append(callbacks.GammaCurriculum(loss.tpaneg_gamma_start, loss.tpaneg_gamma_end,
                                           loss.tpaneg_curriculum_epochs))
  chain += [
      callbacks.RetrievalValidation(evaluator, encoder,
                                    os.path.join(config.model_dir, BEST_WEIGHTS), MONITOR,
                                    is_chief=is_chief),
      callbacks.LearningRateLogger(),
      keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max",
                                    patience=config.early_stopping_patience)]
  if config.lr_schedule == "constant" and config.reduce_lr_patience > 0:
    chain.append(keras.callbacks.ReduceLROnPlateau(
        monitor=MONITOR, mode="max", factor=config.reduce_lr_factor,
        patience=config.reduce_lr_patience, min_lr=config.min_learning_rate))
  chain += [keras.callbacks.CSVLogger(history_path, append=os.path.exists(history_path)),
            keras.callbacks.TensorBoard(os.path.join(config.model_dir, "logs"),
                                        write_graph=False, profile_batch=0)]
  return chain


@dataclasses.dataclass
class TrainResult:
  best_epoch: int
  best_value: float
  epochs_run: int
  seconds: float
  history: dict[str, list[float]]
  encoder: keras.Model


def run(config: configs.TrainConfig, strategy: tf.distribute.Strategy | None = None,
        train_dataset: tf.data.Dataset | None = None) -> TrainResult:
  """Trains the encoder described by `config`.

  Args:
    config: The run; validated here before any work.
    strategy: Distribution strategy; default: from `config.strategy`.
    train_dataset: Batches to train on (tests inject tiny ones); default: the shards.
  """
  config.validate()
  manifest = data_files.load_manifest(config.data_dir)
  keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  strategy = strategy or distribution.make_strategy(config.strategy, config.num_gpus)
  replicas = strategy.num_replicas_in_sync
  if config.batch_size % replicas:
    raise ValueError(f"batch_size {config.batch_size} is not divisible by the "
                     f"{replicas} replicas")
  os.makedirs(config.model_dir, exist_ok=True)
  if train_dataset is None:
    train_dataset = input_pipeline.make_dataset(
        manifest, "train", config.batch_size, training=True, seed=config.seed,
        shuffle_buffer=config.shuffle_buffer)
  # A finite dataset is drained every epoch (a fresh pass, reshuffled); only an explicit
  # steps_per_epoch needs repeat().
  steps = config.steps_per_epoch or max(1, manifest.num_sets("train") // config.batch_size)
  evaluator = evaluator_lib.Evaluator(manifest, "val", chunk_size=config.gallery_chunk_size,
                                   seed=config.eval_split_seed)
  centers = data_files.load_centers(manifest)
  tables = bank_tables = None
  with strategy.scope():
    if config.loss.use_tpaneg or config.loss.use_bank_negatives:
      train_table = data_files.load_item_table(manifest, "train")
    if config.loss.use_tpaneg:
      tables = retrieval_trainer.NegativeTables(negative_table(config, train_table),
                                                train_table.features)
    if config.loss.use_bank_negatives:
      static_bank = bank.build_bank(train_table.features, train_table.categories,
                                    manifest.num_categories)
      logging.info("negative bank: %d rows from %d train items", len(static_bank.features),
                   len(train_table.features))
      bank_tables = retrieval_trainer.BankTables(static_bank)
    encoder = build_encoder(config.model, manifest, centers)
    if config.init_weights:
      load_init_weights(encoder, config.init_weights)
    trainer = retrieval_trainer.SetRetrievalTrainer(encoder, config.loss, tables, bank_tables)
    trainer.compile(optimizer=_optimizer(config, steps), jit_compile=config.jit_compile)
  is_chief = _is_chief(strategy)
  label = manifest.data_label()
  logging.info("training %s on %s: %d train sets, batch %d over %d replica(s)",
               config.model.model, label, manifest.num_sets("train"), config.batch_size, replicas)
  start = time.time()
  history = trainer.fit(
      train_dataset.repeat() if config.steps_per_epoch else train_dataset,
      epochs=config.epochs, steps_per_epoch=config.steps_per_epoch or None,
      callbacks=_callbacks(config, encoder, evaluator, is_chief),
      verbose=config.verbose)
  if is_chief:
    callbacks.save_weights_atomically(encoder, os.path.join(config.model_dir, FINAL_WEIGHTS))
  seconds = time.time() - start
  values = history.history.get(MONITOR, [])
  best_epoch = int(np.argmax(values)) if values else -1
  result = TrainResult(best_epoch=best_epoch + 1, best_value=float(max(values, default=np.nan)),
                       epochs_run=len(values), seconds=seconds, history=history.history,
                       encoder=encoder)
  logging.info("done on %s: best %s %.4f at epoch %d of %d, %.1f s; weights in %s", label,
               MONITOR, result.best_value, result.best_epoch, result.epochs_run, seconds,
               config.model_dir)
  return result


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  return resolver.task_type in (None, "chief") or (
      resolver.task_type == "worker" and resolver.task_id == 0)
