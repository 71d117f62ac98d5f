"""`set_retrieval`: a tensorflow-datasets builder over every source of the shard builder.

  from tfrecords_builder.tfds import set_retrieval  # registers the builder
  builder = tfds.builder("set_retrieval/generic", data_dir="tfds_data")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir="../shared/data/ikea"))
  train = tfds.load("set_retrieval/generic", split="train", data_dir="tfds_data")

Nothing is downloaded: every config but `synthetic` reads local files from `manual_dir`
(see MANUAL_DOWNLOAD_INSTRUCTIONS). The sets go through the same `sources` and
`dataset_builder` code as our shards (vocabulary, split rule, feature join, L2 norm), so
each split holds the sets, ids, categories and features of our shards, in the same order
(`disable_shuffling`; `keras_models.tfds_source` shuffles for training). One example per
set:
  set_id      Text                     the set's id
  item_ids    Sequence(Text) [n]       item ids, in stored order
  categories  Sequence(ClassLabel) [n] 0..K-1 (our category id minus 1)
  item_index  Sequence(int64) [n]      row of each item in the split's item table
  features    Tensor float32 [n, D]
  images      Sequence(Text) [n]       image path of each item, "" when unknown
`info.metadata` holds source, synthetic, feature_dim, num_categories and max_set_size.
Relative `features`, `image_dir` and `encoder_path` of a config are read from `manual_dir`.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from tfrecords_builder import config as config_lib
from tfrecords_builder import dataset_builder
from tfrecords_builder import raw_dataset
from tfrecords_builder import sources
from tfrecords_builder.sources import synthetic

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put the raw files of the config's source in manual_dir (nothing is downloaded):
  generic            sets.jsonl and its features .npz (e.g. ../shared/data/ikea)
  deepfurniture      the uncompressed DeepFurniture root (scenes/, furnitures/, metadata/)
                     and features.npz keyed by furniture_id (or a config with an encoder)
  iqon3000           the IQON3000 root (<user>/<coordinate>/<coordinate>.json) and
                     features.npz keyed by itemId (or a config with an encoder)
  polyvore_outfits   the archive's polyvore_outfits/ folder (metadata, images/,
                     nondisjoint/, disjoint/) and features.npz keyed by item_id
  reference_pickles  train.pkl, validation.pkl, test.pkl of the original code
  synthetic          nothing (generated from the config's seed)
Pass it as tfds.download.DownloadConfig(manual_dir=...)."""


@dataclasses.dataclass(eq=False)
class SetRetrievalConfig(tfds.core.BuilderConfig):
  """One source and the `BuilderConfig` options of `tfrecords_builder.config`.

  Attributes:
    source: Registered source name (`sources.SOURCES`).
    features, image_dir, encoder, encoder_path, encoder_batch_size, seed, l2_normalize,
      min_set_size, synthetic, polyvore_version, polyvore_categories: As in
      `config_lib.BuilderConfig`; relative paths are taken inside `manual_dir`.
  """

  source: str = "generic"
  features: str = ""
  image_dir: str = ""
  encoder: str = ""
  encoder_path: str = ""
  encoder_batch_size: int = 32
  seed: int = 0
  l2_normalize: bool = True
  min_set_size: int = 2
  synthetic: synthetic.SyntheticConfig = synthetic.SyntheticConfig()
  polyvore_version: str = "nondisjoint"
  polyvore_categories: str = "semantic"

  def builder_config(self, manual_dir: str) -> config_lib.BuilderConfig:
    """The shard builder's config reading `manual_dir` (validated)."""

    def inside(path: str) -> str:
      return os.path.join(manual_dir, path) if path and not os.path.isabs(path) else path

    # output_dir is required by validate() but never written: tfds writes the files.
    config = config_lib.BuilderConfig(
        source=self.source, output_dir=os.path.join(manual_dir, "unused"), input=manual_dir,
        features=inside(self.features), image_dir=inside(self.image_dir),
        encoder=self.encoder, encoder_path=inside(self.encoder_path),
        encoder_batch_size=self.encoder_batch_size, seed=self.seed,
        l2_normalize=self.l2_normalize, min_set_size=self.min_set_size,
        synthetic=self.synthetic, polyvore_version=self.polyvore_version,
        polyvore_categories=self.polyvore_categories)
    config.validate()
    return config


def _config(name: str, description: str, **options) -> SetRetrievalConfig:
  return SetRetrievalConfig(name=name, source=name, description=description, **options)


class SetRetrieval(tfds.core.GeneratorBasedBuilder):
  """Sets of items with categories and feature vectors, from our sources."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Sets, item ids, categories, item rows, features, images."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      _config("generic", "sets.jsonl + features .npz (the generic layout)"),
      _config("synthetic", "Embedded SYNTHETIC sets (3,000 sets, K=11, D=64, seed 0)"),
      _config("deepfurniture", "DeepFurniture scenes, features.npz keyed by furniture_id",
              features="features.npz"),
      _config("polyvore_outfits", "Polyvore Outfits (nondisjoint, 11 semantic types, the "
              "files' splits), features.npz keyed by item_id", features="features.npz"),
      _config("iqon3000", "IQON3000 outfits, features.npz keyed by itemId",
              features="features.npz"),
      _config("reference_pickles", "Split pickles of the original SetRetrieval code"),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    # Names and D depend on the files, so they are filled in by _split_generators.
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n\n")[0],
        features=tfds.features.FeaturesDict({
            "set_id": tfds.features.Text(),
            "item_ids": tfds.features.Sequence(tfds.features.Text()),
            "categories": tfds.features.Sequence(tfds.features.ClassLabel()),
            "item_index": tfds.features.Sequence(np.int64),
            "features": tfds.features.Tensor(shape=(None, None), dtype=np.float32,
                                             encoding=tfds.features.Encoding.BYTES),
            "images": tfds.features.Sequence(tfds.features.Text()),
        }),
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    config = self.builder_config
    manual_dir = "" if config.source == "synthetic" else os.fspath(dl_manager.manual_dir)
    build_config = config.builder_config(manual_dir)
    raw = sources.load(build_config)
    built = dataset_builder.build(raw, seed=build_config.seed,
                                  l2_normalize=build_config.l2_normalize,
                                  min_set_size=build_config.min_set_size)
    self.info.features["categories"].feature.names = list(built.category_names)
    self.info.metadata.update({
        "source": raw.name, "synthetic": raw.synthetic, "feature_dim": built.feature_dim,
        "num_categories": len(built.category_names),
        "max_set_size": max(s.max_set_size for s in built.splits.values())})
    return {split: self._generate_examples(built.splits[split])
            for split in raw_dataset.SPLITS}

  def _generate_examples(self, data: dataset_builder.SplitData):
    for set_id, rows in zip(data.set_ids, data.set_items):
      yield set_id, {
          "set_id": set_id,
          "item_ids": data.item_ids[rows].tolist(),
          "categories": (data.categories[rows] - 1).astype(np.int64),
          "item_index": rows.astype(np.int64),
          "features": data.features[rows],
          "images": data.images[rows].tolist(),
      }
