"""Per-category nearest-neighbour indexes over item galleries and the HTTP query service.

backends.py (exact, FAISS, ScaNN behind one interface and a registry), index.py (build,
write atomically, load and query a per-category index), query_encoder.py (the trained
model as a fixed-shape tf.function), service.py / api_models.py (the FastAPI app).
"""
