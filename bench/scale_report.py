"""Figure and tables of `bench/scale.py` rows (one row per preset, fraction and stage)."""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")  # Benchmarks run on headless machines; must precede pyplot.
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
import pandas as pd  # pylint: disable=g-import-not-at-top

from tfrecords_builder import atomic_io  # pylint: disable=g-import-not-at-top

# Units whose work is query x gallery (or item x item) pairs: 2 D FLOPs each.
_PAIR_UNITS = ("pairs/s",)
_EXTRAS = ("step_seconds", "val_seconds", "epoch_seconds_extrapolated",
           "negative_table_seconds", "eval_model_seconds", "eval_rank_seconds",
           "eval_ridge_fit_seconds", "eval_baselines_seconds", "startup_seconds",
           "page_first_load_seconds", "complete_p50_ms", "icfrr_task_seconds",
           "icfrr_category_seconds", "icfrr_gallery", "conditional_queries",
           "conditional_gallery")


def _number(value: Any) -> float:
  try:
    number = float(value)
  except (TypeError, ValueError):
    return math.nan
  return number


def one_line(row: dict[str, Any]) -> str:
  """A progress line for one finished stage."""
  head = f"{row['preset']} {row['fraction']:g} ({row['num_sets']} sets) {row['stage']}:"
  if isinstance(row.get("error"), str) and row["error"]:
    return f"{head} FAILED: {row['error']}"
  extras = ", ".join(f"{k} {row[k]}" for k in _EXTRAS if not math.isnan(_number(row.get(k))))
  return (f"{head} {row['seconds']} s, peak RSS {row['peak_rss_mb']} MB, disk "
          f"{row['disk_mb']} MB, {row['rate']} {row['unit']}" + (f" ({extras})" if extras else ""))


def _of_matmul(row: pd.Series, dim: float) -> float:
  """Achieved pair-scoring FLOP/s over the matmul FLOP/s probed before the stage."""
  if row.get("unit") not in _PAIR_UNITS:
    return math.nan
  return _number(row["rate"]) * 2 * dim / (_number(row["matmul_gflops"]) * 1e9)


def table(frame: pd.DataFrame) -> str:
  """Markdown table: one row per stage and size, with time per unit relative to the smallest."""
  if "error" not in frame:
    frame = frame.assign(error="")
  lines = ["| preset | sets | stage | seconds | peak RSS MB | disk MB | rate | unit | "
           "time/unit vs smallest | vs previous size | of matmul | notes |", "|" + "---|" * 12]
  for (preset, stage), group in frame.groupby(["preset", "stage"], sort=False):
    dims = frame[(frame.preset == preset) & (frame.stage == "build")].get("feature_dim")
    dim = float(dims.dropna().iloc[0]) if dims is not None and dims.notna().any() else 512.0
    group = group.sort_values("num_sets")
    ok = group[group.error.isna() | (group.error == "")]
    smallest = _number(ok.rate.iloc[0]) if len(ok) else math.nan
    previous = math.nan
    for _, row in group.iterrows():
      if isinstance(row.get("error"), str) and row["error"]:
        lines.append(f"| {preset} | {row.num_sets} | {stage} | failed | | | | | | | | "
                     f"{row['error'][:80]} |")
        previous = math.nan
        continue
      rate = _number(row.rate)
      relative = smallest / rate if rate else math.nan
      step = previous / rate if rate else math.nan
      previous = rate
      notes = "; ".join(f"{k} {row[k]:g}" for k in _EXTRAS
                        if k in row and not math.isnan(_number(row[k])))
      lines.append(
          f"| {preset} | {row.num_sets} | {stage} | {_number(row.seconds):.1f} | "
          f"{_number(row.peak_rss_mb):.0f} | {_number(row.disk_mb):.0f} | "
          f"{rate:.4g} | {row.unit} | x{relative:.2f} | {_ratio(step)} | "
          f"{_format(_of_matmul(row, dim))} | {notes} |")
  return "\n".join(lines)


def _ratio(value: float) -> str:
  return "" if math.isnan(value) else f"x{value:.2f}"


def _format(value: float) -> str:
  return "" if math.isnan(value) else f"{value:.2f}"


def figure(frame: pd.DataFrame, path: str) -> None:
  """Log-log time and peak memory against sets, one panel pair per preset."""
  if "error" not in frame:
    frame = frame.assign(error="")
  frame = frame[frame.error.isna() | (frame.error == "")]
  presets = list(dict.fromkeys(frame.preset))
  if not presets:
    return
  fig, axes = plt.subplots(len(presets), 2, figsize=(12, 4.5 * len(presets)), squeeze=False)
  for axes_row, preset in zip(axes, presets):
    data = frame[frame.preset == preset]
    for stage, group in data.groupby("stage", sort=False):
      group = group.sort_values("num_sets")
      axes_row[0].plot(group.num_sets, group.seconds, marker="o", label=stage)
      axes_row[1].plot(group.num_sets, group.peak_rss_mb, marker="o", label=stage)
    for ax, what, short in zip(axes_row, ("wall time (s)", "peak RSS of the process tree (MB)"),
                               ("wall time", "peak memory")):
      ax.set_xscale("log")
      ax.set_yscale("log")
      ax.set_xlabel("sets")
      ax.set_ylabel(what)
      ax.set_title(f"{preset} preset (SYNTHETIC): {short}")
      ax.grid(True, which="both", alpha=0.3)
    axes_row[0].legend(fontsize=8, ncol=2)
  fig.tight_layout()
  with atomic_io.atomic_path(path) as temp_path:
    fig.savefig(temp_path, dpi=85, format="png")
  plt.close(fig)
