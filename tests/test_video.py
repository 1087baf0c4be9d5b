"""video: frames streamed in fixed batches, frame count / rate / audio kept, atomic output, one-line errors."""

import fractions
import importlib.util
import os
import pathlib
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from espcn_jax import video

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _make(path, size="32x24", rate="12", seconds="1", audio=True):
  cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}"]
  if audio:
    cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000"]
  cmd += ["-t", seconds, "-c:v", "libx264", "-pix_fmt", "yuv444p"]
  cmd += (["-c:a", "aac", "-shortest"] if audio else [])
  subprocess.run(cmd + [str(path)], check=True)
  return path


def _nearest(r):
  calls = []

  def fn(batch):
    calls.append(batch.shape)
    return batch.repeat(r, axis=1).repeat(r, axis=2)

  return fn, calls


class _NearestNet:
  """A stand-in for plane_net.PlaneNet: nearest-neighbour x r on the planes, recording the batch shapes."""
  is_rgb = False

  def __init__(self, r):
    self.scale, self.calls = r, []

  def luma(self, y):
    self.calls.append(y.shape)
    return y.repeat(self.scale, axis=1).repeat(self.scale, axis=2)

  def chroma(self, c, shift=(0.0, 0.0)):
    return c.repeat(self.scale, axis=2).repeat(self.scale, axis=3)


def test_exact_fps():
  assert video.exact_fps(29.97) == fractions.Fraction(30000, 1001)
  assert video.exact_fps(23.98) == fractions.Fraction(24000, 1001)
  assert video.exact_fps(25.0) == 25
  assert video.exact_fps(12.5) == fractions.Fraction(25, 2)


def test_upscale_video_keeps_frames_rate_and_audio(tmp_path):
  src = _make(tmp_path / "in.mp4")
  net = _NearestNet(2)
  times = video.frame_pipeline.StageTimes()
  n = video.upscale_video(src, tmp_path / "out" / "x2.mkv", net, frames_per_call=5, progress=False, times=times)
  assert n == 12
  assert net.calls == [(5, 24, 32)] * 4  # Y planes: a warm-up, then 3 batches, the last (2 frames) padded: 1 shape
  assert {"compile (first call)", "decode", "net", "colour", "encode"} <= set(times.seconds) and times.wall_s > 0
  meta, frames = video.open_video(tmp_path / "out" / "x2.mkv")
  got = list(frames)
  assert len(got) == 12 and got[0].shape == (48, 64, 3)
  assert meta["fps"] == 12 and meta["has_audio"]
  _, src_frames = video.open_video(src)
  first = next(src_frames)
  src_frames.close()
  # Content is the frames_fn's (up to lossy re-encoding).
  assert np.abs(got[0].astype(int) - first.repeat(2, 0).repeat(2, 1).astype(int)).mean() < 8
  assert sorted(os.listdir(tmp_path / "out")) == ["x2.mkv"]  # no temp file left


def test_a_function_on_rgb_frames_still_works(tmp_path):
  src = _make(tmp_path / "in.mp4", audio=False)
  fn, calls = _nearest(2)
  assert video.upscale_video(src, tmp_path / "o.mp4", fn, frames_per_call=5, progress=False) == 12
  assert calls == [(5, 24, 32, 3)] * 4  # a probe (for the scale), then 3 batches
  _, frames = video.open_video(tmp_path / "o.mp4")
  got = list(frames)
  _, src_frames = video.open_video(src)
  first = next(src_frames)
  src_frames.close()
  assert len(got) == 12 and np.abs(got[0].astype(int) - first.repeat(2, 0).repeat(2, 1).astype(int)).mean() < 14


def test_no_audio_and_odd_sizes(tmp_path):
  src = _make(tmp_path / "in.mp4", size="15x11", rate="10", audio=False)
  assert video.upscale_video(src, tmp_path / "o.mp4", _NearestNet(3), frames_per_call=lambda h, w: 4,
                             progress=False) == 10
  meta, frames = video.open_video(tmp_path / "o.mp4")
  assert meta["size"] == (46, 34)  # 45x33 padded to even for 4:2:0
  assert not meta["has_audio"] and meta["fps"] == 10
  got = list(frames)
  _, src_frames = video.open_video(src)
  want = np.pad(next(src_frames).repeat(3, 0).repeat(3, 1), ((0, 1), (0, 1), (0, 0)), mode="edge")
  src_frames.close()
  assert len(got) == 10 and np.abs(got[0].astype(int) - want.astype(int)).mean() < 14  # (4:2:0 twice, tiny)


def test_preset_is_passed_to_libx264_and_checked(tmp_path):
  src = _make(tmp_path / "in.mp4", audio=False)
  fn = _NearestNet(2)
  assert video.upscale_video(src, tmp_path / "fast.mp4", fn, frames_per_call=4, preset="ultrafast",
                             progress=False) == 12
  assert video.upscale_video(src, tmp_path / "slow.mp4", fn, frames_per_call=4, preset="veryslow",
                             progress=False) == 12
  # The presets reach the encoder: x264 writes its settings into the stream.
  assert b"subme=0" in (tmp_path / "fast.mp4").read_bytes() and b"subme=10" in (tmp_path / "slow.mp4").read_bytes()
  with pytest.raises(video.VideoError, match="o.mp4: unknown preset 'quick'"):
    video.upscale_video(src, tmp_path / "o.mp4", fn, preset="quick", progress=False)
  assert not (tmp_path / "o.mp4").exists()


def test_crf_is_passed_to_libx264_and_checked(tmp_path):
  src = _make(tmp_path / "in.mp4", audio=False)
  fn = _NearestNet(2)
  assert video.upscale_video(src, tmp_path / "default.mp4", fn, frames_per_call=4, progress=False) == 12
  assert video.upscale_video(src, tmp_path / "c18.mp4", fn, frames_per_call=4, crf=18, progress=False) == 12
  # x264 writes its rate factor into the stream: imageio-ffmpeg's quality 8 is CRF 10; --crf replaces it
  assert b"crf=10.0" in (tmp_path / "default.mp4").read_bytes() and b"crf=18.0" in (tmp_path / "c18.mp4").read_bytes()
  assert (tmp_path / "c18.mp4").stat().st_size < (tmp_path / "default.mp4").stat().st_size
  with pytest.raises(video.VideoError, match="o.mp4: the rate factor .crf. must be in 0-51, got 60"):
    video.upscale_video(src, tmp_path / "o.mp4", fn, crf=60, progress=False)
  assert not (tmp_path / "o.mp4").exists()


def test_errors_name_the_file(tmp_path):
  bad = tmp_path / "bad.mp4"
  bad.write_bytes(b"not a video")
  with pytest.raises(video.VideoError, match="bad.mp4"):
    video.open_video(bad)
  with pytest.raises(video.VideoError, match="no such file"):
    video.open_video(tmp_path / "missing.mp4")
  src = _make(tmp_path / "in.mp4", audio=False)
  fn, _ = _nearest(2)
  with pytest.raises(video.VideoError, match="overwrite"):
    video.upscale_video(src, src, fn, progress=False)
  with pytest.raises(video.VideoError, match="unknown video format"):
    video.upscale_video(src, tmp_path / "o.gif", fn, progress=False)
  assert not video.is_video(tmp_path / "a.png") and video.is_video(tmp_path / "a.WebM")


def test_demo_clip_script_makes_the_readme_clip(tmp_path):
  path = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "make_demo_clip.py"
  spec = importlib.util.spec_from_file_location("make_demo_clip", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  assert mod.main([str(tmp_path / "clip.mp4"), "--size", "64x36", "--seconds", "1", "--fps", "10"]) == 0
  meta, frames = video.open_video(tmp_path / "clip.mp4")
  got = list(frames)
  assert meta["size"] == (64, 36) and meta["fps"] == 10 and meta["has_audio"] and len(got) == 10
  assert np.abs(got[-1].astype(int) - got[0].astype(int)).mean() > 5  # it pans
  assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]  # no temp file left


def test_colour_tags_and_chroma_format_follow_the_input():
  assert video._colour_tags("yuv420p(tv, bt709, progressive)") == [
      "-color_range", "tv", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
  assert video._colour_tags("yuv420p(pc, bt470bg/bt470bg/smpte170m)") == [
      "-color_range", "pc", "-colorspace", "bt470bg", "-color_primaries", "bt470bg", "-color_trc", "smpte170m"]
  assert video._colour_tags("yuv420p(progressive)") == [] and video._colour_tags(None) == []
  assert video._is_420("yuv420p(tv, progressive)") and video._is_420("yuvj420p(pc)") and video._is_420(None)
  assert not video._is_420("yuv444p(progressive)") and not video._is_420("rgb24")


def test_output_is_tagged_like_the_input(tmp_path):
  src = tmp_path / "in.mp4"
  subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=32x24:rate=10",
                  "-t", "0.5", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries",
                  "bt709", "-color_trc", "bt709", "-color_range", "tv", str(src)], check=True)
  video.upscale_video(src, tmp_path / "o.mp4", _NearestNet(2), frames_per_call=4, progress=False)
  meta, frames = video.open_video(tmp_path / "o.mp4")
  frames.close()
  assert "bt709" in meta["pix_fmt"] and "tv" in meta["pix_fmt"]


class _ShiftRecorder(_NearestNet):
  """_NearestNet that records the chroma shift it is asked for."""

  def __init__(self, r):
    super().__init__(r)
    self.shifts = set()

  def chroma(self, c, shift=(0.0, 0.0)):
    self.shifts.add(tuple(shift))
    return super().chroma(c)


@pytest.mark.parametrize("tag, siting", [(None, "left"), ("center", "center"), ("topleft", "topleft")])
def test_chroma_siting_is_read_followed_and_kept(tmp_path, tag, siting):
  # H.264 that states nothing is "left" (the decoder says so); a stated siting is read from the stream. The chroma
  # is resized for that siting (plane_net.chroma_shift) and the output says the same siting.
  src = tmp_path / "in.mp4"
  subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=32x24:rate=10",
                  "-t", "0.3", "-c:v", "libx264", "-pix_fmt", "yuv420p"]
                 + (["-chroma_sample_location", tag] if tag else []) + [str(src)], check=True)
  assert video.chroma_siting(src) == siting
  net = _ShiftRecorder(3)
  video.upscale_video(src, tmp_path / "o.mkv", net, frames_per_call=2, progress=False)
  assert net.shifts == {video.plane_net.chroma_shift(siting, (2, 2), 3)}
  assert video.chroma_siting(tmp_path / "o.mkv") == siting
  assert video.chroma_siting(tmp_path / "missing.mp4") is None


def test_chroma_siting_is_not_followed_for_444(tmp_path):
  src = _make(tmp_path / "in.mp4", audio=False)  # yuv444p: the chroma is not subsampled, nothing to site
  net = _ShiftRecorder(2)
  video.upscale_video(src, tmp_path / "o.mp4", net, frames_per_call=4, progress=False)
  assert net.shifts == {(0.0, 0.0)}
