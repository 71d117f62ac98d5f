"""Writes the ICFRR re-ranking report of one evaluation: JSON, text table and a plot.

Files in the evaluation folder, each written atomically:
`rerank_icfrr.json` (settings, seconds and per-iteration metrics of both protocols),
`rerank_icfrr.txt` (the table eval_main prints) and `rerank_icfrr.png` (metrics against
iteration; synthetic data is labelled SYNTHETIC in the title).
"""

from __future__ import annotations

import dataclasses
import os
import time

import matplotlib

matplotlib.use("Agg")  # Reports run on headless machines; must precede pyplot.

from absl import logging  # pylint: disable=g-import-not-at-top
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from keras_models import configs  # pylint: disable=g-import-not-at-top
from keras_models import data_files  # pylint: disable=g-import-not-at-top
from keras_models import evaluator as evaluator_lib  # pylint: disable=g-import-not-at-top
from keras_models.rerank import protocols  # pylint: disable=g-import-not-at-top
from tfrecords_builder import atomic_io  # pylint: disable=g-import-not-at-top

NAME = "rerank_icfrr"
TASK_SHOWN = ("top_5_percent", "top_10_percent", "top_20_percent", "mrr")
# A report holds map_all, or map_all_truncated when its lists are shorter than the gallery.
CATEGORY_SHOWN = ("map_all", "map_all_truncated", "map_200_within_top", "precision_at_25",
                  "precision_at_100", "precision_at_200")


def _table(title: str, rows: list[dict[str, float]], names: tuple[str, ...]) -> str:
  names = [n for n in names if n in rows[0]]
  lines = [title, "iteration " + " ".join(f"{n:>19}" for n in names)]
  for iteration, row in enumerate(rows):
    lines.append(f"{iteration:>9} " + " ".join(f"{row[n]:>19.4f}" for n in names))
  return "\n".join(lines)


def plot_iterations(path: str, protocols_rows: dict[str, list[dict[str, float]]],
                    shown: dict[str, tuple[str, ...]], title: str) -> None:
  """One panel per protocol: each metric against iteration (0 = before re-ranking)."""
  fig, axes = plt.subplots(1, len(protocols_rows), figsize=(6 * len(protocols_rows), 4),
                           squeeze=False)
  try:
    for axis, (protocol, rows) in zip(axes[0], protocols_rows.items()):
      iterations = np.arange(len(rows))
      for name in shown[protocol]:
        if name in rows[0]:
          axis.plot(iterations, [row[name] for row in rows], marker="o", label=name)
      axis.set_xlabel("ICFRR iteration (0 = before)")
      axis.set_title(protocol)
      axis.set_xticks(iterations)
      axis.grid(alpha=0.3)
      axis.legend(fontsize=8)
    fig.suptitle(title)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_io.atomic_open(path) as stream:
      fig.savefig(stream, format="png", dpi=120, bbox_inches="tight")
  finally:
    plt.close(fig)


def write(output_dir: str, config: configs.EvalConfig, manifest: data_files.Manifest,
          evaluator: evaluator_lib.Evaluator, method: str, vectors: np.ndarray,
          ranks: np.ndarray) -> str:
  """Re-ranks the predictions `vectors` [Q, D] under both protocols; returns the table.

  `ranks` [Q] are the evaluator's ranks of `vectors`, the ranks of positives that fall
  outside the shortlist.
  """
  icfrr_config = config.icfrr
  start = time.perf_counter()
  rows = {"task": protocols.task_summaries(evaluator, vectors, ranks, icfrr_config)}
  seconds = {"task": time.perf_counter() - start}
  rows["category_level"] = protocols.category_level_summaries(evaluator, vectors,
                                                              icfrr_config)
  seconds["category_level"] = time.perf_counter() - start - seconds["task"]
  logging.info("ICFRR task protocol %.1f s, category-level protocol %.1f s",
               seconds["task"], seconds["category_level"])
  label = manifest.data_label()
  settings = (f"k_g={icfrr_config.k_g} k_q={icfrr_config.k_q} beta={icfrr_config.beta:g} "
              f"mode={icfrr_config.mode} score={icfrr_config.score} "
              f"shortlist={icfrr_config.shortlist}")
  table = "\n\n".join([
      _table(f"ICFRR {settings}: {method} on {label} / {config.split}, task protocol "
             "(one relevant item per query, micro)", rows["task"], TASK_SHOWN),
      _table("category-level protocol (relevant = gallery item of the query's category, "
             "whole gallery; top max(shortlist, 200) listed)", rows["category_level"],
             CATEGORY_SHOWN)])
  atomic_io.write_json(os.path.join(output_dir, f"{NAME}.json"), {
      "method": method, "data": label, "split": config.split,
      "synthetic": manifest.synthetic, "icfrr": dataclasses.asdict(icfrr_config),
      "num_queries": int(len(vectors)), "gallery_size": int(len(evaluator.gallery_rows)),
      "seconds": {name: round(value, 3) for name, value in seconds.items()},
      "protocols": rows})
  atomic_io.write_text(os.path.join(output_dir, f"{NAME}.txt"), table + "\n")
  plot_iterations(os.path.join(output_dir, f"{NAME}.png"), rows,
                  {"task": TASK_SHOWN, "category_level": CATEGORY_SHOWN},
                  f"ICFRR ({settings}): {method} on {label} / {config.split}")
  logging.info("wrote ICFRR re-ranking report to %s", output_dir)
  return table
