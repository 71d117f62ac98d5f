"""CLIP image embeddings from a local Hugging Face (transformers-format) checkpoint.

The directory is what `CLIPModel.save_pretrained(dir)` (or `CLIPVisionModelWithProjection`)
writes: `config.json` (`model_type` "clip" or "clip_vision_model") and `model.safetensors`
(or `model.safetensors.index.json` and its shards); an optional `preprocessor_config.json`
(`CLIPProcessor.save_pretrained`) sets the image preprocessing. keras-hub 0.32 has no
transformers converter for CLIP (only MetaCLIP 2), so the vision tower's weights are mapped
here into a `keras_hub.models.CLIPVisionEncoder` plus the `visual_projection` Dense, read
with safetensors' NumPy API (no PyTorch). The output is `CLIPModel.get_image_features`:
the class token after `post_layernorm`, projected; the caller L2-normalises it.

Preprocessing is `CLIPImageProcessor`'s: the short side resized to `shortest_edge` with PIL
bicubic (long side `int(edge * long / short)`), a centre crop whose offset is rounded
down (`(h - crop) // 2`, where OpenAI's torchvision crop rounds to nearest), then
`pixels * rescale_factor`, minus mean, over std. Without a preprocessor config the edge and
crop are the model's `image_size` and the statistics CLIP's, as for openai/clip-vit-*.
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras
import numpy as np
from PIL import Image

from tfrecords_builder.encoders import images
from tfrecords_builder.encoders import keras_model

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
MODEL_TYPES = ("clip", "clip_vision_model")
# CLIPVisionConfig defaults: save_pretrained leaves out values equal to them.
VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                   "num_attention_heads": 12, "num_channels": 3, "image_size": 224,
                   "patch_size": 32, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
ACTIVATIONS = ("quick_gelu", "gelu")
_BICUBIC = 3


def read_config(folder: str) -> dict[str, Any] | None:
  """The checkpoint's config.json when it is a transformers CLIP config, else None."""
  path = os.path.join(folder, CONFIG_FILE)
  try:
    with open(path, encoding="utf-8") as stream:
      config = json.load(stream)
  except (OSError, json.JSONDecodeError):
    return None
  if not isinstance(config, dict) or config.get("model_type") not in MODEL_TYPES:
    return None
  return config


def vision_config(config: dict[str, Any], path: str) -> dict[str, Any]:
  """Vision tower hyper-parameters (defaults filled in) plus `projection_dim`.

  Raises:
    ValueError: naming `path` for a setting this port does not implement.
  """
  nested = config.get("vision_config") if config["model_type"] == "clip" else config
  vision = {**VISION_DEFAULTS, **(nested or {})}
  vision["projection_dim"] = config.get("projection_dim", vision.get("projection_dim", 512))
  for key in ("image_size", "patch_size"):
    if isinstance(vision[key], (list, tuple)):
      if len(set(vision[key])) != 1:
        raise ValueError(f"{path}: non-square {key} {vision[key]} is not supported")
      vision[key] = vision[key][0]
  if vision["hidden_act"] not in ACTIVATIONS:
    raise ValueError(f"{path}: hidden_act {vision['hidden_act']!r} not supported; "
                     f"known: {', '.join(ACTIVATIONS)}")
  if vision["num_channels"] != 3 or abs(vision["layer_norm_eps"] - 1e-5) > 1e-12:
    raise ValueError(f"{path}: num_channels must be 3 and layer_norm_eps 1e-05 (keras-hub's "
                     f"CLIP), got {vision['num_channels']} and {vision['layer_norm_eps']}")
  return vision


def check(folder: str) -> None:
  """Raises FileNotFoundError naming a missing weights file of a transformers checkpoint."""
  if not any(os.path.isfile(os.path.join(folder, n)) for n in (WEIGHTS_FILE, INDEX_FILE)):
    raise FileNotFoundError(f"{folder}: transformers CLIP checkpoint without {WEIGHTS_FILE} "
                            f"(or {INDEX_FILE}); save it with save_pretrained "
                            "(safe_serialization, the default)")


def read_weights(folder: str) -> dict[str, np.ndarray]:
  """The vision tower and projection tensors of the checkpoint, as float32 arrays."""
  try:
    import safetensors  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ImportError("a transformers CLIP checkpoint needs safetensors: "
                      "pip install 'setretrieval[encoders]'") from error
  index_path = os.path.join(folder, INDEX_FILE)
  if os.path.isfile(os.path.join(folder, WEIGHTS_FILE)):
    files = {WEIGHTS_FILE}
  else:
    with open(index_path, encoding="utf-8") as stream:
      files = set(json.load(stream)["weight_map"].values())
  tensors = {}
  for name in sorted(files):
    path = os.path.join(folder, name)
    try:
      with safetensors.safe_open(path, framework="np") as stream:
        for key in stream.keys():
          if key.startswith(("vision_model.", "visual_projection.")):
            tensors[key] = np.asarray(stream.get_tensor(key), np.float32)
    except (OSError, ValueError, TypeError) as error:
      raise ValueError(f"{path}: cannot read as safetensors ({error})") from error
  return tensors


def _assign(variable, value: np.ndarray, transform, key: str, folder: str) -> None:
  """Assigns `transform(value)`; raises naming the tensor when its shape does not fit."""
  try:
    mapped = transform(value) if transform else value
  except ValueError:
    mapped = None
  if mapped is None or tuple(variable.shape) != mapped.shape:
    raise ValueError(f"{folder}: {key} has shape {value.shape}, which does not fit the "
                     f"config (Keras weight {variable.path} is {tuple(variable.shape)})")
  variable.assign(mapped)


def build_image_tower(folder: str) -> keras.Model:
  """[batch, size, size, 3] CLIP-normalised pixels -> [batch, projection_dim] features.

  Raises:
    ValueError: naming the folder and tensor for a missing or mis-shaped weight.
  """
  import keras_hub  # pylint: disable=g-import-not-at-top
  vision = vision_config(read_config(folder), os.path.join(folder, CONFIG_FILE))
  size, hidden, heads = vision["image_size"], vision["hidden_size"], vision["num_attention_heads"]
  encoder = keras_hub.models.CLIPVisionEncoder(
      patch_size=vision["patch_size"], hidden_dim=hidden,
      num_layers=vision["num_hidden_layers"], num_heads=heads,
      intermediate_dim=vision["intermediate_size"],
      intermediate_activation=vision["hidden_act"], image_shape=(size, size, 3))
  projection = keras.layers.Dense(vision["projection_dim"], use_bias=False,
                                  name="visual_projection")
  image_input = keras.Input((size, size, 3), name="images")
  tower = keras.Model(image_input, projection(encoder({"images": image_input})[:, 0, :]),
                      name="hf_clip_image_tower")
  weights = read_weights(folder)
  pairs = [(projection.kernel, "visual_projection.weight", np.transpose)]

  def take(key: str) -> np.ndarray:
    if key not in weights:
      raise ValueError(f"{folder}: tensor {key!r} not in the checkpoint")
    return weights[key]

  def layer_norm(layer, key):
    pairs.extend([(layer.gamma, f"{key}.weight", None), (layer.beta, f"{key}.bias", None)])

  def dense(layer, key, kernel_shape=None, bias_shape=None):
    pairs.append((layer.kernel, f"{key}.weight",
                  lambda w: w.T.reshape(kernel_shape or w.T.shape)))
    pairs.append((layer.bias, f"{key}.bias", lambda b: b.reshape(bias_shape or b.shape)))

  embedding = encoder.embedding
  pairs += [(embedding.patch_embedding.kernel, "vision_model.embeddings.patch_embedding.weight",
             lambda w: np.transpose(w, (2, 3, 1, 0))),
            (embedding.class_embedding, "vision_model.embeddings.class_embedding", None),
            (embedding.position_embedding.embeddings,
             "vision_model.embeddings.position_embedding.weight", None)]
  layer_norm(encoder.pre_layer_norm, "vision_model.pre_layrnorm")
  layer_norm(encoder.layer_norm, "vision_model.post_layernorm")
  head = hidden // heads
  for i, block in enumerate(encoder.encoder_layers):
    key = f"vision_model.encoder.layers.{i}"
    for part, name in (("query_dense", "q_proj"), ("key_dense", "k_proj"),
                       ("value_dense", "v_proj")):
      dense(getattr(block.attention, part), f"{key}.self_attn.{name}",
            (hidden, heads, head), (heads, head))
    dense(block.attention.output_dense, f"{key}.self_attn.out_proj", (heads, head, hidden))
    layer_norm(block.layer_norm_1, f"{key}.layer_norm1")
    layer_norm(block.layer_norm_2, f"{key}.layer_norm2")
    dense(block.dense_1, f"{key}.mlp.fc1")
    dense(block.dense_2, f"{key}.mlp.fc2")
  for variable, key, transform in pairs:
    _assign(variable, take(key), transform, key, folder)
  # keras-hub creates position_ids as zeros and fills them from its own presets.
  embedding.position_ids.assign(np.arange(embedding.num_positions)[None, :])
  return tower


def preprocessing(folder: str, image_size: int) -> dict[str, Any]:
  """shortest_edge, crop (h, w), rescale_factor, mean, std of `CLIPImageProcessor`."""
  options = {"shortest_edge": image_size, "crop": (image_size, image_size),
             "rescale_factor": 1.0 / 255.0, "mean": images.CLIP_MEAN, "std": images.CLIP_STD}
  path = os.path.join(folder, PREPROCESSOR_FILE)
  if not os.path.isfile(path):
    return options
  with open(path, encoding="utf-8") as stream:
    config = json.load(stream)
  if config.get("resample", _BICUBIC) != _BICUBIC or not config.get("do_center_crop", True):
    raise ValueError(f"{path}: only bicubic resizing with a centre crop is supported")
  size, crop = config.get("size", {}), config.get("crop_size", {})
  options["shortest_edge"] = int(size.get("shortest_edge", image_size))
  options["crop"] = (int(crop.get("height", image_size)), int(crop.get("width", image_size)))
  if options["crop"] != (image_size, image_size):
    raise ValueError(f"{path}: crop_size {options['crop']} differs from the model's "
                     f"image_size {image_size}")
  options["rescale_factor"] = float(config.get("rescale_factor", options["rescale_factor"]))
  options["mean"] = np.asarray(config.get("image_mean", options["mean"]), np.float32)
  options["std"] = np.asarray(config.get("image_std", options["std"]), np.float32)
  return options


def preprocess(image: Image.Image, options: dict[str, Any]) -> np.ndarray:
  """RGB PIL image -> float32 [crop_h, crop_w, 3], as `CLIPImageProcessor` computes it."""
  width, height = image.size
  edge = options["shortest_edge"]
  if width <= height:
    new_size = (edge, int(edge * height / width))
  else:
    new_size = (int(edge * width / height), edge)
  if new_size != image.size:
    image = image.resize(new_size, Image.Resampling.BICUBIC)
  crop_height, crop_width = options["crop"]
  top, left = (new_size[1] - crop_height) // 2, (new_size[0] - crop_width) // 2
  pixels = np.asarray(image.crop((left, top, left + crop_width, top + crop_height)))
  scaled = pixels.astype(np.float32) * np.float32(options["rescale_factor"])
  return ((scaled - options["mean"]) / options["std"]).astype(np.float32)


class HFClipImageEncoder(keras_model.KerasImageEncoder):
  """`KerasImageEncoder` whose images are preprocessed as `CLIPImageProcessor` does."""

  def __init__(self, folder: str):
    tower = build_image_tower(folder)
    super().__init__(tower, images.clip_normalize, name=f"clip(transformers):{folder}")
    self._options = preprocessing(folder, self.image_size[0])

  def preprocess(self, image: Image.Image) -> np.ndarray:
    return preprocess(image, self._options)


def load(folder: str) -> HFClipImageEncoder:
  check(folder)
  return HFClipImageEncoder(folder)
