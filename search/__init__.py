"""Per-category nearest-neighbour indexes over item galleries and the HTTP query service.

backend_base.py (the interface of a per-category index), exact_backend.py /
faiss_backends.py / scann_backend.py (its implementations), backends.py (the registry
above them), index.py (build, write atomically, load and query a per-category index),
query_encoder.py (the trained model as a fixed-shape tf.function), service.py (the
FastAPI app), page.py / page_data.py (the browser page and what it reads).
"""
