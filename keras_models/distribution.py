"""Builds the tf.distribute strategy a run asks for."""

from __future__ import annotations

from absl import logging
import tensorflow as tf


def make_strategy(name: str = "mirrored", num_gpus: int = -1,
                  devices: list[str] | None = None) -> tf.distribute.Strategy:
  """Returns the strategy for `name`.

  Args:
    name: "mirrored" (all visible GPUs, or the CPU when there are none), "default" (no
      distribution) or "multi_worker" (MultiWorkerMirroredStrategy configured by TF_CONFIG).
    num_gpus: GPUs to use with "mirrored"; -1 means all visible.
    devices: Explicit device list for "mirrored" (tests use two logical CPUs).
  """
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name != "mirrored":
    raise ValueError(f"unknown strategy '{name}'; known: mirrored, default, multi_worker")
  if devices is None:
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if num_gpus >= 0:
      if num_gpus > len(gpus):
        raise ValueError(f"--num_gpus={num_gpus} but only {len(gpus)} GPUs are visible")
      gpus = gpus[:num_gpus]
    devices = gpus or ["/cpu:0"]
  logging.info("MirroredStrategy over %s", devices)
  return tf.distribute.MirroredStrategy(devices)
