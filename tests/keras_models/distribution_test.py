"""Two replicas and one device, same initial weights and global batch: same weights after."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tests import tiny_data


ROOT = tiny_data.ROOT


data_dir = tiny_data.shards_fixture(num_sets=60, num_categories=4, feature_dim=12,
                                    min_items=3, max_items=6)


@pytest.mark.parametrize("variant", ["inbatch", "tpaneg", "bank"])
def test_two_replicas_match_one_device(data_dir, variant):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  completed = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tests", "keras_models", "two_replica_script.py"),
       data_dir, variant], capture_output=True, text=True, env=env, timeout=300, check=False)
  assert completed.returncode == 0, completed.stderr[-3000:]
  result = json.loads(completed.stdout.strip().splitlines()[-1])
  assert result["replicas"] == 2
  # Training really moved the weights, and both runs moved them the same way.
  assert result["max_update"] > 1e-3
  assert result["max_gap"] < 1e-5, result
