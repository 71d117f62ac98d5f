"""ICFRR applied to a set-retrieval evaluation, under two relevance protocols.

- **task**: our retrieval as evaluated everywhere else. Each prediction p(X, c) ranks
  the gallery G_c of its own category c, in which exactly one item (the missing one) is
  relevant. Every category's gallery is re-ranked on its own (its own neighbour table,
  alpha with G = |G_c|). Reported per iteration as the evaluator's Top-K% and MRR (with
  one relevant item mAP@all = MRR, and prec@K is at most 1/K, so it is not reported).
  Ranks are list positions, so exact float ties are broken by gallery order instead of
  counting against the model; otherwise iteration 0 equals the plain evaluation.
- **category_level**: class-level relevance where ICFRR's metrics mean something. The
  same predictions rank the whole gallery of the split across categories and a gallery
  item is relevant when its category is the query's c. Reported per iteration as mAP@all,
  mAP@200 (normalised within the top 200), prec@25/100/200 and MRR (`list_metrics`).
"""

from __future__ import annotations

import numpy as np

from keras_models import configs
from keras_models import evaluator as evaluator_lib
from keras_models.rerank import icfrr
from keras_models.rerank import list_metrics


def task_ranks(evaluator: evaluator_lib.Evaluator, vectors: np.ndarray,
               config: configs.IcfrrConfig) -> list[np.ndarray]:
  """Ranks of each query's positive before and after every iteration.

  Args:
    evaluator: the split's evaluator (targets, gallery rows, features, categories).
    vectors: `[Q, D]` L2-normalised predictions in `evaluator.targets` order.
    config: ICFRR settings.

  Returns:
    iterations + 1 arrays `[Q]` int64 of 1-based positions of the positive.
  """
  targets = evaluator.targets
  ranks = [np.ones(len(targets.categories), np.int64) for _ in range(config.iterations + 1)]
  for category in np.unique(targets.categories):
    queries = np.nonzero(targets.categories == category)[0]
    in_gallery = evaluator.gallery_categories == category
    rows = evaluator.gallery_rows[in_gallery]
    positives = np.searchsorted(rows, targets.positive_rows[queries])
    if np.any(rows[np.minimum(positives, len(rows) - 1)] != targets.positive_rows[queries]):
      raise ValueError(f"category {category}: a positive is missing from the gallery")
    gallery = evaluator.gallery_features[in_gallery]
    scores = icfrr.initial_scores(vectors[queries], gallery, config.score)
    neighbours = icfrr.neighbour_table(gallery, config.k_g)
    for iteration, order in enumerate(icfrr.rerank(scores, neighbours, config)):
      ranks[iteration][queries] = 1 + np.argmax(order == positives[:, np.newaxis], axis=1)
  return ranks


def task_summaries(evaluator: evaluator_lib.Evaluator, vectors: np.ndarray,
                   config: configs.IcfrrConfig) -> list[dict[str, float]]:
  """Micro Top-K% and MRR of the task protocol per iteration (index 0 = before)."""
  summaries = []
  for ranks in task_ranks(evaluator, vectors, config):
    summary = evaluator.summarize(ranks)
    summaries.append({key.split("/", 1)[1]: value for key, value in summary.items()
                      if key.startswith("micro/") and key != "micro/count"})
  return summaries


def category_level_summaries(evaluator: evaluator_lib.Evaluator, vectors: np.ndarray,
                             config: configs.IcfrrConfig) -> list[dict[str, float]]:
  """ICFRR list metrics per iteration with relevance = gallery category == query category.

  Args:
    evaluator: gives the whole gallery of the split (all categories).
    vectors: `[Q, D]` L2-normalised predictions in `evaluator.targets` order.
    config: ICFRR settings.

  Returns:
    iterations + 1 dicts of `list_metrics.summarize` (index 0 = before re-ranking).
  """
  gallery = evaluator.gallery_features
  scores = icfrr.initial_scores(vectors, gallery, config.score)
  neighbours = icfrr.neighbour_table(gallery, config.k_g)
  query_categories = evaluator.targets.categories[:, np.newaxis]
  return [list_metrics.summarize(evaluator.gallery_categories[order] == query_categories)
          for order in icfrr.rerank(scores, neighbours, config)]
