"""Writes a trained model and its gallery as a versioned SavedModel for TF Serving.

  <model_dir>/export/<version>/
    saved_model.pb, variables/         the graph and the encoder + gallery variables;
    assets/categories.txt              the K category names, one a line (id = line + 1);
    assets.extra/export_manifest.json  model, data, gallery, sizes and export time.
TF Serving loads the highest numbered folder under <model_dir>/export; the version folder
is written under a hidden temporary name and renamed into place, so a server watching the
folder never loads half an export.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import tempfile
import time
from typing import Any

from absl import logging
import tensorflow as tf

from keras_models import configs as model_configs
from keras_models import data_files
from keras_models import evaluation
from search import configs
from search import gallery as gallery_lib
from search import saved_model_module
from tfrecords_builder import atomic_io

VOCABULARY = "categories.txt"
EXPORT_MANIFEST = os.path.join("assets.extra", "export_manifest.json")
FORMAT_VERSION = 1


def folder_bytes(folder: str) -> int:
  return sum(os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(folder) for name in names)


def write(module: saved_model_module.RetrievalModule, export_dir: str,
          manifest: dict[str, Any], overwrite: bool = False) -> dict[str, Any]:
  """Saves `module` with its signatures into `export_dir` atomically; returns the manifest.

  Raises:
    FileExistsError: `export_dir` is not empty and `overwrite` is False.
  """
  export_dir = os.path.abspath(export_dir)
  if os.path.isdir(export_dir) and os.listdir(export_dir) and not overwrite:
    raise FileExistsError(f"{export_dir}: export folder is not empty; pass "
                          "--export_overwrite to replace it or choose another version")
  os.makedirs(os.path.dirname(export_dir), exist_ok=True)
  start = time.perf_counter()
  with atomic_io.staged_dir(export_dir) as staging:
    tf.saved_model.save(module, staging, signatures=module.signatures())
    manifest = {**manifest, "format_version": FORMAT_VERSION,
                "signatures": list(saved_model_module.SIGNATURES),
                "save_seconds": round(time.perf_counter() - start, 3),
                "bytes": folder_bytes(staging)}
    os.makedirs(os.path.join(staging, os.path.dirname(EXPORT_MANIFEST)))
    atomic_io.write_json(os.path.join(staging, EXPORT_MANIFEST), manifest)
  return manifest


def build_module(encoder, gallery: gallery_lib.Gallery, chunk_size: int, max_k: int,
                 vocabulary_dir: str) -> saved_model_module.RetrievalModule:
  """The exported module over `gallery`; writes its vocabulary asset into `vocabulary_dir`."""
  vocabulary = os.path.join(vocabulary_dir, VOCABULARY)
  atomic_io.write_text(vocabulary, "".join(f"{name}\n" for name in gallery.category_names))
  return saved_model_module.RetrievalModule(
      encoder, gallery.item_ids, gallery.categories, gallery.features,
      gallery.category_names, chunk_size, max_k, vocabulary)


def export(config: configs.ExportConfig) -> dict[str, Any]:
  """Exports the model and gallery of `config` to `config.export_dir`.

  Returns:
    The export manifest that was written.

  Raises:
    FileExistsError, FileNotFoundError, ValueError: naming the file and field.
  """
  config.validate()
  start = time.perf_counter()
  manifest = data_files.load_manifest(config.data_dir)
  gallery = gallery_lib.load_gallery(config.gallery_config())
  if tuple(gallery.category_names) != tuple(manifest.categories):
    raise ValueError(f"{config.data_dir}: gallery categories differ from the manifest's")
  eval_config = model_configs.EvalConfig(data_dir=config.data_dir, model_dir=config.model_dir,
                                         model=config.model, weights=config.weights)
  encoder = evaluation.load_encoder(eval_config, manifest)
  with tempfile.TemporaryDirectory() as vocabulary_dir:
    module = build_module(encoder, gallery, config.chunk_size, config.max_k, vocabulary_dir)
    sizes = module.category_sizes.numpy()
    description = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": dataclasses.asdict(config), "weights": evaluation.weights_path(eval_config),
        "dataset": {"data_dir": config.data_dir, "label": manifest.data_label(),
                    "synthetic": manifest.synthetic},
        "source": gallery.source, "feature_dim": module.feature_dim,
        "num_items": int(len(gallery.item_ids)),
        "categories": {name: int(size) for name, size in zip(gallery.category_names, sizes)}}
    written = write(module, config.export_dir, description, config.overwrite)
  logging.info("exported %d items x %d to %s in %.1f s (%d bytes)", written["num_items"],
               written["feature_dim"], config.export_dir, time.perf_counter() - start,
               written["bytes"])
  return {**written, "export_seconds": round(time.perf_counter() - start, 3)}
