"""Matplotlib figures for evaluation reports: per-category bars, embedding PCA, curves.

Every figure is rendered off-screen (Agg) and written atomically, so a crashed or
interrupted report never leaves a half-written PNG where a previous good one was. The
`title` is always drawn: callers mark synthetic data there ("... (SYNTHETIC)").
"""

from __future__ import annotations

import os
import re

import matplotlib

matplotlib.use("Agg")  # Reports run on headless machines; must precede pyplot.

from absl import logging  # pylint: disable=g-import-not-at-top
from matplotlib import lines as mlines  # pylint: disable=g-import-not-at-top
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib import ticker  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import pandas as pd  # pylint: disable=g-import-not-at-top

from tfrecords_builder import atomic_io  # pylint: disable=g-import-not-at-top

DPI = 120
_VAL_TOP_PERCENT = re.compile(r"^val_top_(\d+)_percent$")
_BEST_MONITOR = "val_top_10_percent"


def _save_atomically(fig: matplotlib.figure.Figure, path: str) -> None:
  """Renders `fig` to a temporary PNG beside `path`, then renames it into place."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with atomic_io.atomic_open(path) as stream:
    fig.savefig(stream, format="png", dpi=DPI, bbox_inches="tight")


def _checked_per_category(path: str, field: str, per_category: dict[str, np.ndarray],
                          num_categories: int) -> dict[str, np.ndarray]:
  values = {}
  for name, metric in per_category.items():
    metric = np.asarray(metric, dtype=np.float64).reshape(-1)
    if metric.shape != (num_categories,):
      raise ValueError(f"{path}: {field}[{name!r}] has shape {metric.shape}, "
                       f"expected [{num_categories}] (one per category name)")
    values[name] = metric
  return values


def _checked_counts(path: str, counts: np.ndarray, num_categories: int) -> np.ndarray:
  counts = np.asarray(counts).reshape(-1)
  if counts.shape != (num_categories,):
    raise ValueError(f"{path}: counts has shape {counts.shape}, expected "
                     f"[{num_categories}] (one per category name)")
  return counts


def _draw_bars(ax, category_names: list[str], values: dict[str, np.ndarray],
               counts: np.ndarray, tick_labels: bool, legend: bool = True) -> None:
  """One group of bars per category, one bar per entry of `values`; NaN left empty."""
  positions = np.arange(len(category_names))
  width = 0.8 / max(1, len(values))
  for m, (name, metric) in enumerate(values.items()):
    shown = np.isfinite(metric)
    offset = (m - (len(values) - 1) / 2) * width
    ax.bar(positions[shown] + offset, metric[shown], width, label=name)
  ax.set_xticks(positions)
  if tick_labels:
    ax.set_xticklabels([f"{n} (n={int(c) if np.isfinite(c) else '?'})"
                        for n, c in zip(category_names, counts.astype(np.float64))],
                       rotation=45, ha="right")
  else:
    ax.set_xticklabels([])
  ax.set_ylim(0.0, 1.05)
  ax.grid(axis="y", alpha=0.3)
  if values and legend:
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)


def per_category_bars(path: str, category_names: list[str],
                      per_category: dict[str, np.ndarray], counts: np.ndarray,
                      title: str) -> None:
  """Grouped bar chart: one group per category, one bar per metric.

  Args:
    path: output PNG path.
    category_names: `[num_categories]` names of categories 1..K.
    per_category: metric name -> `[num_categories]` values in 0..1, e.g.
      {"Top-5%": ..., "MRR": ...}; NaN (a category without queries) is left empty.
    counts: `[num_categories]` query counts, shown in the tick labels ("sofa (n=31)").
    title: figure title.

  Raises:
    ValueError: if an array does not have one entry per category.
  """
  num_categories = len(category_names)
  counts = _checked_counts(path, counts, num_categories)
  values = _checked_per_category(path, "per_category", per_category, num_categories)
  fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * num_categories + 2.0), 4.8))
  try:
    _draw_bars(ax, category_names, values, counts, tick_labels=True)
    ax.set_ylabel("fraction of queries (MRR: mean 1/rank)")
    ax.set_title(title)
    _save_atomically(fig, path)
  finally:
    plt.close(fig)


def per_category_panels(path: str, category_names: list[str],
                        panels: dict[str, dict[str, np.ndarray]], counts: np.ndarray,
                        title: str) -> None:
  """One panel per metric, stacked; in each, one bar group per category, one bar per method.

  Args:
    path: output PNG path.
    category_names: `[num_categories]` names of categories 1..K.
    panels: metric name -> method name -> `[num_categories]` values in 0..1, e.g.
      {"Top-10%": {"cst": ..., "query_mean": ...}, "MRR": {...}}; NaN is left empty.
    counts: `[num_categories]` query counts, shown in the bottom tick labels.
    title: figure title.

  Raises:
    ValueError: if an array does not have one entry per category, or no panel is given.
  """
  num_categories = len(category_names)
  counts = _checked_counts(path, counts, num_categories)
  if not panels:
    raise ValueError(f"{path}: no metric panels to draw")
  checked = {metric: _checked_per_category(path, f"panels[{metric!r}]", methods,
                                           num_categories)
             for metric, methods in panels.items()}
  width = max(6.0, 1.2 * num_categories + 2.0)
  fig, axes = plt.subplots(len(checked), 1, figsize=(width, 2.6 * len(checked) + 1.2),
                           squeeze=False)
  try:
    for row, (metric, values) in enumerate(checked.items()):
      ax = axes[row, 0]
      _draw_bars(ax, category_names, values, counts, tick_labels=row == len(checked) - 1,
                 legend=row == 0)
      ax.set_ylabel(metric)
    axes[0, 0].set_title(title)
    _save_atomically(fig, path)
  finally:
    plt.close(fig)


def _principal_axes(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean `[dim]` and the top-2 principal axes `[dim, 2]` (zero-padded when dim < 2).

  The SVD runs on the `[dim, dim]` scatter matrix rather than the `[n, dim]` data, so a
  large gallery costs one matrix product. Signs are fixed (largest loading positive)
  so reruns draw the same picture.
  """
  mean = features.mean(axis=0)
  centred = features - mean
  u, _, _ = np.linalg.svd(centred.T @ centred)
  axes = u[:, :2]
  signs = np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(axes.shape[1])])
  axes = axes * np.where(signs == 0, 1.0, signs)
  if axes.shape[1] < 2:
    axes = np.pad(axes, ((0, 0), (0, 2 - axes.shape[1])))
  return mean, axes


def _checked(path: str, field: str, features: np.ndarray, categories: np.ndarray,
             num_categories: int) -> tuple[np.ndarray, np.ndarray]:
  """Validates one (features, categories) pair and drops padding rows (category 0)."""
  features = np.asarray(features, dtype=np.float64)
  categories = np.asarray(categories).reshape(-1).astype(np.int64)
  if features.ndim != 2 or features.shape[0] != categories.shape[0]:
    raise ValueError(f"{path}: {field}_features has shape {features.shape} but "
                     f"{field}_categories has {categories.shape[0]} entries")
  bad = (categories < 0) | (categories > num_categories)
  if bad.any():
    row = int(np.flatnonzero(bad)[0])
    raise ValueError(f"{path}: {field}_categories[{row}] = {categories[row]} not in "
                     f"1..{num_categories}")
  keep = categories > 0
  return features[keep], categories[keep]


def embedding_pca(path: str, gallery_features: np.ndarray, gallery_categories: np.ndarray,
                  prediction_features: np.ndarray, prediction_categories: np.ndarray,
                  category_names: list[str], title: str, max_points: int = 3000,
                  seed: int = 0) -> None:
  """2-D PCA scatter of gallery items (dots) and predicted vectors ('x'), by category.

  The PCA is fitted on the union of all (unsampled) gallery and prediction rows, so both
  sets share one projection; only the drawing is subsampled to `max_points` each.

  Args:
    path: output PNG path.
    gallery_features: `[num_gallery, dim]` gallery embeddings.
    gallery_categories: `[num_gallery]` int categories 1..K (0 = padding, not drawn).
    prediction_features: `[num_queries, dim]` predicted target embeddings.
    prediction_categories: `[num_queries]` int categories 1..K (0 = padding).
    category_names: `[num_categories]` names of categories 1..K.
    title: figure title.
    max_points: most points drawn per set.
    seed: seed of the subsampling.

  Raises:
    ValueError: on mismatched shapes, categories outside 0..K, or no rows at all.
  """
  num_categories = len(category_names)
  gallery, gallery_cats = _checked(path, "gallery", gallery_features, gallery_categories,
                                   num_categories)
  predictions, prediction_cats = _checked(path, "prediction", prediction_features,
                                          prediction_categories, num_categories)
  if gallery.shape[1] != predictions.shape[1]:
    raise ValueError(f"{path}: gallery_features dim {gallery.shape[1]} != "
                     f"prediction_features dim {predictions.shape[1]}")
  union = np.concatenate([gallery, predictions])
  if union.shape[0] == 0:
    raise ValueError(f"{path}: no gallery or prediction rows with a category in "
                     f"1..{num_categories}")
  mean, axes = _principal_axes(union)

  rng = np.random.default_rng(seed)

  def subsample(features, categories):
    if features.shape[0] > max_points:
      rows = np.sort(rng.choice(features.shape[0], max_points, replace=False))
      features, categories = features[rows], categories[rows]
    return (features - mean) @ axes, categories

  gallery_xy, gallery_cats = subsample(gallery, gallery_cats)
  prediction_xy, prediction_cats = subsample(predictions, prediction_cats)
  if num_categories > 20:
    logging.info("%s: %d categories share the 20 tab20 colours", path, num_categories)
  cmap = matplotlib.colormaps["tab20"]

  fig, ax = plt.subplots(figsize=(9.0, 7.0))
  try:
    ax.scatter(gallery_xy[:, 0], gallery_xy[:, 1], s=4, c=cmap((gallery_cats - 1) % 20),
               alpha=0.5, linewidths=0, gid="gallery")
    ax.scatter(prediction_xy[:, 0], prediction_xy[:, 1], s=18, marker="x",
               c=cmap((prediction_cats - 1) % 20), alpha=0.8, linewidths=0.8,
               gid="predictions")
    present = np.union1d(gallery_cats, prediction_cats)
    handles = [mlines.Line2D([], [], color=cmap((c - 1) % 20), marker="o", linestyle="",
                             label=category_names[c - 1]) for c in present]
    handles += [
        mlines.Line2D([], [], color="k", marker=".", linestyle="", label="gallery"),
        mlines.Line2D([], [], color="k", marker="x", linestyle="", label="prediction"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    _save_atomically(fig, path)
  finally:
    plt.close(fig)


def _read_history(history_csv: str) -> pd.DataFrame:
  if not os.path.isfile(history_csv):
    raise FileNotFoundError(f"{history_csv}: training history CSV not found")
  try:
    history = pd.read_csv(history_csv)
  except pd.errors.EmptyDataError as e:
    raise ValueError(f"{history_csv}: training history CSV is empty") from e
  if history.empty:
    raise ValueError(f"{history_csv}: training history CSV has a header but no epochs")
  return history.apply(pd.to_numeric, errors="coerce")


def training_curves(history_csv: str, path: str, title: str) -> None:
  """Losses (left) and validation retrieval metrics in % (right) per 1-based epoch.

  Reads Keras `CSVLogger` output. Left: every column whose name starts with "loss".
  Right: `val_top_<p>_percent` and `val_mrr`; the epoch with the best
  `val_top_10_percent` is marked. Absent columns are skipped.

  Args:
    history_csv: CSV written by `keras.callbacks.CSVLogger`.
    path: output PNG path.
    title: figure title.

  Raises:
    FileNotFoundError: if `history_csv` does not exist.
    ValueError: if it is empty or has no rows.
  """
  history = _read_history(history_csv)
  if "epoch" in history and history["epoch"].notna().all():
    epochs = history["epoch"].to_numpy() + 1
  else:
    epochs = np.arange(1, len(history) + 1)
  loss_columns = [c for c in history.columns if c.startswith("loss")]
  top_columns = sorted((c for c in history.columns if _VAL_TOP_PERCENT.match(c)),
                       key=lambda c: int(_VAL_TOP_PERCENT.match(c).group(1)))
  metric_columns = top_columns + (["val_mrr"] if "val_mrr" in history else [])

  fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(12.0, 4.5))
  try:
    for column in loss_columns:
      loss_ax.plot(epochs, history[column], marker=".", label=column)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("training losses")
    for column in metric_columns:
      metric_ax.plot(epochs, 100.0 * history[column], marker=".", label=column)
    if _BEST_MONITOR in history and history[_BEST_MONITOR].notna().any():
      best = int(history[_BEST_MONITOR].idxmax())
      metric_ax.axvline(epochs[best], color="k", linestyle="--", linewidth=1.0,
                        label=f"best {_BEST_MONITOR}: {100 * history[_BEST_MONITOR][best]:.2f}%"
                              f" (epoch {epochs[best]:g})")
    metric_ax.set_xlabel("epoch")
    metric_ax.set_ylabel("%")
    metric_ax.set_title("validation retrieval")
    for ax, columns in ((loss_ax, loss_columns), (metric_ax, metric_columns)):
      ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
      ax.grid(alpha=0.3)
      if columns:
        ax.legend(fontsize=8)
      else:
        ax.text(0.5, 0.5, "no columns logged", ha="center", va="center",
                transform=ax.transAxes)
    fig.suptitle(title)
    _save_atomically(fig, path)
  finally:
    plt.close(fig)
