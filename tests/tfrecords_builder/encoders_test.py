"""Tests for image feature extraction on the real IKEA sample photos.

A tiny random-weight CLIP is saved as a local keras-hub preset and loaded back through the
same `encode_images` path users take. Oracles: a NumPy/Pillow CLIP preprocessing written
here (torchvision's `Resize(size, BICUBIC)` + `CenterCrop(size)` + `Normalize`), and the
in-memory backbone's `get_vision_embeddings` on its output.
"""

from __future__ import annotations

import glob
import os
import shutil

import keras
import keras_hub
import numpy as np
from PIL import Image
import pytest

from tfrecords_builder import encoders
from tfrecords_builder.encoders import images
from tfrecords_builder.encoders import keras_model

IMAGES_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                          "ikea", "images")
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
CLIP_IMAGE_SIZE = 32
CLIP_DIM = 12


@pytest.fixture(scope="module")
def photos():
  found = sorted(glob.glob(os.path.join(IMAGES_DIR, "*.jpg")))
  if len(found) < 5:
    pytest.skip(f"sample photos not found in {os.path.abspath(IMAGES_DIR)}")
  # Every third photo, so the five come from different product categories.
  return found[::3][:5]


@pytest.fixture(scope="module")
def clip_preset(tmp_path_factory):
  """(preset directory, in-memory backbone) of a tiny random-weight CLIP."""
  keras.utils.set_random_seed(0)
  vision = keras_hub.models.CLIPVisionEncoder(
      patch_size=16, hidden_dim=8, num_layers=1, num_heads=2, intermediate_dim=16,
      image_shape=(CLIP_IMAGE_SIZE, CLIP_IMAGE_SIZE, 3))
  text = keras_hub.models.CLIPTextEncoder(
      vocabulary_size=50, embedding_dim=8, hidden_dim=8, num_layers=1, num_heads=2,
      intermediate_dim=16, max_sequence_length=8)
  backbone = keras_hub.models.CLIPBackbone(vision_encoder=vision, text_encoder=text,
                                           projection_dim=CLIP_DIM)
  preset_dir = str(tmp_path_factory.mktemp("tiny_clip_preset"))
  backbone.save_to_preset(preset_dir)
  return preset_dir, backbone


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
  keras.utils.set_random_seed(1)
  model = keras.Sequential([keras.Input((32, 32, 3)),
                            keras.layers.Conv2D(8, 3, activation="tanh"),
                            keras.layers.GlobalAveragePooling2D()])
  path = str(tmp_path_factory.mktemp("keras_model") / "tiny.keras")
  model.save(path)
  return path, model


def reference_clip_pixels(path, size):
  """CLIP preprocessing by hand: short side to `size` bicubic, centre crop, mean/std."""
  image = Image.open(path).convert("RGB")
  return reference_clip_pixels_of(image, size)


def reference_clip_pixels_of(image, size, mean=MEAN, std=STD):
  width, height = image.size
  if width <= height:
    new_size = (size, int(size * height / width))
  else:
    new_size = (int(size * width / height), size)
  if new_size != image.size:
    image = image.resize(new_size, Image.Resampling.BICUBIC)
  top = int(round((new_size[1] - size) / 2.0))
  left = int(round((new_size[0] - size) / 2.0))
  pixels = np.asarray(image, np.float32)[top:top + size, left:left + size] / 255.0
  return ((pixels - mean) / std).astype(np.float32)


def l2_rows(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("size", [224, 32])
@pytest.mark.parametrize("box", [None, (0, 0, 500, 300), (37, 0, 337, 500), (0, 11, 333, 498)])
def test_clip_preprocessing_matches_reference(photos, size, box):
  image = Image.open(photos[0]).convert("RGB")
  if box is not None:
    image = image.crop(box)
  got = images.clip_normalize(images.resize_and_center_crop(image, size, size))
  assert got.shape == (size, size, 3) and got.dtype == np.float32
  np.testing.assert_allclose(got, reference_clip_pixels_of(image, size), atol=1e-6)


def test_clip_features_match_backbone_oracle(photos, clip_preset):
  preset_dir, backbone = clip_preset
  features, bad = encoders.encode_images(photos, "clip", preset_dir, batch_size=2)
  assert bad == []
  assert features.shape == (len(photos), CLIP_DIM) and features.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
  pixels = np.stack([reference_clip_pixels(p, CLIP_IMAGE_SIZE) for p in photos])
  expected = l2_rows(keras.ops.convert_to_numpy(backbone.get_vision_embeddings(pixels)))
  np.testing.assert_allclose(features, expected, atol=1e-5)


def test_load_encoder_reads_size_and_dim_from_preset(clip_preset):
  encoder = encoders.load_encoder("clip", clip_preset[0])
  assert (encoder.feature_dim, encoder.image_size) == (CLIP_DIM, (32, 32))


def test_equal_images_equal_features_and_batch_size_invariant(photos, clip_preset,
                                                              tmp_path):
  copy = str(tmp_path / "same_photo_other_name.jpg")
  shutil.copyfile(photos[1], copy)
  paths = [photos[1], photos[2], copy, photos[3]]
  by_one, _ = encoders.encode_images(paths, "clip", clip_preset[0], batch_size=1)
  by_three, _ = encoders.encode_images(paths, "clip", clip_preset[0], batch_size=3)
  np.testing.assert_allclose(by_one, by_three, atol=1e-5)
  np.testing.assert_allclose(by_three[0], by_three[2], atol=1e-6)
  # Distinct photos: every pair of rows 0, 1, 3 differs clearly.
  for i, j in [(0, 1), (0, 3), (1, 3)]:
    assert np.abs(by_three[i] - by_three[j]).max() > 1e-3


def _bad_files(photo, folder):
  truncated = os.path.join(folder, "truncated.jpg")
  with open(photo, "rb") as source, open(truncated, "wb") as target:
    data = source.read()
    target.write(data[:len(data) // 2])
  not_image = os.path.join(folder, "notes.jpg")
  with open(not_image, "w") as stream:
    stream.write("this is text, not a JPEG")
  missing = os.path.join(folder, "missing.jpg")
  return [truncated, not_image, missing]


def test_unreadable_images_are_listed_before_model_work(photos, tmp_path, monkeypatch):
  def fail(_):
    raise AssertionError("the model was loaded before the images were checked")
  monkeypatch.setattr(keras_model, "load", fail)
  model_file = tmp_path / "unused.keras"
  model_file.write_bytes(b"")
  bad = _bad_files(photos[0], str(tmp_path))
  with pytest.raises(ValueError) as raised:
    encoders.encode_images(photos[:2] + bad, f"keras:{model_file}", "")
  message = str(raised.value)
  assert "3 of 5 images cannot be read" in message
  for path in bad:
    assert path in message
  assert "missing.jpg: file not found" in message
  assert "truncated" in message.split("truncated.jpg:")[1].splitlines()[0]


def test_skip_bad_images_returns_the_others(photos, clip_preset, tmp_path):
  bad = _bad_files(photos[0], str(tmp_path))
  paths = [bad[0], photos[0], bad[1], photos[1], bad[2]]
  features, skipped = encoders.encode_images(paths, "clip", clip_preset[0],
                                             skip_bad_images=True)
  assert skipped == bad
  clean, _ = encoders.encode_images(photos[:2], "clip", clip_preset[0])
  np.testing.assert_allclose(features, clean, atol=1e-6)
  nothing, skipped = encoders.encode_images(bad, "clip", clip_preset[0],
                                            skip_bad_images=True)
  assert nothing.shape == (0, CLIP_DIM) and skipped == bad


def test_keras_model_spec(photos, keras_file):
  path, model = keras_file
  features, bad = encoders.encode_images(photos, f"keras:{path}", "ignored", batch_size=2)
  assert bad == [] and features.shape == (len(photos), 8)
  # The model sees [0, 1] RGB, cropped as CLIP but without the CLIP mean/std.
  pixels = np.stack([reference_clip_pixels_of(Image.open(p).convert("RGB"), 32,
                                              mean=0.0, std=1.0) for p in photos])
  expected = l2_rows(keras.ops.convert_to_numpy(model(pixels)))
  np.testing.assert_allclose(features, expected, atol=1e-5)


def test_keras_model_with_non_square_input(photos, tmp_path):
  model = keras.Sequential([keras.Input((24, 40, 3)), keras.layers.Conv2D(4, 3),
                            keras.layers.GlobalAveragePooling2D()])
  path = str(tmp_path / "wide.keras")
  model.save(path)
  encoder = encoders.load_encoder(f"keras:{path}", "")
  assert (encoder.image_size, encoder.feature_dim) == ((24, 40), 4)
  assert encoder.preprocess(Image.open(photos[0]).convert("RGB")).shape == (24, 40, 3)


def test_keras_model_without_fixed_size_is_refused(tmp_path):
  model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3),
                            keras.layers.GlobalAveragePooling2D()])
  path = str(tmp_path / "any_size.keras")
  model.save(path)
  with pytest.raises(ValueError, match=r"any_size.keras: model input shape .* fixed"):
    encoders.load_encoder(f"keras:{path}", "")


@pytest.mark.parametrize("spec", ["resnet", "keras:", "clip:extra", "keras"])
def test_unknown_spec_lists_known_ones(spec):
  with pytest.raises(ValueError, match=r"unknown image encoder .*clip, keras:<path.keras>"):
    encoders.encode_images([], spec, "")


def test_missing_preset_and_model_file_are_named(tmp_path):
  missing = str(tmp_path / "no_such_preset")
  with pytest.raises(FileNotFoundError, match="no_such_preset: CLIP preset directory"):
    encoders.encode_images([], "clip", missing)
  with pytest.raises(FileNotFoundError, match="config.json: not found"):
    encoders.encode_images([], "clip", str(tmp_path))
  with pytest.raises(FileNotFoundError, match="nothing.keras: Keras model file not found"):
    encoders.encode_images([], f"keras:{tmp_path / 'nothing.keras'}", "")
  with pytest.raises(ValueError, match="only local preset directories"):
    encoders.load_encoder("clip", "kaggle://keras/clip/keras/clip_vit_base_patch16")
