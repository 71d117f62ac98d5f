"""Runs a command as a measured child process: wall time and peak memory of its tree.

Peak RSS is the larger of two readings: the kernel's high-water mark of the process and
of the children it waited for (`wait4`'s ru_maxrss, exact but per process), and the
largest sum of RSS over the whole process tree seen by polling every `POLL_SECONDS`
(children that run at the same time, e.g. a tokenizer pool, add up there).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from typing import Sequence

import psutil

POLL_SECONDS = 0.1


@dataclasses.dataclass(frozen=True)
class Measured:
  """What one run cost.

  Attributes:
    seconds: Wall time from start to exit.
    peak_rss_bytes: Peak resident memory of the process tree (see module docstring).
    exit_code: The process's exit status (negative: killed by that signal).
    log_path: File holding its stdout and stderr.
  """

  seconds: float
  peak_rss_bytes: int
  exit_code: int
  log_path: str


class TreeMemory:
  """Polls the RSS sum of a process and its descendants on a thread; `peak` is the max."""

  def __init__(self, pid: int) -> None:
    self.pid, self.peak = pid, 0
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._poll, daemon=True)
    self._thread.start()

  def _tree_rss(self) -> int:
    try:
      root = psutil.Process(self.pid)
      processes = [root, *root.children(recursive=True)]
    except psutil.Error:
      return 0
    total = 0
    for process in processes:
      try:
        total += process.memory_info().rss
      except psutil.Error:
        pass
    return total

  def _poll(self) -> None:
    while not self._stop.is_set():
      self.peak = max(self.peak, self._tree_rss())
      self._stop.wait(POLL_SECONDS)

  def stop(self) -> int:
    self._stop.set()
    self._thread.join()
    return self.peak


class Child:
  """A started command whose memory is polled until `wait` reaps it."""

  def __init__(self, command: Sequence[str], log_path: str, cwd: str,
               env: dict[str, str] | None = None) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    self.log_path = log_path
    self._log = open(log_path, "wb")  # pylint: disable=consider-using-with
    self.start = time.perf_counter()
    self.process = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=self._log,
                                    stderr=subprocess.STDOUT)
    self.memory = TreeMemory(self.process.pid)

  def wait(self, timeout: float | None = None) -> Measured:
    """Waits for exit (killing the process after `timeout` seconds) and measures it."""
    deadline = None if timeout is None else self.start + timeout
    while True:
      pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
      if pid:
        break
      if deadline is not None and time.perf_counter() > deadline:
        self.process.kill()
        deadline = None
      time.sleep(0.05)
    seconds = time.perf_counter() - self.start
    self.process.returncode = os.waitstatus_to_exitcode(status)
    polled = self.memory.stop()
    self._log.close()
    # ru_maxrss is in KiB on Linux.
    return Measured(seconds, max(polled, usage.ru_maxrss * 1024), self.process.returncode,
                    self.log_path)

  def terminate(self) -> None:
    if self.process.poll() is None:
      self.process.terminate()


def run(command: Sequence[str], log_path: str, cwd: str, env: dict[str, str] | None = None,
        timeout: float | None = None) -> Measured:
  """Runs `command` to completion and measures it."""
  return Child(command, log_path, cwd, env).wait(timeout)


def disk_bytes(path: str) -> int:
  """Bytes of the files under `path` (0 when absent)."""
  total = 0
  for folder, _, names in os.walk(path):
    for name in names:
      try:
        total += os.path.getsize(os.path.join(folder, name))
      except OSError:
        pass
  return total
