"""Mean +- std over seeds of the ICFRR reports written by eval_main --rerank=icfrr.

  python bench/rerank_table.py runs/rerank/ikea/reference    # reads seed*/eval/test/
  python bench/rerank_table.py runs/rerank/ikea/small --iterations=0,1,5

Prints, per iteration, the task protocol (Top-10%, MRR) and the category-level protocol
(mAP@all, mAP@200 normalised within the top 200, prec@25/100/200). Reports whose list
did not cover the gallery (a shortlist below it) have map_all_truncated instead of map_all;
the column shows whichever the reports hold.
"""

from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np

TASK = ("top_5_percent", "top_10_percent", "mrr")
CATEGORY = ("map_all", "map_200_within_top", "precision_at_25", "precision_at_100",
            "precision_at_200")


def main(argv: list[str]) -> None:
  folder = argv[1]
  shown = None
  for arg in argv[2:]:
    if arg.startswith("--iterations="):
      shown = [int(v) for v in arg.split("=", 1)[1].split(",")]
  paths = sorted(glob.glob(os.path.join(folder, "seed*", "eval", "*", "rerank_icfrr.json")))
  if not paths:
    raise SystemExit(f"{folder}: no seed*/eval/*/rerank_icfrr.json")
  reports = [json.load(open(p, encoding="utf-8")) for p in paths]
  first = reports[0]
  print(f"{first['data']} / {first['split']}, {first['method']}, ICFRR {first['icfrr']}, "
        f"{len(reports)} seeds, mean +- std")
  iterations = shown or list(range(len(first["protocols"]["task"])))
  for protocol, names in (("task", TASK), ("category_level", CATEGORY)):
    if "map_all_truncated" in first["protocols"][protocol][0]:
      names = tuple("map_all_truncated" if n == "map_all" else n for n in names)
    print(f"{protocol:<14}" + "".join(f"{n:>22}" for n in names))
    for iteration in iterations:
      cells = []
      for name in names:
        values = np.array([r["protocols"][protocol][iteration][name] for r in reports])
        cells.append(f"{values.mean():>13.4f} +- {values.std():.4f}")
      print(f"iteration {iteration:<4}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
  main(sys.argv)
