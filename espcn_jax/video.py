"""Video in, video out, through imageio-ffmpeg's bundled ffmpeg: frames streamed in fixed-size batches (memory stays
bounded for any length), frame rate kept, audio copied when there is some, the output written atomically.

    n = upscale_video("in.mp4", "out.mp4", frames_fn, frames_per_call=4)

`frames_fn` maps uint8 RGB frames (B, H, W, 3) to (B, rH, rW, 3), e.g. `inference.Upscaler(...).frames`.
"""

from __future__ import annotations

import contextlib
import fractions
import pathlib
import re
import subprocess
import time
import warnings
from typing import Callable

import numpy as np

from espcn_jax import atomic_io, frame_pipeline, plane_net

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
  """Returns (meta, frames): meta has fps (Fraction), size (W, H), has_audio, n_frames (estimate or None), codec,
  pix_fmt (ffmpeg's description, e.g. "yuv420p(tv, bt709, progressive)");
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
          "n_frames": int(round(duration * float(fps))) if duration else None, "codec": raw.get("codec"),
          "pix_fmt": raw.get("pix_fmt")}

  def frames():
    try:
      for buf in gen:
        yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    except RuntimeError as e:
      raise VideoError(f"{path}: error while decoding ({str(e).strip().splitlines()[-1]})") from e
    finally:
      gen.close()

  return meta, frames()


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


def _colour_tags(pix_fmt: str | None) -> list[str]:
  """ffmpeg output options that tag the encoded stream with the input's range and colour matrix / primaries /
  transfer (the planes pass through unconverted), from ffmpeg's description, e.g. "yuv420p(tv, bt709, progressive)"
  or "yuv420p(pc, bt470bg/bt470bg/smpte170m)". Nothing for what the input does not say."""
  if not pix_fmt or "(" not in pix_fmt:
    return []
  out = []
  for tok in (t.strip() for t in pix_fmt.split("(", 1)[1].rstrip(")").split(",")):
    if tok in ("tv", "pc"):
      out += ["-color_range", tok]
    elif tok.startswith(("bt", "smpte", "fcc", "ycgco", "unknown")) or "/" in tok:
      parts = tok.split("/")
      cs, prim, trc = (parts + parts[-1:] * 2)[:3] if len(parts) < 3 else parts[:3]
      for opt, v in (("-colorspace", cs), ("-color_primaries", prim), ("-color_trc", trc)):
        if v not in ("unknown", "reserved"):
          out += [opt, v]
  return out


def _is_420(pix_fmt: str | None) -> bool:
  """Whether the input's chroma is 4:2:0 (then it travels as such; else as 4:4:4, so no chroma detail is lost)."""
  return (pix_fmt or "yuv420p").startswith(("yuv420", "yuvj420", "yuva420", "nv12", "nv21"))


def chroma_siting(path) -> str | None:
  """Where the chroma samples of `path`'s first video stream sit, as ffmpeg names it (a key of plane_net.SITINGS,
  e.g. "left", H.264's default, which ffmpeg's decoder reports when the stream does not say), or None when ffmpeg
  does not know it (then they are taken as centred, as ffmpeg's own scaler and y4m writer do). From the stream's
  line in `ffmpeg -v verbose -i path`, e.g. "Video: h264 (High), ... yuv420p(tv, bt709, progressive, left), ..."."""
  import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
  try:
    with _quiet_fork():
      err = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "verbose", "-i",
                            str(path)], capture_output=True, text=True, errors="replace", timeout=60,
                           check=False).stderr
  except (OSError, subprocess.TimeoutExpired):
    return None
  for line in err.splitlines():
    if line.lstrip().startswith("Stream #") and "Video:" in line:
      for group in re.findall(r"\(([^()]*)\)", line.split("Video:", 1)[1]):
        last = group.split(",")[-1].strip()
        if last in plane_net.SITINGS:
          return last
      return None
  return None


def _open_planes(path: pathlib.Path, meta: dict, sub: tuple[int, int]):
  """Frames of `path` as uint8 planes (Y (H, W), CbCr (2, h, w)): yuv420p (sub (2, 2)) or yuv444p (sub (1, 1))."""
  import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
  w, h = meta["size"]
  pix_fmt, bits = ("yuv420p", 12) if sub == (2, 2) else ("yuv444p", 24)
  ch, cw = h // sub[0], w // sub[1]
  gen = imageio_ffmpeg.read_frames(str(path), pix_fmt=pix_fmt, bits_per_pixel=bits)
  try:
    with _quiet_fork():
      next(gen)
    for buf in gen:
      a = np.frombuffer(buf, np.uint8)
      yield a[:h * w].reshape(h, w), a[h * w:].reshape(2, ch, cw)
  except RuntimeError as e:
    raise VideoError(f"{path}: error while decoding ({str(e).strip().splitlines()[-1]})") from e
  finally:
    gen.close()


def _plane_batches(frames, n: int):
  """Groups (Y, CbCr) frames into batches of exactly n (the last padded with copies of its last frame, so the jitted
  net compiles once); yields (k real frames, Y (n, H, W), CbCr (n, 2, h, w))."""
  ys, cs = [], []
  for y, c in frames:
    ys.append(y)
    cs.append(c)
    if len(ys) == n:
      yield n, np.stack(ys), np.stack(cs)
      ys, cs = [], []
  if ys:
    k = len(ys)
    yield k, np.stack(ys + ys[-1:] * (n - k)), np.stack(cs + cs[-1:] * (n - k))


def upscale_video(src, dst, net, *, frames_per_call: int | Callable = 4, quality: float = 8,
                  preset: str | None = None, crf: float | None = None, progress: bool = True,
                  allow_partial: bool = False, notes: list | None = None,
                  times: frame_pipeline.StageTimes | None = None, depth: int = 2) -> int:
  """Upscales every frame of `src` into `dst` (format from its extension) with `net` (a plane_net.PlaneNet, or any
  object with its `scale`, `is_rgb`, `luma`, `chroma`, `rgb`; or a function on uint8 RGB frames (B, H, W, 3) ->
  (B, rH, rW, 3), e.g. `Upscaler.frames`, slower: plane_net.FramesFnNet); returns the number of frames.

  Decoding (ffmpeg), the net (+ chroma bicubic) and encoding (ffmpeg) overlap: frame_pipeline with `depth` batches
  queued between stages (memory stays flat); their times go to `times`. Frames travel as Y'CbCr 4:2:0 planes (4:4:4
  for other sources and odd sizes), never RGB; the output is tagged with the input's colour range and matrix, and
  4:2:0 chroma is resized where its samples sit (`chroma_siting`), the output tagged with that siting.
  Batches always have `frames_per_call` frames (the last is padded and cropped), so the jitted net compiles once;
  it may be a function of the frame size (h, w), e.g. `Upscaler.frames_per_call`.
  Audio is stream-copied when `dst` has the same container as `src` (or is .mkv), else re-encoded with the
  container's default codec. Odd output sizes are padded by one edge pixel (4:2:0 encoders need even sizes).
  `preset`: libx264's speed / file-size trade-off for .mp4, .mkv and .mov outputs (None: ffmpeg's default, medium;
  at 1080p on 2 CPU cores medium encodes ~28 frames/s, veryfast ~75, at about the same quality); ignored for the
  other formats. `crf`: libx264's constant rate factor (0-51; lower is better and larger) for those outputs, instead
  of `quality` (imageio-ffmpeg's 0-10 scale; its 8 is CRF 10, near-transparent; libx264's own default is CRF 23,
  files 6-7x smaller).
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
  if crf is not None and not 0 <= crf <= 51:
    raise VideoError(f"{dst}: the rate factor (crf) must be in 0-51, got {crf:g}")
  meta, probe = open_video(src)
  probe.close()
  if callable(frames_per_call):
    frames_per_call = frames_per_call(meta["size"][1], meta["size"][0])
  with atomic_io.replacing(dst) as tmp:
    return _encode(src, dst, tmp, meta, net, int(frames_per_call), quality, crf, preset, progress,
                   allow_partial, notes, times, depth)


def _start_writer(src, tmp, meta, size, pix_fmt_in, quality, crf, preset, siting=None):
  """ffmpeg encoding to `tmp`: imageio-ffmpeg's `quality`, or libx264's rate factor `crf` where it is not None;
  the stream tagged with the chroma `siting` (4:2:0) where it is given."""
  import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
  ext = tmp.suffix.lower()
  x264 = _CODECS[ext] == "libx264"
  if crf is not None and x264:
    quality = None  # the rate factor below instead
  audio = {}
  if meta["has_audio"]:
    same = src.suffix.lower() == ext or ext == ".mkv"
    audio = {"audio_path": str(src), "audio_codec": "copy" if same else None}
  params = (["-preset", preset] if preset and x264 else []) + (["-crf", f"{crf:g}"] if crf is not None and x264 else [])
  params += _colour_tags(meta.get("pix_fmt")) + (["-chroma_sample_location", siting] if siting else [])
  writer = imageio_ffmpeg.write_frames(
      tmp, size, pix_fmt_in=pix_fmt_in, fps=meta["fps"], codec=_CODECS[ext], quality=quality, macro_block_size=1,
      ffmpeg_log_level="error", output_params=params or None, **audio)
  with _quiet_fork():
    writer.send(None)
  return writer


def _encode(src, dst, tmp, meta, net, frames_per_call, quality, crf, preset, progress, allow_partial, notes, times,
            depth) -> int:
  """The frames of `src` through `net` into the temp file `tmp` of `dst` (same suffix), overlapped."""
  w, h = meta["size"]
  if not hasattr(net, "luma") and callable(net):  # a function on RGB frames (the interface before PlaneNet)
    net = plane_net.FramesFnNet(net, np.zeros((frames_per_call, h, w, 3), np.uint8))
  r = net.scale
  sub = (2, 2) if w % 2 == 0 and h % 2 == 0 and _is_420(meta.get("pix_fmt")) else (1, 1)
  # 4:2:0 chroma is resized where its samples sit and the output keeps (and states) that siting
  siting = (chroma_siting(src) or "center") if sub == (2, 2) else "center"  # 4:4:4: no siting to follow
  oh, ow = r * h + (r * h) % 2, r * w + (r * w) % 2
  times = times if times is not None else frame_pipeline.StageTimes()
  writer = _start_writer(src, tmp, meta, (ow, oh), "yuv420p" if sub == (2, 2) else "yuv444p", quality, crf, preset,
                         siting if sub == (2, 2) else None)
  bar = None
  n_done = 0
  try:
    if progress:
      from tqdm import tqdm  # pylint: disable=import-outside-toplevel
      bar = tqdm(total=meta["n_frames"], desc=src.name, unit="frame", leave=False)

    t_start = time.perf_counter()
    if hasattr(net, "luma"):
      plane_net.warm_up(net, frames_per_call, h, w, sub, times, siting)

    def process(item, tm):
      k, y, c = item
      yo, co = plane_net.upscale_planes(net, y, c, sub, (oh, ow), tm, siting)
      return k, yo, co

    def sink(item):
      nonlocal n_done
      k, yo, co = item
      for i in range(k):
        writer.send(yo[i].data if yo[i].flags.c_contiguous else yo[i].tobytes())
        writer.send(np.ascontiguousarray(co[i]).data)
      n_done += k
      if bar is not None:
        bar.update(k)

    frame_pipeline.run(_plane_batches(_open_planes(src, meta, sub), frames_per_call), process, sink,
                       depth=depth, times=times, names=("decode", "encode"))
    if n_done == 0:
      raise VideoError(f"{src}: no video frames in this file")
    _check_complete(src, meta, n_done, allow_partial, notes)
    t0 = time.perf_counter()
    try:
      writer.close()  # the encoder's tail: the frames it still holds
    except (RuntimeError, OSError) as e:
      raise VideoError(f"{dst}: ffmpeg failed to write ({str(e).strip().splitlines()[-1]})") from e
    times.add("encode: final flush", time.perf_counter() - t0)
    times.wall_s = time.perf_counter() - t_start  # all of it: compiling, the overlapped stages, the final flush
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
