"""Checks keras_models.reporting.collages on real IKEA product photos."""

import glob
import os

import numpy as np
from PIL import Image
import pytest

from keras_models.reporting import collages

IKEA_IMAGES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "shared",
                           "data", "ikea", "images")
THUMB = 64


@pytest.fixture
def photos() -> list[str]:
  paths = sorted(glob.glob(os.path.join(IKEA_IMAGES, "*.jpg")))
  if len(paths) < 4:
    pytest.skip(f"real product photos not found: {os.path.abspath(IKEA_IMAGES)} is absent "
                "or has fewer than 4 *.jpg")
  return paths


def _pixel(array: np.ndarray, xy: tuple[int, int]) -> np.ndarray:
  return array[xy[1], xy[0]].astype(int)


def _frame_points(row: int, column: int) -> list[tuple[int, int]]:
  """Mid-points of the four sides of a tile's frame, half a frame deep."""
  left, top, right, bottom = collages.tile_box(row, column, THUMB)
  depth = collages.FRAME_WIDTH // 2
  mid_x, mid_y = (left + right) // 2, (top + bottom) // 2
  return [(left + depth, mid_y), (right - 1 - depth, mid_y), (mid_x, top + depth),
          (mid_x, bottom - 1 - depth)]


def _is_green(rgb: np.ndarray) -> bool:
  return rgb[1] > 120 and rgb[0] < 70 and rgb[2] < 70


def _thumbnail_crop(array: np.ndarray, row: int, column: int) -> np.ndarray:
  left, top, _, _ = collages.tile_box(row, column, THUMB)
  x, y = left + collages.FRAME_WIDTH, top + collages.FRAME_WIDTH
  return array[y:y + THUMB, x:x + THUMB].astype(int)


def _write(path, photos, missing):
  targets = [
      collages.TargetRow(image=photos[1], category="sofa",
                         retrieved=[(photos[2], 0.91, False), (photos[1], 0.85, True),
                                    (missing, 0.5, False)]),
      collages.TargetRow(image="", category="lamp", retrieved=[(photos[3], 0.7, True)]),
  ]
  collages.write_collage(str(path), "CST on ikea (SYNTHETIC): set 7",
                         [(photos[0], "chair"), (photos[2], "table")], targets,
                         thumb_size=THUMB)


def test_write_collage_on_real_photos(tmp_path, photos):
  path = tmp_path / "set_7.jpg"
  missing = str(tmp_path / "does_not_exist.jpg")
  _write(path, photos, missing)
  assert os.listdir(tmp_path) == ["set_7.jpg"]
  assert os.path.getsize(path) > 0
  with Image.open(path) as image:
    assert image.format == "JPEG" and image.mode == "RGB"
    _, _, right, bottom = collages.tile_box(2, 3, THUMB)
    assert image.height == bottom + collages.CAPTION_HEIGHT + collages.GAP
    assert image.width >= right + collages.GAP
  array = collages.collage_as_array(str(path))
  assert array.dtype == np.uint8 and array.shape == (image.height, image.width, 3)

  # Target 0 (row 1): rank 2 is correct, ranks 1 and 3 are not; target 1: rank 1 correct.
  assert all(_is_green(_pixel(array, p)) for p in _frame_points(1, 2))
  assert all(_is_green(_pixel(array, p)) for p in _frame_points(2, 1))
  for column in (0, 1, 3):
    assert not any(_is_green(_pixel(array, p)) for p in _frame_points(1, column))
  assert not any(_is_green(_pixel(array, p)) for p in _frame_points(0, 0))

  # Oracle: the photo (already square) resized to the thumbnail, up to JPEG noise.
  with Image.open(photos[1]) as photo:
    expected = np.asarray(photo.convert("RGB").resize((THUMB, THUMB)), dtype=int)
  assert np.abs(_thumbnail_crop(array, 1, 2) - expected).mean() < 12
  assert np.abs(_thumbnail_crop(array, 1, 0) - expected).mean() < 12

  # The missing path and the empty target path become placeholders (corner, not text).
  for row, column in ((1, 3), (2, 0)):
    corner = _thumbnail_crop(array, row, column)[2:8, 2:8].reshape(-1, 3)
    np.testing.assert_allclose(corner.mean(axis=0), collages.PLACEHOLDER_COLOR, atol=6)


def test_non_square_and_unreadable_images(tmp_path):
  wide = tmp_path / "wide.png"
  Image.new("RGB", (200, 100), (255, 0, 0)).save(wide)
  broken = tmp_path / "broken.jpg"
  broken.write_bytes(b"not a jpeg at all")
  path = tmp_path / "collage.jpg"
  collages.write_collage(str(path), "t", [(str(wide), "rug"), (str(broken), "bed")], [],
                         thumb_size=THUMB)
  array = collages.collage_as_array(str(path))
  thumb = _thumbnail_crop(array, 0, 0)
  # 2:1 image padded to a square: white bands above and below a red middle.
  np.testing.assert_allclose(thumb[2:10].reshape(-1, 3).mean(axis=0), [255, 255, 255],
                             atol=6)
  np.testing.assert_allclose(thumb[28:36].reshape(-1, 3).mean(axis=0), [255, 0, 0],
                             atol=12)
  corner = _thumbnail_crop(array, 0, 1)[2:8, 2:8].reshape(-1, 3)
  np.testing.assert_allclose(corner.mean(axis=0), collages.PLACEHOLDER_COLOR, atol=6)


def test_long_title_widens_canvas(tmp_path):
  title = "a very long experiment description " * 6 + "(SYNTHETIC)"
  path = tmp_path / "collage.jpg"
  collages.write_collage(str(path), title, [("", "sofa")], [], thumb_size=THUMB)
  _, _, right, _ = collages.tile_box(0, 0, THUMB)
  assert collages.collage_as_array(str(path)).shape[1] > 3 * right


def test_failed_render_keeps_existing_file(tmp_path, photos, monkeypatch):
  path = tmp_path / "set_7.jpg"
  path.write_bytes(b"previous collage")
  bad = [collages.TargetRow(image=photos[0], category="sofa",
                            retrieved=[(photos[1], "high", True)])]
  with pytest.raises(ValueError, match=r"set_7.jpg: targets\[0\].retrieved\[0\] score"):
    collages.write_collage(str(path), "t", [], bad, thumb_size=THUMB)
  with pytest.raises(ValueError, match="thumb_size 4 < 16"):
    collages.write_collage(str(path), "t", [], [], thumb_size=4)

  def broken_save(self, fp, *args, **kwargs):
    fp.write(b"partial jpeg")
    raise OSError("disk full")

  monkeypatch.setattr(Image.Image, "save", broken_save)
  with pytest.raises(OSError, match="disk full"):
    _write(path, photos, "")
  assert path.read_bytes() == b"previous collage"
  assert os.listdir(tmp_path) == ["set_7.jpg"]


def test_collage_as_array_errors_name_the_file(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.jpg"):
    collages.collage_as_array(str(tmp_path / "nope.jpg"))
  junk = tmp_path / "junk.jpg"
  junk.write_bytes(b"junk")
  with pytest.raises(ValueError, match="junk.jpg: not a readable image"):
    collages.collage_as_array(str(junk))


def test_set_photo_box_by_hand():
  # THUMB 64: cell 76; tile (r, c) at left 8 + 84 c, top 40 + 102 r. A 3 x 4 grid ends at
  # x 8 + 3 * 84 + 76 = 336 and y 40 + 2 * 102 + 76 = 320, so the photo may be 280 tall
  # from x 336 + 16 = 352, at most 4 * 76 + 3 * 8 = 328 wide.
  assert collages.set_photo_box(3, 4, THUMB, 1.5) == (352, 40, 352 + 328, 40 + 219)
  assert collages.set_photo_box(3, 4, THUMB, 0.5) == (352, 40, 352 + 140, 320)


def test_set_photo_stands_right_of_the_rows(tmp_path, photos):
  room = tmp_path / "room.png"
  Image.new("RGB", (300, 200), (0, 0, 255)).save(room)
  path = tmp_path / "with_room.jpg"
  targets = [collages.TargetRow(image=photos[1], category="sofa",
                                retrieved=[(photos[2], 0.9, False), (photos[1], 0.8, True),
                                           (photos[3], 0.7, False)]),
             collages.TargetRow(image=photos[3], category="lamp",
                                retrieved=[(photos[3], 0.6, True)])]
  collages.write_collage(str(path), "t", [(photos[0], "chair")], targets, thumb_size=THUMB,
                         set_image=str(room))
  array = collages.collage_as_array(str(path))
  left, top, right, bottom = collages.set_photo_box(3, 4, THUMB, 1.5)
  assert array.shape[1] == right + collages.GAP
  inner = array[top + 2:bottom - 2, left + 2:right - 2].reshape(-1, 3).astype(int)
  np.testing.assert_allclose(inner.mean(axis=0), [0, 0, 255], atol=8)
  # The grid is where it is without a photo: the same tiles, pixel for pixel (JPEG aside).
  plain = tmp_path / "plain.jpg"
  collages.write_collage(str(plain), "t", [(photos[0], "chair")], targets, thumb_size=THUMB)
  without = collages.collage_as_array(str(plain))
  assert np.abs(_thumbnail_crop(array, 1, 2) - _thumbnail_crop(without, 1, 2)).mean() < 3
  assert all(_is_green(_pixel(array, p)) for p in _frame_points(1, 2))
  # An unreadable set photo costs only the photo: a placeholder in its place.
  broken = tmp_path / "broken.jpg"
  broken.write_bytes(b"not a photo")
  collages.write_collage(str(path), "t", [(photos[0], "chair")], targets, thumb_size=THUMB,
                         set_image=str(broken))
  array = collages.collage_as_array(str(path))
  left, top, right, bottom = collages.set_photo_box(3, 4, THUMB, 1.0)
  corner = array[top + 2:top + 8, left + 2:left + 8].reshape(-1, 3)
  np.testing.assert_allclose(corner.mean(axis=0), collages.PLACEHOLDER_COLOR, atol=6)
