"""A crash or a full disk mid-write leaves the previous file intact, with a clear error."""

from __future__ import annotations

import errno
import json
import os

import keras
import numpy as np
import pytest

from keras_models import callbacks
from tfrecords_builder import atomic_io


def _full_disk(*args, **kwargs):
  raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _leftovers(folder) -> list[str]:
  return sorted(name for name in os.listdir(folder) if name.startswith("."))


def test_crash_mid_write_keeps_previous_file(tmp_path):
  path = str(tmp_path / "metrics.json")
  atomic_io.write_json(path, {"top_10_percent": 0.5})
  with pytest.raises(RuntimeError, match="killed"):
    with atomic_io.atomic_open(path) as stream:
      stream.write(b'{"top_10_per')
      raise RuntimeError("killed mid-write")
  with open(path, encoding="utf-8") as stream:
    assert json.load(stream) == {"top_10_percent": 0.5}
  assert not _leftovers(tmp_path)


def test_full_disk_keeps_previous_file_and_names_it(tmp_path, monkeypatch):
  path = str(tmp_path / "items.npz")
  atomic_io.write_npz(path, features=np.arange(5))
  monkeypatch.setattr(os, "fsync", _full_disk)
  with pytest.raises(OSError, match=rf"{path}: write failed \(No space left on device\); "
                                    "the previous file is unchanged") as caught:
    atomic_io.write_npz(path, features=np.ones(3))
  assert caught.value.errno == errno.ENOSPC
  monkeypatch.undo()
  with np.load(path) as loaded:
    np.testing.assert_array_equal(loaded["features"], np.arange(5))
  assert not _leftovers(tmp_path)


def test_full_disk_while_saving_weights_keeps_previous_weights(tmp_path, monkeypatch):
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  path = str(tmp_path / "best.weights.h5")
  callbacks.save_weights_atomically(model, path)
  before = [w.copy() for w in model.get_weights()]
  model.layers[0].kernel.assign(np.ones((3, 2)))

  def partial_then_full(filepath, *args, **kwargs):
    with open(filepath, "wb") as stream:
      stream.write(b"\x89HDF")
    _full_disk()

  monkeypatch.setattr(model, "save_weights", partial_then_full)
  with pytest.raises(OSError, match="best.weights.h5: write failed .No space left on device"):
    callbacks.save_weights_atomically(model, path)
  monkeypatch.undo()
  model.load_weights(path)
  for restored, saved in zip(model.get_weights(), before):
    np.testing.assert_array_equal(restored, saved)
  assert not _leftovers(tmp_path)


def test_unwritable_folder_is_reported_before_work(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  with pytest.raises(OSError, match=rf"{blocker}/run: --model_dir is not writable"):
    atomic_io.check_writable_dir(str(blocker / "run"), "--model_dir")
  with pytest.raises(OSError, match=rf"{blocker}/x.json: write failed"):
    atomic_io.write_json(str(blocker / "x.json"), {})


def test_history_csv_rewrites_whole_file_and_round_trips_state(tmp_path):
  path = str(tmp_path / "history.csv")
  history = callbacks.HistoryCSV(path)
  history.on_epoch_end(0, {"loss": 2.0})
  history.on_epoch_end(1, {"loss": 1.5, "val_top_10_percent": 0.25})
  with open(path, encoding="utf-8") as stream:
    assert stream.read() == "epoch,loss,val_top_10_percent\n0,2.0,\n1,1.5,0.25\n"
  resumed = callbacks.HistoryCSV(path)
  resumed.set_state(json.loads(json.dumps(history.get_state())))
  columns = resumed.history()
  assert sorted(columns) == ["loss", "val_top_10_percent"]
  assert columns["loss"] == [2.0, 1.5]
  np.testing.assert_array_equal(columns["val_top_10_percent"], [np.nan, 0.25])
