"""The halves computed from the item table equal the shards' fixed evaluation split."""

from __future__ import annotations

import numpy as np
import pytest

from keras_models import data_files
from keras_models import fixed_halves
from keras_models import input_pipeline
from tests import tiny_data

# A catalog, so items recur across sets (and twice-listed rows would show up).
data_dir = tiny_data.shards_fixture(num_shards=3, num_sets=90, feature_dim=8, latent_dim=3,
                                    hidden_dim=4, min_items=2, max_items=9, catalog_size=60)


def _pipeline_halves(manifest, split, seed):
  """Per set: (query rows, target rows) read through the shards' fixed split."""
  halves = []
  for batch in input_pipeline.make_dataset(manifest, split, 7, training=False, seed=seed):
    for prefix in ("query", "target"):
      batch[prefix] = batch[f"{prefix}_item_index"].numpy()
    for query, target in zip(batch["query"], batch["target"]):
      halves.append((query[query >= 0].tolist(), target[target >= 0].tolist()))
  return halves


@pytest.mark.parametrize("split", ["train", "val", "test"])
@pytest.mark.parametrize("seed", [0, 5])
def test_halves_equal_the_shards_fixed_split(data_dir, split, seed):
  manifest = data_files.load_manifest(data_dir)
  table = data_files.load_item_table(manifest, split)
  halves = fixed_halves.fixed_halves(table, seed)
  expected = _pipeline_halves(manifest, split, seed)
  assert halves.num_sets == len(expected) == manifest.num_sets(split)
  for s, (query, target) in enumerate(expected):
    q0, q1 = halves.query_offsets[s:s + 2]
    t0, t1 = halves.target_offsets[s:s + 2]
    assert halves.query_items[q0:q1].tolist() == query
    assert halves.target_items[t0:t1].tolist() == target
  np.testing.assert_array_equal(halves.target_owners(),
                                np.repeat(np.arange(len(expected)), [len(t) for _, t in expected]))


def test_padded_rows():
  offsets = np.array([0, 2, 2, 5])
  items = np.array([4, 7, 1, 2, 3])
  np.testing.assert_array_equal(fixed_halves.padded(offsets, items, 0, 3, 3),
                                [[4, 7, -1], [-1, -1, -1], [1, 2, 3]])
  np.testing.assert_array_equal(fixed_halves.padded(offsets, items, 2, 3, 4), [[1, 2, 3, -1]])
