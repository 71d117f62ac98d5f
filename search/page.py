"""The browser page of the query service: explore completions, and a split's evaluation.

GET / serves `static/index.html` (plain HTML + JavaScript, nothing loaded from elsewhere),
which calls the JSON routes added here beside POST /v1/complete:

  GET /v1/splits                              the data folder's splits
  GET /v1/sets?split=val&query=17&limit=20   sets whose id contains `query`
  GET /v1/sets/random?split=val               one set drawn at random
  GET /v1/sets/{split}/{set_id}               a set's items
  GET /v1/items?ids=a,b                       items by id (category, image URL)
  GET /v1/evaluation                          what eval_main wrote, per split
  GET /images/{path}                          an item image, below the images' folder
  GET /eval-files/{split}/{name}              a table or figure of <model_dir>/eval/<split>

Items are described by the shard builder's item tables (`items-<split>.npz`), which also
list every set's members. Image paths there are absolute; they are served relative to
their common folder, and a request is answered only when its resolved path (symlinks
followed) is a regular image file inside that folder, so `../` cannot leave it.
"""

from __future__ import annotations

import csv
import os
import random
from typing import Any

import fastapi
from fastapi import responses
from fastapi import staticfiles

from keras_models import data_files
from search import completion

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")
EVAL_SUFFIXES = (".png", ".jpg", ".txt", ".csv", ".json")
MAX_LISTED_SETS = 100


def inside(root: str, relative: str) -> str | None:
  """The real path of `root/relative` when it is a file inside `root`, else None."""
  real_root = os.path.realpath(root)
  path = os.path.realpath(os.path.join(real_root, relative))
  if os.path.commonpath([real_root, path]) != real_root or not os.path.isfile(path):
    return None
  return path


class PageData:
  """The sets and items of every split of a data folder, for the page.

  Args:
    manifest: The data folder's manifest.
    model_dir: Run folder whose `eval/<split>/` outputs the evaluation view shows.
  """

  def __init__(self, manifest: data_files.Manifest, model_dir: str) -> None:
    self.model_dir = model_dir
    self.tables = {split: data_files.load_item_table(manifest, split)
                   for split in manifest.splits}
    self.set_rows = {split: {str(s): i for i, s in enumerate(table.set_ids)}
                     for split, table in self.tables.items()}
    self.items: dict[str, dict[str, Any]] = {}
    for table in self.tables.values():
      for item_id, category, image in zip(table.item_ids, table.categories, table.images):
        self.items.setdefault(str(item_id), {"category": manifest.categories[category - 1],
                                             "image": str(image)})
    folders = [os.path.dirname(item["image"]) for item in self.items.values() if item["image"]]
    self.image_root = os.path.commonpath(folders) if folders else None

  def item(self, item_id: str) -> dict[str, Any]:
    """{"item_id", "category", "image_url" (None without image)}; ApiError when unknown."""
    found = self.items.get(item_id)
    if found is None:
      raise completion.ApiError(404, "ids", f"unknown item id {item_id!r}")
    url = None
    if found["image"] and self.image_root:
      url = "/images/" + os.path.relpath(found["image"], self.image_root).replace(os.sep, "/")
    return {"item_id": item_id, "category": found["category"], "image_url": url}

  def _table(self, split: str) -> data_files.ItemTable:
    if split not in self.tables:
      raise completion.ApiError(404, "split", f"no split {split!r}; have "
                                f"{', '.join(sorted(self.tables))}")
    return self.tables[split]

  def find_sets(self, split: str, query: str, limit: int) -> list[str]:
    """Ids of the first `limit` sets of `split` whose id contains `query`."""
    set_ids = self._table(split).set_ids
    return [str(s) for s in set_ids if query in s][:max(0, min(limit, MAX_LISTED_SETS))]

  def random_set(self, split: str) -> str:
    return str(random.choice(self._table(split).set_ids))

  def set_detail(self, split: str, set_id: str) -> dict[str, Any]:
    """{"split", "set_id", "items": [item, ...]} of one set."""
    table = self._table(split)
    row = self.set_rows[split].get(set_id)
    if row is None:
      raise completion.ApiError(404, "set_id", f"no set {set_id!r} in split {split!r}")
    start, end = table.set_offsets[row], table.set_offsets[row + 1]
    members = [str(table.item_ids[row]) for row in table.set_items[start:end]]
    return {"split": split, "set_id": set_id, "items": [self.item(i) for i in members]}

  def evaluation(self) -> dict[str, Any]:
    """Per split with eval outputs: the summary rows, the text table and the figure names."""
    result = {}
    folder = os.path.join(self.model_dir, "eval")
    for split in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
      names = sorted(n for n in os.listdir(os.path.join(folder, split))
                     if n.endswith(EVAL_SUFFIXES))
      entry: dict[str, Any] = {"figures": [n for n in names if n.endswith((".png", ".jpg"))]}
      if "results_summary.csv" in names:
        with open(os.path.join(folder, split, "results_summary.csv"), encoding="utf-8") as f:
          entry["summary"] = list(csv.reader(f))
      if "percentage_table.txt" in names:
        with open(os.path.join(folder, split, "percentage_table.txt"), encoding="utf-8") as f:
          entry["table"] = f.read()
      result[split] = entry
    return result


def add_routes(app: fastapi.FastAPI, data: PageData) -> None:
  """Adds the page, its static files and its JSON and file routes to `app`."""
  app.mount("/static", staticfiles.StaticFiles(directory=STATIC_DIR), name="static")

  @app.get("/", include_in_schema=False)
  async def index() -> responses.FileResponse:
    return responses.FileResponse(os.path.join(STATIC_DIR, "index.html"))

  @app.get("/v1/splits")
  async def splits() -> dict[str, Any]:
    return {"splits": sorted(data.tables), "images": data.image_root is not None}

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
  async def items(ids: str) -> dict[str, Any]:
    return {"items": [data.item(i.strip()) for i in ids.split(",") if i.strip()]}

  @app.get("/v1/evaluation")
  async def evaluation() -> dict[str, Any]:
    return {"model_dir": data.model_dir, "splits": data.evaluation()}

  def _file(root: str | None, relative: str, suffixes: tuple[str, ...]):
    path = inside(root, relative) if root else None
    if path is None or not path.lower().endswith(suffixes):
      raise completion.ApiError(404, None, f"no such file: {relative}")
    return responses.FileResponse(path)

  @app.get("/images/{path:path}", include_in_schema=False)
  async def image(path: str) -> responses.FileResponse:
    return _file(data.image_root, path, IMAGE_SUFFIXES)

  @app.get("/eval-files/{split}/{name}", include_in_schema=False)
  async def eval_file(split: str, name: str) -> responses.FileResponse:
    return _file(os.path.join(data.model_dir, "eval"), f"{split}/{name}", EVAL_SUFFIXES)
