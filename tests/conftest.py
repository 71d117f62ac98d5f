"""Test session setup: TF's CPU kernels chosen as in the entry points, before TF loads."""

import keras_models  # pylint: disable=unused-import
