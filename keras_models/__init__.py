"""Keras models, losses, metrics, input pipeline, training and evaluation for set retrieval.

Importing this package (every entry point does, before TensorFlow) turns on TF's oneDNN
CPU kernels unless the user chose otherwise: TF 2.21 enables them by default only on some
CPUs, and on the AMD EPYC we measured its float32 matmul ran 2.4x faster with them
(54 -> 132 GFLOP/s on 2 cores, as fast as NumPy's BLAS; bench/README.md).
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
