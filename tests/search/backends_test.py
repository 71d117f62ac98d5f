"""Every backend against a NumPy brute-force search written here, and its save/load."""

from __future__ import annotations

import ast
import os

import numpy as np
import pytest

from search import backend_base
from search import backends
from search import configs

SEARCH_DIR = os.path.dirname(os.path.abspath(backends.__file__))

EXACT = ("exact", "faiss_flat")
# Search effort high enough that approximate backends should find nearly all true top-10s.
THOROUGH = configs.IndexConfig(data_dir="d", output_dir="o", ivf_nlist=16, ivf_nprobe=8,
                               hnsw_ef_search=128, scann_num_leaves=20,
                               scann_leaves_to_search=10, scann_min_partitioned=1000)


def _unit(rows: np.ndarray) -> np.ndarray:
  return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  centers = rng.standard_normal((30, 24))
  gallery = _unit(centers[rng.integers(0, 30, 2500)] + 0.6 * rng.standard_normal((2500, 24)))
  queries = _unit(centers[rng.integers(0, 30, 40)] + 0.6 * rng.standard_normal((40, 24)))
  return gallery, queries


def _oracle(gallery, queries, k):
  scores = queries.astype(np.float64) @ gallery.T.astype(np.float64)
  rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
  return np.take_along_axis(scores, rows, axis=1), rows


def test_registry_names_every_configured_backend():
  assert [backends.get_backend_class(n).name for n in configs.BACKENDS] == list(
      configs.BACKENDS)
  with pytest.raises(ValueError, match="unknown backend 'annoy'; known: exact, faiss_flat"):
    backends.get_backend_class("annoy")


def _search_imports(module: str) -> set[str]:
  """Modules of the search package that `search/<module>.py` imports, anywhere in it."""
  with open(os.path.join(SEARCH_DIR, f"{module}.py"), encoding="utf-8") as stream:
    tree = ast.parse(stream.read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module == "search":
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("search."):
      found.add(node.module.split(".")[1])
    elif isinstance(node, ast.Import):
      found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("search."))
  return found


def test_interface_registry_and_implementations_import_in_one_direction():
  implementations = {"exact_backend", "faiss_backends", "scann_backend"}
  assert _search_imports("backend_base") <= {"configs"}
  for module in implementations:
    assert "backend_base" in _search_imports(module), module
    assert "backends" not in _search_imports(module), module
  assert implementations | {"backend_base"} <= _search_imports("backends")
  for backend in backends.BACKENDS.values():
    assert issubclass(backend, backend_base.Backend)
  # No cycle anywhere in the package: a depth-first walk meets no module on its own path.
  modules = [n[:-3] for n in os.listdir(SEARCH_DIR) if n.endswith(".py") and n != "__init__.py"]
  graph = {m: _search_imports(m) & set(modules) for m in modules}

  def visit(module, path):
    assert module not in path, f"import cycle: {' -> '.join(path + [module])}"
    for imported in sorted(graph[module]):
      visit(imported, path + [module])

  for module in sorted(modules):
    visit(module, [])


@pytest.mark.parametrize("name", configs.BACKENDS)
def test_backend_matches_brute_force(name, data, tmp_path):
  gallery, queries = data
  backend = backends.get_backend_class(name).build(gallery, THOROUGH)
  scores, rows = backend.search(queries, 10)
  oracle_scores, oracle_rows = _oracle(gallery, queries, 10)
  assert rows.shape == scores.shape == (40, 10) and rows.dtype == np.int64
  # Returned scores are the true similarities of the returned rows, in descending order.
  np.testing.assert_allclose(scores, np.take_along_axis(queries @ gallery.T, rows, 1),
                             atol=1e-5)
  assert (np.diff(scores, axis=1) <= 1e-6).all()
  if name in EXACT:
    np.testing.assert_array_equal(rows, oracle_rows)
    np.testing.assert_allclose(scores, oracle_scores, atol=1e-5)
  else:
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, oracle_rows)])
    assert recall >= 0.95, recall
  backend.save(str(tmp_path))
  again = type(backend).load(str(tmp_path), backend.params)
  again_scores, again_rows = again.search(queries, 10)
  np.testing.assert_array_equal(again_rows, rows)
  np.testing.assert_allclose(again_scores, scores, atol=1e-6)


@pytest.mark.parametrize("name", configs.BACKENDS)
def test_k_beyond_gallery_pads_with_minus_one(name, data):
  gallery, queries = data
  backend = backends.get_backend_class(name).build(gallery[:5], THOROUGH)
  scores, rows = backend.search(queries[:3], 8)
  oracle_scores, oracle_rows = _oracle(gallery[:5], queries[:3], 5)
  np.testing.assert_array_equal(rows[:, :5], oracle_rows)
  np.testing.assert_allclose(scores[:, :5], oracle_scores, atol=1e-5)
  assert (rows[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
  with pytest.raises(ValueError, match="k must be >= 1"):
    backend.search(queries[:1], 0)


def test_search_parameters_are_applied_and_kept(data, tmp_path):
  gallery, queries = data
  ivf = backends.get_backend_class("faiss_ivf").build(gallery, THOROUGH)
  assert ivf.params == {"nlist": 16, "nprobe": 8}
  ivf.configure_search(configs.IndexConfig(data_dir="d", output_dir="o", ivf_nprobe=1))
  assert ivf.index.nprobe == 1
  ivf.save(str(tmp_path))
  assert type(ivf).load(str(tmp_path), ivf.params).index.nprobe == 1
  scann = backends.get_backend_class("scann").build(gallery[:999], THOROUGH)
  assert scann.params == {"mode": "brute_force"}


def test_automatic_sizes():
  from search import faiss_backends, scann_backend  # pylint: disable=g-import-not-at-top
  # 4 sqrt(n), at most n / 39 lists, at least one.
  assert faiss_backends.ivf_num_lists(1_000_000, 0) == 4000
  assert faiss_backends.ivf_num_lists(3900, 0) == 100
  assert faiss_backends.ivf_num_lists(10, 0) == 1
  default = configs.IndexConfig(data_dir="d", output_dir="o")
  assert scann_backend.partition_params(1_000_000, default) == {
      "mode": "partitioned", "num_leaves": 1000, "leaves_to_search": 100, "reorder": 100}
