"""Fill-in-the-blank accuracy over question files (the Polyvore Outfits protocol), pure NumPy.

Protocol: question q shows an outfit's other items X_q and A candidate answers a_1..a_A
(4 in the official files), exactly one of which (index k_q) is the outfit's blank item.
The model predicts, for each answer, a feature of that answer's category from X_q, and
scores the answer by cosine:

    s_qa = cos(p(X_q, c(a)), a),     hit_q = s_{q k_q} > max_{a != k_q} s_qa,

so a tie counts against the model, as every rank in this project does (the official
loader's argmin would give a tie to the earlier answer). FITB accuracy is the mean hit;
chance is 1/A. Unlike `fitb.py` (our seeded FITB-4 over the evaluation halves), the
questions, their sets and their candidates come from files, so the figure is comparable
with published numbers on the same files.
"""

from __future__ import annotations

import numpy as np


def hits(answer_scores: np.ndarray, correct: np.ndarray) -> np.ndarray:
  """FITB hit of each question: the correct answer scores strictly highest.

  Args:
    answer_scores: `[num_questions, num_answers]` float s_qa; NaN marks a missing answer.
    correct: `[num_questions]` int index k_q of the correct answer.

  Returns:
    `[num_questions]` float32 1.0 for a hit, else 0.0.

  Raises:
    ValueError: a correct index out of range, or a NaN correct answer.
  """
  scores = np.asarray(answer_scores, np.float64)
  correct = np.asarray(correct, np.int64)
  if scores.ndim != 2 or correct.shape != scores.shape[:1]:
    raise ValueError(f"answer_scores {scores.shape} must be [Q, A] and correct {correct.shape} "
                     "[Q]")
  if len(correct) and (correct.min() < 0 or correct.max() >= scores.shape[1]):
    raise ValueError(f"correct answer indices must be in 0..{scores.shape[1] - 1}")
  rows = np.arange(len(correct))
  truth = scores[rows, correct]
  if np.isnan(truth).any():
    raise ValueError(f"question {int(np.flatnonzero(np.isnan(truth))[0])}: the correct "
                     "answer has no score")
  rivals = np.where(np.isnan(scores), -np.inf, scores)
  rivals[rows, correct] = -np.inf
  return (truth > rivals.max(axis=1)).astype(np.float32)
