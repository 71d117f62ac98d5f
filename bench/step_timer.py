"""Times the real trainer on fixed shapes: used by train_throughput.py and pipeline.py.

Drives `builder.build_encoder`, `SetRetrievalTrainer` and `training.build_optimizer`
through `trainer.fit`, by default on one fixed SYNTHETIC batch held in memory, so the
input pipeline is out of the measurement. Reports median seconds per window of steps
after a warm-up epoch, sets/s, and achieved FLOP/s (analytic count, bench/flop_count.py)
over the dense-matmul FLOP/s probed in the same process before and after every window.
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
from keras_models import input_pipeline
from keras_models import retrieval_trainer
from keras_models import training
from keras_models.models import builder

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
  """Seconds per epoch, with an optional limit probe before the first and after each epoch.

  Probing between windows lets each window be compared with the device rate of the same
  minute, which matters on a shared machine whose load changes during the run.
  """

  def __init__(self, probe=None):
    super().__init__()
    self._probe = probe
    self.seconds: list[float] = []
    self.probes: list[float] = []

  def on_train_begin(self, logs=None):
    if self._probe:
      self.probes.append(self._probe())

  def on_epoch_begin(self, epoch, logs=None):
    self._start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    self.seconds.append(time.perf_counter() - self._start)
    if self._probe:
      self.probes.append(self._probe())


def time_variant(variant: str, jit: bool, precision: str, shape: flop_count.StepShape,
                 model_config: configs.ModelConfig, window_steps: int, num_windows: int,
                 matmul_size: int, strategy_name: str = "mirrored",
                 fed_dataset: tf.data.Dataset | None = None) -> dict:
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
    fed_dataset: If given, the same trainer is then timed again on these batches (an
      endless dataset), giving `fed_sets_per_second`.
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
  matmul_dtype = tf.float32 if precision == "none" else tf.dtypes.as_dtype(precision[6:])
  probe = (lambda: harness.matmul_flops_per_second(matmul_size, matmul_dtype, num_windows=3)
           ) if matmul_size else None
  keras.utils.set_random_seed(0)
  strategy = distribution.make_strategy(config.strategy)
  with strategy.scope():
    tables = negative_tables(batch, shape.candidate_neg_num) if use_tpaneg else None
    encoder = builder.build_encoder(model_config, manifest, None, precision)
    trainer = retrieval_trainer.SetRetrievalTrainer(encoder, loss, tables)
    trainer.compile(optimizer=training.build_optimizer(config, window_steps), jit_compile=jit)

  def fit(dataset: tf.data.Dataset, with_probe: bool):
    if jit:
      dataset = input_pipeline.without_strings(dataset)  # as training.run does
    timer = _WindowTimer(probe if with_probe else None)
    history = trainer.fit(dataset, epochs=1 + num_windows, steps_per_epoch=window_steps,
                          callbacks=[timer], verbose=0)
    return timer, history

  timer, history = fit(tf.data.Dataset.from_tensors(batch).repeat(), True)
  step_flops = flop_count.train_step_flops(shape, use_cycle, use_tpaneg)
  step_seconds = harness.median(timer.seconds[1:]) / window_steps
  result = {
      "variant": variant, "jit_compile": jit, "mixed_precision": precision,
      "sets_per_second": shape.batch_size / step_seconds, "step_ms": 1e3 * step_seconds,
      "step_gflop": step_flops / 1e9, "achieved_gflops": step_flops / step_seconds / 1e9,
      "window_seconds": timer.seconds[1:], "warmup_seconds": timer.seconds[0],
      "final_loss": float(history.history["loss"][-1]),
      "load_average_1min": harness.load_average()}
  if probe:
    # Window i (after the warm-up) lies between probes i and i + 1.
    ratios = [step_flops * window_steps / seconds / (0.5 * (before + after))
              for seconds, before, after in zip(timer.seconds[1:], timer.probes[1:],
                                                timer.probes[2:])]
    result.update(matmul_limit_gflops=harness.median(timer.probes) / 1e9,
                  matmul_probes_gflops=[p / 1e9 for p in timer.probes],
                  window_ratios=ratios, ratio_to_matmul_limit=harness.median(ratios))
  if fed_dataset is not None:
    fed_timer, _ = fit(fed_dataset, False)
    result["fed_sets_per_second"] = (
        shape.batch_size * window_steps / harness.median(fed_timer.seconds[1:]))
    result["fed_load_average_1min"] = harness.load_average()
  return result


def breakdown(shape: flop_count.StepShape, model_config: configs.ModelConfig,
              repeats: int = 3) -> list[dict]:
  """Where the in-batch step's time goes: its parts timed alone, each as a `tf.function`.

  Parts: both encoder passes forward; both passes forward + backward; the two loss terms
  forward + backward on fixed predictions; one Adam update of every weight; the whole
  `train_step`. Median of `repeats` calls after a warm-up call.
  """
  config = configs.TrainConfig(data_dir="-", model_dir="-", model=model_config,
                               batch_size=shape.batch_size)
  manifest = data_files.Manifest(
      data_dir="bench", source="synthetic", synthetic=True, feature_dim=shape.feature_dim,
      num_categories=shape.num_categories, categories=(), max_set_size=2 * shape.half_size,
      splits={})
  batch = {k: tf.constant(v) for k, v in synthetic_batch(shape).items() if k != "set_id"}
  encoder = builder.build_encoder(model_config, manifest)
  trainer = retrieval_trainer.SetRetrievalTrainer(encoder, configs.LossConfig())
  trainer.compile(optimizer=training.build_optimizer(config, 1))
  halves = [input_pipeline.model_inputs(batch, p) for p in ("query", "target")]
  variables = encoder.trainable_variables
  predictions = [tf.stop_gradient(encoder(h)) for h in halves]

  def forward():
    return [encoder(h, training=True) for h in halves]

  def forward_backward():
    with tf.GradientTape() as tape:
      total = tf.add_n([tf.reduce_sum(p) for p in forward()])
    return tape.gradient(total, variables)

  def losses():
    with tf.GradientTape() as tape:
      tape.watch(predictions)
      terms = [trainer._term(p, batch, prefix)[0]  # pylint: disable=protected-access
               for p, prefix in zip(predictions, ("target", "query"))]
    return tape.gradient(tf.add_n(terms), predictions)

  gradients = [tf.zeros_like(v) for v in variables]
  first, rest = flop_count.encoder_forward_flops(shape)
  parts = {
      "encoder forward (2 passes)": (forward, 2 * (first + rest)),
      "encoder forward+backward": (forward_backward, 2 * (2 * first + 3 * rest)),
      "losses forward+backward": (losses, 2 * 4.0 * (shape.batch_size * shape.half_size) ** 2
                                  * shape.feature_dim),
      "adam update": (lambda: trainer.optimizer.apply(gradients, variables), 0.0),
      "whole train_step": (lambda: trainer.train_step(batch),
                           flop_count.train_step_flops(shape, False, False)),
  }
  rows = []
  for name, (function, flops) in parts.items():
    compiled = tf.function(function)
    _block(compiled())
    seconds = harness.median(harness.timed_windows(lambda: _block(compiled()), repeats))
    rows.append({"part": name, "ms": 1e3 * seconds,
                 "achieved_gflops": flops / seconds / 1e9 if flops else float("nan"),
                 "load_average_1min": harness.load_average()})
  whole = rows[-1]["ms"]
  for row in rows:
    row["share_of_step"] = row["ms"] / whole
  return rows


def _block(outputs) -> None:
  """Waits for `outputs` by reading one value of each tensor."""
  for tensor in tf.nest.flatten(outputs):
    if isinstance(tensor, tf.Tensor):
      tf.reshape(tensor, [-1])[:1].numpy()
