"""Times the real trainer on fixed shapes: used by train_throughput.py and pipeline.py.

Drives `training.build_encoder`, `SetRetrievalTrainer` and `training.build_optimizer`
through `trainer.fit`, by default on one fixed SYNTHETIC batch held in memory, so the
input pipeline is out of the measurement. Reports median seconds per window of steps
after a warm-up epoch, sets/s, and achieved FLOP/s (analytic count, bench/flop_count.py)
over the dense-matmul FLOP/s measured in the same process right before and after.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from bench import flop_count
from bench import harness
from keras_models import configs
from keras_models import data_files
from keras_models import distribution
from keras_models import retrieval_trainer
from keras_models import training

VARIANTS = {"in_batch": (False, False), "cycle": (True, False), "tpaneg": (False, True),
            "integrated": (True, True)}


def _limit(matmul_size: int, dtype: tf.DType) -> float:
  return harness.matmul_flops_per_second(matmul_size, dtype) if matmul_size else float("nan")


def synthetic_batch(shape: flop_count.StepShape, seed: int = 0) -> dict[str, np.ndarray]:
  """One pipeline-format batch of SYNTHETIC sets of 2..2n items; item rows are unique."""
  rng = np.random.default_rng(seed)
  b, n, d = shape.batch_size, shape.half_size, shape.feature_dim
  batch = {"set_id": np.array([f"bench{i}".encode() for i in range(b)])}
  for offset, prefix in enumerate(("query", "target")):
    counts = rng.integers(1, n + 1, b)
    mask = np.arange(n)[None] < counts[:, None]
    features = rng.standard_normal((b, n, d)).astype(np.float32)
    features /= np.linalg.norm(features, axis=-1, keepdims=True)
    rows = (np.arange(b * n).reshape(b, n) + offset * b * n).astype(np.int32)
    batch.update({
        f"{prefix}_features": features * mask[..., None],
        f"{prefix}_categories": np.where(mask, rng.integers(1, shape.num_categories + 1,
                                                            (b, n)), 0).astype(np.int32),
        f"{prefix}_mask": mask, f"{prefix}_item_index": np.where(mask, rows, -1)})
  return batch


def negative_tables(batch: dict[str, np.ndarray], num_negatives: int,
                    seed: int = 0) -> retrieval_trainer.NegativeTables:
  """Item table of the batch's items with random candidate rows (10% padding)."""
  rng = np.random.default_rng(seed)
  features = np.concatenate([batch["query_features"], batch["target_features"]])
  features = features.reshape(-1, features.shape[-1])
  negatives = rng.integers(0, len(features), (len(features), num_negatives)).astype(np.int32)
  negatives[rng.random(negatives.shape) < 0.1] = -1
  return retrieval_trainer.NegativeTables(negatives, features)


class _WindowTimer(keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.seconds: list[float] = []

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    self.seconds.append(time.perf_counter() - self._start)


def time_variant(variant: str, jit: bool, precision: str, shape: flop_count.StepShape,
                 model_config: configs.ModelConfig, window_steps: int, num_windows: int,
                 matmul_size: int, strategy_name: str = "mirrored",
                 dataset: tf.data.Dataset | None = None) -> dict:
  """Times `trainer.fit` of one variant; see the module docstring.

  Args:
    variant: A key of `VARIANTS`.
    jit: Compile the train step with XLA.
    precision: "none" or a Keras mixed policy name.
    shape: Step sizes.
    model_config: The CST architecture.
    window_steps: Steps per timed window (the first window is a warm-up).
    num_windows: Timed windows after the warm-up.
    matmul_size: Side of the limit matmul; 0 skips the limit.
    strategy_name: Distribution strategy, as in training.
    dataset: Batches to train on; default: one SYNTHETIC batch repeated from memory.
  """
  use_cycle, use_tpaneg = VARIANTS[variant]
  loss = configs.LossConfig(use_cycle_loss=use_cycle, use_tpaneg=use_tpaneg,
                            candidate_neg_num=shape.candidate_neg_num)
  config = configs.TrainConfig(data_dir="-", model_dir="-", model=model_config, loss=loss,
                               batch_size=shape.batch_size, jit_compile=jit,
                               mixed_precision=precision, strategy=strategy_name)
  config.validate()
  manifest = data_files.Manifest(
      data_dir="bench", source="synthetic", synthetic=True, feature_dim=shape.feature_dim,
      num_categories=shape.num_categories, categories=(), max_set_size=2 * shape.half_size,
      splits={})
  batch = synthetic_batch(shape)
  if dataset is None:
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
  matmul_dtype = tf.float32 if precision == "none" else tf.dtypes.as_dtype(precision[6:])
  limit_before = _limit(matmul_size, matmul_dtype)
  keras.utils.set_random_seed(0)
  strategy = distribution.make_strategy(config.strategy)
  with strategy.scope():
    tables = negative_tables(batch, shape.candidate_neg_num) if use_tpaneg else None
    encoder = training.build_encoder(model_config, manifest, None, precision)
    trainer = retrieval_trainer.SetRetrievalTrainer(encoder, loss, tables)
    trainer.compile(optimizer=training.build_optimizer(config, window_steps), jit_compile=jit)
  timer = _WindowTimer()
  history = trainer.fit(dataset, epochs=1 + num_windows,
                        steps_per_epoch=window_steps, callbacks=[timer], verbose=0)
  limit_after = _limit(matmul_size, matmul_dtype)
  step_seconds = harness.median(timer.seconds[1:]) / window_steps
  flops = flop_count.train_step_flops(shape, use_cycle, use_tpaneg) / step_seconds
  limit = 0.5 * (limit_before + limit_after)
  return {
      "variant": variant, "jit_compile": jit, "mixed_precision": precision,
      "sets_per_second": shape.batch_size / step_seconds, "step_ms": 1e3 * step_seconds,
      "step_gflop": flop_count.train_step_flops(shape, use_cycle, use_tpaneg) / 1e9,
      "achieved_gflops": flops / 1e9, "matmul_limit_gflops": limit / 1e9,
      "matmul_limit_before_after_gflops": [limit_before / 1e9, limit_after / 1e9],
      "ratio_to_matmul_limit": flops / limit,
      "window_seconds": timer.seconds[1:], "warmup_seconds": timer.seconds[0],
      "final_loss": float(history.history["loss"][-1]),
      "load_average_1min": harness.load_average()}
