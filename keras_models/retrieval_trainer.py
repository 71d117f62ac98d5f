"""Keras model that trains a set encoder with the paper's losses in a custom train_step.

Loss (all terms category-wise, targets are the input item features):
  L = L(X -> Y') + L(Y -> X') [+ cycle_lambda * (L(X'' | X) + L(Y'' | Y))]
with L the in-batch InfoNCE or, with TPaNeg, the curriculum hard-negative loss
(tpaneg_mode=replace, the paper's) or one softmax over the in-batch and the kept hard
negatives together (tpaneg_mode=add). The same item met in another set of the batch is
not a negative (remove_accidental_hits). With bank
negatives, L is the static-bank InfoNCE (bank_mode=replace), or bank_weight times the bank
terms bank_x_to_y / bank_y_to_x are added (bank_mode=add). Every term
is a per-replica sum divided by the GLOBAL number of counted items, so gradients summed
over replicas equal the single-device gradient of the global batch (PLATFORM.md).
In-batch negatives come from the whole global batch (targets are all-gathered).
"""

from __future__ import annotations

import typing

import keras
import tensorflow as tf

from keras_models import configs
from keras_models import distribution
from keras_models import input_pipeline
from keras_models.losses import bank
from keras_models.losses import infonce
from keras_models.losses import set_ops
from keras_models.losses import tpaneg

TERMS = ("x_to_y", "y_to_x", "cycle_x", "cycle_y")
BANK_TERMS = ("bank_x_to_y", "bank_y_to_x")
OTHER = {"query": "target", "target": "query"}


class Term(typing.NamedTuple):
  """One loss term of a replica: its sum, its counted items, and TPaNeg's statistics.

  `kept` is the number of kept hard negatives summed over valid targets, `starved` the
  number of valid targets left with none (they drop out of the replace-mode loss).
  """

  loss_sum: tf.Tensor
  count: tf.Tensor
  kept: tf.Tensor
  starved: tf.Tensor


def _no_tpaneg(loss_sum: tf.Tensor, count: tf.Tensor) -> Term:
  return Term(loss_sum, count, tf.constant(0.0), tf.constant(0.0))


class NegativeTables:
  """TPaNeg lookup tables, kept out of Keras weight tracking so they are not saved.

  Attributes:
    negatives: [num_train_items, candidate_neg_num] int32 variable, -1 padding.
    features: [num_train_items, D] float32 variable of train item features.
  """

  def __init__(self, negatives, features):
    self.negatives = tf.Variable(negatives, trainable=False, dtype=tf.int32, name="neg_table")
    self.features = tf.Variable(features, trainable=False, dtype=tf.float32, name="neg_features")
    # The variables are the tables' only copies: the arguments can be dropped.


class BankTables:
  """Static negative bank (`bank.Bank`) as non-trainable variables, not saved as weights.

  Attributes:
    features: [num_rows, D] float32 unit rows sorted by category.
    offsets: [K + 1] int32 category row offsets.
    item_rows: [num_train_items] int32 bank row of each train item.
  """

  def __init__(self, static_bank: bank.Bank):
    self.features = tf.Variable(static_bank.features, trainable=False, dtype=tf.float32,
                                name="bank_features")
    self.offsets = tf.Variable(static_bank.offsets, trainable=False, dtype=tf.int32,
                               name="bank_offsets")
    self.item_rows = tf.Variable(static_bank.item_rows, trainable=False, dtype=tf.int32,
                                 name="bank_item_rows")


class SetRetrievalTrainer(keras.Model):
  """Wraps `encoder` (half-set -> [batch, K, D]) with the training losses.

  Build and compile it inside `strategy.scope()`.
  """

  def __init__(self, encoder: keras.Model, loss_config: configs.LossConfig,
               negative_tables: NegativeTables | None = None,
               bank_tables: BankTables | None = None, **kwargs):
    super().__init__(**kwargs)
    if loss_config.use_tpaneg and negative_tables is None:
      raise ValueError("use_tpaneg needs negative_tables")
    if loss_config.use_bank_negatives and bank_tables is None:
      raise ValueError("use_bank_negatives needs bank_tables")
    self.encoder = encoder
    self.loss_config = loss_config
    self._tables = negative_tables
    self._bank = bank_tables
    self.tpaneg_gamma = self.add_weight(
        shape=(), initializer=keras.initializers.Constant(loss_config.tpaneg_gamma_start),
        trainable=False, name="tpaneg_gamma")
    self.total_tracker = keras.metrics.Mean(name="loss")
    self.term_trackers = {t: keras.metrics.Mean(name=f"loss/{t}") for t in self._active_terms()}
    self.kept_tracker = keras.metrics.Mean(name="tpaneg/kept_negatives_per_item")
    self.starved_tracker = keras.metrics.Mean(name="tpaneg/no_negative_fraction")
    # The encoder arrives built; the trainer itself owns no other weights to create.
    self.built = True

  def _adds_bank(self) -> bool:
    return self.loss_config.use_bank_negatives and self.loss_config.bank_mode == "add"

  def _active_terms(self) -> tuple[str, ...]:
    terms = TERMS if self.loss_config.use_cycle_loss else TERMS[:2]
    return terms + BANK_TERMS if self._adds_bank() else terms

  def _weight(self, name: str) -> float:
    if name.startswith("cycle"):
      return self.loss_config.cycle_lambda
    return self.loss_config.bank_weight if name in BANK_TERMS else 1.0

  @property
  def metrics(self):
    trackers = [self.total_tracker, *self.term_trackers.values()]
    if self.loss_config.use_tpaneg:
      trackers += [self.kept_tracker, self.starved_tracker]
    return trackers

  def call(self, inputs, training=False):
    """Predictions [batch, K, D] for the query half of a pipeline batch."""
    return self.encoder(input_pipeline.model_inputs(inputs, "query"), training=training)

  def _bank_term(self, predictions: tf.Tensor, batch: dict[str, tf.Tensor],
                 prefix: str) -> Term:
    """The static-bank InfoNCE against half `prefix` of `batch`."""
    loss_sum, count = bank.bank_infonce(
        predictions, batch[f"{prefix}_categories"], batch[f"{prefix}_mask"],
        batch[f"{prefix}_item_index"], self._bank.item_rows, self._bank.features,
        self._bank.offsets, self.loss_config.bank_temperature,
        self.loss_config.bank_chunk_size)
    return _no_tpaneg(loss_sum, count)

  def _in_batch_logits(self, predictions: tf.Tensor, batch: dict[str, tf.Tensor],
                       prefix: str) -> infonce.CategoryLogits:
    """In-batch logits against every target of the global batch (all-gathered)."""
    features = batch[f"{prefix}_features"]
    categories = batch[f"{prefix}_categories"]
    mask = batch[f"{prefix}_mask"]
    item_index = batch[f"{prefix}_item_index"]
    context = tf.distribute.get_replica_context()
    offset = 0
    candidates = (features, categories, mask, item_index)
    if context is not None and context.num_replicas_in_sync > 1:
      # The gather sums numbers, hence the int mask.
      candidates = tuple(distribution.all_gather_rows(context, t)
                         for t in (features, categories, tf.cast(mask, tf.int32), item_index))
      offset = context.replica_id_in_sync_group * tf.shape(features)[0]
    identity = self.loss_config.remove_accidental_hits
    return infonce.category_logits(
        predictions, features, categories, mask, self.loss_config.temperature,
        candidate_features=candidates[0], candidate_categories=candidates[1],
        candidate_mask=candidates[2], batch_offset=offset,
        target_item_index=item_index if identity else None,
        candidate_item_index=candidates[3] if identity else None)

  def _hard_negatives(self, predictions: tf.Tensor, batch: dict[str, tf.Tensor],
                      prefix: str) -> tpaneg.HardNegativeLogits:
    negative_features, negative_mask = tpaneg.gather_negatives(
        batch[f"{prefix}_item_index"], self._tables.negatives, self._tables.features)
    config = self.loss_config
    return tpaneg.tpaneg_logits(
        predictions, batch[f"{prefix}_features"], batch[f"{prefix}_categories"],
        batch[f"{prefix}_mask"], negative_features, negative_mask,
        gamma=self.tpaneg_gamma.value, epsilon=config.tpaneg_epsilon,
        temperature=config.temperature)

  def _term(self, predictions: tf.Tensor, batch: dict[str, tf.Tensor], prefix: str) -> Term:
    """One loss term against half `prefix` of `batch`."""
    config = self.loss_config
    if config.use_bank_negatives and config.bank_mode == "replace":
      return self._bank_term(predictions, batch, prefix)
    if not config.use_tpaneg:
      parts = self._in_batch_logits(predictions, batch, prefix)
      return _no_tpaneg(*_masked_loss(parts.logits, parts.allowed, parts.positive,
                                      parts.counted))
    hard = self._hard_negatives(predictions, batch, prefix)
    kept = tf.reduce_sum(tf.cast(hard.keep, tf.float32), axis=-1)
    stats = (tf.reduce_sum(tf.where(hard.valid, kept, 0.0)),
             tf.reduce_sum(tf.cast(hard.valid & (kept == 0), tf.float32)))
    if config.tpaneg_mode == "replace":
      return Term(*_masked_loss(*tpaneg.replace_mode_rows(hard)), *stats)
    # add: one softmax over [positive, allowed in-batch negatives, kept hard negatives].
    parts = self._in_batch_logits(predictions, batch, prefix)
    num_items = tf.shape(parts.logits)[0]
    num_negatives = tf.shape(hard.keep)[-1]
    keep = tf.reshape(hard.keep, [num_items, num_negatives])
    logits = tf.concat([parts.logits, tf.reshape(hard.negatives, [num_items, -1])], axis=-1)
    allowed = tf.concat([parts.allowed, keep], axis=-1)
    positive = tf.concat([parts.positive, tf.zeros_like(keep)], axis=-1)
    counted = parts.counted | (tf.reshape(kept, [num_items]) > 0)
    return Term(*_masked_loss(logits, allowed, positive, counted), *stats)

  def _loss_terms(self, batch: dict[str, tf.Tensor], training: bool):
    query = input_pipeline.model_inputs(batch, "query")
    target = input_pipeline.model_inputs(batch, "target")
    predicted = {"target": self.encoder(query, training=training),
                 "query": self.encoder(target, training=training)}
    terms = {"x_to_y": self._term(predicted["target"], batch, "target"),
             "y_to_x": self._term(predicted["query"], batch, "query")}
    if self.loss_config.use_cycle_loss:
      for name, prefix in (("cycle_x", "target"), ("cycle_y", "query")):
        # Predictions of one half, placed at that half's items, are a set that must
        # predict the other half back (X -> Y' -> X'' and Y -> X' -> Y'').
        categories = batch[f"{prefix}_categories"]
        features = set_ops.gather_category_predictions(predicted[prefix], categories)
        if self.loss_config.cycle_normalize:
          # Real inputs are unit vectors; raw predictions have norm about sqrt(D).
          features = set_ops.l2_normalize(features)
        cycle_input = {"features": features, "categories": categories,
                       "mask": batch[f"{prefix}_mask"]}
        back = self.encoder(cycle_input, training=training)
        terms[name] = self._term(back, batch, OTHER[prefix])
    if self._adds_bank():
      terms["bank_x_to_y"] = self._bank_term(predicted["target"], batch, "target")
      terms["bank_y_to_x"] = self._bank_term(predicted["query"], batch, "query")
    return terms

  def _scaled_total(self, terms) -> tf.Tensor:
    context = tf.distribute.get_replica_context()
    total = tf.constant(0.0)
    for name, (loss_sum, count, _, _) in terms.items():
      global_count = count
      if context is not None:
        global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
      total += self._weight(name) * loss_sum / tf.maximum(global_count, 1.0)
    return total

  def _update_trackers(self, terms, batch) -> dict[str, tf.Tensor]:
    total_value = tf.constant(0.0)
    for name, (loss_sum, count, _, _) in terms.items():
      mean = loss_sum / tf.maximum(count, 1.0)
      self.term_trackers[name].update_state(mean, sample_weight=count)
      total_value += self._weight(name) * mean
    self.total_tracker.update_state(total_value)
    if self.loss_config.use_tpaneg:
      x_to_y = terms["x_to_y"]
      items = tf.reduce_sum(tf.cast(batch["target_mask"], tf.float32))
      self.kept_tracker.update_state(x_to_y.kept / tf.maximum(items, 1.0), sample_weight=items)
      self.starved_tracker.update_state(x_to_y.starved / tf.maximum(items, 1.0),
                                        sample_weight=items)
    return {m.name: m.result() for m in self.metrics}

  def compile(self, *args, **kwargs):
    """Compiles, then creates the optimizer's slots now, inside the strategy scope."""
    super().compile(*args, **kwargs)
    self.optimizer.build(self.encoder.trainable_variables)

  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    # Keras would average a data batch across replicas to trace a symbolic build, which
    # fails on bool masks and string set ids; everything is already built in compile().
    del iterator, data_batch

  def train_step(self, data):
    with tf.GradientTape() as tape:
      terms = self._loss_terms(data, training=True)
      loss = self._scaled_total(terms)
      # Identity unless the optimizer is a LossScaleOptimizer (mixed_float16).
      scaled_loss = self.optimizer.scale_loss(loss)
    variables = self.encoder.trainable_variables
    gradients = tape.gradient(scaled_loss, variables)
    self.optimizer.apply(gradients, variables)
    results = self._update_trackers(terms, data)
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
      # Keras 3.15 averages fit's logs over workers with reduce(MEAN, axis=0), which
      # needs a leading axis.
      results = {name: value[None] for name, value in results.items()}
    return results


def _masked_loss(logits: tf.Tensor, allowed: tf.Tensor, positive: tf.Tensor,
                 counted: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """(sum over counted rows of the masked softmax cross-entropy, number of counted rows)."""
  per_item = set_ops.masked_softmax_cross_entropy(logits, allowed, positive)
  return (tf.reduce_sum(tf.where(counted, per_item, tf.zeros_like(per_item))),
          tf.reduce_sum(tf.cast(counted, tf.float32)))
