"""Builds the tf.distribute strategy a run asks for, and tells the chief worker apart.

Multi-worker runs (`--strategy=multi_worker`) read the cluster from the TF_CONFIG
environment variable, e.g. for worker 1 of 2:
  TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
              "task": {"type": "worker", "index": 1}}'
Worker 0 (or a task of type "chief") is the chief: only it writes outputs.
"""

from __future__ import annotations

import json
import os

from absl import logging
import tensorflow as tf


def tf_config() -> dict:
  """The parsed TF_CONFIG ({} when unset), with a clear error when it is malformed."""
  text = os.environ.get("TF_CONFIG", "")
  if not text:
    return {}
  try:
    config = json.loads(text)
  except json.JSONDecodeError as error:
    raise ValueError(f"TF_CONFIG is not valid JSON ({error.msg})") from None
  if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
    raise ValueError("TF_CONFIG needs a 'cluster' object, e.g. "
                     '{"cluster": {"worker": ["host:port", ...]}, "task": {...}}')
  task = config.get("task")
  if not isinstance(task, dict) or "type" not in task or "index" not in task:
    raise ValueError("TF_CONFIG needs a 'task' object with 'type' and 'index'")
  members = config["cluster"].get(task["type"])
  if not isinstance(members, list) or not 0 <= int(task["index"]) < len(members):
    raise ValueError(f"TF_CONFIG: task {task['type']}:{task['index']} is not in the cluster "
                     f"{config['cluster']}")
  return config


def is_chief() -> bool:
  """Whether this process writes outputs: True unless TF_CONFIG names another chief."""
  config = tf_config()
  if not config:
    return True
  task = config["task"]
  if task["type"] == "chief":
    return True
  return task["type"] == "worker" and int(task["index"]) == 0 and (
      "chief" not in config["cluster"])


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
    if not tf_config():
      raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                       "describing the cluster (see docs/training.md, Multi-worker)")
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


def all_gather_rows(context: tf.distribute.ReplicaContext, tensor: tf.Tensor) -> tf.Tensor:
  """Every replica's `tensor` [b, ...] stacked along axis 0 in replica order: [R * b, ...].

  Built on all_reduce because ReplicaContext.all_gather fails under
  MultiWorkerMirroredStrategy with one device per worker ("destinations can not be
  empty", TF 2.21). Each replica puts its rows in its own slot of zeros; the sum is exact.
  Every replica must pass the same b; bool tensors must be cast to a number first.
  """
  slot = tf.one_hot(context.replica_id_in_sync_group, context.num_replicas_in_sync,
                    dtype=tensor.dtype)
  placed = tf.reshape(slot, [-1] + [1] * tensor.shape.rank) * tensor[None]
  gathered = context.all_reduce(tf.distribute.ReduceOp.SUM, placed)
  return tf.reshape(gathered, tf.concat([[-1], tf.shape(tensor)[1:]], axis=0))
