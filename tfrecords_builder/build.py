"""Library entry of the shard builder: read a source, check it, write shards."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from absl import logging

from tfrecords_builder import config as config_lib
from tfrecords_builder import dataset_builder
from tfrecords_builder import shard_writer
from tfrecords_builder import sources


def run(config: config_lib.BuilderConfig) -> dict[str, Any]:
  """Builds the dataset described by `config`; returns its manifest."""
  config.validate()
  start = time.time()
  raw = sources.load(config)
  logging.info("read %d sets and %d feature rows from %s in %.1f s", len(raw.sets),
               len(raw.item_ids), raw.features_origin, time.time() - start)
  built = dataset_builder.build(raw, seed=config.seed, l2_normalize=config.l2_normalize,
                                min_set_size=config.min_set_size)
  options = dataclasses.asdict(config)
  if config.source != "synthetic":
    options.pop("synthetic")
  return shard_writer.write(built, config.output_dir, source=raw.name,
                            synthetic=raw.synthetic, num_shards=config.num_shards,
                            overwrite=config.overwrite, options=options)
