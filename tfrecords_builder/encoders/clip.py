"""`--encoder=clip`: CLIP image embeddings from a local keras-hub preset or HF checkpoint.

`--encoder_path` is either a transformers-format checkpoint (`config.json` with
`model_type` "clip" + `model.safetensors`, as `CLIPModel.save_pretrained` writes it; see
`hf_clip`, which matches `get_image_features` and `CLIPImageProcessor`), or a keras-hub
preset, described below. keras-cv's CLIP and its presets moved to keras-hub.

The keras-hub directory is a preset of a `keras_hub.models.CLIPBackbone`, as written by
`backbone.save_to_preset(dir)`. It must hold:
  config.json        the serialized CLIPBackbone (vision and text encoder configs),
  model.weights.h5   its weights (or model.weights.json and its shards, for big models),
and usually metadata.json; tokenizer/preprocessor files and assets/ may be there and are
not used. To make one, on a machine with network access run
  keras_hub.models.CLIPBackbone.from_preset("clip_vit_base_patch16").save_to_preset(dir)
(or unpack the Kaggle download of that preset) and copy `dir` here. Our code never
downloads: it only accepts an existing local directory, and passes keras-hub its absolute
path, so a folder that happens to be named like a built-in preset is not fetched.

The embedding is CLIP's: the vision encoder's class token (`vision_pooler`), projected by
`vision_projection` (`CLIPBackbone.get_vision_embeddings`); 512-d for ViT-B. The caller
L2-normalises it. Images are preprocessed as CLIP at the backbone's own image size (224
for ViT-B/16 and B/32), see `images`. The text encoder is loaded with the preset but
never run.

Needs keras-hub (and safetensors for a transformers checkpoint):
`pip install 'setretrieval[encoders]'`.
"""

from __future__ import annotations

import os

import keras

from tfrecords_builder.encoders import hf_clip
from tfrecords_builder.encoders import images
from tfrecords_builder.encoders import keras_model

CONFIG_FILE = "config.json"
WEIGHTS_FILES = ("model.weights.h5", "model.weights.json")


def check(preset_dir: str) -> None:
  """Raises FileNotFoundError naming what is missing from a local preset directory.

  Raises:
    ValueError: for an empty path or a remote handle (`kaggle://`, `hf://`...).
    FileNotFoundError: naming the directory or the missing file.
  """
  if not preset_dir:
    raise ValueError("the clip encoder needs a local CLIP preset directory "
                     "(--encoder_path); see tfrecords_builder/encoders/clip.py")
  if "://" in preset_dir:
    raise ValueError(f"{preset_dir}: only local preset directories are accepted; "
                     "download the preset elsewhere and copy the directory here")
  if not os.path.isdir(preset_dir):
    raise FileNotFoundError(f"{preset_dir}: CLIP preset directory not found")
  if hf_clip.read_config(preset_dir) is not None:
    hf_clip.check(preset_dir)
    return
  if not os.path.isfile(os.path.join(preset_dir, CONFIG_FILE)):
    raise FileNotFoundError(
        f"{os.path.join(preset_dir, CONFIG_FILE)}: not found; a CLIP preset directory "
        f"holds {CONFIG_FILE} and {WEIGHTS_FILES[0]} written by save_to_preset, or "
        f"{CONFIG_FILE} and {hf_clip.WEIGHTS_FILE} written by transformers' save_pretrained")
  if not any(os.path.isfile(os.path.join(preset_dir, name)) for name in WEIGHTS_FILES):
    raise FileNotFoundError(
        f"{preset_dir}: no weights ({' or '.join(WEIGHTS_FILES)}) in the CLIP preset "
        "directory")


def load_backbone(preset_dir: str):
  """Returns the `keras_hub.models.CLIPBackbone` saved in `preset_dir`.

  Raises:
    ImportError: when keras-hub is not installed.
    FileNotFoundError, ValueError: naming `preset_dir` (see `check`), or when the preset
      does not hold a CLIPBackbone.
  """
  check(preset_dir)
  try:
    import keras_hub  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ImportError("--encoder=clip needs keras-hub: "
                      "pip install 'setretrieval[encoders]'") from error
  try:
    return keras_hub.models.CLIPBackbone.from_preset(os.path.abspath(preset_dir))
  except ValueError as error:
    raise ValueError(f"{preset_dir}: not a CLIPBackbone preset ({error})") from error


def load(preset_dir: str) -> keras_model.KerasImageEncoder:
  """Loads the preset and wraps its image tower: [batch, size, size, 3] -> [batch, dim]."""
  if hf_clip.read_config(preset_dir) is not None:
    return hf_clip.load(preset_dir)
  backbone = load_backbone(preset_dir)
  image_input = keras.Input(shape=tuple(backbone.vision_encoder.image_shape), name="images")
  image_tower = keras.Model(image_input, backbone.get_vision_embeddings(image_input),
                            name="clip_image_tower")
  return keras_model.KerasImageEncoder(image_tower, images.clip_normalize,
                                       name=f"clip:{preset_dir}")
