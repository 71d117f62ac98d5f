"""The registry of nearest-neighbour backends: names -> classes, failing on unknown names.

`exact` is our chunked TF scorer; `faiss_flat` is exact too; `faiss_ivf`, `faiss_hnsw` and
`scann` are approximate. The interface they implement is `backend_base.Backend`; this
module sits above the implementations (they never import it). A backend whose library
cannot be imported fails when it is built or loaded, with an error saying what to
install, and never silently falls back to another.
"""

from __future__ import annotations

from search import backend_base
from search import exact_backend
from search import faiss_backends
from search import scann_backend

BACKENDS: dict[str, type[backend_base.Backend]] = {
    backend.name: backend
    for backend in (exact_backend.ExactBackend, faiss_backends.FaissFlatBackend,
                    faiss_backends.FaissIVFBackend, faiss_backends.FaissHNSWBackend,
                    scann_backend.ScannBackend)}


def get_backend_class(name: str) -> type[backend_base.Backend]:
  """The backend registered as `name`; unknown names fail listing the known ones."""
  if name not in BACKENDS:
    raise ValueError(f"unknown backend '{name}'; known: {', '.join(BACKENDS)}")
  return BACKENDS[name]
