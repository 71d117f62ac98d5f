"""Loading weights with errors that say what does not fit, and the data they were trained on.

Keras reports a mismatched `.weights.h5` with a message that names neither the variable
nor both shapes. Here the file is compared with the layout the model itself would write,
and the first differing variable is reported with the two shapes. Training also writes
`data_signature.json` (feature dimension and category vocabulary of its shards) beside the
weights, so evaluating on shards with another vocabulary fails with the differing
category instead of silently scoring the wrong categories.
"""

from __future__ import annotations

import json
import os
import tempfile

import h5py
import keras

from keras_models import data_files
from tfrecords_builder import atomic_io

BEST_WEIGHTS = "best.weights.h5"
FINAL_WEIGHTS = "final.weights.h5"
SIGNATURE = "data_signature.json"


def _shapes(path: str) -> dict[str, tuple[int, ...]]:
  """Dataset path -> shape of every array in an h5 file, in file order."""
  shapes: dict[str, tuple[int, ...]] = {}
  with h5py.File(path, "r") as stream:
    stream.visititems(lambda name, node: shapes.__setitem__(name, tuple(node.shape))
                      if isinstance(node, h5py.Dataset) else None)
  return shapes


def first_mismatch(model: keras.Model, path: str) -> str:
  """'' when `path` fits `model`, else a sentence naming the first differing variable."""
  try:
    stored = _shapes(path)
  except OSError as error:
    return f"not a readable .weights.h5 file ({error})"
  with tempfile.TemporaryDirectory() as folder:
    reference = os.path.join(folder, "model.weights.h5")
    model.save_weights(reference)
    expected = _shapes(reference)
  for name, shape in expected.items():
    if name not in stored:
      return f"variable {name} of the model (shape {shape}) is not in the file"
    if stored[name] != shape:
      return f"variable {name} has shape {stored[name]} in the file, the model expects {shape}"
  extra = [name for name in stored if name not in expected]
  if extra:
    return f"variable {extra[0]} (shape {stored[extra[0]]}) of the file is not in the model"
  return ""


def load_weights_checked(model: keras.Model, path: str, description: str) -> None:
  """Loads `path` into the built `model`; a mismatch raises ValueError naming the variable.

  Args:
    model: The built model.
    path: A `.weights.h5` file.
    description: The model's settings, for the message ("cst, hidden_dim=16, D=8, K=3").
  """
  problem = first_mismatch(model, path)
  if problem:
    raise ValueError(f"{path}: weights do not fit the model ({description}): {problem}")
  model.load_weights(path)


def write_signature(model_dir: str, manifest: data_files.Manifest) -> None:
  atomic_io.write_json(os.path.join(model_dir, SIGNATURE), {
      "data_dir": manifest.data_dir, "feature_dim": manifest.feature_dim,
      "categories": list(manifest.categories)})


def check_signature(weights_path: str, manifest: data_files.Manifest) -> None:
  """Raises ValueError when `manifest`'s data differ from the data the weights saw.

  Looks for `data_signature.json` beside the weights; weights without one are not checked.
  """
  path = os.path.join(os.path.dirname(os.path.abspath(weights_path)), SIGNATURE)
  if not os.path.isfile(path):
    return
  with open(path, encoding="utf-8") as stream:
    trained = json.load(stream)
  where = f"{manifest.data_dir}/{data_files.MANIFEST}"
  if trained["feature_dim"] != manifest.feature_dim:
    raise ValueError(f"{where}: feature_dim is {manifest.feature_dim}, but {weights_path} was "
                     f"trained on feature_dim {trained['feature_dim']} ({path})")
  ours, theirs = list(manifest.categories), trained["categories"]
  if ours != theirs:
    index = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b),
                 min(len(ours), len(theirs)))
    mine = ours[index] if index < len(ours) else "(none)"
    trained_name = theirs[index] if index < len(theirs) else "(none)"
    raise ValueError(f"{where}: category vocabulary differs from the one {weights_path} was "
                     f"trained on ({path}): category id {index + 1} is {mine!r} here, "
                     f"{trained_name!r} there ({len(ours)} vs {len(theirs)} categories)")
