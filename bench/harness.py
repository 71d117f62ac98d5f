"""What every benchmark shares: machine description, load, timing windows, table and JSON.

The machines these run on are shared, so absolute numbers drift with load. Every result is
printed with the 1-minute load average at the time it was taken, and the scripts report
ratios measured in the same process (e.g. achieved FLOP/s over a dense matmul measured
right before and after), which drift much less than the absolute figures.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

from tfrecords_builder import atomic_io


def load_average() -> float:
  """The 1-minute load average of the machine (number of runnable processes)."""
  return round(os.getloadavg()[0], 2)


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
      for line in cpuinfo:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
  """CPU model, cores, TF/NumPy versions, the device TF computes on and the load now."""
  gpus = tf.config.list_logical_devices("GPU")
  gpu_names = []
  for gpu in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(gpu)
    gpu_names.append(details.get("device_name", gpu.name))
  return {
      "cpu_model": cpu_model(),
      "cpu_cores": os.cpu_count(),
      "tensorflow": tf.__version__,
      "numpy": np.__version__,
      "python": platform.python_version(),
      "device": "GPU" if gpus else "CPU",
      "gpus": gpu_names,
      "load_average_1min": load_average(),
      "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
  }


def timed_windows(run_window: Callable[[], Any], num_windows: int) -> list[float]:
  """Seconds taken by each of `num_windows` calls of `run_window` (which must block)."""
  seconds = []
  for _ in range(num_windows):
    start = time.perf_counter()
    run_window()
    seconds.append(time.perf_counter() - start)
  return seconds


def median(values: Sequence[float]) -> float:
  return float(statistics.median(values))


def matmul_flops_per_second(size: int = 1024, dtype: tf.DType = tf.float32,
                            num_windows: int = 5, repeats: int = 4) -> float:
  """Dense-matmul FLOP/s of this device: the practical limit a model step can reach.

  Times `repeats` chained `[size, size] x [size, size]` matmuls inside one `tf.function`
  (median of `num_windows` windows after a warm-up), on the default device and dtype.
  """
  a = tf.random.normal([size, size], dtype=tf.float32)
  a = tf.cast(a / float(size) ** 0.5, dtype)

  @tf.function
  def chain(x):
    for _ in range(repeats):
      x = tf.matmul(x, a)
    return tf.reduce_sum(tf.cast(x[:1, :1], tf.float32))

  chain(a).numpy()
  seconds = timed_windows(lambda: chain(a).numpy(), num_windows)
  return 2.0 * size ** 3 * repeats / median(seconds)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
  """Renders `rows` as a Markdown table of `columns` (floats to 3 significant digits)."""
  def cell(value: Any) -> str:
    if isinstance(value, float):
      return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)

  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for row in rows:
    lines.append("| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |")
  return "\n".join(lines)


def emit(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str],
         payload: dict[str, Any], output_json: str) -> None:
  """Prints the machine line and the table, and writes `payload` to `output_json` if set."""
  machine = payload["machine"]
  print(f"\n{title}")
  print(f"machine: {machine['cpu_model']}, {machine['cpu_cores']} cores, "
        f"device {machine['device']} {' '.join(machine['gpus'])}, TF {machine['tensorflow']}")
  print(format_table(rows, columns))
  if output_json:
    atomic_io.write_json(output_json, payload)
    print(f"results written to {output_json}")
