"""Sources that read one raw layout into a RawDataset, registered by `--source` name."""

from __future__ import annotations

from typing import Callable

from tfrecords_builder import raw_dataset


def _generic(config) -> raw_dataset.RawDataset:
  from tfrecords_builder.sources import generic  # pylint: disable=g-import-not-at-top
  return generic.load(config.input, config.features or None, config.image_dir or None,
                      config.set_image_dir or None)


def _deepfurniture(config) -> raw_dataset.RawDataset:
  from tfrecords_builder.sources import deepfurniture  # pylint: disable=g-import-not-at-top
  from tfrecords_builder.sources import image_features  # pylint: disable=g-import-not-at-top
  return deepfurniture.load(config.input, image_features.FeatureOptions.from_config(config))


def _iqon3000(config) -> raw_dataset.RawDataset:
  from tfrecords_builder.sources import image_features  # pylint: disable=g-import-not-at-top
  from tfrecords_builder.sources import iqon3000  # pylint: disable=g-import-not-at-top
  return iqon3000.load(config.input, image_features.FeatureOptions.from_config(config),
                       seed=config.seed)


def _polyvore_outfits(config) -> raw_dataset.RawDataset:
  from tfrecords_builder.sources import image_features  # pylint: disable=g-import-not-at-top
  from tfrecords_builder.sources import polyvore_outfits  # pylint: disable=g-import-not-at-top
  return polyvore_outfits.load(config.input, image_features.FeatureOptions.from_config(config),
                               config.polyvore_version, config.polyvore_categories)


def _reference_pickles(config) -> raw_dataset.RawDataset:
  from tfrecords_builder.sources import reference_pickles  # pylint: disable=g-import-not-at-top
  return reference_pickles.load(config.input)


def _synthetic(config) -> raw_dataset.RawDataset:
  from tfrecords_builder.sources import synthetic  # pylint: disable=g-import-not-at-top
  return synthetic.generate(config.synthetic)


SOURCES: dict[str, Callable[..., raw_dataset.RawDataset]] = {
    "deepfurniture": _deepfurniture,
    "generic": _generic,
    "iqon3000": _iqon3000,
    "polyvore_outfits": _polyvore_outfits,
    "reference_pickles": _reference_pickles,
    "synthetic": _synthetic,
}


def load(config) -> raw_dataset.RawDataset:
  """Reads the dataset of `config.source`; unknown names raise ValueError."""
  if config.source not in SOURCES:
    raise ValueError(f"unknown source '{config.source}'; known: {', '.join(sorted(SOURCES))}")
  return SOURCES[config.source](config)
