"""Evaluation tables: the Top-K% table, the summary rows and mean +- std over seeds."""

from __future__ import annotations

import numpy as np

from keras_models.reporting import tables


def _document(top10: float, mrr: float) -> dict:
  values = {"top_5_percent": top10 / 2, "top_10_percent": top10, "top_20_percent": 2 * top10,
            "mrr": mrr}
  return {
      "data": "toy (SYNTHETIC)", "split": "test", "gallery": "targets", "num_queries": 7,
      "gallery_size": 5,
      "methods": {
          "cst": {"micro": values, "macro": values,
                  "per_category": {"a": {**values, "count": 4, "gallery_size": 3},
                                   "b": {**values, "count": 3, "gallery_size": 2}}},
          "random": {"micro": values, "macro": values, "per_category": {}}}}


def test_percentage_table_rows_are_percent():
  table = tables.percentage_table(_document(0.25, 0.5), (5, 10, 20))
  assert "toy (SYNTHETIC)" in table
  cst_row = next(line for line in table.splitlines() if line.startswith("cst"))
  # Top-5/10/20 = 12.5/25/50 percent, then MRR, then the macro columns.
  assert cst_row.split()[2:5] == ["12.50", "25.00", "50.00"]
  assert cst_row.split()[5] == "0.5000"


def test_summary_frame_has_overall_and_category_rows():
  frame = tables.summary_frame(_document(0.25, 0.5))
  cst = frame[frame["method"] == "cst"]
  assert list(cst["scope"]) == ["overall_micro", "overall_macro", "category:a", "category:b"]
  assert list(cst["count"].iloc[[0, 2, 3]]) == [7, 4, 3]


def test_mean_std_over_seeds_matches_numpy():
  documents = [_document(t, m) for t, m in ((0.2, 0.3), (0.3, 0.5), (0.4, 0.4))]
  table = tables.mean_std_table(documents)
  rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
  assert rows["cst"][1] == "3"
  top10 = 100 * np.array([0.2, 0.3, 0.4])
  assert rows["cst"][5] == f"{top10.mean():.2f}" and rows["cst"][7] == f"{top10.std(ddof=1):.2f}"
  mrr = np.array([0.3, 0.5, 0.4])
  assert rows["cst"][11] == f"{mrr.mean():.4f}" and rows["cst"][13] == f"{mrr.std(ddof=1):.4f}"
  assert list(rows) == ["cst", "random"]


def _full_document() -> dict:
  document = _document(0.25, 0.5)
  for method in document["methods"].values():
    for scope in ("micro", "macro"):
      method[scope] = {**method[scope], "recall_at_1": 0.05, "recall_at_10": 0.1,
                       "recall_at_30": 0.3, "recall_at_50": 0.5, "fitb_4": 0.375}
  document["methods"]["ridge"] = document["methods"]["random"]
  document["ridge"] = {"lambda": 0.01, "lambdas": [0.01, 1.0], "val_top_10_percent": [0.2, 0.1]}
  document["fitb"] = {"candidates": 4, "seed": 0, "short_queries": 2}
  return document


def test_percentage_table_has_recall_fitb_and_notes():
  table = tables.percentage_table(_full_document(), (5, 10, 20))
  lines = table.splitlines()
  title = next(line for line in lines if line.startswith("method"))
  assert title.split()[1:12] == ["|", "Top-5%", "Top-10%", "Top-20%", "MRR", "R@10", "R@30",
                                 "R@50", "FITB-4", "|", "macro"]
  cst_row = next(line for line in lines if line.startswith("cst")).split()
  # Micro Top-K%, MRR, R@10/30/50 and FITB-4 in percent, then macro Top-K% and FITB-4.
  assert cst_row[2:10] == ["12.50", "25.00", "50.00", "0.5000", "10.00", "30.00", "50.00",
                           "37.50"]
  assert cst_row[11:] == ["12.50", "25.00", "50.00", "37.50"]
  assert "ridge lambda 0.01 (best val Top-10% micro)" in table
  assert "2 queries with fewer distractors" in table


def test_mean_std_lists_every_baseline_last_with_recall_and_fitb():
  documents = [_full_document(), _full_document()]
  for document in documents:
    methods = document["methods"]
    document["methods"] = {"query_mean": methods["random"], "centred_query_mean":
                           methods["random"], **methods}
  table = tables.mean_std_table(documents)
  header, *rows = table.splitlines()
  assert header.split()[2:] == ["top_5_percent", "top_10_percent", "top_20_percent", "mrr",
                                "recall_at_10", "recall_at_30", "recall_at_50", "fitb_4"]
  assert [row.split()[0] for row in rows] == ["cst", "random", "query_mean",
                                              "centred_query_mean", "ridge"]
  cst = rows[0].split()
  assert cst[-3:] == ["37.50", "+-", "0.00"]
