"""The outfit-completion field's three protocols on a split's question files, for eval_main.

On the questions beside the shards (`question_sets`; official for Polyvore Outfits, else
generated with a seed), every method is scored by:

- FITB: each question's set is the query; the method predicts a feature for each
  answer's category; the answer with the highest cosine is its pick, ties against it
  (`metrics.fitb_questions`). Accuracy over questions.
- Compatibility AUC: the leave-one-out outfit score (`metrics.compatibility`) of every
  compatibility outfit; ROC AUC of real (1) against random (0) outfits.
- Recall@k at absolute k: each FITB question's blank item is ranked by cosine to the
  prediction for its category among every item of the split with that category (the
  split's item table, deduplicated; the question's own items are not removed), as the
  complementary-item retrieval papers rank a target among its category's test items.

Methods: the model, and three training-free predictors of `baselines` scored by the same
code: random (a seeded random unit vector per prediction), category_mean (the train
centre of the wanted category) and query_mean (the mean of the query's unit items).
Work is linear in the number of questions: question sets are padded per batch, the
leave-one-out queries of a batch of outfits are built by index arithmetic, and Recall@k
ranks through the chunked exact ranker (no [Q, G] matrix).
"""

from __future__ import annotations

import os
import time
from typing import Callable

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from keras_models import configs
from keras_models import data_files
from keras_models import question_sets
from keras_models.losses import set_ops
from keras_models.metrics import compatibility
from keras_models.metrics import fitb_questions
from keras_models.metrics import streaming
from tfrecords_builder import atomic_io

# features [B, S, D], categories [B, S], mask [B, S], wanted categories [B, W] -> unit
# predictions [B, W, D].
Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
REPORT = "outfit_protocols.json"
TABLE = "outfit_protocols.txt"
_RANDOM_STREAM = 3


def _unit(vectors: np.ndarray) -> np.ndarray:
  vectors = np.asarray(vectors, np.float32)
  return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def model_predictor(encoder: keras.Model, feature_dim: int) -> Predictor:
  """The encoder's unit predictions at the wanted categories; one trace for all shapes."""
  signature = [tf.TensorSpec([None, None, feature_dim], tf.float32),
               tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.bool),
               tf.TensorSpec([None, None], tf.int32)]

  @tf.function(input_signature=signature)
  def predict(features, categories, mask, wanted):
    predicted = encoder({"features": features, "categories": categories, "mask": mask},
                        training=False)
    return set_ops.l2_normalize(set_ops.gather_category_predictions(predicted, wanted))

  return lambda f, c, m, w: predict(f, c, m, w).numpy()


def baseline_predictors(centers: np.ndarray, seed: int) -> dict[str, Predictor]:
  """random, category_mean and query_mean (see the module docstring); `centers` [K, D]."""
  rng = np.random.default_rng([seed, _RANDOM_STREAM])
  centers = _unit(centers)

  def random(features, categories, mask, wanted):
    return _unit(rng.standard_normal((*wanted.shape, features.shape[-1])))

  def category_mean(features, categories, mask, wanted):
    return centers[wanted - 1]

  def query_mean(features, categories, mask, wanted):
    means = (_unit(features) * mask[..., np.newaxis]).sum(axis=1)
    return np.broadcast_to(_unit(means)[:, np.newaxis], (*wanted.shape, features.shape[-1]))

  return {"random": random, "category_mean": category_mean, "query_mean": query_mean}


def pad_rows(table: data_files.ItemTable, rows: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Padded sets from `rows` [B, S] item rows (-1 = padding): features, categories, mask."""
  mask = rows >= 0
  safe = np.where(mask, rows, 0)
  features = table.features[safe] * mask[..., np.newaxis]
  return (features.astype(np.float32), np.where(mask, table.categories[safe], 0).astype(np.int32),
          mask)


def _ragged_rows(offsets: np.ndarray, rows: np.ndarray, start: int, end: int) -> np.ndarray:
  """[end - start, max size] rows of groups start..end-1 of a CSR list, -1 padded."""
  sizes = np.diff(offsets[start:end + 1])
  width = int(sizes.max()) if len(sizes) else 0
  slots = np.arange(width)[np.newaxis, :]
  index = offsets[start:end, np.newaxis] + slots
  return np.where(slots < sizes[:, np.newaxis], rows[np.minimum(index, len(rows) - 1)], -1)


def fitb_scores(predict: Predictor, table: data_files.ItemTable,
                fitb: question_sets.FitbRows, batch_size: int
                ) -> tuple[np.ndarray, np.ndarray]:
  """Answer cosines [Q, A] and the prediction for each correct answer [Q, D]."""
  scores = np.zeros(fitb.answers.shape, np.float64)
  vectors = np.zeros((len(fitb), table.features.shape[1]), np.float32)
  for start in range(0, len(fitb), batch_size):
    end = min(start + batch_size, len(fitb))
    features, categories, mask = pad_rows(table, _ragged_rows(fitb.offsets, fitb.rows,
                                                              start, end))
    answers = fitb.answers[start:end]
    predicted = predict(features, categories, mask, table.categories[answers].astype(np.int32))
    flat = compatibility.cosine(predicted.reshape(-1, predicted.shape[-1]),
                                table.features[answers.reshape(-1)])
    scores[start:end] = flat.reshape(answers.shape)
    vectors[start:end] = predicted[np.arange(end - start), fitb.correct[start:end]]
  return scores, vectors


def compatibility_scores(predict: Predictor, table: data_files.ItemTable,
                         outfits: question_sets.CompatibilityRows,
                         batch_size: int) -> np.ndarray:
  """[O] leave-one-out outfit scores, about `batch_size` leave-one-out queries per call."""
  sizes = np.diff(outfits.offsets)
  ends = np.cumsum(sizes)
  scores = np.zeros(len(outfits), np.float64)
  start = 0
  while start < len(outfits):
    done = ends[start - 1] if start else 0
    end = max(start + 1, int(np.searchsorted(ends, done + batch_size, side="right")))
    outfit_of, left_out, members = compatibility.leave_one_out(sizes[start:end])
    base = outfits.offsets[start:end][outfit_of]
    query_rows = np.where(members >= 0, outfits.rows[base[:, np.newaxis] + np.maximum(
        members, 0)], -1)
    targets = outfits.rows[base + left_out]
    features, categories, mask = pad_rows(table, query_rows)
    predicted = predict(features, categories, mask,
                        table.categories[targets][:, np.newaxis].astype(np.int32))[:, 0]
    similarities = compatibility.cosine(predicted, table.features[targets])
    scores[start:end] = compatibility.outfit_scores(similarities, outfit_of, end - start)
    start = end
  return scores


def evaluate(predict: Predictor, table: data_files.ItemTable,
             questions: question_sets.SplitQuestions, gallery: np.ndarray,
             recall_ks: tuple[int, ...], batch_size: int, chunk_size: int,
             ranker: streaming.ChunkedRanker) -> dict:
  """FITB accuracy, compatibility AUC and Recall@k of one predictor.

  Args:
    gallery: `[N, D]` unit features of `table` (the Recall@k gallery).
  """
  fitb, outfits = questions.fitb, questions.compatibility
  result = {"fitb": float("nan"), "compatibility_auc": float("nan"),
            "recall_at_k": {k: float("nan") for k in recall_ks}}
  if len(fitb):
    scores, vectors = fitb_scores(predict, table, fitb, batch_size)
    result["fitb"] = float(fitb_questions.hits(scores, fitb.correct).mean())
    positives = fitb.answers[np.arange(len(fitb)), fitb.correct]
    ranks = ranker.ranks(vectors, table.categories[positives], positives, gallery[positives],
                         gallery, table.categories, np.arange(len(gallery)), chunk_size)
    result["recall_at_k"] = {k: float(np.mean(ranks <= k)) for k in recall_ks}
  if len(set(outfits.labels.tolist())) == 2:
    result["compatibility_auc"] = compatibility.roc_auc(
        compatibility_scores(predict, table, outfits, batch_size), outfits.labels)
  return result


RETRIEVAL_COLUMNS = (("top_5_percent", "Top-5%"), ("top_10_percent", "Top-10%"),
                     ("top_20_percent", "Top-20%"), ("mrr", "MRR"))


def _retrieval_cells(values: dict) -> str:
  """The method's micro Top-K % and MRR from the retrieval evaluation, blank without them."""
  retrieval = values.get("retrieval") or {}
  cells = []
  for key, _ in RETRIEVAL_COLUMNS:
    if key not in retrieval:
      cells.append(f"{'':>7}")
    else:
      cells.append(f"{retrieval[key]:7.4f}" if key == "mrr" else f"{100 * retrieval[key]:7.2f}")
  return " ".join(cells)


def protocol_table(document: dict) -> str:
  """Method rows x Top-K % and MRR (the retrieval protocol, when given), FITB (%),
  compatibility AUC and Recall@k (%): the field's protocols in one table, with notes."""
  ks = document["recall_ks"]
  width = max(14, *(len(m) for m in document["methods"]))
  title = (f"{'method':<{width}} | " + " ".join(f"{name:>7}" for _, name in RETRIEVAL_COLUMNS)
           + f" | {'FITB':>7} {'AUC':>7} " + " ".join(f"{f'R@{k}':>7}" for k in ks))
  lines = [f"Outfit protocols on {document['data']}, split {document['split']}: questions "
           f"{document['questions']}; {document['num_fitb']} FITB questions (chance 25 %), "
           f"{document['num_compatibility']} compatibility outfits "
           f"({document['num_compatibility_real']} real)", "", title, "-" * len(title)]
  for method, values in document["methods"].items():
    lines.append(f"{method:<{width}} | {_retrieval_cells(values)} | "
                 f"{100 * values['fitb']:7.2f} {values['compatibility_auc']:7.4f} " + " ".join(
                     f"{100 * values['recall_at_k'][k]:7.2f}" for k in ks))
  lines += ["", "Top-K % (of the category's gallery) and MRR: the retrieval protocol above, "
            "micro; FITB and R@k in percent; AUC: ROC AUC of the leave-one-out outfit score; "
            f"R@k: {document['recall_gallery']}"]
  return "\n".join(lines) + "\n"


def report(config: configs.EvalConfig, manifest: data_files.Manifest,
           table: data_files.ItemTable, encoder: keras.Model, method: str,
           output_dir: str, retrieval: dict[str, dict[str, float]] | None = None) -> str:
  """Scores the model and the baselines on the split's questions; writes REPORT and TABLE.

  `retrieval` (method -> micro metrics of the retrieval evaluation) puts each method's
  Top-K % and MRR in the same rows, so one table holds every protocol.

  Returns:
    The protocol table, or a one-line note when the shards have no questions for the split.
  """
  if not question_sets.available(manifest.data_dir, config.split):
    return (f"Outfit protocols: no question files for split {config.split} in "
            f"{question_sets.folder(manifest.data_dir)} (shards built before questions were "
            "written, or split train): rebuild the shards to get FITB, AUC and Recall@k.\n")
  start = time.time()
  questions = question_sets.load(manifest.data_dir, config.split, table)
  norms = np.linalg.norm(table.features, axis=1)
  # Shards are L2-normalised by default: only other tables need a normalised copy.
  gallery = table.features if np.allclose(norms, 1.0, atol=1e-4) else _unit(table.features)
  predictors = {method: model_predictor(encoder, manifest.feature_dim),
                **baseline_predictors(data_files.load_centers(manifest), config.seed)}
  ranker = streaming.ChunkedRanker()
  methods = {name: evaluate(predict, table, questions, gallery, config.recall_ks,
                            config.batch_size, config.gallery_chunk_size, ranker)
             for name, predict in predictors.items()}
  for name, values in methods.items():
    if retrieval and name in retrieval:
      values["retrieval"] = {key: float(retrieval[name][key]) for key, _ in RETRIEVAL_COLUMNS
                             if key in retrieval[name]}
  document = {
      "data": manifest.data_label(), "synthetic": manifest.synthetic,
      "split": config.split, "questions": questions.label,
      "question_provenance": questions.provenance, "num_fitb": len(questions.fitb),
      "num_compatibility": len(questions.compatibility),
      "num_compatibility_real": int(questions.compatibility.labels.sum()),
      "recall_ks": list(config.recall_ks),
      "recall_gallery": f"each FITB question's blank item ranked by cosine among all "
                        f"{len(table.item_ids)} items of the {config.split} item table "
                        "with its category",
      "methods": methods}
  atomic_io.write_json(os.path.join(output_dir, REPORT), document)
  text = protocol_table(document)
  atomic_io.write_text(os.path.join(output_dir, TABLE), text)
  logging.info("outfit protocols (%s questions) on %s/%s in %.1f s", questions.label,
               manifest.data_label(), config.split, time.time() - start)
  return text
