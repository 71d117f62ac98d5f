"""Benchmarks that print figures; run them as `python -m bench.<script>` from the repo root."""

# Before any script imports TensorFlow: the same CPU kernel choice as the entry points.
import keras_models  # pylint: disable=unused-import
