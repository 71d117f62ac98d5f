"""A run ends within seconds of its last epoch: no wait on tf.data's autotune thread.

Before the fix, deleting fit's iterator over the distributed endless stream could sleep
through the autotune thread's optimization period (it doubles up to 60 s): runs ended
12-57 s after their last epoch, intermittently (a lost wake-up in TF's cancellation).
The script reads the stream until the autotune period would be 5 s, then deletes it, and
runs many short fits in one process (1 and 2 replicas; our stream, and an injected one
with autotune on, as tfds batches arrive), timing each fit's teardown: from the callbacks'
on_train_end to `fit` returning. Healthy teardowns took 1-126 ms here; with autotune left
on in the injected stream, 3 of its 4 fits took 1.0-3.2 s (measured with this script).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests import tiny_data

data_dir = tiny_data.shards_fixture(num_shards=2, num_sets=200, num_categories=4,
                                     feature_dim=16)
MAX_GAP_S = 3.0
MAX_TEARDOWN_S = 0.5
RUNS = 8


def test_runs_and_stream_deletion_end_within_seconds(data_dir, tmp_path):
  env = dict(os.environ, PYTHONPATH=tiny_data.ROOT)
  completed = subprocess.run(
      [sys.executable, os.path.join(tiny_data.ROOT, "tests", "keras_models",
                                    "teardown_script.py"), data_dir, str(tmp_path), "5.5",
       str(RUNS)],
      capture_output=True, text=True, env=env, timeout=600, check=False)
  assert completed.returncode == 0, completed.stderr[-3000:]
  result = json.loads(completed.stdout.strip().splitlines()[-1])
  assert result["replica_rows_match"], result
  assert result["autotune"] is False
  assert max(result["deletion_s"]) < MAX_GAP_S, result
  assert len(result["training_gaps_s"]) == RUNS
  assert max(result["training_gaps_s"]) < MAX_TEARDOWN_S, result
