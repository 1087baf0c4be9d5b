"""frame_pipeline: order and count kept, stages overlap but stay within the bounded queues, errors stop everything."""

import threading
import time

import pytest

from espcn_jax import frame_pipeline


def test_order_count_and_bounded_read_ahead():
  read, written = [], []
  ahead = []

  def source():
    for i in range(40):
      read.append(i)
      ahead.append(len(read) - len(written))
      yield i

  def sink(x):
    time.sleep(0.002)  # a slow writer: the reader must wait for it, not run ahead
    written.append(x)

  times = frame_pipeline.StageTimes()
  n = frame_pipeline.run(source(), lambda x, tm: x * 10, sink, depth=2, times=times, names=("decode", "encode"))
  assert n == 40 and written == [10 * i for i in range(40)]
  # in flight: <= 2 queued before process, 1 in process, 2 queued after, 1 in the sink, 1 being read
  assert max(ahead) <= 7
  assert {"decode", "encode", "wait: decode blocked", "wait: encode idle", "wait: process idle"} <= set(times.seconds)
  assert "40 frames" in times.table(40) and times.wall_s > 0


@pytest.mark.parametrize("where", ["source", "process", "sink"])
def test_an_error_in_any_stage_stops_the_run_and_is_raised(where):
  closed = threading.Event()

  def source():
    try:
      for i in range(10 ** 6):  # endless for practical purposes: the run must stop on the error
        if where == "source" and i == 5:
          raise ValueError("bad frame 5")
        yield i
    finally:
      closed.set()

  def process(x, tm):
    if where == "process" and x == 5:
      raise ValueError("bad frame 5")
    return x

  def sink(x):
    if where == "sink" and x == 5:
      raise ValueError("bad frame 5")

  t = time.perf_counter()
  with pytest.raises(ValueError, match="bad frame 5"):
    frame_pipeline.run(source(), process, sink, depth=2)
  assert time.perf_counter() - t < 5
  assert closed.wait(2)  # the source generator was closed (e.g. its ffmpeg ended)
