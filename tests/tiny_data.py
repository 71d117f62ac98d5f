"""Tiny synthetic shards for tests that train or evaluate, built in a test's temp folder."""

from __future__ import annotations

import os

import pytest

from tfrecords_builder import build
from tfrecords_builder import config as builder_config
from tfrecords_builder.sources import synthetic

# The repository root: entry points and experiments/ flagfiles are read from here.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_synthetic(output_dir: str, num_shards: int = 1, **synthetic_options) -> str:
  """Builds SYNTHETIC shards into `output_dir` and returns it.

  Args:
    output_dir: New folder for the shards.
    num_shards: Shards per split.
    **synthetic_options: `synthetic.SyntheticConfig` fields (num_sets, feature_dim, ...).
  """
  build.run(builder_config.BuilderConfig(
      source="synthetic", output_dir=output_dir, num_shards=num_shards,
      synthetic=synthetic.SyntheticConfig(**synthetic_options)))
  return output_dir


def shards_fixture(num_shards: int = 1, **synthetic_options):
  """A module-scoped pytest fixture: the path of tiny SYNTHETIC shards built once."""

  @pytest.fixture(scope="module")
  def data_dir(tmp_path_factory) -> str:
    return build_synthetic(str(tmp_path_factory.mktemp("data") / "syn"), num_shards,
                           **synthetic_options)

  return data_dir
