"""Raw set data -> sharded TFRecords with a manifest, category centers and item tables."""
