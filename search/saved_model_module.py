"""The exported graph: a trained set encoder plus a gallery, with per-category retrieval.

`RetrievalModule` is what `tf.saved_model.save` writes. The gallery lives in variables
(checkpoint shards, so 1M x 512 floats do not hit the 2 GB GraphDef limit) sorted by
category; item ids map to rows through a `MutableHashTable` saved with them. Every
function has an `input_signature` (traced once) and checks its request in-graph, so a bad
request fails with an `InvalidArgumentError` naming the input instead of a shape error
deep in the model or silent garbage. Only core TF ops: a client needs nothing of ours.

Signatures (see docs/export.md):
  predict           item_features [b, n, D], item_categories [b, n], mask [b, n]
                    -> predictions [b, K, D] unit rows (the model; inputs used as given).
  complete          item_features [n, D], item_categories [n], mask [n], item_ids [n]
  (serving_default) ("" = not a gallery item), categories [m], k
                    -> item_ids [m, k], scores [m, k], rows [m, k]: exact top-k of each
                    wanted category, the query's gallery items excluded; item features
                    are L2-normalised first (as the HTTP service does). Empty slots
                    (k > what the category holds): item_id "", score -inf, row -1.
  complete_by_name  the same with item_category_names [n] and category_names [m] strings.
  search            queries [m, D], categories [m], k -> item_ids, scores, rows.
  score             item_features [n, D], item_categories [n], mask [n] (>= 2 real items)
                    -> score [] and item_scores [n]: the leave-one-out outfit score
                    (keras_models/metrics/compatibility.py) of the real items, item features
                    L2-normalised first; item_scores is 0 where mask is False.
  metadata          () -> category_names [K], category_sizes [K], feature_dim,
                    num_items, num_categories, max_k.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_models.models import cst
from search import in_graph_search

SIGNATURES = ("predict", "complete", "complete_by_name", "search", "score", "metadata")
_SUMMARIZE = 8


def _check(condition: tf.Tensor, message: str, *data: tf.Tensor) -> tf.Operation:
  return tf.debugging.Assert(condition, [message, *data], summarize=_SUMMARIZE)


class RetrievalModule(tf.Module):
  """Encoder + gallery variables + the signature functions."""

  def __init__(self, encoder: keras.Model, item_ids: np.ndarray, categories: np.ndarray,
               features: np.ndarray, category_names: tuple[str, ...], chunk_size: int,
               max_k: int, vocabulary_file: str) -> None:
    """Stores the gallery sorted by category.

    Args:
      encoder: set encoder, input dict features/categories/mask, output [batch, K, D].
      item_ids: `[N]` str unique gallery ids.
      categories: `[N]` int32 in 1..K.
      features: `[N, D]` float32 unit rows.
      category_names: K names; category c is category_names[c - 1].
      chunk_size: gallery rows scored per step.
      max_k: largest k a request may ask for.
      vocabulary_file: text file of the K names, one a line (becomes an asset).
    """
    super().__init__(name="setretrieval")
    # Track the encoder's variables, not the Keras model: saving a tracked Keras model
    # also serialises every layer's own functions (slow, and nothing a client calls).
    # This is what keras.export.ExportArchive does.
    object.__setattr__(self, "_encoder", encoder)
    self.encoder_variables = list(encoder.variables)
    self.num_categories = len(category_names)
    self.feature_dim = int(features.shape[1])
    self.chunk_size, self.max_k = int(chunk_size), int(max_k)
    order = np.argsort(categories, kind="stable")
    sizes = np.bincount(categories, minlength=self.num_categories + 1)[1:]
    self.gallery_features = tf.Variable(features[order], trainable=False, name="features")
    self.gallery_item_ids = tf.Variable(tf.constant(item_ids[order].astype(str)),
                                        trainable=False, name="item_ids")
    self.gallery_categories = tf.Variable(categories[order].astype(np.int32),
                                          trainable=False, name="categories")
    self.category_offsets = tf.Variable(np.concatenate([[0], np.cumsum(sizes)]).astype(
        np.int64), trainable=False, name="category_offsets")
    self.category_sizes = tf.Variable(sizes.astype(np.int64), trainable=False,
                                      name="category_sizes")
    self.row_of_item = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, -1)
    self.row_of_item.insert(self.gallery_item_ids, tf.range(len(order), dtype=tf.int64))
    self.vocabulary = tf.saved_model.Asset(vocabulary_file)
    self.category_names = tf.Variable(tf.constant(category_names), trainable=False,
                                      name="category_names")
    self.category_of_name = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(category_names), tf.range(1, self.num_categories + 1)), -1)

  def _checked_categories(self, categories: tf.Tensor, field: str) -> tf.Tensor:
    bad = (categories < 1) | (categories > self.num_categories)
    with tf.control_dependencies([_check(
        ~tf.reduce_any(bad), f"{field}: category ids must be in 1..{self.num_categories}; "
        "got", tf.boolean_mask(categories, bad))]):
      return tf.identity(categories)

  def _checked_dim(self, features: tf.Tensor, field: str) -> tf.Tensor:
    dim = tf.shape(features)[-1]
    with tf.control_dependencies([_check(
        tf.equal(dim, self.feature_dim), f"{field}: last dimension must be the feature "
        f"dimension of the model, {self.feature_dim}; got", dim)]):
      return tf.identity(features)

  def _checked_k(self, k: tf.Tensor) -> tf.Tensor:
    with tf.control_dependencies([_check(
        (k >= 1) & (k <= self.max_k), f"k must be in 1..{self.max_k}; got", k)]):
      return tf.identity(k)

  def _category_ids(self, names: tf.Tensor, field: str) -> tf.Tensor:
    ids = self.category_of_name.lookup(names)
    with tf.control_dependencies([_check(
        tf.reduce_all(ids > 0), f"{field}: unknown category names",
        tf.boolean_mask(names, ids <= 0), "known:", self.category_names)]):
      return tf.identity(ids)

  def _encode(self, features, categories, mask):
    predicted = self._encoder({cst.FEATURES: features, cst.CATEGORIES: categories,
                              cst.MASK: mask}, training=False)
    return tf.math.l2_normalize(predicted, axis=-1)

  @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.float32),
                                tf.TensorSpec([None, None], tf.int32),
                                tf.TensorSpec([None, None], tf.bool)], autograph=False)
  def predict(self, item_features, item_categories, mask):
    item_features = self._checked_dim(item_features, "item_features")
    with tf.control_dependencies([_check(
        tf.reduce_all(tf.equal(tf.shape(item_categories), tf.shape(item_features)[:2])) &
        tf.reduce_all(tf.equal(tf.shape(mask), tf.shape(item_features)[:2])),
        "item_categories and mask must be [batch, n] like item_features [batch, n, D]")]):
      real = tf.boolean_mask(item_categories, mask)
      real = self._checked_categories(real, "item_categories (where mask)")
    with tf.control_dependencies([real]):
      return {"predictions": self._encode(item_features, item_categories, mask)}

  # Signatures call these shared functions, so the encoder and the search graph are
  # traced, saved and loaded once, not once per signature.
  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32),
                                tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32),
                                tf.TensorSpec([None], tf.int64)], autograph=False)
  def ranked(self, queries, categories, k, exclude_rows):
    """Unchecked top-k (inputs already checked by the caller); see in_graph_search."""
    scores, rows = in_graph_search.category_top_k(
        self.gallery_features.value(), self.category_offsets, queries, categories, k,
        exclude_rows, self.chunk_size)
    return {"item_ids": in_graph_search.item_ids(self.gallery_item_ids, rows),
            "scores": scores, "rows": rows}

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32),
                                tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)],
               autograph=False)
  def search(self, queries, categories, k):
    queries = self._checked_dim(queries, "queries")
    with tf.control_dependencies([_check(
        tf.equal(tf.shape(categories)[0], tf.shape(queries)[0]),
        "categories must be [m] like queries [m, D]")]):
      categories = self._checked_categories(categories, "categories")
    return self.ranked(queries, categories, self._checked_k(k), tf.zeros([0], tf.int64))

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32),
      tf.TensorSpec([None], tf.bool), tf.TensorSpec([None], tf.string),
      tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)], autograph=False)
  def complete(self, item_features, item_categories, mask, item_ids, categories, k):
    item_features = self._checked_dim(item_features, "item_features")
    count = tf.shape(item_features)[0]
    shapes_agree = tf.reduce_all(tf.equal(tf.stack([
        tf.size(item_categories), tf.size(mask), tf.size(item_ids)]), count))
    norms = tf.norm(tf.boolean_mask(item_features, mask), axis=1)
    with tf.control_dependencies([
        _check(shapes_agree, "item_categories, mask and item_ids must be [n] like "
               "item_features [n, D]"),
        _check(tf.reduce_any(mask), "mask: the set needs at least one real item"),
        _check(tf.reduce_all(tf.math.is_finite(norms) & (norms > 0)),
               "item_features: real items need finite values and a non-zero norm")]):
      unit = tf.math.l2_normalize(item_features, axis=-1)
    categories, k = self._checked_categories(categories, "categories"), self._checked_k(k)
    predicted = self.predict(unit[tf.newaxis], item_categories[tf.newaxis],
                             mask[tf.newaxis])["predictions"]
    exclude = tf.reshape(self.row_of_item.lookup(tf.boolean_mask(item_ids, mask)), [-1])
    return self.ranked(tf.gather(predicted[0], categories - 1), categories, k, exclude)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.string),
      tf.TensorSpec([None], tf.bool), tf.TensorSpec([None], tf.string),
      tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.int32)], autograph=False)
  def complete_by_name(self, item_features, item_category_names, mask, item_ids,
                       category_names, k):
    item_categories = tf.where(
        mask, self._category_ids(tf.where(mask, item_category_names, self.category_names[0]),
                                 "item_category_names (where mask)"), 0)
    return self.complete(item_features, item_categories, mask, item_ids,
                         self._category_ids(category_names, "category_names"), k)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32),
      tf.TensorSpec([None], tf.bool)], autograph=False)
  def score(self, item_features, item_categories, mask):
    """Each real item predicted from the other real items: one batch of n masked copies."""
    item_features = self._checked_dim(item_features, "item_features")
    count = tf.shape(item_features)[0]
    shapes_agree = tf.reduce_all(tf.equal(tf.stack([tf.size(item_categories),
                                                    tf.size(mask)]), count))
    norms = tf.norm(tf.boolean_mask(item_features, mask), axis=1)
    real = tf.reduce_sum(tf.cast(mask, tf.int32))
    with tf.control_dependencies([
        _check(shapes_agree, "item_categories and mask must be [n] like item_features [n, D]"),
        _check(real >= 2, "mask: the score needs at least two real items; got", real),
        _check(tf.reduce_all(tf.math.is_finite(norms) & (norms > 0)),
               "item_features: real items need finite values and a non-zero norm")]):
      unit = tf.math.l2_normalize(item_features, axis=-1)
    categories = tf.where(mask, item_categories, 1)
    categories = self._checked_categories(categories, "item_categories (where mask)")
    others = mask[tf.newaxis, :] & ~tf.eye(count, dtype=tf.bool)
    predicted = self.predict(tf.repeat(unit[tf.newaxis], count, axis=0),
                             tf.repeat(categories[tf.newaxis], count, axis=0),
                             others)["predictions"]
    own = tf.gather(predicted, categories - 1, batch_dims=1)
    similarities = tf.where(mask, tf.reduce_sum(own * unit, axis=-1), 0.0)
    return {"score": tf.reduce_sum(similarities) / tf.cast(real, tf.float32),
            "item_scores": similarities}

  @tf.function(input_signature=[], autograph=False)
  def metadata(self):
    return {"category_names": tf.identity(self.category_names),
            "category_sizes": tf.identity(self.category_sizes),
            "feature_dim": tf.constant(self.feature_dim, tf.int32),
            "num_items": tf.shape(self.gallery_item_ids, out_type=tf.int64)[0],
            "num_categories": tf.constant(self.num_categories, tf.int32),
            "max_k": tf.constant(self.max_k, tf.int32)}

  def signatures(self) -> dict[str, tf.types.experimental.PolymorphicFunction]:
    """Functions by signature name; `complete` is also `serving_default`.

    Functions, not concrete functions: tf.saved_model.save traces them again in its save
    context anyway, so tracing them here first would double the export time.
    """
    functions = {name: getattr(self, name) for name in SIGNATURES}
    return {"serving_default": functions["complete"], **functions}
