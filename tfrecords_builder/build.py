"""Library entry of the shard builder: read a source, check it, write shards."""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

from absl import logging

from tfrecords_builder import config as config_lib
from tfrecords_builder import dataset_builder
from tfrecords_builder import question_writer
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
  name, synthetic, report = raw.name, raw.synthetic, raw.report
  extras = {"questions": functools.partial(question_writer.write, built=built,
                                           official=raw.questions, seed=config.question_seed,
                                           max_sets=config.question_sets)}
  # The source's feature table (GBs at paper scale) is not needed to write the shards.
  del raw
  options = dataclasses.asdict(config)
  if config.source != "synthetic":
    options.pop("synthetic")
  if report is not None:
    extras["source_report"] = lambda _: report
  return shard_writer.write(built, config.output_dir, source=name, synthetic=synthetic,
                            num_shards=config.num_shards, overwrite=config.overwrite,
                            options=options, extras=extras)
