"""Image feature extraction for the builder: image files -> L2-normalised feature vectors.

Encoders, chosen by a spec string:
  "clip"                  CLIP image embeddings from a local keras-hub preset directory
                          or transformers-format checkpoint
                          (`path`, from --encoder_path); see `clip`.
  "keras:<path.keras>"    any saved Keras image model; see `keras_model`.

`encode_images` checks the spec, the model file and every image before any model work, so
a bad argument or a corrupt photo fails in seconds, not after an hour of encoding.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Protocol, Sequence

from absl import logging
import numpy as np
from PIL import Image
import tqdm

from tfrecords_builder.encoders import clip
from tfrecords_builder.encoders import images
from tfrecords_builder.encoders import keras_model

# Spec prefix -> (module with check(location) and load(location), whether the location
# comes after "<prefix>:" in the spec rather than from the `path` argument).
_ENCODERS = {
    "clip": (clip, False),
    "keras": (keras_model, True),
}
KNOWN_SPECS = ("clip", "keras:<path.keras>")


class ImageEncoder(Protocol):
  """What `load_encoder` returns."""

  feature_dim: int
  image_size: tuple[int, int]  # (height, width) of the model input.
  name: str

  def preprocess(self, image: Image.Image) -> np.ndarray:
    """RGB PIL image -> float32 [height, width, 3]."""

  def encode_batch(self, batch: np.ndarray) -> np.ndarray:
    """float32 [batch, height, width, 3] from `preprocess` -> float32 [batch, feature_dim],
    not normalised."""


def _resolve(spec: str, path: str):
  """Returns (encoder module, location) for a spec, after checking the location exists."""
  prefix, colon, argument = spec.partition(":")
  entry = _ENCODERS.get(prefix)
  if entry is None or entry[1] != bool(colon) or (colon and not argument):
    raise ValueError(f"unknown image encoder {spec!r}; known: {', '.join(KNOWN_SPECS)}")
  module, location_in_spec = entry
  location = argument if location_in_spec else path
  module.check(location)
  return module, location


def load_encoder(spec: str, path: str) -> ImageEncoder:
  """Loads the encoder named by `spec` ("clip" with preset dir `path`, or "keras:<file>").

  Raises:
    ValueError: for an unknown spec, listing the known ones, or a model that does not fit.
    FileNotFoundError: naming a missing preset directory or model file.
  """
  module, location = _resolve(spec, path)
  return module.load(location)


def encode_images(paths: list[str], spec: str, path: str, batch_size: int = 32,
                  skip_bad_images: bool = False) -> tuple[np.ndarray, list[str]]:
  """Encodes image files into L2-normalised feature vectors.

  Args:
    paths: [n] image files (any format Pillow decodes; converted to RGB).
    spec: "clip" or "keras:<path.keras>".
    path: the local CLIP preset directory for "clip"; ignored for "keras:...".
    batch_size: images per model call; does not change the results.
    skip_bad_images: skip unreadable images (and return them) instead of raising.

  Returns:
    features: float32 [n_ok, D], unit L2 norm, in the order of the readable `paths`.
    bad_paths: the unreadable paths that were skipped (empty unless skip_bad_images).

  Raises:
    ValueError: unknown spec; unreadable images (listing up to `images.MAX_LISTED` with
      their reasons, and the count) unless skip_bad_images; a feature vector of norm 0.
    FileNotFoundError: missing preset directory or model file.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  module, location = _resolve(spec, path)
  paths = list(paths)
  unreadable = images.find_unreadable(paths)
  if unreadable and not skip_bad_images:
    raise ValueError(images.describe_unreadable(unreadable, len(paths)))
  if unreadable:
    logging.warning("%s", images.describe_unreadable(unreadable, len(paths), skipped=True))
  bad = {bad_path for bad_path, _ in unreadable}
  good_paths = [p for p in paths if p not in bad]
  encoder = module.load(location)
  start = time.perf_counter()
  features = _encode(encoder, good_paths, batch_size)
  seconds = time.perf_counter() - start
  logging.info("%s: encoded %d images in %.1f s (%.1f images/s), %d-d features",
               encoder.name, len(good_paths), seconds,
               len(good_paths) / max(seconds, 1e-9), encoder.feature_dim)
  return _l2_normalize(features, good_paths), [p for p, _ in unreadable]


def _encode(encoder: ImageEncoder, paths: Sequence[str], batch_size: int) -> np.ndarray:
  """Raw features [len(paths), D]; the next batch decodes in threads while one runs."""
  batches = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
  features = []

  def load(image_path):
    return encoder.preprocess(images.read_rgb(image_path))

  with concurrent.futures.ThreadPoolExecutor(images.default_num_threads()) as pool, \
      tqdm.tqdm(total=len(paths), unit="img", desc=f"encoding ({encoder.name})") as bar:
    pending = [pool.submit(load, p) for p in batches[0]] if batches else []
    for index in range(len(batches)):
      current = pending
      if index + 1 < len(batches):
        pending = [pool.submit(load, p) for p in batches[index + 1]]
      batch = np.stack([future.result() for future in current])
      features.append(encoder.encode_batch(batch))
      bar.update(len(batch))
  if not features:
    return np.zeros((0, encoder.feature_dim), np.float32)
  return np.concatenate(features).astype(np.float32)


def _l2_normalize(features: np.ndarray, paths: Sequence[str]) -> np.ndarray:
  """Rows divided by their L2 norm; a zero or non-finite row has no direction, so it fails."""
  norms = np.linalg.norm(features, axis=1, keepdims=True)
  bad_rows = np.flatnonzero(~(np.isfinite(norms[:, 0]) & (norms[:, 0] > 0)))
  if len(bad_rows):
    raise ValueError(f"{paths[bad_rows[0]]}: the encoder gave a feature of norm "
                     f"{norms[bad_rows[0], 0]} ({len(bad_rows)} such images in all)")
  return (features / norms).astype(np.float32)
