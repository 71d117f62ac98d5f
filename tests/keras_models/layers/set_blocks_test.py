"""Tests for the item and seed transformer blocks."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_models.layers import set_blocks


class SetBlocksTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.items = rng.standard_normal((2, 4, 8)).astype(np.float32)
    self.seeds = rng.standard_normal((2, 3, 8)).astype(np.float32)
    self.mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)

  def test_item_block_shape_and_padding_isolation(self):
    block = set_blocks.ItemBlock(8, 2, dropout_rate=0.0)
    garbage = self.items.copy()
    garbage[0, 2:] = 50.0
    clean = block(self.items, self.mask)
    dirty = block(garbage, self.mask)
    self.assertEqual(clean.shape, (2, 4, 8))
    self.assertAllClose(clean[0, :2], dirty[0, :2], atol=1e-5)

  def test_seed_block_ignores_padded_items(self):
    block = set_blocks.SeedBlock(8, 2, dropout_rate=0.0)
    garbage = self.items.copy()
    garbage[0, 2:] = -50.0
    clean = block(self.seeds, self.items, self.mask)
    self.assertEqual(clean.shape, (2, 3, 8))
    self.assertAllClose(clean, block(self.seeds, garbage, self.mask), atol=1e-5)

  def test_dropout_only_when_training(self):
    block = set_blocks.SeedBlock(8, 2, dropout_rate=0.5)
    inference = [block(self.seeds, self.items, self.mask, training=False) for _ in range(2)]
    self.assertAllEqual(inference[0], inference[1])
    self.assertNotAllClose(inference[0], block(self.seeds, self.items, self.mask, training=True))

  def test_config_round_trip(self):
    block = set_blocks.ItemBlock(8, 2, dropout_rate=0.3, name="b")
    clone = set_blocks.ItemBlock.from_config(block.get_config())
    self.assertEqual((clone.model_dim, clone.num_heads, clone.dropout_rate), (8, 2, 0.3))


if __name__ == "__main__":
  tf.test.main()
