"""Evaluation tables: the Top-K% table, the summary rows and mean +- std over seeds."""

from __future__ import annotations

import numpy as np

from keras_models import report_tables


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
  table = report_tables.percentage_table(_document(0.25, 0.5), (5, 10, 20))
  assert "toy (SYNTHETIC)" in table
  cst_row = next(line for line in table.splitlines() if line.startswith("cst"))
  # Top-5/10/20 = 12.5/25/50 percent, then MRR, then the macro columns.
  assert cst_row.split()[2:5] == ["12.50", "25.00", "50.00"]
  assert cst_row.split()[5] == "0.5000"


def test_summary_frame_has_overall_and_category_rows():
  frame = report_tables.summary_frame(_document(0.25, 0.5))
  cst = frame[frame["method"] == "cst"]
  assert list(cst["scope"]) == ["overall_micro", "overall_macro", "category:a", "category:b"]
  assert list(cst["count"].iloc[[0, 2, 3]]) == [7, 4, 3]


def test_mean_std_over_seeds_matches_numpy():
  documents = [_document(t, m) for t, m in ((0.2, 0.3), (0.3, 0.5), (0.4, 0.4))]
  table = report_tables.mean_std_table(documents)
  rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
  assert rows["cst"][1] == "3"
  top10 = 100 * np.array([0.2, 0.3, 0.4])
  assert rows["cst"][5] == f"{top10.mean():.2f}" and rows["cst"][7] == f"{top10.std(ddof=1):.2f}"
  mrr = np.array([0.3, 0.5, 0.4])
  assert rows["cst"][11] == f"{mrr.mean():.4f}" and rows["cst"][13] == f"{mrr.std(ddof=1):.4f}"
  assert list(rows) == ["cst", "random"]
