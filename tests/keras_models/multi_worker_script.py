"""Runs train_main as one worker of a TF_CONFIG cluster; prints a digest of its weights.

Started twice by multi_worker_test.py (worker 0 and 1 on 127.0.0.1):
  TF_CONFIG=... python tests/keras_models/multi_worker_script.py --strategy=multi_worker ...
The result is the stdout line of JSON: {"chief": bool, "sha256": str, "epochs": int}.
"""

from __future__ import annotations

import hashlib
import json

from absl import app

from keras_models import distribution
from keras_models import training
import train_main

RESULTS = []


def main(argv: list[str]) -> None:
  run = training.run

  def keep_result(config):
    RESULTS.append(run(config))
    return RESULTS[-1]

  training.run = keep_result
  train_main.main(argv)
  encoder = RESULTS[-1].encoder
  digest = hashlib.sha256(b"".join(w.tobytes() for w in encoder.get_weights())).hexdigest()
  print(json.dumps({"chief": distribution.is_chief(), "sha256": digest,
                    "epochs": RESULTS[-1].epochs_run}))


if __name__ == "__main__":
  app.run(main)
