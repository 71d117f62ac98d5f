"""Builds sharded TFRecords from raw set data.

  python -m tfrecords_builder --source=synthetic --output_dir=data/synthetic
  python -m tfrecords_builder --source=generic --input=../shared/data/ikea \
      --output_dir=data/ikea
"""

from __future__ import annotations

import json

from absl import logging

# entry_flags first: it loads TF with its start-up noise filtered (see its docstring).
from flags import entry_flags  # pylint: disable=g-bad-import-order
from flags import builder_flags
from tfrecords_builder import build


def main(argv: list[str]) -> None:
  del argv  # entry_flags refuses positional arguments.
  entry_flags.check_input_paths(builder_flags.input_path_flags())
  config = builder_flags.builder_config_from_flags()
  manifest = build.run(config)
  counts = {s: {"sets": v["sets"], "items": v["items"]} for s, v in manifest["splits"].items()}
  label = " (SYNTHETIC data)" if manifest["synthetic"] else ""
  logging.info("built %s%s: D=%d, K=%d, %s", config.output_dir, label,
               manifest["feature_dim"], manifest["num_categories"], json.dumps(counts))


if __name__ == "__main__":
  entry_flags.run(main)
