"""`--encoder=clip` on a transformers-format CLIP checkpoint (config.json + safetensors).

The test writes a tiny random checkpoint in the layout `CLIPModel.save_pretrained` uses
(safetensors from NumPy; no download, no PyTorch). Oracles written here: a NumPy forward
pass of HF's vision tower and projection (`get_image_features`), and the transformers
image processor (its Pillow backend, which imports without PyTorch).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from PIL import Image
import pytest
import safetensors.numpy

from tfrecords_builder import encoders
from tfrecords_builder.encoders import hf_clip

SIZE, PATCH, WIDTH, LAYERS, HEADS, MLP, PROJECTION = 32, 8, 16, 2, 2, 32, 12
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
# (width, height): odd and even crop margins, portrait, landscape, square, upscaling.
IMAGE_SIZES = ((45, 37), (37, 70), (32, 32), (90, 51), (20, 27))


def random_weights(seed: int = 0) -> dict[str, np.ndarray]:
  """HF CLIPModel tensor names and shapes for the tiny config, random values."""
  rng = np.random.default_rng(seed)

  def normal(*shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)

  tokens = (SIZE // PATCH) ** 2 + 1
  weights = {
      "vision_model.embeddings.class_embedding": normal(WIDTH),
      "vision_model.embeddings.patch_embedding.weight": normal(WIDTH, 3, PATCH, PATCH, scale=0.1),
      "vision_model.embeddings.position_embedding.weight": normal(tokens, WIDTH),
      "vision_model.pre_layrnorm.weight": 1 + normal(WIDTH, scale=0.1),
      "vision_model.pre_layrnorm.bias": normal(WIDTH, scale=0.1),
      "vision_model.post_layernorm.weight": 1 + normal(WIDTH, scale=0.1),
      "vision_model.post_layernorm.bias": normal(WIDTH, scale=0.1),
      "visual_projection.weight": normal(PROJECTION, WIDTH),
      # Text tower and logit scale: present in a CLIPModel checkpoint, unused here.
      "text_model.embeddings.token_embedding.weight": normal(10, WIDTH),
      "text_projection.weight": normal(PROJECTION, WIDTH),
      "logit_scale": np.array(2.6592, np.float32),
  }
  for i in range(LAYERS):
    key = f"vision_model.encoder.layers.{i}"
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
      weights[f"{key}.self_attn.{name}.weight"] = normal(WIDTH, WIDTH)
      weights[f"{key}.self_attn.{name}.bias"] = normal(WIDTH, scale=0.1)
    for name in ("layer_norm1", "layer_norm2"):
      weights[f"{key}.{name}.weight"] = 1 + normal(WIDTH, scale=0.1)
      weights[f"{key}.{name}.bias"] = normal(WIDTH, scale=0.1)
    weights[f"{key}.mlp.fc1.weight"] = normal(MLP, WIDTH)
    weights[f"{key}.mlp.fc1.bias"] = normal(MLP, scale=0.1)
    weights[f"{key}.mlp.fc2.weight"] = normal(WIDTH, MLP)
    weights[f"{key}.mlp.fc2.bias"] = normal(WIDTH, scale=0.1)
  return weights


def write_checkpoint(folder, weights, hidden_act="quick_gelu") -> str:
  """config.json as CLIPConfig.save_pretrained writes it (defaults left out) + safetensors."""
  os.makedirs(folder, exist_ok=True)
  config = {
      "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": PROJECTION,
      "text_config": {"hidden_size": WIDTH, "num_hidden_layers": 1, "vocab_size": 10},
      "vision_config": {"hidden_size": WIDTH, "intermediate_size": MLP, "image_size": SIZE,
                        "patch_size": PATCH, "num_hidden_layers": LAYERS,
                        "num_attention_heads": HEADS, "hidden_act": hidden_act}}
  with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as stream:
    json.dump(config, stream)
  safetensors.numpy.save_file(weights, os.path.join(folder, "model.safetensors"),
                              metadata={"format": "pt"})
  return str(folder)


def layer_norm(x, weights, key):
  mean = x.mean(-1, keepdims=True)
  variance = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(variance + 1e-5) * weights[f"{key}.weight"] + weights[f"{key}.bias"]


def linear(x, weights, key):
  return x @ weights[f"{key}.weight"].T + weights.get(f"{key}.bias", 0)


def reference_image_features(pixels, weights, hidden_act="quick_gelu"):
  """HF CLIPVisionModel + visual_projection in NumPy: [batch, S, S, 3] -> [batch, P]."""
  batch = len(pixels)
  grid = SIZE // PATCH
  patches = pixels.reshape(batch, grid, PATCH, grid, PATCH, 3).transpose(0, 1, 3, 5, 2, 4)
  kernel = weights["vision_model.embeddings.patch_embedding.weight"]  # [W, 3, p, p]
  x = patches.reshape(batch, grid * grid, -1) @ kernel.reshape(WIDTH, -1).T
  cls = np.broadcast_to(weights["vision_model.embeddings.class_embedding"], (batch, 1, WIDTH))
  x = np.concatenate([cls, x], 1) + weights["vision_model.embeddings.position_embedding.weight"]
  x = layer_norm(x, weights, "vision_model.pre_layrnorm")
  head = WIDTH // HEADS
  for i in range(LAYERS):
    key = f"vision_model.encoder.layers.{i}"
    h = layer_norm(x, weights, f"{key}.layer_norm1")
    q, k, v = (linear(h, weights, f"{key}.self_attn.{n}").reshape(batch, -1, HEADS, head)
               .transpose(0, 2, 1, 3) for n in ("q_proj", "k_proj", "v_proj"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    attended = (scores / scores.sum(-1, keepdims=True)) @ v
    x = x + linear(attended.transpose(0, 2, 1, 3).reshape(batch, -1, WIDTH), weights,
                   f"{key}.self_attn.out_proj")
    h = linear(layer_norm(x, weights, f"{key}.layer_norm2"), weights, f"{key}.mlp.fc1")
    if hidden_act == "quick_gelu":
      h = h / (1 + np.exp(-1.702 * h))
    else:
      h = 0.5 * h * (1 + np.vectorize(math.erf)(h / np.sqrt(2)))
    x = x + linear(h, weights, f"{key}.mlp.fc2")
  pooled = layer_norm(x[:, 0], weights, "vision_model.post_layernorm")
  return pooled @ weights["visual_projection.weight"].T


def reference_pixels(image, edge=SIZE, crop=SIZE):
  """CLIPImageProcessor by hand: short side bicubic, centre crop offset floored, mean/std."""
  width, height = image.size
  if width <= height:
    new = (edge, int(edge * height / width))
  else:
    new = (int(edge * width / height), edge)
  resized = np.asarray(image.resize(new, Image.Resampling.BICUBIC), np.float32)
  top, left = (new[1] - crop) // 2, (new[0] - crop) // 2
  return (resized[top:top + crop, left:left + crop] / 255.0 - MEAN) / STD


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  folder = tmp_path_factory.mktemp("photos")
  rng = np.random.default_rng(5)
  paths = []
  for i, (width, height) in enumerate(IMAGE_SIZES):
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    path = str(folder / f"photo{i}.png")
    Image.fromarray(pixels).save(path)
    paths.append(path)
  return paths


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  weights = random_weights()
  return write_checkpoint(tmp_path_factory.mktemp("hf_clip"), weights), weights


def test_features_match_numpy_get_image_features(photos, checkpoint):
  folder, weights = checkpoint
  features, bad = encoders.encode_images(photos, "clip", folder, batch_size=2)
  assert bad == []
  pixels = np.stack([reference_pixels(Image.open(p).convert("RGB")) for p in photos])
  expected = reference_image_features(pixels.astype(np.float64), weights)
  expected /= np.linalg.norm(expected, axis=1, keepdims=True)
  assert features.shape == (len(photos), PROJECTION)
  np.testing.assert_allclose(features, expected, atol=2e-5)


def test_gelu_checkpoint(photos, tmp_path):
  weights = random_weights(seed=1)
  folder = write_checkpoint(tmp_path / "gelu", weights, hidden_act="gelu")
  encoder = encoders.load_encoder("clip", folder)
  pixels = np.stack([encoder.preprocess(Image.open(p).convert("RGB")) for p in photos[:2]])
  expected = reference_image_features(pixels.astype(np.float64), weights, "gelu")
  np.testing.assert_allclose(encoder.encode_batch(pixels), expected, rtol=1e-4, atol=1e-5)


def test_preprocessing_matches_transformers_image_processor(photos, tmp_path):
  transformers = pytest.importorskip("transformers")
  processor = transformers.CLIPImageProcessorPil(
      size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
  options = hf_clip.preprocessing(str(tmp_path), SIZE)
  for path in photos:
    image = Image.open(path).convert("RGB")
    expected = processor(images=image, return_tensors="np")["pixel_values"][0]
    got = hf_clip.preprocess(image, options)
    np.testing.assert_allclose(got, expected.transpose(1, 2, 0), atol=1e-5, err_msg=path)
    np.testing.assert_allclose(got, reference_pixels(image), atol=1e-5, err_msg=path)


def test_preprocessor_config_is_read(photos, checkpoint, tmp_path):
  folder, weights = checkpoint
  copy = write_checkpoint(tmp_path / "with_processor", weights)
  config = {"size": {"shortest_edge": 40}, "crop_size": {"height": SIZE, "width": SIZE},
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25], "resample": 3}
  with open(os.path.join(copy, "preprocessor_config.json"), "w", encoding="utf-8") as stream:
    json.dump(config, stream)
  encoder = encoders.load_encoder("clip", copy)
  image = Image.open(photos[0]).convert("RGB")
  width, height = image.size
  new = (int(40 * width / height), 40) if width > height else (40, int(40 * height / width))
  resized = np.asarray(image.resize(new, Image.Resampling.BICUBIC), np.float32) / 255.0
  top, left = (new[1] - SIZE) // 2, (new[0] - SIZE) // 2
  np.testing.assert_allclose(encoder.preprocess(image),
                             (resized[top:top + SIZE, left:left + SIZE] - 0.5) / 0.25, atol=1e-5)


def test_missing_weights_and_tensors_are_named(checkpoint, tmp_path):
  folder, weights = checkpoint
  no_weights = tmp_path / "no_weights"
  write_checkpoint(no_weights, weights)
  os.remove(no_weights / "model.safetensors")
  with pytest.raises(FileNotFoundError, match="checkpoint without model.safetensors"):
    encoders.encode_images([], "clip", str(no_weights))
  partial = dict(weights)
  del partial["vision_model.encoder.layers.1.mlp.fc2.bias"]
  with pytest.raises(ValueError, match="'vision_model.encoder.layers.1.mlp.fc2.bias' not in"):
    encoders.load_encoder("clip", write_checkpoint(tmp_path / "partial", partial))
  wrong = dict(weights, **{"visual_projection.weight": np.zeros((PROJECTION, WIDTH + 1),
                                                                np.float32)})
  with pytest.raises(ValueError, match=r"visual_projection.weight has shape \(12, 17\), which does "
                     r"not fit the config \(Keras weight .*is \(16, 12\)\)"):
    encoders.load_encoder("clip", write_checkpoint(tmp_path / "wrong", wrong))


def test_config_written_by_transformers(photos, checkpoint, tmp_path):
  transformers = pytest.importorskip("transformers")
  folder, weights = checkpoint
  config = transformers.CLIPConfig(
      projection_dim=PROJECTION,
      text_config={"hidden_size": WIDTH, "num_hidden_layers": 1, "vocab_size": 10},
      vision_config={"hidden_size": WIDTH, "intermediate_size": MLP, "image_size": SIZE,
                     "patch_size": PATCH, "num_hidden_layers": LAYERS,
                     "num_attention_heads": HEADS})
  config.save_pretrained(str(tmp_path))
  safetensors.numpy.save_file(weights, str(tmp_path / "model.safetensors"))
  ours, _ = encoders.encode_images(photos, "clip", folder)
  theirs, _ = encoders.encode_images(photos, "clip", str(tmp_path))
  np.testing.assert_array_equal(theirs, ours)


def test_sharded_vision_model_with_projection(photos, checkpoint, tmp_path):
  """`CLIPVisionModelWithProjection` layout: flat config, weights in two indexed shards."""
  folder, weights = checkpoint
  vision = {k: v for k, v in weights.items() if k.startswith(("vision_model.", "visual_"))}
  config = {"model_type": "clip_vision_model", "projection_dim": PROJECTION,
            "hidden_size": WIDTH, "intermediate_size": MLP, "image_size": SIZE,
            "patch_size": PATCH, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS}
  (tmp_path / "config.json").write_text(json.dumps(config))
  names = sorted(vision)
  weight_map = {}
  for index, part in enumerate((names[:len(names) // 2], names[len(names) // 2:])):
    shard = f"model-0000{index + 1}-of-00002.safetensors"
    safetensors.numpy.save_file({k: vision[k] for k in part}, str(tmp_path / shard))
    weight_map.update({k: shard for k in part})
  (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
  ours, _ = encoders.encode_images(photos, "clip", folder)
  theirs, _ = encoders.encode_images(photos, "clip", str(tmp_path))
  np.testing.assert_array_equal(theirs, ours)


def test_unsupported_activation_is_named(checkpoint, tmp_path):
  folder = write_checkpoint(tmp_path / "relu", checkpoint[1], hidden_act="relu")
  with pytest.raises(ValueError, match=r"config.json: hidden_act 'relu' not supported; "
                     "known: quick_gelu, gelu"):
    encoders.load_encoder("clip", folder)
