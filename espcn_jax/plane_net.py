"""ESPCN on video frames as Y'CbCr planes, the way decoders hand them out and encoders take them (no RGB round
trip): Y through the net, Cb and Cr by bicubic at their own (subsampled) resolution.

    net = PlaneNet(params, spec)                       # jitted once per frame shape
    y_hr = net.luma(y_BxHxW)                           # uint8 -> uint8 (B, rH, rW)
    c_hr = net.chroma(c_Bx2xhxw, chroma_shift("left", (2, 2), 3))   # uint8 Cb, Cr -> uint8 (B, 2, rh, rw)
    y_hr, c_hr = net.rgb(y_BxHxW, c_Bx2xhxw, (2, 2), "left")       # an RGB net: whole frames

The luma net was trained on Y = MATLAB's rgb2ycbcr (BT.601, studio swing, 16-235) divided by 255: the 8-bit Y plane
of a limited-range video divided by 255 is that quantity, so it goes straight in. Chroma planes are resized by
MATLAB's bicubic, as `Upscaler.image` resizes CbCr, at the positions where their samples sit: 4:2:0 chroma is
"center" (JPEG, MPEG-1, y4m's 420jpeg), "left" (H.264 / HEVC / MPEG-2's default, y4m's 420mpeg2), "topleft" (y4m's
420paldv), ... (`SITINGS`, ffmpeg's names); the output keeps the input's siting. Resizing "left" chroma as if it
were centred would move the colours by (r - 1) / 2 output pixels against the luma (1 pixel at x3).
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np

from espcn_jax import image_ops, inference, model


def _to_uint8(x):
  return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)


def _luma(params, y_BxHxW, spec, dtype, method):
  x = y_BxHxW.astype(jnp.float32)[..., None] / 255.0
  return _to_uint8(inference.forward(params, x, spec, dtype=dtype, method=method))[..., 0]


# Where a 4:2:0 chroma sample sits, (row, column) in luma pixels from the centre of the top-left luma pixel of its
# 2x2 block; keys are ffmpeg's names (AVChromaLocation; `ffmpeg -v verbose -i` prints them, -chroma_sample_location
# takes them).
SITINGS = {"center": (0.5, 0.5), "left": (0.5, 0.0), "topleft": (0.0, 0.0), "top": (0.0, 0.5),
           "bottomleft": (1.0, 0.0), "bottom": (1.0, 0.5)}


def _positions(siting: str, sub) -> tuple[float, float]:
  """SITINGS[siting] on the axes subsampled by 2; an axis that is not subsampled has its sample on the luma pixel."""
  if siting not in SITINGS:
    raise ValueError(f"unknown chroma siting {siting!r}; use one of {', '.join(SITINGS)}")
  return tuple(p if s == 2 else (s - 1) / 2 for p, s in zip(SITINGS[siting], sub))


def chroma_shift(siting: str, sub, scale: int) -> tuple[float, float]:
  """The `image_ops.imresize` shift (rows, columns; input chroma pixels) that upscales chroma planes subsampled by
  `sub` and sited at `siting` by `scale` onto the chroma of the upscaled frame, sited the same way.

  A sample at luma offset p in its block of s luma pixels lies at luma s i + p; output sample k at output luma s k + p,
  i.e. input luma (s k + p + 1/2) / r - 1/2, i.e. input chroma (k + 1/2) / r - 1/2 + (1 - 1/r) (1/2 - (p + 1/2) / s),
  where MATLAB's imresize samples (k + 1/2) / r - 1/2: the shift is the last term, 0 for centred chroma, +1/6 for
  "left" at x3.
  """
  return tuple((1.0 - 1.0 / scale) * (0.5 - (p + 0.5) / s) for p, s in zip(_positions(siting, sub), sub))


def _chroma(c_BxKxhxw, scale, shift):
  b, k, h, w = c_BxKxhxw.shape
  x = c_BxKxhxw.reshape(b * k, h, w, 1).astype(jnp.float32) / 255.0
  return _to_uint8(image_ops.imresize(x, scale=scale, shift=shift)).reshape(b, k, h * scale, w * scale)


def _down_sited(x, axis: int, s: int, p: float, n: int):
  """`n` chroma samples from luma-grid values along `axis`, sample k at luma s k + p: the mean of its block when it
  is centred (p = (s - 1) / 2), else (s = 2, p = 0 or 1) the [1/4, 1/2, 1/4] filter around luma 2 k + p; the
  edges repeated."""
  if s == 1:
    return x
  m = x.shape[axis]
  width = lambda lo, hi: [(0, 0)] * axis + [(lo, hi)] + [(0, 0)] * (x.ndim - axis - 1)
  take = lambda a, start: jax.lax.slice_in_dim(a, start, start + s * (n - 1) + 1, stride=s, axis=axis)
  if p == (s - 1) / 2:
    xp = jnp.pad(x, width(0, s * n - m), mode="edge")
    return sum(take(xp, j) for j in range(s)) / s
  c = int(p)
  xp = jnp.pad(x, width(1, max(0, s * (n - 1) + c + 2 - m)), mode="edge")  # xp[j + 1] = x[j]
  return 0.25 * take(xp, c) + 0.5 * take(xp, c + 1) + 0.25 * take(xp, c + 2)


def _rgb(params, y_BxHxW, c_Bx2xhxw, spec, dtype, method, sub, siting):
  """A net on RGB: chroma up to the luma grid, to RGB, the net, back to Y'CbCr, chroma down by `sub`, both at the
  positions `siting` gives the chroma samples."""
  b, h, w = y_BxHxW.shape
  c = c_Bx2xhxw.astype(jnp.float32).transpose(0, 2, 3, 1) / 255.0
  pos = _positions(siting, sub)
  if sub != (1, 1):  # luma pixel X is chroma (X - p) / s; MATLAB samples (X + 1/2) / s - 1/2
    shift = tuple(0.5 - (p + 0.5) / s for p, s in zip(pos, sub))
    c = image_ops.imresize(c, output_shape=(c.shape[1] * sub[0], c.shape[2] * sub[1]), shift=shift)[:, :h, :w]
  ycc = jnp.concatenate([y_BxHxW.astype(jnp.float32)[..., None] / 255.0, c], axis=-1)
  rgb = jnp.clip(image_ops.ycbcr_to_rgb(ycc), 0.0, 1.0)
  out = image_ops.rgb_to_ycbcr(jnp.clip(inference.forward(params, rgb, spec, dtype=dtype, method=method), 0.0, 1.0))
  r = spec.scale
  sy, sx = sub
  cc = _down_sited(out[..., 1:], 1, sy, pos[0], -(-r * h // sy))
  cc = _down_sited(cc, 2, sx, pos[1], -(-r * w // sx)).transpose(0, 3, 1, 2)
  return _to_uint8(out[..., 0]), _to_uint8(cc)


class PlaneNet:
  """ESPCN on uint8 Y'CbCr planes of video frames (see the module's docstring). `dtype`, `method`: as
  `inference.forward`. `is_rgb`: the net takes RGB, use `rgb`; else `luma` and `chroma`."""

  def __init__(self, params, spec: model.Spec, *, dtype=None, method: str = "auto"):
    self.spec, self.scale = spec, spec.scale
    self.is_rgb = spec.channels == 3
    self.params = jax.tree_util.tree_map(jnp.asarray, params)
    self._luma = jax.jit(functools.partial(_luma, spec=spec, dtype=dtype, method=method))
    self._chroma = jax.jit(functools.partial(_chroma, scale=spec.scale), static_argnames="shift")
    self._rgb = jax.jit(functools.partial(_rgb, spec=spec, dtype=dtype, method=method),
                        static_argnames=("sub", "siting"))

  def luma(self, y_BxHxW) -> np.ndarray:
    if self.is_rgb:
      raise ValueError("this net takes RGB: use PlaneNet.rgb")
    return np.asarray(self._luma(self.params, np.asarray(y_BxHxW, np.uint8)))

  def chroma(self, c_BxKxhxw, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Cb, Cr x scale by bicubic, sampled `shift` input pixels away from MATLAB's positions (`chroma_shift`)."""
    shift = tuple(float(d) for d in shift)
    return np.asarray(self._chroma(np.asarray(c_BxKxhxw, np.uint8), shift=shift))

  def rgb(self, y_BxHxW, c_Bx2xhxw, sub: tuple[int, int], siting: str = "center"):
    """(Y, CbCr) of an RGB net's output; CbCr subsampled by `sub` = (vertical, horizontal) and sited like the
    input's."""
    y, c = self._rgb(self.params, np.asarray(y_BxHxW, np.uint8), np.asarray(c_Bx2xhxw, np.uint8), sub=tuple(sub),
                     siting=siting)
    return np.asarray(y), np.asarray(c)


def fit_plane(p_BxHxW, h: int, w: int):
  """Crops or edge-pads the last two axes to (h, w) (chroma of odd sizes, even sizes for 4:2:0 encoders)."""
  ph, pw = p_BxHxW.shape[-2:]
  p_BxHxW = p_BxHxW[..., :min(ph, h), :min(pw, w)]
  if ph < h or pw < w:
    pad = [(0, 0)] * (p_BxHxW.ndim - 2) + [(0, max(0, h - ph)), (0, max(0, w - pw))]
    p_BxHxW = np.pad(p_BxHxW, pad, mode="edge")
  return p_BxHxW


def upscale_planes(net, y_BxHxW, c_Bx2xhxw, sub, out_hw: tuple[int, int], times=None, siting: str = "center"):
  """One batch of frames through `net` (a PlaneNet): Y (B, H, W) and Cb, Cr (B, 2, h, w) (None for monochrome)
  subsampled by `sub` and sited at `siting` (SITINGS) -> (Y, CbCr) of `out_hw` = (OH, OW) luma pixels, chroma
  ceil(OH / sy) x ceil(OW / sx), sited the same way; cropped or edge-padded from the net's r*H x r*W. Records "net"
  and "colour" in `times` (a StageTimes)."""
  stage = times.stage if times is not None else (lambda _: contextlib.nullcontext())
  oh, ow = out_hw
  if net.is_rgb:  # monochrome: neutral chroma in, luma out
    grey = c_Bx2xhxw is None
    c_in = np.full((y_BxHxW.shape[0], 2) + y_BxHxW.shape[1:], 128, np.uint8) if grey else c_Bx2xhxw
    with stage("net"):
      y, c = net.rgb(y_BxHxW, c_in, (1, 1) if grey else sub, siting)
    c = None if grey else c
  else:
    with stage("net"):
      y = net.luma(y_BxHxW)
    c = None
    if c_Bx2xhxw is not None:
      with stage("colour"):
        c = net.chroma(c_Bx2xhxw, chroma_shift(siting, sub, net.scale))
  y = fit_plane(y, oh, ow)
  if c is not None:
    c = fit_plane(c, -(-oh // sub[0]), -(-ow // sub[1]))
  return y, c


class FramesFnNet:
  """Adapts a function on uint8 RGB frames (B, H, W, 3) -> (B, rH, rW, 3) (e.g. `inference.Upscaler.frames`) to
  the PlaneNet interface: planes to RGB (chroma by nearest neighbour), the function, back to planes (chroma
  averaged). The scale is found by one call on `probe_BxHxWx3`."""
  is_rgb = True

  def __init__(self, frames_fn, probe_BxHxWx3):
    self.fn = frames_fn
    self.scale = int(np.asarray(frames_fn(probe_BxHxWx3)).shape[1]) // int(probe_BxHxWx3.shape[1])

  def rgb(self, y_BxHxW, c_Bx2xhxw, sub, siting: str = "center"):  # pylint: disable=unused-argument
    """Chroma to and from the luma grid by repeating and averaging blocks: the siting is not followed here."""
    b, h, w = y_BxHxW.shape
    c = np.asarray(c_Bx2xhxw).repeat(sub[0], axis=2).repeat(sub[1], axis=3)[:, :, :h, :w]
    ycc = np.concatenate([np.asarray(y_BxHxW)[:, None], c], axis=1).transpose(0, 2, 3, 1) / np.float32(255.0)
    rgb = np.asarray(_to_uint8(image_ops.ycbcr_to_rgb(ycc)))
    out = np.asarray(image_ops.rgb_to_ycbcr(np.asarray(self.fn(rgb)) / np.float32(255.0)))
    rh, rw = out.shape[1:3]
    sy, sx = sub
    cc = np.pad(out[..., 1:], ((0, 0), (0, -rh % sy), (0, -rw % sx), (0, 0)), mode="edge")
    cc = cc.reshape(b, cc.shape[1] // sy, sy, cc.shape[2] // sx, sx, 2).mean(axis=(2, 4)).transpose(0, 3, 1, 2)
    return np.asarray(_to_uint8(out[..., 0])), np.asarray(_to_uint8(cc))


def warm_up(net, batch: int, h: int, w: int, sub, times=None, siting: str = "center") -> None:
  """One call on a black batch of this shape, so compiling is timed apart ("compile" in `times`) from the frames."""
  stage = times.stage if times is not None else (lambda _: contextlib.nullcontext())
  y = np.full((batch, h, w), 16, np.uint8)
  c = None if sub is None else np.full((batch, 2, -(-h // sub[0]), -(-w // sub[1])), 128, np.uint8)
  with stage("compile (first call)"):
    upscale_planes(net, y, c, sub or (1, 1), (net.scale * h, net.scale * w), siting=siting)
