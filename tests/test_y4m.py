"""y4m: header parsing (one-line errors on bad headers), frames of 4:2:0 / 4:4:4 / mono, writing back; stream."""

import io

import numpy as np
import pytest

from espcn_jax import frame_pipeline, plane_net, stream, y4m


def _stream(header: bytes, frames):
  buf = io.BytesIO()
  buf.write(header)
  for planes in frames:
    buf.write(b"FRAME\n")
    for p in planes:
      buf.write(np.asarray(p, np.uint8).tobytes())
  buf.seek(0)
  return buf


def test_header_fields_are_kept_and_resized():
  h = y4m.parse_header(b"YUV4MPEG2 W640 H360 F30000:1001 It A1:1 C420mpeg2 XYSCSS=420MPEG2 XCOLORRANGE=FULL\n", "s")
  assert (h.width, h.height, h.fps, h.colorspace, h.subsampling) == (640, 360, (30000, 1001), "420mpeg2", (2, 2))
  assert h.encode() == b"YUV4MPEG2 W640 H360 F30000:1001 It A1:1 C420mpeg2 XYSCSS=420MPEG2 XCOLORRANGE=FULL\n"
  assert h.with_size(1920, 1080).encode() == (b"YUV4MPEG2 W1920 H1080 F30000:1001 It A1:1 C420mpeg2 "
                                               b"XYSCSS=420MPEG2 XCOLORRANGE=FULL\n")
  d = y4m.parse_header(b"YUV4MPEG2 W5 H3\n", "s")  # C defaults to 420jpeg; odd sizes round the chroma up
  assert d.colorspace == "420jpeg" and d.chroma_shape() == (2, 3) and d.frame_bytes() == 15 + 2 * 6
  assert y4m.parse_header(b"YUV4MPEG2 W4 H2 C444\n", "s").chroma_shape() == (2, 4)
  assert y4m.parse_header(b"YUV4MPEG2 W4 H2 C422\n", "s").chroma_shape() == (2, 2)
  assert y4m.parse_header(b"YUV4MPEG2 W4 H2 Cmono\n", "s").frame_bytes() == 8


@pytest.mark.parametrize("line, match", [
    (b"RIFF....WAVEfmt \n", "in.y4m: not a y4m stream"),
    (b"YUV4MPEG2X W4 H2\n", "in.y4m: not a y4m stream"),
    (b"YUV4MPEG2 H2 F25:1\n", "in.y4m: y4m header has no W"),
    (b"YUV4MPEG2 W4 F25:1\n", "in.y4m: y4m header has no H"),
    (b"YUV4MPEG2 W-4 H2\n", r"in.y4m: y4m header has a bad W-4"),
    (b"YUV4MPEG2 W4 H0\n", r"in.y4m: y4m header has a bad H0"),
    (b"YUV4MPEG2 W4 H2 F25\n", r"in.y4m: y4m header has a bad frame rate F25 "),
    (b"YUV4MPEG2 W4 H2 F25:0\n", r"in.y4m: y4m header has a bad frame rate F25:0"),
    (b"YUV4MPEG2 W4 H2 C420p10\n", r"in.y4m: y4m colour space C420p10 is not supported"),
    (b"YUV4MPEG2 W4 H2 C444alpha\n", r"in.y4m: y4m colour space C444alpha is not supported"),
    (b"YUV4MPEG2 W4 H2", r"in.y4m: y4m header line not terminated"),
    (b"YUV4MPEG2 W4 H2 \xff\n", r"in.y4m: y4m header is not ASCII"),
])
def test_bad_headers_give_one_line_errors(line, match):
  with pytest.raises(y4m.Y4MError, match=match) as e:
    y4m.read_header(io.BytesIO(line), "in.y4m")
  assert "\n" not in str(e.value)


def test_empty_stream_and_bad_frames():
  with pytest.raises(y4m.Y4MError, match="stdin: empty stream"):
    y4m.read_header(io.BytesIO(b""), "stdin")
  h = y4m.parse_header(b"YUV4MPEG2 W4 H2 C444\n", "s")
  ok = np.zeros(24, np.uint8).tobytes()
  frames = y4m.read_frames(io.BytesIO(b"FRAME\n" + ok + b"FRAME\n" + ok[:10]), h, "s")
  assert next(frames)[0].shape == (2, 4)
  with pytest.raises(y4m.Y4MError, match=r"s: frame 1: truncated \(10 of 24 bytes\)"):
    next(frames)
  with pytest.raises(y4m.Y4MError, match="s: frame 0: expected a FRAME line"):
    next(y4m.read_frames(io.BytesIO(b"FRAMES\n" + ok), h, "s"))


def test_frames_round_trip_in_order():
  rng = np.random.default_rng(0)
  frames = [(rng.integers(0, 256, (3, 5)), rng.integers(0, 256, (2, 3)), rng.integers(0, 256, (2, 3)))
            for _ in range(3)]
  src = _stream(b"YUV4MPEG2 W5 H3 F25:1 C420jpeg\n", frames)
  h = y4m.read_header(src, "s")
  got = list(y4m.read_frames(src, h, "s"))
  assert len(got) == 3
  out = io.BytesIO()
  y4m.write_header(out, h)
  for (y, cb, cr), want in zip(got, frames):
    for p, q in zip((y, cb, cr), want):
      np.testing.assert_array_equal(p, q)
    y4m.write_frame(out, (y, cb, cr))
  assert out.getvalue() == src.getvalue()


class _Nearest:
  is_rgb = False

  def __init__(self, r):
    self.scale = r

  def luma(self, y):
    return y.repeat(self.scale, 1).repeat(self.scale, 2)

  def chroma(self, c, shift=(0.0, 0.0)):
    return c.repeat(self.scale, 2).repeat(self.scale, 3)


@pytest.mark.parametrize("cs, shape", [("420jpeg", (2, 3)), ("444", (3, 5)), ("mono", None)])
def test_upscale_y4m_keeps_header_and_frames(cs, shape):
  rng = np.random.default_rng(1)
  frames = [(rng.integers(0, 256, (3, 5)),) + (() if shape is None else
                                                (rng.integers(0, 256, shape), rng.integers(0, 256, shape)))
            for _ in range(4)]
  src = _stream(f"YUV4MPEG2 W5 H3 F24000:1001 Ip A1:1 C{cs} XFOO=1\n".encode(), frames)
  out = io.BytesIO()
  times = frame_pipeline.StageTimes()
  assert stream.upscale_y4m(src, out, _Nearest(2), name="s", times=times) == 4
  out.seek(0)
  h = y4m.read_header(out, "out")
  assert h.tokens == ("W10", "H6", "F24000:1001", "Ip", "A1:1", f"C{cs}", "XFOO=1")
  got = list(y4m.read_frames(out, h, "out"))
  assert len(got) == 4
  for g, f in zip(got, frames):  # order kept, Y x2, chroma x2 cropped to ceil(6 / 2) x ceil(10 / 2) for 4:2:0
    np.testing.assert_array_equal(g[0], f[0].repeat(2, 0).repeat(2, 1))
    if shape is not None:
      ch, cw = h.chroma_shape()
      np.testing.assert_array_equal(g[1], f[1].repeat(2, 0).repeat(2, 1)[:ch, :cw])
      np.testing.assert_array_equal(g[2], f[2].repeat(2, 0).repeat(2, 1)[:ch, :cw])
    else:
      assert g[1] is None
  assert {"read", "net", "write"} <= set(times.seconds)


def test_upscale_y4m_stops_on_a_bad_frame_and_a_closed_output():
  src = _stream(b"YUV4MPEG2 W4 H2 C444\n", [(np.zeros((2, 4)),) * 3])
  src = io.BytesIO(src.getvalue() + b"FRAME\n" + b"\0" * 5)
  with pytest.raises(y4m.Y4MError, match="s: frame 1: truncated"):
    stream.upscale_y4m(src, io.BytesIO(), _Nearest(2), name="s")

  class Closed(io.BytesIO):
    def write(self, b):
      if self.tell() > 0:
        raise BrokenPipeError(32, "Broken pipe")
      return super().write(b)

  src = _stream(b"YUV4MPEG2 W4 H2 C444\n", [(np.zeros((2, 4)),) * 3] * 3)
  with pytest.raises(stream.OutputClosed, match="closed by its reader after 0 frame"):
    stream.upscale_y4m(src, Closed(), _Nearest(2), name="s")


@pytest.mark.parametrize("cs, siting", [("420jpeg", "center"), ("420", "center"), ("420mpeg2", "left"),
                                        ("420paldv", "topleft"), ("422", "center")])
def test_upscale_y4m_resizes_chroma_where_the_c_tag_sites_it(cs, siting):
  assert y4m.parse_header(f"YUV4MPEG2 W4 H2 C{cs}\n".encode(), "s").siting == siting
  shifts = []

  class Recorder(_Nearest):
    def chroma(self, c, shift=(0.0, 0.0)):
      shifts.append(tuple(shift))
      return super().chroma(c)

  h = y4m.parse_header(f"YUV4MPEG2 W4 H2 C{cs}\n".encode(), "s")
  ch, cw = h.chroma_shape()
  src = _stream(f"YUV4MPEG2 W4 H2 C{cs}\n".encode(), [(np.zeros((2, 4)), np.zeros((ch, cw)), np.zeros((ch, cw)))])
  assert stream.upscale_y4m(src, io.BytesIO(), Recorder(3), name="s") == 1
  assert set(shifts) == {plane_net.chroma_shift(siting, h.subsampling, 3)}
