"""The browser page of the query service: explore completions, and a split's evaluation.

GET / serves `static/index.html` (plain HTML + JavaScript, nothing loaded from elsewhere),
which calls the JSON routes added here beside POST /v1/complete:

  GET /v1/splits                              the data folder's splits
  GET /v1/sets?split=val&query=17&limit=20   sets whose id contains `query`
  GET /v1/sets/random?split=val               one set drawn at random
  GET /v1/sets/{split}/{set_id}               a set's items and its photo
  GET /v1/items?id=a&id=b                     items by id (category, image URL); each id
                                              verbatim (`ids=a,b`: ids without commas)
  GET /v1/evaluation                          what eval_main wrote, per split
  GET /images/{path}                          an item image, below the images' folder
  GET /set-images/{path}                      a set photo, below the set photos' folder
  GET /eval-files/{split}/{name}              a table or figure of <model_dir>/eval/<split>

On load the page completes a random test set at once (the set's last item held out).
Items and sets are described by the shard builder's item tables (page_data.py). A file
request is answered only when its resolved path (symlinks followed) is a regular image
file inside its folder, so `../` cannot leave it.
"""

from __future__ import annotations

import os
from typing import Any

import fastapi
from fastapi import responses
from fastapi import staticfiles

from search import completion
from search import page_data

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")


def inside(root: str, relative: str) -> str | None:
  """The real path of `root/relative` when it is a file inside `root`, else None."""
  real_root = os.path.realpath(root)
  path = os.path.realpath(os.path.join(real_root, relative))
  if os.path.commonpath([real_root, path]) != real_root or not os.path.isfile(path):
    return None
  return path


def add_routes(app: fastapi.FastAPI, data: page_data.PageData) -> None:
  """Adds the page, its static files and its JSON and file routes to `app`."""
  app.mount("/static", staticfiles.StaticFiles(directory=STATIC_DIR), name="static")

  @app.get("/", include_in_schema=False)
  async def index() -> responses.FileResponse:
    return responses.FileResponse(os.path.join(STATIC_DIR, "index.html"))

  @app.get("/v1/splits")
  async def splits() -> dict[str, Any]:
    return {"splits": data.splits, "images": data.image_root is not None,
            "set_images": data.set_image_root is not None}

  @app.get("/v1/sets")
  async def find_sets(split: str, query: str = "", limit: int = 20) -> dict[str, Any]:
    return {"split": split, "set_ids": data.find_sets(split, query, limit)}

  @app.get("/v1/sets/random")
  async def random_set(split: str) -> dict[str, Any]:
    return data.set_detail(split, data.random_set(split))

  @app.get("/v1/sets/{split}/{set_id:path}")
  async def set_detail(split: str, set_id: str) -> dict[str, Any]:
    return data.set_detail(split, set_id)

  @app.get("/v1/items")
  async def items(item_ids: list[str] = fastapi.Query([], alias="id"),
                  ids: str = "") -> dict[str, Any]:
    # Item ids are free text (commas, spaces): each `id` value is one id as sent; `ids`
    # is the comma-separated shorthand for ids without commas.
    wanted = item_ids + [i.strip() for i in ids.split(",") if i.strip()]
    if not wanted:
      raise completion.ApiError(422, "id", "give at least one item id: ?id=<id>&id=<id>")
    return {"items": [data.item(i) for i in wanted]}

  @app.get("/v1/evaluation")
  async def evaluation() -> dict[str, Any]:
    return {"model_dir": data.model_dir, "splits": data.evaluation()}

  def _file(root: str | None, relative: str, suffixes: tuple[str, ...]):
    path = inside(root, relative) if root else None
    if path is None or not path.lower().endswith(suffixes):
      raise completion.ApiError(404, None, f"no such file: {relative}")
    return responses.FileResponse(path)

  @app.get(page_data.ITEM_IMAGES_URL + "{path:path}", include_in_schema=False)
  async def image(path: str) -> responses.FileResponse:
    return _file(data.image_root, path, IMAGE_SUFFIXES)

  @app.get(page_data.SET_IMAGES_URL + "{path:path}", include_in_schema=False)
  async def set_image(path: str) -> responses.FileResponse:
    return _file(data.set_image_root, path, IMAGE_SUFFIXES)

  @app.get("/eval-files/{split}/{name}", include_in_schema=False)
  async def eval_file(split: str, name: str) -> responses.FileResponse:
    return _file(os.path.join(data.model_dir, "eval"), f"{split}/{name}",
                 page_data.EVAL_SUFFIXES)
