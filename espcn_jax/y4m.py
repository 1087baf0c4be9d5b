"""YUV4MPEG2 (y4m) streams: the uncompressed format `ffmpeg -f yuv4mpegpipe` writes and ffplay / mpv read.

    header = y4m.read_header(stdin, "stdin")          # W H F I A C X... ; y4m.Y4MError (one line) if malformed
    for y, cb, cr in y4m.read_frames(stdin, header, "stdin"):   # uint8 planes (cb, cr are None for Cmono)
      ...
    y4m.write_header(stdout, header.with_size(3 * header.width, 3 * header.height))
    y4m.write_frame(stdout, (y, cb, cr))

A stream is one header line `YUV4MPEG2 W640 H360 F30:1 Ip A1:1 C420jpeg XYSCSS=420JPEG`, then frames, each a line
`FRAME` (maybe with parameters) and the planes Y, Cb, Cr, 8 bits per sample. Colour spaces read: 420jpeg (the
default), 420mpeg2, 420paldv, 420, 422, 444, mono; the others (high bit depth, alpha) are refused. The header's
fields are kept in order; `with_size` changes only W and H.
"""

from __future__ import annotations

import dataclasses

import numpy as np

MAGIC = b"YUV4MPEG2"
_MAX_LINE = 4096
# C tag -> chroma subsampling (vertical, horizontal), None for no chroma
SUBSAMPLING = {"420jpeg": (2, 2), "420mpeg2": (2, 2), "420paldv": (2, 2), "420": (2, 2), "422": (1, 2),
               "444": (1, 1), "mono": None}
# C tag -> chroma siting (ffmpeg's names, as plane_net.SITINGS); the other tags are centred
SITINGS = {"420mpeg2": "left", "420paldv": "topleft"}


class Y4MError(ValueError):
  """A malformed or unsupported y4m stream; the message names the stream and the problem (one line)."""


@dataclasses.dataclass(frozen=True)
class Header:
  """A y4m stream header: `tokens` are its fields in order, e.g. ("W640", "H360", "F30:1", "C420jpeg")."""
  tokens: tuple[str, ...]

  def _get(self, key: str, default: str | None = None) -> str | None:
    for t in self.tokens:
      if t[0] == key:
        return t[1:]
    return default

  @property
  def width(self) -> int:
    return int(self._get("W"))

  @property
  def height(self) -> int:
    return int(self._get("H"))

  @property
  def colorspace(self) -> str:
    return self._get("C", "420jpeg")

  @property
  def fps(self) -> tuple[int, int]:
    num, den = self._get("F", "25:1").split(":")
    return int(num), int(den)

  @property
  def subsampling(self) -> tuple[int, int] | None:
    return SUBSAMPLING[self.colorspace]

  @property
  def siting(self) -> str:
    """Where the chroma samples sit (a key of plane_net.SITINGS): 420mpeg2 "left", 420paldv "topleft", else
    "center" (420jpeg and 420 as ffmpeg reads them; 4:2:2 and 4:4:4 are taken as centred too)."""
    return SITINGS.get(self.colorspace, "center")

  def chroma_shape(self) -> tuple[int, int] | None:
    """(height, width) of the Cb and Cr planes (odd sizes round up), None for mono."""
    sub = self.subsampling
    return None if sub is None else (-(-self.height // sub[0]), -(-self.width // sub[1]))

  def frame_bytes(self) -> int:
    c = self.chroma_shape()
    return self.width * self.height + (0 if c is None else 2 * c[0] * c[1])

  def with_size(self, width: int, height: int) -> "Header":
    return Header(tuple(f"W{width}" if t[0] == "W" else f"H{height}" if t[0] == "H" else t for t in self.tokens))

  def encode(self) -> bytes:
    return b" ".join([MAGIC] + [t.encode("ascii") for t in self.tokens]) + b"\n"


def parse_header(line: bytes, name: str) -> Header:
  """The header line (without or with its newline) -> Header; Y4MError naming `name` if it is not valid."""
  if not line.startswith(MAGIC):
    raise Y4MError(f"{name}: not a y4m stream (it starts with {line[:16]!r}, not {MAGIC.decode()})")
  if not line.endswith(b"\n"):
    raise Y4MError(f"{name}: y4m header line not terminated (at most {_MAX_LINE} bytes, then a newline)")
  try:
    fields = line[len(MAGIC):].decode("ascii").split()
  except UnicodeDecodeError:
    raise Y4MError(f"{name}: y4m header is not ASCII") from None
  if line[len(MAGIC):len(MAGIC) + 1] not in (b" ", b"\n"):
    raise Y4MError(f"{name}: not a y4m stream (no space after {MAGIC.decode()})")
  h = Header(tuple(fields))
  for key in "WH":
    v = h._get(key)  # pylint: disable=protected-access
    if v is None:
      raise Y4MError(f"{name}: y4m header has no {key} (frame {'width' if key == 'W' else 'height'})")
    if not v.isdigit() or not 0 < int(v) <= 65536:
      raise Y4MError(f"{name}: y4m header has a bad {key}{v} (a positive integer up to 65536)")
  f = h._get("F")  # pylint: disable=protected-access
  if f is not None:
    num, _, den = f.partition(":")
    if not (num.isdigit() and den.isdigit() and int(num) > 0 and int(den) > 0):
      raise Y4MError(f"{name}: y4m header has a bad frame rate F{f} (expected F<num>:<den>, e.g. F30000:1001)")
  if h.colorspace not in SUBSAMPLING:
    raise Y4MError(f"{name}: y4m colour space C{h.colorspace} is not supported (8-bit only: "
                   f"{', '.join('C' + c for c in SUBSAMPLING)})")
  return h


def read_header(stream, name: str) -> Header:
  line = stream.readline(_MAX_LINE)
  if not line:
    raise Y4MError(f"{name}: empty stream (no y4m header)")
  return parse_header(line, name)


def _read_exact(stream, n: int) -> bytes:
  chunks, got = [], 0
  while got < n:
    b = stream.read(n - got)
    if not b:
      break
    chunks.append(b)
    got += len(b)
  return b"".join(chunks)


def read_frames(stream, header: Header, name: str):
  """Yields (y_HxW, cb, cr) uint8 planes (cb and cr None for Cmono) until the end of the stream; Y4MError naming
  `name` and the frame for a bad FRAME line or a truncated frame."""
  h, w = header.height, header.width
  c = header.chroma_shape()
  size = header.frame_bytes()
  i = 0
  while True:
    line = stream.readline(_MAX_LINE)
    if not line:
      return
    if not (line.startswith(b"FRAME") and line.endswith(b"\n") and line[5:6] in (b" ", b"\n")):
      raise Y4MError(f"{name}: frame {i}: expected a FRAME line, got {line[:16]!r}")
    data = _read_exact(stream, size)
    if len(data) < size:
      raise Y4MError(f"{name}: frame {i}: truncated ({len(data)} of {size} bytes)")
    buf = np.frombuffer(data, np.uint8)
    y = buf[:h * w].reshape(h, w)
    if c is None:
      yield y, None, None
    else:
      n = c[0] * c[1]
      yield y, buf[h * w:h * w + n].reshape(c), buf[h * w + n:].reshape(c)
    i += 1


def write_header(stream, header: Header) -> None:
  stream.write(header.encode())


def write_frame(stream, planes) -> None:
  """Writes one frame: the FRAME line and the planes (None planes are left out: Cmono)."""
  stream.write(b"FRAME\n")
  for p in planes:
    if p is not None:
      stream.write(np.ascontiguousarray(p, np.uint8).data)
