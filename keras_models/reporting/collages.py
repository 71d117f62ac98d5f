"""Retrieval collages: a set's query items, then each target's top-k retrieved images.

Layout (all distances in pixels, `T` = thumb_size, see `tile_box` and `set_photo_box`):

    +---------------------------------------------------------------------------+
    | title bar                                                                 |
    | [query 1] [query 2] ...                     row 0: query items  +-------+ |
    | [target] [#1 0.912] [#2 0.887] ...          row 1: first target | set   | |
    | [target] [#1 ...]                           ...                 | photo | |
    +---------------------------------------------------------------------------+

The set's own photograph (the room, the outfit), when it has one, stands at the right of
the rows, as tall as they are and at most MAX_SET_PHOTO_CELLS tiles wide (aspect kept), as
the original SetRetrieval collages put the room beside the query, truth and results.

Retrieved tiles are framed thick green when they are the ground truth, thin grey
otherwise. A collage is a report, so an image that is missing or unreadable becomes a
"no image" tile instead of an error.
"""

from __future__ import annotations

import dataclasses
import os

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from tfrecords_builder import atomic_io

GAP = 8
FRAME_WIDTH = 6
CAPTION_HEIGHT = 18
TITLE_HEIGHT = 32
CORRECT_FRAME_COLOR = (0, 170, 0)
WRONG_FRAME_COLOR = (150, 150, 150)
TARGET_FRAME_COLOR = (0, 0, 0)
PLACEHOLDER_COLOR = (225, 225, 225)
_THIN_FRAME = 2
_BACKGROUND = (255, 255, 255)
_TITLE_BACKGROUND = (40, 40, 40)
_TEXT_COLOR = (20, 20, 20)
_JPEG_QUALITY = 90
_CAPTION_FONT_SIZE = 12
_TITLE_FONT_SIZE = 14
MAX_SET_PHOTO_CELLS = 4
SET_PHOTO_CAPTION = "set photo"


@dataclasses.dataclass(frozen=True)
class TargetRow:
  """One target of the set and what the model retrieved for it.

  Attributes:
    image: path of the ground-truth target image; "" when there is none.
    category: category name of the target.
    retrieved: top-k `(image path, cosine similarity, is the ground truth)`, best first.
  """

  image: str
  category: str
  retrieved: list[tuple[str, float, bool]]


def tile_box(row: int, column: int, thumb_size: int) -> tuple[int, int, int, int]:
  """Pixel box `(left, top, right, bottom)` of a framed tile, caption excluded.

  Row 0 holds the query items; row r >= 1 holds target r - 1, whose column 0 is the
  ground truth and column j >= 1 its rank-j retrieval. The thumbnail sits FRAME_WIDTH
  inside the box.
  """
  cell = thumb_size + 2 * FRAME_WIDTH
  left = GAP + column * (cell + GAP)
  top = TITLE_HEIGHT + GAP + row * (cell + CAPTION_HEIGHT + GAP)
  return left, top, left + cell, top + cell


def set_photo_box(num_rows: int, num_columns: int, thumb_size: int,
                  aspect: float) -> tuple[int, int, int, int]:
  """Pixel box `(left, top, right, bottom)` of the set photo beside a grid of tiles.

  Args:
    num_rows: rows of the grid (1 + targets).
    num_columns: columns of the grid.
    thumb_size: side of a thumbnail.
    aspect: width / height of the photo.

  Returns:
    The box right of the grid's last column, from the top of row 0 to the bottom of the
    last row's tiles, narrowed to the photo's aspect and to MAX_SET_PHOTO_CELLS tiles.
  """
  top = tile_box(0, 0, thumb_size)[1]
  _, _, grid_right, bottom = tile_box(num_rows - 1, num_columns - 1, thumb_size)
  height = bottom - top
  cell = thumb_size + 2 * FRAME_WIDTH
  width = max(1, min(round(height * aspect), MAX_SET_PHOTO_CELLS * cell + 3 * GAP))
  height = min(height, max(1, round(width / aspect)))
  left = grid_right + 2 * GAP
  return left, top, left + width, top + height


def _set_photo(path: str, font: ImageFont.ImageFont) -> Image.Image:
  """The set photo at full size (reduced drafts for big JPEGs), or a "no image" tile."""
  try:
    with Image.open(path) as image:
      image.draft("RGB", (1024, 1024))
      return image.convert("RGB")
  # A report: any decoder failure only costs the photo.
  except Exception as e:  # pylint: disable=broad-except
    logging.log_first_n(logging.WARNING, "collage: cannot read set photo %s: %s", 20, path, e)
    return _placeholder(64, font)


def _default_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
  """Pillow's default font at `size`, or its bitmap font where FreeType is missing.

  The size-10 default renders spaces 2 px wide, so "#1 0.900" would read as "#10.900".
  """
  try:
    return ImageFont.load_default(size=size)
  except (ImportError, OSError, TypeError):
    return ImageFont.load_default()


def _fit(text: str, font: ImageFont.ImageFont, width: int) -> str:
  """Truncates `text` with an ellipsis so that it is at most `width` pixels wide."""
  if font.getlength(text) <= width:
    return text
  while text and font.getlength(text + "...") > width:
    text = text[:-1]
  return text + "..."


def _placeholder(thumb_size: int, font: ImageFont.ImageFont) -> Image.Image:
  tile = Image.new("RGB", (thumb_size, thumb_size), PLACEHOLDER_COLOR)
  ImageDraw.Draw(tile).text((thumb_size / 2, thumb_size / 2), "no image", fill=_TEXT_COLOR,
                            font=font, anchor="mm")
  return tile


def _thumbnail(path: str, thumb_size: int, font: ImageFont.ImageFont,
               cache: dict[str, Image.Image]) -> Image.Image:
  """White-padded square thumbnail of `path` (aspect kept), or a placeholder."""
  if path in cache:
    return cache[path]
  tile = None
  if path:
    try:
      with Image.open(path) as image:
        image.draft("RGB", (thumb_size, thumb_size))  # JPEG: decode at reduced size.
        image = image.convert("RGBA")
        side = max(image.size)
        square = Image.new("RGBA", (side, side), _BACKGROUND + (255,))
        square.alpha_composite(image, ((side - image.width) // 2,
                                       (side - image.height) // 2))
        tile = square.convert("RGB").resize((thumb_size, thumb_size),
                                            Image.Resampling.LANCZOS)
    # Any decoder failure (missing, truncated, not an image, bomb) only costs one tile.
    except Exception as e:  # pylint: disable=broad-except
      logging.log_first_n(logging.WARNING, "collage: cannot read image %s: %s", 20, path, e)
  cache[path] = tile if tile is not None else _placeholder(thumb_size, font)
  return cache[path]


def _validated_retrieved(path: str, targets: list[TargetRow]) -> list[list[tuple]]:
  rows = []
  for t, target in enumerate(targets):
    row = []
    for j, entry in enumerate(target.retrieved):
      if len(entry) != 3:
        raise ValueError(f"{path}: targets[{t}].retrieved[{j}] has {len(entry)} fields, "
                         "expected (image, score, correct)")
      image, score, correct = entry
      try:
        score = float(score)
      except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: targets[{t}].retrieved[{j}] score {score!r} is not a "
                         "number") from e
      row.append((str(image), score, bool(correct)))
    rows.append(row)
  return rows


def write_collage(path: str, title: str, query_items: list[tuple[str, str]],
                  targets: list[TargetRow], thumb_size: int = 150,
                  set_image: str = "") -> None:
  """Draws one set's retrieval collage and writes it as a JPEG, atomically.

  Args:
    path: output JPEG path.
    title: title bar text (callers mark synthetic data here).
    query_items: `[num_query_items]` of `(image path, category name)`.
    targets: one row per target item of the set.
    thumb_size: side of each square thumbnail.
    set_image: path of the set's own photo, drawn right of the rows; "" for none.

  Raises:
    ValueError: if `thumb_size` < 16 or a retrieved entry is malformed.
  """
  if thumb_size < 16:
    raise ValueError(f"{path}: thumb_size {thumb_size} < 16")
  retrieved = _validated_retrieved(path, targets)
  font = _default_font(_CAPTION_FONT_SIZE)
  title_font = _default_font(_TITLE_FONT_SIZE)
  title = " ".join(title.split())
  num_columns = max([1, len(query_items)] + [1 + len(r) for r in retrieved])
  num_rows = 1 + len(targets)
  _, _, right, bottom = tile_box(num_rows - 1, num_columns - 1, thumb_size)
  photo = _set_photo(set_image, font) if set_image else None
  if photo is not None:
    photo_box = set_photo_box(num_rows, num_columns, thumb_size, photo.width / photo.height)
    right = photo_box[2]
  # The canvas widens for a long title so it is never cut (it may say "SYNTHETIC").
  width = max(right + GAP, int(title_font.getlength(title)) + 2 * GAP)
  canvas = Image.new("RGB", (width, bottom + CAPTION_HEIGHT + GAP), _BACKGROUND)
  draw = ImageDraw.Draw(canvas)
  draw.rectangle((0, 0, width - 1, TITLE_HEIGHT - 1), fill=_TITLE_BACKGROUND)
  draw.text((GAP, TITLE_HEIGHT / 2), title, fill=(255, 255, 255), font=title_font,
            anchor="lm")
  cache: dict[str, Image.Image] = {}
  cell = thumb_size + 2 * FRAME_WIDTH

  def tile(row, column, image_path, caption, frame_color, frame_width):
    left, top, right, bottom = tile_box(row, column, thumb_size)
    if frame_color is not None:
      draw.rectangle((left, top, right - 1, bottom - 1), outline=frame_color,
                     width=frame_width)
    canvas.paste(_thumbnail(image_path, thumb_size, font, cache),
                 (left + FRAME_WIDTH, top + FRAME_WIDTH))
    draw.text((left + cell / 2, bottom + CAPTION_HEIGHT / 2), _fit(caption, font, cell),
              fill=_TEXT_COLOR, font=font, anchor="mm")

  for column, (image_path, category) in enumerate(query_items):
    tile(0, column, image_path, category, None, 0)
  if photo is not None:
    left, top, photo_right, photo_bottom = photo_box
    canvas.paste(photo.resize((photo_right - left, photo_bottom - top),
                              Image.Resampling.LANCZOS), (left, top))
    draw.text(((left + photo_right) / 2, photo_bottom + CAPTION_HEIGHT / 2),
              SET_PHOTO_CAPTION, fill=_TEXT_COLOR, font=font, anchor="mm")
  if targets:
    separator = tile_box(1, 0, thumb_size)[1] - GAP // 2
    grid_right = tile_box(0, num_columns - 1, thumb_size)[2]
    draw.line((GAP, separator, grid_right, separator), fill=WRONG_FRAME_COLOR, width=1)
  for t, (target, row) in enumerate(zip(targets, retrieved)):
    tile(1 + t, 0, target.image, f"target: {target.category}", TARGET_FRAME_COLOR,
         _THIN_FRAME)
    for rank, (image_path, score, correct) in enumerate(row, start=1):
      tile(1 + t, rank, image_path, f"#{rank} {score:.3f}",
           CORRECT_FRAME_COLOR if correct else WRONG_FRAME_COLOR,
           FRAME_WIDTH if correct else _THIN_FRAME)
  _save_jpeg_atomically(canvas, path)


def _save_jpeg_atomically(image: Image.Image, path: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with atomic_io.atomic_open(path) as stream:
    # 4:4:4 keeps the thin coloured frames and small captions crisp.
    image.save(stream, format="JPEG", quality=_JPEG_QUALITY, subsampling=0)


def collage_as_array(path: str) -> np.ndarray:
  """Reads a collage back, e.g. for `tf.summary.image`.

  Args:
    path: a JPEG written by `write_collage`.

  Returns:
    `[height, width, 3]` uint8 RGB array.

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: if it is not a readable image.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: collage not found")
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert("RGB"), dtype=np.uint8)
  except OSError as e:
    raise ValueError(f"{path}: not a readable image: {e}") from e
