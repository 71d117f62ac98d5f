"""Serves set-completion queries of a trained model over HTTP (FastAPI + uvicorn).

  python index_main.py --flagfile=experiments/serve/demo.flags     # once: build the index
  python serve_main.py --flagfile=experiments/serve/demo.flags --port=8000
  curl -s localhost:8000/v1/complete -H 'Content-Type: application/json' \
      -d '{"items": [{"item_id": "..."}], "categories": ["cat03"], "k": 5}'
  python serve_main.py --flagfile=experiments/serve/demo.flags \
      --saved_model=runs/demo/cst/export/1        # from an export_main.py SavedModel

Endpoints: POST /v1/complete, GET /v1/info, GET /healthz (see docs/serving.md).
"""

from __future__ import annotations

from absl import logging
import uvicorn

from flags import entry_flags
from flags import serve_flags
# Experiment flagfiles hold training flags too; defining them lets one file drive all.
from flags import train_flags  # pylint: disable=unused-import
from search import service

# Connections uvicorn accepts at once before answering 503 itself; requests beyond
# --max_concurrent wait inside the app (bounded by --request_timeout_s).
CONNECTION_LIMIT = 256


def main(argv: list[str]) -> None:
  del argv  # entry_flags refuses positional arguments.
  entry_flags.check_input_paths(serve_flags.input_path_flags())
  config = serve_flags.serve_config_from_flags()
  application = service.build_app(config)
  logging.info("listening on http://%s:%d", config.host, config.port)
  uvicorn.run(application, host=config.host, port=config.port, log_level="warning",
              access_log=False, limit_concurrency=CONNECTION_LIMIT, timeout_keep_alive=5)


if __name__ == "__main__":
  entry_flags.run(main)
