"""Streaming end to end with the bundled ffmpeg: ffmpeg -> y4m -> `upscale - -o -` -> y4m -> ffmpeg keeps the frame
count, size, order (a frame counter drawn in) and timestamps; stdout carries the stream and nothing else."""

import io
import os
import re
import subprocess
import sys

import imageio_ffmpeg
import numpy as np
import pytest

from espcn_jax import y4m

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
W, H, N, BITS = 96, 64, 12, 6
RATE = "24000/1001"


def _counter_frame(i):
  """Y'CbCr 4:2:0 planes: the frame number in binary as 12x12 blocks (235 = 1, 16 = 0) on grey; Cb blue-ish left."""
  y = np.full((H, W), 128, np.uint8)
  for b in range(BITS):
    y[16:28, 8 + 14 * b:20 + 14 * b] = 235 if (i >> b) & 1 else 16
  cb = np.full((H // 2, W // 2), 128, np.uint8)
  cb[:, :W // 4] = 170
  return y, cb, np.full((H // 2, W // 2), 128, np.uint8)


def _read_counter(y, r):
  return sum(1 << b for b in range(BITS) if y[r * 22, r * (14 + 14 * b)] > 128)


def _pts(path):
  err = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path), "-vf", "showinfo", "-f", "null", "-"],
                       capture_output=True, text=True, check=True).stderr
  return [float(t) for t in re.findall(r"pts_time:([0-9.]+)", err)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
  path = tmp_path_factory.mktemp("stream") / "in.mkv"
  raw = b"".join(b"".join(p.tobytes() for p in _counter_frame(i)) for i in range(N))
  subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                  "-s", f"{W}x{H}", "-r", RATE, "-i", "-", "-c:v", "ffv1", str(path)], input=raw, check=True)
  return path


def test_pipe_keeps_count_size_order_and_timestamps(clip, tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  y4m_in = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-i", str(clip), "-f", "yuv4mpegpipe",
                           "-"], capture_output=True, check=True).stdout
  res = subprocess.run([sys.executable, "-m", "espcn_jax.upscale", "-", "-o", "-", "--verbose"], input=y4m_in,
                       capture_output=True, env=env, timeout=120)
  assert res.returncode == 0, res.stderr.decode()[-2000:]
  assert b"12 frame(s) upscaled x3: stdin -> stdout" in res.stderr and b"compile (first call)" in res.stderr
  # stdout is exactly a y4m stream: the header, N frames, nothing before or after.
  out = io.BytesIO(res.stdout)
  header = y4m.read_header(out, "stdout")
  assert (header.width, header.height, header.fps) == (3 * W, 3 * H, (24000, 1001))
  assert header.tokens[2:] == y4m.parse_header(y4m_in[:y4m_in.index(b"\n") + 1], "in").tokens[2:]
  frames = list(y4m.read_frames(out, header, "stdout"))
  assert len(frames) == N and out.read() == b""
  assert [_read_counter(f[0], 3) for f in frames] == list(range(N))
  cb = frames[0][1].astype(int)
  assert abs(cb[:, :W * 3 // 4 - 4].mean() - 170) < 3 and abs(cb[:, W * 3 // 4 + 4:].mean() - 128) < 3
  # Decoded back by ffmpeg: same timestamps as the input.
  out_mkv = tmp_path / "out.mkv"
  subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "yuv4mpegpipe", "-i", "-", "-c:v", "ffv1",
                  str(out_mkv)], input=res.stdout, check=True)
  assert _pts(out_mkv) == pytest.approx(_pts(clip), abs=1e-3) and len(_pts(clip)) == N


def test_bad_stream_is_a_one_line_error():
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  res = subprocess.run([sys.executable, "-m", "espcn_jax.upscale", "-", "-o", "-"], input=b"GIF89a nonsense\n",
                       capture_output=True, env=env, timeout=120)
  assert res.returncode == 1 and res.stdout == b""
  assert res.stderr.decode().strip().splitlines()[-1].startswith("error: stdin: not a y4m stream")


def test_dash_cannot_mix_with_files(capsys):
  from espcn_jax import upscale  # pylint: disable=import-outside-toplevel
  for argv in (["-", "-o", "out.mp4"], ["in.mp4", "-o", "-"], ["-", "in.mp4", "-o", "-"]):
    with pytest.raises(SystemExit) as e:
      upscale.main(argv)
    assert e.value.code == 2 and "'-' cannot mix with files" in capsys.readouterr().err


_NOISY = r"""
import os, sys
from espcn_jax import plane_net, upscale
luma = plane_net.PlaneNet.luma
def noisy(self, y):
  print("a stray print")
  os.write(1, b"a stray write to fd 1\n")
  return luma(self, y)
plane_net.PlaneNet.luma = noisy
sys.exit(upscale.main(["-", "-o", "-", "--quiet"]))
"""


def test_stray_output_of_libraries_goes_to_stderr(clip):
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  y4m_in = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-i", str(clip), "-frames:v", "2", "-f",
                           "yuv4mpegpipe", "-"], capture_output=True, check=True).stdout
  res = subprocess.run([sys.executable, "-c", _NOISY], input=y4m_in, capture_output=True, env=env, timeout=120)
  assert res.returncode == 0, res.stderr.decode()[-2000:]
  out = io.BytesIO(res.stdout)
  header = y4m.read_header(out, "stdout")
  assert len(list(y4m.read_frames(out, header, "stdout"))) == 2
  assert b"a stray print" in res.stderr and b"a stray write to fd 1" in res.stderr
