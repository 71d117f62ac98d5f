"""Shard builder write rate, and input pipeline read rate against what training consumes.

  python -m bench.pipeline --output_json=/tmp/pipeline.json   # ~1M SYNTHETIC items, D=512
  python -m bench.pipeline --quick                            # under a minute

1. Builder: the synthetic source through the library's three build stages (generate,
   check and split, write shards), each timed; vectors/s of the write stage and overall.
2. Reader: `input_pipeline.make_dataset` on the train split exactly as training reads it
   (parse, split halves, pad, batch, prefetch): sets/s after a warm-up.
3. Consumer: the in-batch train step (bench/step_timer.py) fed from memory, then fed by the
   same pipeline. The pipeline is not the bottleneck when reader / consumer >= 5 and the
   fed step rate matches the in-memory one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time

from absl import app
from absl import flags

from bench import flop_count
from bench import harness
from bench import step_timer
from keras_models import configs
from keras_models import data_files
from keras_models import input_pipeline
from tfrecords_builder import config as builder_config
from tfrecords_builder import dataset_builder
from tfrecords_builder import shard_writer
from tfrecords_builder import sources
from tfrecords_builder.sources import synthetic

QUICK = dict(num_sets=1500, feature_dim=64, hidden_dim=64, batch_size=16, read_batches=40,
             window_steps=2, num_windows=2)

_QUICK = flags.DEFINE_bool("quick", False, f"Tiny run (overrides sizes: {QUICK}).")
_NUM_SETS = flags.DEFINE_integer("num_sets", 91_000, "Synthetic sets (2..20 items: ~1M items).")
_DIM = flags.DEFINE_integer("feature_dim", 512, "Item feature size D.")
_MAX_ITEMS = flags.DEFINE_integer("max_items", 20, "Largest set (halves of 10).")
_SHARDS = flags.DEFINE_integer("num_shards", 16, "Shards per split.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Sets per batch.")
_READ_BATCHES = flags.DEFINE_integer("read_batches", 300, "Batches timed after warm-up.")
_HIDDEN = flags.DEFINE_integer("hidden_dim", 512, "CST width of the consumer step.")
_WINDOW = flags.DEFINE_integer("window_steps", 2, "Train steps per timed window.")
_WINDOWS = flags.DEFINE_integer("num_windows", 3, "Timed train windows.")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Shard folder; default: a temporary one, "
                                "deleted at the end.")
_OUTPUT_JSON = flags.DEFINE_string("output_json", "", "Also write the results here.")


def build_shards(output_dir: str, num_sets: int, feature_dim: int, max_items: int,
                 num_shards: int) -> dict:
  """Runs the builder's stages on the synthetic source, timing each."""
  config = builder_config.BuilderConfig(
      source="synthetic", output_dir=output_dir, num_shards=num_shards, overwrite=True,
      synthetic=synthetic.SyntheticConfig(num_sets=num_sets, feature_dim=feature_dim,
                                          min_items=2, max_items=max_items))
  config.validate()
  start = time.perf_counter()
  raw = sources.load(config)
  generated = time.perf_counter()
  built = dataset_builder.build(raw, seed=config.seed, l2_normalize=config.l2_normalize,
                                min_set_size=config.min_set_size)
  checked = time.perf_counter()
  shard_writer.write(built, output_dir, source=raw.name, synthetic=True,
                     num_shards=num_shards, overwrite=True, options=dataclasses.asdict(config))
  written = time.perf_counter()
  items = len(raw.item_ids)
  return {"stage": "builder", "sets": len(raw.sets), "items": items,
          "generate_seconds": generated - start, "check_seconds": checked - generated,
          "write_seconds": written - checked,
          "write_vectors_per_second": items / (written - checked),
          "end_to_end_vectors_per_second": items / (written - start),
          "load_average_1min": harness.load_average()}


def read_rate(manifest: data_files.Manifest, batch_size: int, num_batches: int) -> dict:
  """Sets/s of the training pipeline after a warm-up that fills the shuffle buffer."""
  dataset = input_pipeline.make_dataset(manifest, "train", batch_size, training=True)
  iterator = iter(dataset.repeat())
  for _ in range(20):
    next(iterator)
  start = time.perf_counter()
  items = 0
  for _ in range(num_batches):
    batch = next(iterator)
    items += int(batch["query_mask"].numpy().sum() + batch["target_mask"].numpy().sum())
  seconds = time.perf_counter() - start
  return {"stage": "reader", "sets_per_second": num_batches * batch_size / seconds,
          "vectors_per_second": items / seconds, "seconds": seconds,
          "load_average_1min": harness.load_average()}


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  sizes = dict(num_sets=_NUM_SETS.value, feature_dim=_DIM.value, hidden_dim=_HIDDEN.value,
               batch_size=_BATCH.value, read_batches=_READ_BATCHES.value,
               window_steps=_WINDOW.value, num_windows=_WINDOWS.value)
  if _QUICK.value:
    sizes = QUICK
  work_dir = _WORK_DIR.value or tempfile.mkdtemp(prefix="bench_pipeline_")
  try:
    builder = build_shards(os.path.join(work_dir, "synthetic"), sizes["num_sets"],
                           sizes["feature_dim"], _MAX_ITEMS.value, _SHARDS.value)
    manifest = data_files.load_manifest(os.path.join(work_dir, "synthetic"))
    reader = read_rate(manifest, sizes["batch_size"], sizes["read_batches"])
    shape = flop_count.StepShape(batch_size=sizes["batch_size"], half_size=manifest.half_size,
                                 num_categories=manifest.num_categories,
                                 feature_dim=manifest.feature_dim,
                                 hidden_dim=sizes["hidden_dim"])
    model_config = configs.ModelConfig(hidden_dim=shape.hidden_dim)
    steps = dict(window_steps=sizes["window_steps"], num_windows=sizes["num_windows"],
                 matmul_size=0)
    step = step_timer.time_variant(
        "in_batch", False, "none", shape, model_config, **steps,
        fed_dataset=input_pipeline.make_dataset(manifest, "train", shape.batch_size,
                                                training=True).repeat())
  finally:
    if not _WORK_DIR.value:
      shutil.rmtree(work_dir, ignore_errors=True)
  consumer = {"stage": "train step (in memory)", "sets_per_second": step["sets_per_second"],
              "load_average_1min": step["load_average_1min"]}
  fed_row = {"stage": "train step (fed by pipeline)",
             "sets_per_second": step["fed_sets_per_second"],
             "load_average_1min": step["fed_load_average_1min"]}
  reader["ratio_to_consumer"] = reader["sets_per_second"] / consumer["sets_per_second"]
  fed_row["ratio_to_consumer"] = fed_row["sets_per_second"] / consumer["sets_per_second"]
  rows = [builder, reader, consumer, fed_row]
  payload = {"benchmark": "pipeline", "data": "SYNTHETIC", "quick": _QUICK.value,
             "machine": harness.machine_info(),
             "sizes": dict(sizes, max_items=_MAX_ITEMS.value, num_shards=_SHARDS.value),
             "builder": builder, "reader": reader, "consumer": consumer, "fed": fed_row}
  harness.emit(f"Builder and input pipeline (SYNTHETIC, {builder['items']} items, "
               f"D={sizes['feature_dim']})", rows, [
                   "stage", "write_vectors_per_second", "end_to_end_vectors_per_second",
                   "sets_per_second", "vectors_per_second", "ratio_to_consumer",
                   "load_average_1min"], payload, _OUTPUT_JSON.value)


if __name__ == "__main__":
  app.run(main)
