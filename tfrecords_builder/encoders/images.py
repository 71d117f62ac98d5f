"""Reads image files and turns them into model inputs the way CLIP does.

CLIP's preprocessing (OpenAI `clip.load`, torchvision on PIL images) is: resize the short
side to the model's image size with PIL bicubic, keeping the aspect ratio (long side
`int(size * long / short)`), centre-crop to `size x size` (offset `round((h - size) / 2)`),
scale to [0, 1], then subtract the CLIP mean and divide by the CLIP std per channel.
Everything up to the crop runs on 8-bit pixels, as in CLIP, so a Pillow reference gives the
same numbers. EXIF orientation is not applied, as in CLIP.

Reading is strict: a file that is missing, not an image or whose pixel data does not
decode to the end is reported with its reason, never replaced by a dummy image.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Sequence

import numpy as np
from PIL import Image
import tqdm

# Per-channel RGB statistics of CLIP's training images, applied to pixels in [0, 1].
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)

# How many unreadable files an error message lists before it only counts the rest.
MAX_LISTED = 20


def default_num_threads() -> int:
  """Decoding threads: Pillow releases the GIL while decoding, so threads scale."""
  return max(1, min(8, os.cpu_count() or 1))


def _decode_rgb(path: str) -> Image.Image:
  with Image.open(path) as image:
    image.load()
    return image.convert("RGB")


def _reason(error: Exception) -> str:
  if isinstance(error, FileNotFoundError):
    return "file not found"
  return f"{type(error).__name__}: {error}"


def read_rgb(path: str) -> Image.Image:
  """Decodes every pixel of `path` and returns it as an RGB image.

  Raises:
    ValueError: `"{path}: {reason}"` for a missing file, a file Pillow does not recognise
      as an image, or pixel data that is truncated or corrupt.
  """
  try:
    return _decode_rgb(path)
  # Pillow's decoders signal damaged data with many exception types (OSError,
  # SyntaxError, ValueError, EOFError, struct.error, DecompressionBombError...).
  except Exception as error:  # pylint: disable=broad-except
    raise ValueError(f"{path}: {_reason(error)}") from error


def _problem(path: str) -> str | None:
  """The reason `path` cannot be decoded, or None when it can."""
  try:
    _decode_rgb(path)
  except Exception as error:  # pylint: disable=broad-except
    return _reason(error)
  return None


def find_unreadable(paths: Sequence[str], num_threads: int | None = None,
                    progress: bool = True) -> list[tuple[str, str]]:
  """Fully decodes every image once and returns the ones that fail.

  Decoding everything (not only the header) catches truncated files before any model
  work starts, at the cost of a second decode later; that is small beside a CLIP forward.

  Args:
    paths: [n] image file paths.
    num_threads: decoding threads; `default_num_threads()` when None.
    progress: whether to show a tqdm bar.

  Returns:
    `(path, reason)` for each unreadable file, in the order of `paths`.
  """
  with concurrent.futures.ThreadPoolExecutor(num_threads or default_num_threads()) as pool:
    problems = list(tqdm.tqdm(pool.map(_problem, paths), total=len(paths), unit="img",
                              desc="checking images", disable=not progress))
  return [(path, problem) for path, problem in zip(paths, problems) if problem is not None]


def describe_unreadable(unreadable: Sequence[tuple[str, str]], total: int,
                        skipped: bool = False) -> str:
  """One message naming up to `MAX_LISTED` unreadable files with their reasons."""
  action = ("skipping them" if skipped else "pass skip_bad_images=True / --skip_bad_images "
            "to skip and count them")
  lines = [f"{len(unreadable)} of {total} images cannot be read ({action}):"]
  lines += [f"  {path}: {reason}" for path, reason in unreadable[:MAX_LISTED]]
  if len(unreadable) > MAX_LISTED:
    lines.append(f"  ... and {len(unreadable) - MAX_LISTED} more")
  return "\n".join(lines)


def resize_and_center_crop(image: Image.Image, height: int, width: int) -> np.ndarray:
  """Bicubic resize so the image just covers `height x width`, then crop its centre.

  For a square target this is CLIP's "short side to `size`, centre crop".

  Args:
    image: an RGB PIL image of any size.
    height: output height in pixels.
    width: output width in pixels.

  Returns:
    uint8 pixels [height, width, 3].
  """
  image_width, image_height = image.size
  if height * image_width >= width * image_height:
    new_height = height
    new_width = max(width, int(height * image_width / image_height))
  else:
    new_width = width
    new_height = max(height, int(width * image_height / image_width))
  if (new_width, new_height) != image.size:
    image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
  top = int(round((new_height - height) / 2.0))
  left = int(round((new_width - width) / 2.0))
  pixels = np.asarray(image.crop((left, top, left + width, top + height)), np.uint8)
  return pixels


def unit_scale(pixels: np.ndarray) -> np.ndarray:
  """uint8 pixels [..., 3] -> float32 in [0, 1]."""
  return pixels.astype(np.float32) / np.float32(255.0)


def clip_normalize(pixels: np.ndarray) -> np.ndarray:
  """uint8 pixels [..., 3] -> float32 `(pixels / 255 - CLIP_MEAN) / CLIP_STD`."""
  return (unit_scale(pixels) - CLIP_MEAN) / CLIP_STD
