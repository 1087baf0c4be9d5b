"""Makes a short demo video offline: a 640x360 window panning across a built-in BSD200 picture, 30 fps, H.264 with a
440 Hz AAC tone (so the audio copy is exercised), through the ffmpeg that imageio-ffmpeg bundles.

    python scripts/make_demo_clip.py clip.mp4                 # 5 s, 640x360 (upscales x3 to 1080p)
    python -m espcn_jax.upscale clip.mp4 -o clip_x3.mp4 --scale 3
    python scripts/make_demo_clip.py clip720.mp4 --size 1280x720 --seconds 2

The picture (481x321) is first enlarged by bicubic so the window can pan across it; the clip is for trying the
command and timing it (BENCHMARKS.md, "Video, end to end"), not for judging quality.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from espcn_jax import atomic_io  # noqa: E402  (the one atomic write; the checkout's copy)
DEFAULT_PICTURE = REPO / "data" / "BSD200" / "100075.jpg"


def frames(picture: pathlib.Path, width: int, height: int, n: int):
  """n uint8 RGB frames (height, width, 3): a window sliding left to right and down across the enlarged picture."""
  img = Image.open(picture).convert("RGB")
  zoom = max(1.6 * width / img.width, 1.3 * height / img.height)
  big = np.asarray(img.resize((round(img.width * zoom), round(img.height * zoom)), Image.BICUBIC))
  span_x, span_y = big.shape[1] - width, big.shape[0] - height
  for i in range(n):
    t = i / max(n - 1, 1)
    x, y = round(span_x * t), round(span_y * 0.5 * (1 - np.cos(np.pi * t)))
    yield np.ascontiguousarray(big[y:y + height, x:x + width])


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("output", type=pathlib.Path, help="the clip to write (.mp4, .mkv, ...)")
  p.add_argument("--size", default="640x360", help="WIDTHxHEIGHT (default 640x360, 1080p after x3)")
  p.add_argument("--seconds", type=float, default=5.0)
  p.add_argument("--fps", type=int, default=30)
  p.add_argument("--picture", type=pathlib.Path, default=DEFAULT_PICTURE)
  p.add_argument("--no-audio", action="store_true")
  args = p.parse_args(argv)
  import imageio_ffmpeg  # the `video` extra

  try:
    width, height = (int(v) for v in args.size.lower().split("x"))
  except ValueError:
    p.error(f"--size must be WIDTHxHEIGHT, got {args.size!r}")
  if width % 2 or height % 2 or width < 16 or height < 16:
    p.error(f"--size must be even and at least 16x16 (H.264 with yuv420p), got {args.size}")
  n = max(1, round(args.seconds * args.fps))
  with atomic_io.replacing(args.output) as tmp:  # (the temp name keeps the suffix: ffmpeg picks the container)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(args.fps), "-i", "-"]
    if not args.no_audio:
      cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-c:a", "aac", "-shortest"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-t", f"{n / args.fps:.6f}", str(tmp)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    try:
      for f in frames(args.picture, width, height, n):
        proc.stdin.write(f.tobytes())
      proc.stdin.close()
      if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed with exit code {proc.returncode}")
    except BaseException:
      proc.kill()
      raise
  print(f"{args.output}: {n} frames of {width}x{height} at {args.fps} fps"
        f"{'' if args.no_audio else ' with a 440 Hz tone'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
