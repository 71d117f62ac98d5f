"""Mixed precision and XLA paths of the trainer: one real step each on a tiny batch."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from bench import flop_count
from bench import step_timer
from keras_models import configs
from keras_models import data_files
from keras_models import input_pipeline
from keras_models import retrieval_trainer
from keras_models import training
from keras_models.models import builder

_SHAPE = flop_count.StepShape(batch_size=4, half_size=3, num_categories=3, feature_dim=8,
                              hidden_dim=8, num_layers=1, candidate_neg_num=4)
_MANIFEST = data_files.Manifest(data_dir="tiny", source="synthetic", synthetic=True,
                                feature_dim=8, num_categories=3, categories=(),
                                max_set_size=6, splits={})


def _fit_one_step(mixed_precision: str, jit: bool = False):
  loss = configs.LossConfig()
  model = configs.ModelConfig(hidden_dim=8, num_layers=1, num_heads=2)
  config = configs.TrainConfig(data_dir="-", model_dir="-", model=model, loss=loss,
                               batch_size=4, mixed_precision=mixed_precision,
                               jit_compile=jit)
  config.validate()
  keras.utils.set_random_seed(0)
  batch = step_timer.synthetic_batch(_SHAPE)
  encoder = builder.build_encoder(model, _MANIFEST, None, mixed_precision)
  trainer = retrieval_trainer.SetRetrievalTrainer(encoder, loss)
  trainer.compile(optimizer=training.build_optimizer(config, 1), jit_compile=jit)
  dataset = tf.data.Dataset.from_tensors(batch)
  if jit:
    dataset = input_pipeline.without_strings(dataset)
  history = trainer.fit(dataset, epochs=1, verbose=0)
  return encoder, trainer, batch, history.history


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_step_keeps_float32_weights_and_losses(policy):
  encoder, trainer, batch, history = _fit_one_step(policy)
  compute = policy.split("_")[1]
  assert encoder.item_blocks[0].feed_forward.inner.compute_dtype == compute
  assert {v.dtype for v in encoder.trainable_variables} == {"float32"}
  assert keras.mixed_precision.global_policy().name == "float32"  # restored after build
  assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer) == (
      policy == "mixed_float16")
  terms = trainer._loss_terms(batch, training=False)
  for name, term in terms.items():
    assert term.loss_sum.dtype == tf.float32 and term.count.dtype == tf.float32, name
  predictions = trainer(batch)
  assert predictions.dtype == tf.float32
  assert all(np.isfinite(values).all() for values in history.values())


def test_jit_compile_step_runs_on_pipeline_batches_with_set_ids():
  _, _, batch, history = _fit_one_step("none", jit=True)
  assert batch["set_id"].dtype.kind == "S"  # the string field the jitted step must not see
  assert np.isfinite(history["loss"]).all()


def test_without_strings_drops_only_string_fields():
  batch = step_timer.synthetic_batch(_SHAPE)
  dataset = input_pipeline.without_strings(tf.data.Dataset.from_tensors(batch))
  (kept,) = list(dataset)
  assert set(kept) == set(batch) - {"set_id"}
  np.testing.assert_array_equal(kept["query_features"].numpy(), batch["query_features"])


def test_unknown_mixed_precision_is_rejected():
  config = configs.TrainConfig(data_dir="d", model_dir="m", mixed_precision="float8")
  with pytest.raises(ValueError, match="mixed_precision must be one of .* got 'float8'"):
    config.validate()
