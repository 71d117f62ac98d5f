"""Mean +- std over seeds of conditional_main reports.

  python bench/conditional_table.py runs/conditional/ikea    # reads seed*/conditional.json

Columns: precision@10 of the condition (Backward Search's "mAP@10"), context preservation
(mean cosine of z0 to the results), and for students the speed-up over Backward Search on
the same batch in the same run, and the student's MSE to the teacher's z* on the queries.
"""

from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np


def _cell(values) -> str:
  values = np.asarray(values, float)
  return f"{values.mean():.4f} +- {values.std():.4f}"


def main(argv: list[str]) -> None:
  paths = sorted(glob.glob(os.path.join(argv[1], "seed*", "conditional.json")))
  if not paths:
    raise SystemExit(f"{argv[1]}: no seed*/conditional.json")
  reports = [json.load(open(p, encoding="utf-8")) for p in paths]
  first = reports[0]
  accuracy = _cell([r["classifier_split_accuracy"] for r in reports])
  print(f"{first['data']} / {first['split']}: {len(reports)} seeds, {first['num_queries']} "
        f"queries, gallery {first['gallery_size']}, classifier accuracy {accuracy}")
  print(f"{'method':<28}{'cond_prec@10':>20}{'context':>20}{'speed-up':>14}"
        f"{'student q/s':>12}{'search q/s':>12}")
  for name in first["results"]:
    rows = [r["results"][name] for r in reports]
    line = (f"{name:<28}{_cell([r['precision_at_k'] for r in rows]):>20}"
            f"{_cell([r['context'] for r in rows]):>20}")
    if "speedup" in rows[0]:
      speedups = np.array([r["speedup"] for r in rows])
      line += (f"{speedups.mean():>8.0f} +- {speedups.std():<3.0f}"
               f"{np.mean([r['student_queries_per_second'] for r in rows]):>12.0f}"
               f"{np.mean([r['search_queries_per_second'] for r in rows]):>12.0f}")
    print(line)


if __name__ == "__main__":
  main(sys.argv)
