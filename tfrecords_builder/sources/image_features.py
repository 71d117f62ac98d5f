"""Feature table of image datasets: a precomputed `.npz`, or images run through an encoder.

DeepFurniture and IQON3000 ship images, not features. Either a features `.npz` keyed by
item id is given (items without a row are dropped), or the items' image files are encoded
(items without an image file, and with `skip_bad_images` unreadable ones, are dropped).
No item is ever given a placeholder image or feature.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from absl import logging
import numpy as np

from tfrecords_builder import feature_table


@dataclasses.dataclass(frozen=True)
class FeatureOptions:
  """Where the features of an image dataset come from.

  Attributes:
    features: Precomputed features `.npz` (`item_ids` [N], `features` [N, D]); "" = encode.
    encoder: Encoder spec for `encoders.encode_images`: "clip" or "keras:<model.keras>".
    encoder_path: Encoder weights (e.g. a local keras-hub CLIP preset folder).
    batch_size: Images per encoder batch.
    skip_bad_images: Drop (and count) unreadable images instead of raising.
  """

  features: str = ""
  encoder: str = ""
  encoder_path: str = ""
  batch_size: int = 32
  skip_bad_images: bool = False

  @classmethod
  def from_config(cls, config) -> FeatureOptions:
    return cls(features=config.features, encoder=config.encoder,
               encoder_path=config.encoder_path, batch_size=config.encoder_batch_size,
               skip_bad_images=config.skip_bad_images)


@dataclasses.dataclass(frozen=True)
class ItemFeatures:
  """Features of the items that have one.

  Attributes:
    item_ids: [M] str, the embedded items, in the order they were asked for.
    features: [M, D] float32.
    origin: The `.npz` path, or a description of the encoded images (for errors).
    dropped: Asked-for items without a feature, by reason ("no feature", "no image",
      "unreadable image").
  """

  item_ids: np.ndarray
  features: np.ndarray
  origin: str
  dropped: dict[str, int]


def embed(item_ids: Sequence[str], images: Sequence[str], options: FeatureOptions,
          source: str) -> ItemFeatures:
  """Returns the features of `item_ids` ([N] str; `images` [N] paths, "" when absent).

  Raises:
    ValueError: neither `features` nor `encoder` set; a bad `.npz`; unreadable images
      without `skip_bad_images`; an encoder returning the wrong number of rows.
  """
  if options.features:
    table_ids, table = feature_table.load_npz(options.features)
    row_of = {item_id: row for row, item_id in enumerate(table_ids.tolist())}
    kept = [i for i in item_ids if i in row_of]
    rows = np.asarray([row_of[i] for i in kept], np.int64)
    return ItemFeatures(
        item_ids=np.asarray(kept, dtype=str), features=table[rows],
        origin=options.features, dropped={"no feature": len(item_ids) - len(kept)})
  if not options.encoder:
    raise ValueError(f"{source}: needs a features .npz or an image encoder")
  from tfrecords_builder import encoders  # pylint: disable=g-import-not-at-top
  with_image = [(i, p) for i, p in zip(item_ids, images) if p]
  paths = [p for _, p in with_image]
  features, bad_paths = np.zeros((0, 0), np.float32), []
  if paths:
    logging.info("%s: encoding %d images with %s", source, len(paths), options.encoder)
    features, bad_paths = encoders.encode_images(
        paths=paths, spec=options.encoder, path=options.encoder_path,
        batch_size=options.batch_size, skip_bad_images=options.skip_bad_images)
  bad = set(bad_paths)
  kept = [i for i, p in with_image if p not in bad]
  features = np.asarray(features, np.float32)
  if features.ndim != 2 or features.shape[0] != len(kept):
    raise ValueError(f"{source}: encoder {options.encoder!r} returned features of shape "
                     f"{features.shape} for {len(kept)} readable images")
  return ItemFeatures(
      item_ids=np.asarray(kept, dtype=str), features=features,
      origin=f"{source} ({options.encoder} features)",
      dropped={"no image": len(item_ids) - len(with_image),
               "unreadable image": len(with_image) - len(kept)})
