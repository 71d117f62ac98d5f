"""Checks keras_models.reporting.plots: valid PNGs, atomic writes, a NumPy PCA oracle."""

import os

import matplotlib
import numpy as np
from PIL import Image
import pytest

from keras_models.reporting import plots

NAMES = ["sofa", "chair", "lamp"]


@pytest.fixture
def closed_figures(monkeypatch):
  """Records every figure the module closes, so tests can inspect what was drawn."""
  figures = []
  original = plots.plt.close

  def close(fig=None):
    figures.append(fig)
    original(fig)

  monkeypatch.setattr(plots.plt, "close", close)
  return figures


def _texts(fig) -> list[str]:
  return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def _check_png(path) -> None:
  assert os.path.getsize(path) > 0
  with Image.open(path) as image:
    assert image.format == "PNG"
    assert image.mode in ("RGB", "RGBA")
    assert image.width > 100 and image.height > 100


def _per_category():
  # Category 3 has no queries: NaN everywhere, so it must get no bars.
  return {
      "Top-5%": np.array([0.2, 0.5, np.nan]),
      "Top-10%": np.array([0.4, 0.6, np.nan]),
      "Top-20%": np.array([0.7, 0.9, np.nan]),
      "MRR": np.array([0.1, 0.3, np.nan]),
  }


def test_per_category_bars(tmp_path, closed_figures):
  path = tmp_path / "per_category.png"
  plots.per_category_bars(str(path), NAMES, _per_category(), np.array([31, 4, 0]),
                          "CST on ikea (SYNTHETIC)")
  _check_png(path)
  assert os.listdir(tmp_path) == ["per_category.png"]
  (fig,) = closed_figures
  texts = _texts(fig)
  assert "CST on ikea (SYNTHETIC)" in texts
  assert {"sofa (n=31)", "chair (n=4)", "lamp (n=0)"} <= set(texts)
  heights = sorted(p.get_height() for p in fig.axes[0].patches)
  assert heights == sorted([0.2, 0.5, 0.4, 0.6, 0.7, 0.9, 0.1, 0.3])


def test_per_category_bars_bad_shape_keeps_existing_file(tmp_path):
  path = tmp_path / "per_category.png"
  path.write_bytes(b"previous figure")
  metrics = _per_category()
  metrics["MRR"] = np.array([0.1, 0.3])
  with pytest.raises(ValueError, match=r"per_category.png: per_category\['MRR'\]"):
    plots.per_category_bars(str(path), NAMES, metrics, np.array([31, 4, 0]), "t")
  with pytest.raises(ValueError, match=r"counts has shape"):
    plots.per_category_bars(str(path), NAMES, _per_category(), np.array([31, 4]), "t")
  assert path.read_bytes() == b"previous figure"
  assert os.listdir(tmp_path) == ["per_category.png"]


def test_per_category_panels_draws_every_method_in_every_panel(tmp_path, closed_figures):
  path = tmp_path / "per_category.png"
  model = _per_category()
  baseline = {name: values / 2 for name, values in model.items()}
  panels = {metric: {"cst": model[metric], "query_mean": baseline[metric]}
            for metric in ("Top-10%", "MRR")}
  plots.per_category_panels(str(path), NAMES, panels, np.array([31, 4, 0]), "all methods")
  _check_png(path)
  (fig,) = closed_figures
  assert len(fig.axes) == 2
  assert "all methods" in _texts(fig)
  assert {"sofa (n=31)", "chair (n=4)"} <= set(_texts(fig))
  assert [ax.get_ylabel() for ax in fig.axes] == ["Top-10%", "MRR"]
  for ax, metric in zip(fig.axes, ("Top-10%", "MRR")):
    heights = sorted(p.get_height() for p in ax.patches)
    expected = [v for v in np.concatenate([model[metric], baseline[metric]]) if np.isfinite(v)]
    np.testing.assert_allclose(heights, sorted(expected))
  # One legend, on the top panel, names the methods.
  assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["cst", "query_mean"]
  assert fig.axes[1].get_legend() is None
  with pytest.raises(ValueError, match=r"panels\['MRR'\]\['cst'\] has shape"):
    plots.per_category_panels(str(path), NAMES, {"MRR": {"cst": np.zeros(2)}},
                              np.array([31, 4, 0]), "t")


def test_failed_save_removes_temp_and_keeps_existing_file(tmp_path, monkeypatch):
  path = tmp_path / "per_category.png"
  path.write_bytes(b"previous figure")

  def broken_savefig(self, fname, **kwargs):
    fname.write(b"partial png")
    raise RuntimeError("disk full")

  monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
  with pytest.raises(RuntimeError, match="disk full"):
    plots.per_category_bars(str(path), NAMES, _per_category(), np.array([31, 4, 0]), "t")
  assert path.read_bytes() == b"previous figure"
  assert os.listdir(tmp_path) == ["per_category.png"]


def _embeddings(seed=0, num_gallery=60, num_queries=25, dim=8):
  rng = np.random.default_rng(seed)
  scale = np.linspace(3.0, 0.1, dim)  # Distinct variances, so the top-2 axes are unique.
  gallery = rng.normal(size=(num_gallery, dim)) * scale
  predictions = rng.normal(size=(num_queries, dim)) * scale + 0.5
  return (gallery, rng.integers(1, 4, num_gallery), predictions,
          rng.integers(1, 4, num_queries))


def test_embedding_pca_matches_numpy_oracle(tmp_path, closed_figures):
  gallery, gallery_cats, predictions, prediction_cats = _embeddings()
  path = tmp_path / "embedding_pca.png"
  plots.embedding_pca(str(path), gallery, gallery_cats, predictions, prediction_cats, NAMES,
                      "PCA (SYNTHETIC)")
  _check_png(path)
  assert os.listdir(tmp_path) == ["embedding_pca.png"]
  (fig,) = closed_figures
  assert "PCA (SYNTHETIC)" in _texts(fig)
  assert set(NAMES) | {"gallery", "prediction"} <= set(_texts(fig))
  # Oracle: SVD of the centred union of both sets; axes agree up to sign.
  union = np.concatenate([gallery, predictions])
  mean = union.mean(axis=0)
  _, _, vt = np.linalg.svd(union - mean, full_matrices=False)
  collections = {c.get_gid(): c for c in fig.axes[0].collections}
  for gid, features in (("gallery", gallery), ("predictions", predictions)):
    drawn = collections[gid].get_offsets()
    expected = (features - mean) @ vt[:2].T
    signs = np.sign(np.sum(drawn * expected, axis=0))
    np.testing.assert_allclose(drawn, expected * signs, rtol=1e-6, atol=1e-8)


def test_embedding_pca_subsamples_and_drops_padding(tmp_path, closed_figures):
  gallery, gallery_cats, predictions, prediction_cats = _embeddings(num_gallery=500)
  gallery_cats[:5] = 0
  plots.embedding_pca(str(tmp_path / "pca.png"), gallery, gallery_cats, predictions,
                      prediction_cats, NAMES, "t", max_points=40, seed=3)
  (fig,) = closed_figures
  collections = {c.get_gid(): c for c in fig.axes[0].collections}
  assert len(collections["gallery"].get_offsets()) == 40
  assert len(collections["predictions"].get_offsets()) == 25


def test_embedding_pca_bad_shapes_keep_existing_file(tmp_path):
  gallery, gallery_cats, predictions, prediction_cats = _embeddings()
  path = tmp_path / "embedding_pca.png"
  path.write_bytes(b"previous figure")
  with pytest.raises(ValueError, match="gallery_features has shape .* gallery_categories"):
    plots.embedding_pca(str(path), gallery, gallery_cats[:-1], predictions, prediction_cats,
                        NAMES, "t")
  with pytest.raises(ValueError, match="prediction_features dim 7"):
    plots.embedding_pca(str(path), gallery, gallery_cats, predictions[:, :7],
                        prediction_cats, NAMES, "t")
  prediction_cats[4] = 9
  with pytest.raises(ValueError, match=r"prediction_categories\[4\] = 9 not in 1..3"):
    plots.embedding_pca(str(path), gallery, gallery_cats, predictions, prediction_cats,
                        NAMES, "t")
  assert path.read_bytes() == b"previous figure"
  assert os.listdir(tmp_path) == ["embedding_pca.png"]


HISTORY = """epoch,learning_rate,loss,loss/cycle_x,loss/x_to_y,loss/y_to_x,tpaneg/gamma,val_mrr,val_top_10_percent,val_top_20_percent,val_top_5_percent
0,0.001,4.0,0.5,2.0,2.0,0.1,0.10,0.30,0.50,0.20
1,0.001,3.0,0.4,1.5,1.5,0.2,0.15,0.45,0.60,0.30
2,0.001,2.5,0.3,1.2,1.3,0.3,0.20,0.55,0.70,0.40
3,0.0005,2.2,0.2,1.1,1.1,0.4,0.18,0.50,0.72,0.35
"""


def test_training_curves(tmp_path, closed_figures):
  history = tmp_path / "history.csv"
  history.write_text(HISTORY)
  path = tmp_path / "training_curves.png"
  plots.training_curves(str(history), str(path), "CST training (SYNTHETIC)")
  _check_png(path)
  assert sorted(os.listdir(tmp_path)) == ["history.csv", "training_curves.png"]
  (fig,) = closed_figures
  assert "CST training (SYNTHETIC)" in _texts(fig)
  loss_ax, metric_ax = fig.axes
  assert [l.get_label() for l in loss_ax.get_lines()] == [
      "loss", "loss/cycle_x", "loss/x_to_y", "loss/y_to_x"]
  lines = {l.get_label(): l for l in metric_ax.get_lines()}
  assert list(lines)[:4] == ["val_top_5_percent", "val_top_10_percent",
                             "val_top_20_percent", "val_mrr"]
  np.testing.assert_allclose(lines["val_top_10_percent"].get_xdata(), [1, 2, 3, 4])
  np.testing.assert_allclose(lines["val_top_10_percent"].get_ydata(), [30, 45, 55, 50])
  (best,) = [label for label in lines if label.startswith("best")]
  assert best == "best val_top_10_percent: 55.00% (epoch 3)"
  np.testing.assert_allclose(lines[best].get_xdata(), [3, 3])


def test_training_curves_skips_missing_columns(tmp_path, closed_figures):
  history = tmp_path / "history.csv"
  history.write_text("epoch,loss\n0,2.0\n1,1.0\n")
  plots.training_curves(str(history), str(tmp_path / "curves.png"), "t")
  _check_png(tmp_path / "curves.png")
  (fig,) = closed_figures
  assert not fig.axes[1].get_lines()


def test_training_curves_errors_name_the_file(tmp_path):
  missing = tmp_path / "nope.csv"
  with pytest.raises(FileNotFoundError, match="nope.csv"):
    plots.training_curves(str(missing), str(tmp_path / "c.png"), "t")
  empty = tmp_path / "empty.csv"
  empty.write_text("")
  with pytest.raises(ValueError, match="empty.csv: training history CSV is empty"):
    plots.training_curves(str(empty), str(tmp_path / "c.png"), "t")
  header_only = tmp_path / "header.csv"
  header_only.write_text("epoch,loss\n")
  with pytest.raises(ValueError, match="header.csv: .* no epochs"):
    plots.training_curves(str(header_only), str(tmp_path / "c.png"), "t")
  assert not (tmp_path / "c.png").exists()
