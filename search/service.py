"""The HTTP JSON query service (FastAPI): POST /v1/complete|score, GET /v1/info, /healthz.

`build_app` also adds the browser page at / and its routes (`search/page.py`).

Every error is `{"error": {"status", "field", "message"}}` with a 4xx status naming the
request field; nothing a client sends can crash the process (an unexpected exception is
logged and answered with 500). Bounds: body size (413, by Content-Length and as streamed),
item count and k (422, from the request model), and time: at most `max_concurrent`
requests compute at once; one that waits longer than `request_timeout_s` for a slot gets
503, one whose work overruns gets 504 (its worker thread finishes in the background and
only then frees its slot, so overruns cannot pile up unbounded work).
"""

# No `from __future__ import annotations`: FastAPI must see the request model class, which
# is local to create_app, in the endpoint's signature.

import asyncio
import contextlib
import functools
import os
import time
from typing import Any, Callable

from absl import logging
import anyio
import fastapi
from fastapi import exceptions
from fastapi import responses
import pydantic
from starlette import exceptions as starlette_exceptions

from keras_models import data_files
from search import api_models
from search import completion
from search import configs
from search import index as index_lib
from search import page
from search import page_data
from search import query_encoder
from search import saved_model_backend
from search import scoring


def error_response(status: int, field: str | None, message: str) -> responses.JSONResponse:
  return responses.JSONResponse(
      {"error": {"status": status, "field": field, "message": message}}, status_code=status)


class BodyTooLarge(fastapi.HTTPException):
  """Raised from the body stream; an HTTPException so FastAPI's body parsing re-raises it."""

  def __init__(self, limit: int) -> None:
    super().__init__(413, f"request body is larger than {limit} bytes")


class BodyLimitMiddleware:
  """ASGI middleware refusing bodies over `max_bytes`, declared or streamed (chunked)."""

  def __init__(self, app, max_bytes: int) -> None:
    self.app, self.max_bytes = app, max_bytes

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    declared = dict(scope["headers"]).get(b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
      return await error_response(413, "body", BodyTooLarge(self.max_bytes).detail)(
          scope, receive, send)
    received = 0

    async def limited_receive():
      nonlocal received
      message = await receive()
      if message["type"] == "http.request":
        received += len(message.get("body", b""))
        if received > self.max_bytes:
          raise BodyTooLarge(self.max_bytes)
      return message

    return await self.app(scope, limited_receive, send)


def request_models(config: configs.ServeConfig) -> type[pydantic.BaseModel]:
  """The request body model; its bounds come from `config`."""

  class CompleteRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    items: list[api_models.RequestItem] = pydantic.Field(min_length=1, max_length=config.max_items)
    categories: list[str] = pydantic.Field(min_length=1, max_length=1000)
    k: int = pydantic.Field(10, ge=1, le=config.max_k)
    exclude_query_items: bool = True

  return CompleteRequest


def _finish(slots: asyncio.Semaphore, work: asyncio.Future) -> None:
  """Frees the slot of finished work; reads its exception so none goes unreported."""
  slots.release()
  if not work.cancelled() and work.exception() is not None:
    logging.info("request work ended with %r", work.exception())


async def _run_in_slot(slots: asyncio.Semaphore, timeout: float,
                       function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
  """Runs `function(*args)` in a worker thread once a slot is free, within `timeout` s.

  503 when no slot frees in time, 504 when the work does not end in the time left; the
  slot stays taken until the work really ends (a timed-out thread cannot be stopped).
  """
  start = time.perf_counter()
  try:
    await asyncio.wait_for(slots.acquire(), timeout)
  except TimeoutError:
    raise completion.ApiError(503, None, f"busy: no worker free within {timeout} s") from None
  work = asyncio.ensure_future(anyio.to_thread.run_sync(function, *args))
  work.add_done_callback(functools.partial(_finish, slots))
  remaining = max(0.0, timeout - (time.perf_counter() - start))
  try:
    answer = await asyncio.wait_for(asyncio.shield(work), remaining)
  except TimeoutError:
    raise completion.ApiError(504, None, f"timed out after {timeout} s") from None
  answer["total_ms"] = round((time.perf_counter() - start) * 1000.0, 3)
  return answer


def _field(location: tuple) -> str:
  parts = [str(p) for p in location]
  if parts and parts[0] == "body":
    parts = parts[1:]
  return ".".join(parts) or "body"


def create_app(completer: completion.Completer, config: configs.ServeConfig,
               info: dict[str, Any]) -> fastapi.FastAPI:
  """The service app over a ready `completer`; `info` is served by GET /v1/info."""

  @contextlib.asynccontextmanager
  async def lifespan(app: fastapi.FastAPI):
    app.state.slots = asyncio.Semaphore(config.max_concurrent)
    yield

  app = fastapi.FastAPI(title="setretrieval", lifespan=lifespan)
  app.state.completer = completer
  app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
  request_model = request_models(config)

  @app.exception_handler(exceptions.RequestValidationError)
  async def invalid_request(_, error: exceptions.RequestValidationError):
    problems = [{"field": "body", "message": f"invalid JSON: {e.get('ctx', {}).get('error', e['msg'])}"}
                if e["type"] == "json_invalid" else {"field": _field(e["loc"]), "message": e["msg"]}
                for e in error.errors()]
    error_body = {"status": 422, **problems[0]}
    if len(problems) > 1:
      error_body["all"] = problems
    return responses.JSONResponse({"error": error_body}, status_code=422)

  @app.exception_handler(starlette_exceptions.HTTPException)
  async def http_error(_, error: starlette_exceptions.HTTPException):
    return error_response(error.status_code, "body" if error.status_code == 413 else None,
                          str(error.detail))

  @app.exception_handler(completion.ApiError)
  async def api_error(_, error: completion.ApiError):
    return error_response(error.status, error.field, error.message)

  @app.exception_handler(Exception)
  async def unexpected(_, error: Exception):
    logging.exception("unexpected error: %s", error)
    return error_response(500, None, "internal error; see the service log")

  @app.get("/healthz")
  async def healthz() -> dict[str, str]:
    return {"status": "ok"}

  @app.get("/v1/info")
  async def get_info() -> dict[str, Any]:
    return info

  @app.post("/v1/complete")
  async def complete(request: request_model) -> dict[str, Any]:
    items = [completion.QueryItem(**item.model_dump()) for item in request.items]
    return await _run_in_slot(app.state.slots, config.request_timeout_s, completer.complete,
                              items, request.categories, request.k,
                              request.exclude_query_items)

  score_model = scoring.request_model(config)
  scorer = scoring.Scorer(completer)

  @app.post("/v1/score")
  async def score(request: score_model) -> dict[str, Any]:
    items = [completion.QueryItem(**item.model_dump()) for item in request.items]
    return await _run_in_slot(app.state.slots, config.request_timeout_s, scorer.score, items)

  return app


def build_app(config: configs.ServeConfig) -> fastapi.FastAPI:
  """Loads model, data manifest and index of `config`, warms them up, returns the app."""
  config.validate()
  if config.saved_model:
    completer, info = saved_model_backend.completer_and_info(config)
    logging.info("serving the SavedModel %s", config.saved_model)
    app = create_app(completer, config, info)
    _add_page_of_export(app, config, info)
    return app
  manifest = data_files.load_manifest(config.data_dir)
  index = index_lib.SearchIndex(config.index_dir)
  index_lib.check_against_data(f"{config.index_dir}/{index_lib.INDEX_MANIFEST}", index,
                               manifest)
  encoder, weights = query_encoder.load(config, manifest)
  completer = completion.Completer(encoder, index)
  # Trace the model and touch every category's index before the first request.
  warm = [completion.QueryItem(item_id=str(index.item_ids[0]))]
  completer.complete(warm, [n for n in index.category_names if index.category_size(
      completer.category_ids[n])] or list(index.category_names[:1]), 1)
  info = {
      "model": {"name": config.model.model, "model_dir": config.model_dir, "weights": weights,
                "hidden_dim": config.model.hidden_dim, "num_layers": config.model.num_layers},
      "dataset": {"data_dir": config.data_dir, "label": manifest.data_label(),
                  "synthetic": manifest.synthetic, "feature_dim": manifest.feature_dim},
      "categories": [{"name": name, "items": index.category_size(i)}
                     for i, name in enumerate(index.category_names, start=1)],
      "index": {"backend": index.backend, "index_dir": config.index_dir,
                "num_items": len(index.item_ids), "created": index.manifest.get("created"),
                "params": {name: entry.get("params") for name, entry in
                           index.manifest["categories"].items()}},
      "limits": {"max_items": config.max_items, "max_k": config.max_k,
                 "max_body_bytes": config.max_body_bytes,
                 "request_timeout_s": config.request_timeout_s,
                 "max_concurrent": config.max_concurrent}}
  logging.info("serving %s (%s) with a %s index of %d items", config.model_dir,
               manifest.data_label(), index.backend, len(index.item_ids))
  app = create_app(completer, config, info)
  page.add_routes(app, page_data.PageData(manifest, config.model_dir))
  return app


def _add_page_of_export(app: fastapi.FastAPI, config: configs.ServeConfig,
                        info: dict[str, Any]) -> None:
  """Adds the page over a SavedModel: its sets come from --data_dir, else the data folder
  the export records; where that folder is gone (an export copied alone to a server) the
  API is served without the page, with a warning."""
  data_dir = config.data_dir or info["dataset"].get("data_dir") or ""
  model_dir = config.model_dir or info["model"].get("model_dir") or ""
  path = os.path.join(data_dir, data_files.MANIFEST)
  if not config.data_dir and not os.path.isfile(path):
    logging.warning("no browser page: %s (the export's data folder) not found; pass "
                    "--data_dir to serve the page", path)
    return
  manifest = data_files.load_manifest(data_dir)
  exported = [category["name"] for category in info["categories"]]
  if list(manifest.categories) != exported:
    raise ValueError(f"{path}: categories {list(manifest.categories)} differ from the "
                     f"SavedModel's {exported}; pass the --data_dir it was exported from")
  page.add_routes(app, page_data.PageData(manifest, model_dir))
