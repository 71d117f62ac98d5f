"""tensorflow-datasets view of our sources: `from tfrecords_builder.tfds import set_retrieval`
registers the `set_retrieval` builder (one config per source) with `tfds.builder`."""
