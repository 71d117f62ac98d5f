"""Evaluation tables: metrics.json, results_summary.csv and percentage_table.txt."""

from __future__ import annotations

import io
import math
import os

import numpy as np
import pandas as pd

from keras_models import baselines
from keras_models import configs
from keras_models import data_files
from keras_models import evaluator as evaluator_lib
from tfrecords_builder import atomic_io

PROTOCOL = (
    "rank(y) = 1 + #{g in G_c: s(g) > s(y)} + #{g in G_c, g != y: s(g) == s(y)} (cosine s, "
    "pessimistic ties); Top-K% hit: rank <= max(1, floor(K/100 * |G_c|)) with the item's own "
    "category's gallery; micro = mean over queries, macro = mean over categories; percentile "
    "rank = (rank - 1) / max(|G_c| - 1, 1); AP@k = (1/min(R, k)) sum_{i<=k} P@i rel_i with "
    "R = 1 relevant item here; Recall@k = mean [rank <= k] (absolute k); FITB-n hit: "
    "s(y) > max s(d) over n - 1 distractors drawn uniformly from G_c \\ {y} (seeded by "
    "--eval_split_seed, the same for every method; fewer when |G_c| < n); baselines: "
    "random, category_mean = m_c (mean of the normalised train items of c), query_mean = "
    "mean of normalised query items x^, centred_query_mean = m_c + mean (x^ - m_cat(x)), "
    "ridge = per-category "
    "ridge from the query mean, fitted on train, lambda by val Top-10% micro.")
RECALL_KS_SHOWN = (10, 30, 50)


def _metric_names(summary: dict) -> list[str]:
  return [k.split("/", 1)[1] for k in summary if k.startswith("micro/") and k != "micro/count"]


def _clean(value: float) -> float | None:
  return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def metrics_document(config: configs.EvalConfig, manifest: data_files.Manifest,
                     evaluator: evaluator_lib.Evaluator, summaries: dict,
                     notes: dict | None = None) -> dict:
  """The JSON-ready record of an evaluation: data, protocol and every method's metrics.

  `notes` (e.g. the ridge lambda, the FITB draw) are added as top-level fields.
  """
  names = list(manifest.categories)
  methods = {}
  for method, summary in summaries.items():
    metrics = _metric_names(summary)
    per_category = {}
    for k, name in enumerate(names):
      row = {m: _clean(float(summary[f"per_category/{m}"][k])) for m in metrics}
      row["count"] = int(summary["per_category/count"][k])
      row["gallery_size"] = int(evaluator.category_gallery_sizes[k])
      per_category[name] = row
    methods[method] = {
        "micro": {m: _clean(float(summary[f"micro/{m}"])) for m in metrics},
        "macro": {m: _clean(float(summary[f"macro/{m}"])) for m in metrics},
        "per_category": per_category}
  return {
      "data": manifest.data_label(), "synthetic": manifest.synthetic,
      "data_dir": manifest.data_dir, "split": config.split, "gallery": config.gallery,
      "num_queries": int(len(evaluator.targets.categories)),
      "gallery_size": int(len(evaluator.gallery_rows)), "protocol": PROTOCOL,
      **(notes or {}), "methods": methods}


def summary_frame(document: dict) -> pd.DataFrame:
  """One row per (method, overall micro / overall macro / category)."""
  rows = []
  for method, values in document["methods"].items():
    rows.append({"method": method, "scope": "overall_micro", **values["micro"],
                 "count": document["num_queries"], "gallery_size": document["gallery_size"]})
    rows.append({"method": method, "scope": "overall_macro", **values["macro"]})
    for name, row in values["per_category"].items():
      rows.append({"method": method, "scope": f"category:{name}", **row})
  return pd.DataFrame(rows)


def _extra_columns(micro: dict) -> list[tuple[str, str]]:
  """(metric, column title) of the Recall@k (k in RECALL_KS_SHOWN) and FITB in `micro`."""
  columns = [(f"recall_at_{k}", f"R@{k}") for k in RECALL_KS_SHOWN if f"recall_at_{k}" in micro]
  return columns + [(m, f"FITB-{m.split('_')[1]}") for m in micro if m.startswith("fitb_")]


def percentage_table(document: dict, top_percents: tuple[int, ...]) -> str:
  """Method rows x Top-K% (percent), MRR, Recall@k and FITB (percent); then macro Top-K%, FITB.

  Like the paper's Table 3, plus the outfit-completion protocol (Recall@10/30/50, FITB-4)
  when the document has them.
  """
  header = f"Retrieval on {document['data']}, split {document['split']}, gallery " \
           f"{document['gallery']} ({document['num_queries']} queries, " \
           f"{document['gallery_size']} gallery items)"
  first = next(iter(document["methods"].values()))["micro"]
  extra = _extra_columns(first)
  fitb = [(m, title) for m, title in extra if m.startswith("fitb_")]
  columns = [f"Top-{p}%" for p in top_percents]
  lines = [header, ""]
  name_width = max(14, *(len(m) for m in document["methods"]))
  title = f"{'method':<{name_width}} | " + " ".join(f"{c:>8}" for c in columns) + \
          f" {'MRR':>7} " + " ".join(f"{t:>7}" for _, t in extra) + " | macro " + \
          " ".join(f"{c:>8}" for c in columns + [t for _, t in fitb])
  lines += [title, "-" * len(title)]
  for method, values in document["methods"].items():
    micro = [100 * values["micro"][f"top_{p}_percent"] for p in top_percents]
    macro = [100 * values["macro"][f"top_{p}_percent"] for p in top_percents]
    macro += [100 * values["macro"][m] for m, _ in fitb]
    lines.append(f"{method:<{name_width}} | " + " ".join(f"{v:8.2f}" for v in micro)
                 + f" {values['micro']['mrr']:7.4f} "
                 + " ".join(f"{100 * values['micro'][m]:7.2f}" for m, _ in extra)
                 + " |       " + " ".join(f"{v:8.2f}" for v in macro))
  notes = []
  if "ridge" in document:
    notes.append(f"ridge lambda {document['ridge']['lambda']:g} (best val Top-10% micro)")
  if "fitb" in document:
    fitb_note = document["fitb"]
    notes.append(f"FITB-{fitb_note['candidates']}: distractors seeded by "
                 f"--eval_split_seed={fitb_note['seed']}, {fitb_note['short_queries']} "
                 "queries with fewer distractors")
  return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def write_all(output_dir: str, config: configs.EvalConfig, manifest: data_files.Manifest,
              evaluator: evaluator_lib.Evaluator, summaries: dict,
              notes: dict | None = None) -> str:
  """Writes metrics.json, results_summary.csv and percentage_table.txt; returns the table."""
  document = metrics_document(config, manifest, evaluator, summaries, notes)
  atomic_io.write_json(os.path.join(output_dir, "metrics.json"), document)
  buffer = io.StringIO()
  summary_frame(document).to_csv(buffer, index=False, float_format="%.6g")
  atomic_io.write_text(os.path.join(output_dir, "results_summary.csv"), buffer.getvalue())
  table = percentage_table(document, config.top_percents)
  atomic_io.write_text(os.path.join(output_dir, "percentage_table.txt"), table)
  return table


def mean_std_table(documents: list[dict], top_percents=(5, 10, 20), scope: str = "micro",
                   last: tuple[str, ...] = baselines.NAMES) -> str:
  """Mean +- std over runs (e.g. seeds) of each method's Top-K% (percent) and MRR.

  Recall@10/30/50 and FITB (percent) are added when every run has them. Methods keep
  their first-seen order; the names in `last` (the baselines) come at the end.
  """
  methods: dict[str, list[dict]] = {}
  for document in documents:
    for method, values in document["methods"].items():
      methods.setdefault(method, []).append(values[scope])
  order = [m for m in methods if m not in last] + [m for m in last if m in methods]
  shared = set.intersection(*(set(r) for runs in methods.values() for r in runs))
  metrics = [f"top_{p}_percent" for p in top_percents] + ["mrr"] + [
      m for m, _ in _extra_columns({m: None for m in sorted(shared)})]
  name_width = max(16, *(len(m) for m in order))
  lines = [f"{'method':<{name_width}} runs " + " ".join(f"{m:>18}" for m in metrics)]
  for method in order:
    runs = methods[method]
    cells = []
    for metric in metrics:
      scale, digits = (1.0, 4) if metric == "mrr" else (100.0, 2)
      values = np.array([r[metric] for r in runs], float) * scale
      spread = values.std(ddof=1) if len(values) > 1 else 0.0
      cells.append(f"{values.mean():8.{digits}f} +- {spread:6.{digits}f}")
    lines.append(f"{method:<{name_width}} {len(runs):>4} " + " ".join(f"{c:>18}" for c in cells))
  return "\n".join(lines) + "\n"
