"""The synthetic source gives the same data whatever its generation block size."""

from __future__ import annotations

import numpy as np

from tfrecords_builder.sources import synthetic


def test_generation_does_not_depend_on_block_size(monkeypatch):
  config = synthetic.SyntheticConfig(num_sets=40, feature_dim=6, latent_dim=3, hidden_dim=4)
  whole = synthetic.generate(config)
  # 24 elements per block: one item (D * H = 24) at a time.
  monkeypatch.setattr(synthetic, "_BLOCK_ELEMENTS", 24)
  blocked = synthetic.generate(config)
  assert whole.features.dtype == np.float32
  np.testing.assert_array_equal(whole.features, blocked.features)
  np.testing.assert_array_equal(whole.item_ids, blocked.item_ids)
