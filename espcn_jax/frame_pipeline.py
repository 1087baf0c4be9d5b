"""Read -> process -> write, overlapped: the reader and the writer run in their own threads, joined to the
processing (in the calling thread) by bounded queues, so memory stays flat for any number of items and each stage
works while the others wait on I/O, ffmpeg subprocesses or jitted calls (which release the GIL).

    times = frame_pipeline.StageTimes()
    n = frame_pipeline.run(frames, process, write, depth=2, times=times, names=("decode", "encode"))
    print(times.table(n), file=sys.stderr)

`process(item, times)` may record its own stages (`with times.stage("net"): ...`). An exception in any stage stops
the others and is raised here (the first one, with its traceback); so is KeyboardInterrupt in the calling thread.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Callable, Iterable

_END = object()
_POLL_S = 0.1  # how often a blocked stage checks whether another one failed


class Stopped(Exception):
  """Raised inside a stage when another stage failed; never escapes `run`."""


class StageTimes:
  """Seconds per stage, summed over items; thread-safe. Names starting with "wait" are time blocked on a queue."""

  def __init__(self):
    self.seconds: dict[str, float] = {}
    self.wall_s = 0.0
    self._lock = threading.Lock()

  def add(self, name: str, seconds: float) -> None:
    with self._lock:
      self.seconds[name] = self.seconds.get(name, 0.0) + seconds

  @contextlib.contextmanager
  def stage(self, name: str):
    t0 = time.perf_counter()
    try:
      yield
    finally:
      self.add(name, time.perf_counter() - t0)

  def as_dict(self, n_items: int) -> dict:
    return {"wall_s": round(self.wall_s, 4), "frames": n_items,
            "stages_s": {k: round(v, 4) for k, v in self.seconds.items()},
            "stages_ms_per_frame": {k: round(1e3 * v / max(n_items, 1), 3) for k, v in self.seconds.items()}}

  def table(self, n_items: int) -> str:
    """Lines `stage  total s  ms/frame` (the stages overlap: their sum exceeds the wall time)."""
    rows = [f"{'stage':<22}{'total s':>9}{'ms/frame':>10}"]
    for k, v in self.seconds.items():
      rows.append(f"{k:<22}{v:9.2f}{1e3 * v / max(n_items, 1):10.2f}")
    fps = n_items / self.wall_s if self.wall_s > 0 else 0.0
    rows.append(f"{'wall (overlapped)':<22}{self.wall_s:9.2f}{1e3 * self.wall_s / max(n_items, 1):10.2f}"
                f"   {n_items} frames, {fps:.1f} frames/s")
    return "\n".join(rows)


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
  while True:
    if stop.is_set():
      raise Stopped()
    try:
      q.put(item, timeout=_POLL_S)
      return
    except queue.Full:
      pass


def _get(q: queue.Queue, stop: threading.Event):
  while True:
    if stop.is_set():
      raise Stopped()
    try:
      return q.get(timeout=_POLL_S)
    except queue.Empty:
      pass


def run(source: Iterable, process: Callable, sink: Callable, *, depth: int = 2, times: StageTimes | None = None,
        names: tuple[str, str] = ("read", "write")) -> int:
  """Every item of `source` through `process(item, times)` into `sink(result)`, in order; returns the count.

  `source` is iterated in a reader thread and `sink` called in a writer thread, each with at most `depth` items
  queued between it and `process`. Stage times go to `times` under `names` (reader, writer), "net wait for input"
  and the like for the time blocked on the queues.
  """
  times = times if times is not None else StageTimes()
  read_name, write_name = names
  q_in: queue.Queue = queue.Queue(maxsize=max(1, depth))
  q_out: queue.Queue = queue.Queue(maxsize=max(1, depth))
  stop = threading.Event()
  errors: list[BaseException] = []

  def reader():
    it = iter(source)
    try:
      while True:
        t0 = time.perf_counter()
        item = next(it, _END)
        times.add(read_name, time.perf_counter() - t0)
        t0 = time.perf_counter()
        _put(q_in, item, stop)
        times.add(f"wait: {read_name} blocked", time.perf_counter() - t0)
        if item is _END:
          return
    except Stopped:
      pass
    except BaseException as e:  # pylint: disable=broad-except
      errors.append(e)
      stop.set()
    finally:
      if hasattr(it, "close"):  # a generator: its cleanup (e.g. ending an ffmpeg subprocess) runs now
        it.close()

  def writer():
    try:
      while True:
        t0 = time.perf_counter()
        item = _get(q_out, stop)
        times.add(f"wait: {write_name} idle", time.perf_counter() - t0)
        if item is _END:
          return
        with times.stage(write_name):
          sink(item)
    except Stopped:
      pass
    except BaseException as e:  # pylint: disable=broad-except
      errors.append(e)
      stop.set()

  threads = [threading.Thread(target=reader, name="pipeline-read", daemon=True),
             threading.Thread(target=writer, name="pipeline-write", daemon=True)]
  t_start = time.perf_counter()
  n = 0
  for t in threads:
    t.start()
  try:
    while True:
      t0 = time.perf_counter()
      item = _get(q_in, stop)
      times.add("wait: process idle", time.perf_counter() - t0)
      if item is _END:
        break
      out = process(item, times)
      t0 = time.perf_counter()
      _put(q_out, out, stop)
      times.add("wait: process blocked", time.perf_counter() - t0)
      n += 1
    _put(q_out, _END, stop)
    threads[1].join()
  except Stopped:
    pass
  except BaseException:
    stop.set()
    raise
  finally:
    stop.set()
    for t in threads:  # a reader blocked on a pipe that never ends is a daemon: it does not hold up the exit
      t.join(timeout=2.0)
    times.wall_s = time.perf_counter() - t_start
  if errors:
    raise errors[0]
  return n
