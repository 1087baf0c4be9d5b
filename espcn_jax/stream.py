"""Streaming: a y4m stream in, the upscaled y4m stream out, frame by frame with bounded latency.

    ffmpeg -i in.mkv -f yuv4mpegpipe - | python -m espcn_jax.upscale - -o - | ffplay -
    n = upscale_y4m(sys.stdin.buffer, out, net)        # net: a plane_net.PlaneNet

The output header is the input's with W and H multiplied by the scale (frame rate, interlacing, aspect, colour
space and X fields kept; 4:2:0 chroma is resized where the C tag says its samples sit); each frame is read,
upscaled and written in its own thread (espcn_jax.frame_pipeline), one frame per call of the net and `depth` frames
queued between stages, so a frame leaves at most about (2 * depth + 1) frame times after it arrived, and memory
stays flat. Each output frame is flushed as soon as written.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import numpy as np

from espcn_jax import frame_pipeline, plane_net, y4m


class OutputClosed(Exception):
  """The reader of the output stream went away (e.g. the player was closed)."""


def upscale_y4m(inp, out, net, *, name: str = "stdin", depth: int = 2,
                times: frame_pipeline.StageTimes | None = None) -> int:
  """Upscales the y4m stream `inp` (binary, readable) into `out` (binary, writable) with `net`; returns the frames
  written. y4m.Y4MError (naming `name`) for a malformed stream; OutputClosed when `out` is closed by its reader."""
  header = y4m.read_header(inp, name)
  r = net.scale
  oh, ow = r * header.height, r * header.width
  sub = header.subsampling or (1, 1)
  times = times if times is not None else frame_pipeline.StageTimes()
  written = [0]

  def source():
    for yp, cb, cr in y4m.read_frames(inp, header, name):
      yield yp[None], None if cb is None else np.stack([cb, cr])[None]

  def process(item, tm):
    return plane_net.upscale_planes(net, item[0], item[1], sub, (oh, ow), tm, header.siting)

  def sink(item):
    yo, co = item
    try:
      y4m.write_frame(out, (yo[0],) if co is None else (yo[0], co[0, 0], co[0, 1]))
      out.flush()
    except (BrokenPipeError, ConnectionResetError) as e:
      raise OutputClosed(f"the output stream was closed by its reader after {written[0]} frame(s)") from e
    written[0] += 1

  try:
    y4m.write_header(out, header.with_size(ow, oh))
    out.flush()
  except (BrokenPipeError, ConnectionResetError) as e:
    raise OutputClosed("the output stream was closed by its reader before the first frame") from e
  t0 = time.perf_counter()
  plane_net.warm_up(net, 1, header.height, header.width, header.subsampling, times, header.siting)
  frame_pipeline.run(source(), process, sink, depth=depth, times=times, names=("read", "write"))
  times.wall_s = time.perf_counter() - t0  # compiling included
  return written[0]


@contextlib.contextmanager
def stdout_for_stream():
  """Yields a binary file on the process' real standard output and points file descriptor 1 (and sys.stdout) at
  standard error meanwhile, so that nothing but the stream reaches stdout, not even a stray print from a library."""
  sys.stdout.flush()
  orig, fd = os.dup(1), os.dup(1)
  os.dup2(2, 1)
  saved = sys.stdout
  sys.stdout = sys.stderr
  out = os.fdopen(fd, "wb", buffering=1 << 20)
  try:
    yield out
  finally:
    sys.stdout = saved
    try:
      out.close()
    except (BrokenPipeError, ConnectionResetError):
      pass
    os.dup2(orig, 1)
    os.close(orig)
