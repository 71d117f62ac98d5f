"""Every entry point names a missing input path by the flag that gave it, before any work."""

from __future__ import annotations

import os

from absl import flags
from absl.testing import flagsaver
import pytest

import conditional_main
import eval_main
import export_main
import index_main
import serve_main
import train_main
from tests import tiny_data
from tfrecords_builder import __main__ as builder_main

FLAGS = flags.FLAGS
MISSING = "/no/such/path"

data_dir = tiny_data.shards_fixture(num_sets=40, num_categories=3, feature_dim=8)

# (entry point, its flags; DATA and RUN stand for an existing data and run folder, the
# flag holding MISSING is the one the error must name).
CASES = [
    (train_main, ["--data_dir=" + MISSING, "--model_dir=RUN"], "data_dir"),
    (train_main, ["--data_dir=DATA", "--model_dir=RUN", "--init_weights=" + MISSING],
     "init_weights"),
    (eval_main, ["--data_dir=DATA", "--model_dir=" + MISSING], "model_dir"),
    (eval_main, ["--data_dir=DATA", "--model_dir=RUN", "--weights=" + MISSING], "weights"),
    (export_main, ["--data_dir=DATA", "--model_dir=RUN", "--index_features=" + MISSING],
     "index_features"),
    (index_main, ["--data_dir=" + MISSING, "--model_dir=RUN"], "data_dir"),
    (index_main, ["--data_dir=DATA", "--model_dir=" + MISSING], "model_dir"),
    (serve_main, ["--data_dir=DATA", "--model_dir=RUN", "--index_dir=" + MISSING],
     "index_dir"),
    (serve_main, ["--saved_model=" + MISSING], "saved_model"),
    (conditional_main, ["--data_dir=" + MISSING, "--model_dir=RUN"], "data_dir"),
    (builder_main, ["--source=generic", "--input=" + MISSING, "--output_dir=RUN/out"],
     "input"),
    (builder_main, ["--source=generic", "--input=DATA", "--image_dir=" + MISSING,
                    "--output_dir=RUN/out"], "image_dir"),
    (builder_main, ["--source=generic", "--input=DATA", "--set_image_dir=" + MISSING,
                    "--output_dir=RUN/out"], "set_image_dir"),
    (builder_main, ["--source=generic", "--input=DATA", "--features=" + MISSING,
                    "--output_dir=RUN/out"], "features"),
]


@pytest.mark.parametrize("entry, arguments, flag", CASES,
                         ids=[f"{c[0].__name__}-{c[2]}" for c in CASES])
def test_missing_path_is_named_by_its_flag(entry, arguments, flag, data_dir, tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  argv = [a.replace("DATA", data_dir).replace("RUN", str(run)) for a in arguments]
  with flagsaver.flagsaver():
    FLAGS.unparse_flags()
    FLAGS(["prog", *argv])
    with pytest.raises(FileNotFoundError,
                       match=rf"^--{flag}={MISSING}: no such file or directory$"):
      entry.main(["prog"])
  assert os.listdir(run) == []  # nothing was written before the check
