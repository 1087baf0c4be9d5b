"""Video in, video out, through imageio-ffmpeg's bundled ffmpeg: frames streamed in fixed-size batches (memory stays
bounded for any length), frame rate kept, audio copied when there is some, the output written atomically.

    n = upscale_video("in.mp4", "out.mp4", frames_fn, frames_per_call=4)

`frames_fn` maps uint8 RGB frames (B, H, W, 3) to (B, rH, rW, 3), e.g. `inference.Upscaler(...).frames`.
"""

from __future__ import annotations

import contextlib
import fractions
import pathlib
import warnings
from typing import Callable

import numpy as np

from espcn_jax import atomic_io

VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
_CODECS = {".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}


class VideoError(ValueError):
  """A video that cannot be read or written; the message names the file and the problem."""


@contextlib.contextmanager
def _quiet_fork():
  """ffmpeg runs as a subprocess (fork + exec, safe); silence JAX's generic warning about os.fork()."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
    yield


def is_video(path) -> bool:
  return pathlib.Path(path).suffix.lower() in VIDEO_EXTS


def exact_fps(fps: float) -> fractions.Fraction:
  """ffmpeg prints rates rounded (29.97); snap NTSC-style rates back to n*1000/1001, else the nearest simple ratio."""
  f = float(fps)
  n = round(f * 1.001)
  if abs(f - round(f)) > 1e-3 and abs(f * 1.001 - n) < 5e-3:
    return fractions.Fraction(n * 1000, 1001)
  return fractions.Fraction(f).limit_denominator(1001)


def open_video(path):
  """Returns (meta, frames): meta has fps (Fraction), size (W, H), has_audio, n_frames (estimate or None);
  frames yields uint8 (H, W, 3) arrays. Raises VideoError naming the file."""
  import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(path)
  if not path.is_file():
    raise VideoError(f"{path}: no such file")
  try:
    gen = imageio_ffmpeg.read_frames(str(path))
    with _quiet_fork():
      raw = next(gen)
  except (RuntimeError, OSError, StopIteration) as e:
    if "does not contain any stream" in str(e):  # ffmpeg found nothing to decode: the input's fault
      raise VideoError(f"{path}: no video frames in this file (no video stream, or an empty one)") from None
    raise VideoError(f"{path}: not a readable video ({str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__})") from e
  w, h = raw["size"]
  fps = exact_fps(raw.get("fps") or 25.0)
  duration = raw.get("duration")
  meta = {"fps": fps, "size": (w, h), "has_audio": bool(raw.get("audio_codec")),
          "n_frames": int(round(duration * float(fps))) if duration else None, "codec": raw.get("codec")}

  def frames():
    try:
      for buf in gen:
        yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    except RuntimeError as e:
      raise VideoError(f"{path}: error while decoding ({str(e).strip().splitlines()[-1]})") from e
    finally:
      gen.close()

  return meta, frames()


def _batches(frames, n: int):
  """Groups frames into (k, H, W, 3) arrays with k = n except maybe the last."""
  buf = []
  for f in frames:
    buf.append(f)
    if len(buf) == n:
      yield np.stack(buf)
      buf = []
  if buf:
    yield np.stack(buf)


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def _check_complete(src: pathlib.Path, meta: dict, n_read: int, allow_partial: bool, notes: list | None) -> None:
  """A video that gives clearly fewer frames than its container announces (duration x rate) is truncated or
  damaged: an error, or with `allow_partial` a note. Up to 2 frames or 5% less is normal rounding / audio."""
  expected = meta.get("n_frames")
  if not expected or n_read >= expected - max(2, 0.05 * expected):
    return
  msg = (f"only {n_read} of ~{expected} frames could be read ({float(meta['fps']):.3g} fps for the container's "
         f"{expected / float(meta['fps']):.2f} s): truncated or damaged")
  if not allow_partial:
    raise VideoError(f"{src}: {msg}; nothing written (--allow-partial keeps the frames that were read)")
  if notes is not None:
    notes.append(f"{src}: {msg}; kept the {n_read} frames read (--allow-partial)")


def upscale_video(src, dst, frames_fn: Callable, *, frames_per_call: int | Callable = 4, quality: float = 8,
                  preset: str | None = None, progress: bool = True, allow_partial: bool = False,
                  notes: list | None = None) -> int:
  """Upscales every frame of `src` into `dst` (format from its extension); returns the number of frames.

  Batches always have `frames_per_call` frames (the last is padded and cropped), so the jitted net compiles once;
  it may be a function of the frame size (h, w), e.g. `Upscaler.frames_per_call`.
  Audio is stream-copied when `dst` has the same container as `src` (or is .mkv), else re-encoded with the
  container's default codec. Odd output sizes are padded by one edge pixel (4:2:0 encoders need even sizes).
  `preset`: libx264's speed / file-size trade-off for .mp4, .mkv and .mov outputs (None: ffmpeg's default, medium;
  at 1080p on 2 CPU cores medium encodes ~28 frames/s, veryfast ~75, at about the same quality); ignored for the
  other formats.
  Fewer frames than the container announces raise VideoError (nothing is written) unless `allow_partial`; then a
  note is appended to `notes`. The output appears only when complete (espcn_jax.atomic_io).
  """
  src, dst = pathlib.Path(src), pathlib.Path(dst)
  ext = dst.suffix.lower()
  if ext not in VIDEO_EXTS:
    raise VideoError(f"{dst}: unknown video format {ext!r}; use one of {', '.join(VIDEO_EXTS)}")
  if atomic_io.same_file(dst, src):
    raise VideoError(f"{dst}: refusing to overwrite the input")
  if preset is not None and preset not in X264_PRESETS:
    raise VideoError(f"{dst}: unknown preset {preset!r}; use one of {', '.join(X264_PRESETS)}")
  meta, frames = open_video(src)
  if callable(frames_per_call):
    frames_per_call = frames_per_call(meta["size"][1], meta["size"][0])
  with atomic_io.replacing(dst) as tmp:
    return _encode(src, dst, tmp, meta, frames, frames_fn, frames_per_call, quality, preset, progress,
                   allow_partial, notes)


def _encode(src, dst, tmp, meta, frames, frames_fn, frames_per_call, quality, preset, progress, allow_partial,
            notes) -> int:
  """The frames of `src` through `frames_fn` into the temp file `tmp` of `dst` (same suffix)."""
  import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
  ext = tmp.suffix.lower()
  writer = None
  bar = None
  n_done = 0
  try:
    if progress:
      from tqdm import tqdm  # pylint: disable=import-outside-toplevel
      bar = tqdm(total=meta["n_frames"], desc=src.name, unit="frame", leave=False)
    for batch in _batches(frames, frames_per_call):
      k = len(batch)
      if k < frames_per_call:
        batch = np.concatenate([batch, np.zeros((frames_per_call - k,) + batch.shape[1:], np.uint8)])
      out = np.asarray(frames_fn(batch))[:k]
      oh, ow = out.shape[1:3]
      if oh % 2 or ow % 2:
        out = np.pad(out, ((0, 0), (0, oh % 2), (0, ow % 2), (0, 0)), mode="edge")
      if writer is None:
        audio = {}
        if meta["has_audio"]:
          same = src.suffix.lower() == ext or ext == ".mkv"
          audio = {"audio_path": str(src), "audio_codec": "copy" if same else None}
        writer = imageio_ffmpeg.write_frames(
            tmp, (out.shape[2], out.shape[1]), fps=meta["fps"], codec=_CODECS[ext], quality=quality,
            macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-preset", preset] if preset and _CODECS[ext] == "libx264" else None, **audio)
        with _quiet_fork():
          writer.send(None)
      for f in out:
        writer.send(np.ascontiguousarray(f))
      n_done += k
      if bar is not None:
        bar.update(k)
    if writer is None:
      raise VideoError(f"{src}: no video frames in this file")
    _check_complete(src, meta, n_done, allow_partial, notes)
    try:
      writer.close()
    except (RuntimeError, OSError) as e:
      raise VideoError(f"{dst}: ffmpeg failed to write ({str(e).strip().splitlines()[-1]})") from e
    writer = None
  finally:
    if bar is not None:
      bar.close()
    if writer is not None:
      try:
        writer.close()
      except Exception:  # pylint: disable=broad-except
        pass
  return n_done
