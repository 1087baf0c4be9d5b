"""Image operations of the SR evaluation protocol, as MATLAB does them: BT.601 YCbCr, `modcrop`, bicubic `imresize`.

All functions work on float images in [0, 1] shaped (H, W), (H, W, C) or (B, H, W, C). `imresize`,
`gaussian_degrade` and `degrade` return numpy float32 for numpy input (no per-size compilation) and JAX float32 for
JAX input (jit-friendly); the colour conversions return JAX float32. Nothing here rounds or clips except
`luma_uint8` (MATLAB's uint8 Y): quantising to uint8 levels is the caller's choice (`evaluate` does it where MATLAB
would).

    y = luma(img_HxWx3)                        # MATLAB rgb2ycbcr(...)(:, :, 1), in [16/255, 235/255]
    lr = imresize(hr, 1 / 3)                   # MATLAB imresize(hr, 1/3, 'bicubic') (antialiased)
    sr = imresize(lr, 3)                       # MATLAB imresize(lr, 3, 'bicubic')
    lr_BxhxwxC = degrade(hr_BxHxWxC, 3)        # jit-friendly with static scale / method

`imresize` applies, along H and then W, the (out, in) weight matrices of `resize_matrix`, built in numpy (float64)
at trace time from MATLAB's `contributions` (cubic kernel a = -0.5; when downscaling the kernel is stretched by
1/scale, which antialiases; out-of-range taps are mirrored, 'symmetric'; each row normalised to sum to 1). Upscaling
by an integer r, the common case at inference (Cb and Cr of every picture and video frame, the bicubic baseline),
uses the same weights as r phases of at most 4 taps each on the mirrored image (`upscale_taps`): ~4 multiply-adds
per output pixel and axis instead of a dense product with the (rH, H) matrix (2.6 G multiply-adds for a 1080p frame).
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

# MATLAB's rgb2ycbcr for double images: ycbcr = OFFSET + T @ rgb, with T = _T255 / 255.
_T255 = np.array([[65.481, 128.553, 24.966],
                  [-37.797, -74.203, 112.0],
                  [112.0, -93.786, -18.214]])
_OFFSET = np.array([16.0, 128.0, 128.0]) / 255.0


def rgb_to_ycbcr(img_HxWx3):
  """MATLAB `rgb2ycbcr` (BT.601, studio swing) on float RGB in [0, 1], (..., 3) -> (..., 3) float32.

  Y in [16/255, 235/255], Cb and Cr in [16/255, 240/255]. For uint8 images MATLAB returns
  `round(255 * rgb_to_ycbcr(rgb / 255))`.
  """
  x = jnp.asarray(img_HxWx3, jnp.float32)
  _check_rgb(x)
  return _affine3(x, _T255 / 255.0, _OFFSET, 0.0)


def ycbcr_to_rgb(img_HxWx3):
  """MATLAB `ycbcr2rgb` on float YCbCr (..., 3) -> float32 RGB (not clipped: out-of-gamut YCbCr gives values
  outside [0, 1])."""
  x = jnp.asarray(img_HxWx3, jnp.float32)
  _check_rgb(x)
  return _affine3(x, np.linalg.inv(_T255 / 255.0), 0.0, _OFFSET)


def _affine3(x_Nx3, m_3x3, add, sub):
  """out[..., k] = sum_c m[k, c] (x[..., c] - sub[c]) + add[k] in float32, written out as multiply-adds: XLA fuses
  them into one pass over the pixels (as a dot with a contraction of 3 it ran ~10x slower on the CPU)."""
  m = np.asarray(m_3x3, np.float32)
  add, sub = np.broadcast_to(np.float32(add), (3,)), np.broadcast_to(np.float32(sub), (3,))
  ch = [x_Nx3[..., c] - sub[c] if sub[c] else x_Nx3[..., c] for c in range(3)]
  return jnp.stack([ch[0] * m[k, 0] + ch[1] * m[k, 1] + ch[2] * m[k, 2] + add[k] for k in range(3)], axis=-1)


def luma(img):
  """The Y channel the SR literature scores on.

  Colour (..., H, W, 3): MATLAB's rgb2ycbcr Y, returned as (..., H, W, 1). Grayscale (H, W) or (..., H, W, 1): the
  pixel values themselves, same shape (a gray image is NOT converted to RGB first, which would map it to
  16/255 + 219/255 * v). Float in [0, 1] in, float32 out.
  """
  x = jnp.asarray(img, jnp.float32)
  if x.ndim == 2 or x.shape[-1] == 1:
    return x
  _check_rgb(x)
  w = jnp.asarray(_T255[0] / 255.0, jnp.float32)
  y = jnp.einsum("...c,c->...", x, w, precision=jax.lax.Precision.HIGHEST) + _OFFSET[0]
  return y[..., None]


def luma_uint8(img_u8) -> np.ndarray:
  """MATLAB's Y of a uint8 image, exactly: `rgb2ycbcr(img)(:, :, 1)` for (..., H, W, 3) RGB (float64 arithmetic,
  rounded to uint8), the pixels themselves for gray (H, W) / (..., H, W, 1). Numpy uint8 out, shape (..., H, W)
  for RGB and gray HxW, (..., H, W, 1) kept for HxWx1."""
  x = np.asarray(img_u8)
  if x.dtype != np.uint8:
    raise TypeError(f"luma_uint8 expects a uint8 image, got dtype {x.dtype}")
  if x.ndim == 2 or x.shape[-1] == 1:
    return x
  if x.shape[-1] != 3:
    raise ValueError(f"expected a gray or RGB image, got shape {x.shape}")
  y = 16.0 + (x.astype(np.float64) @ _T255[0]) / 255.0
  return np.floor(y + 0.5).astype(np.uint8)


def _check_rgb(x):
  if x.ndim < 1 or x.shape[-1] != 3:
    raise ValueError(f"expected an RGB image with 3 channels in the last axis, got shape {tuple(x.shape)}")


def modcrop(img, scale: int):
  """Crops the bottom rows and right columns so H and W are multiples of `scale` (MATLAB `modcrop`).

  Works on (H, W), (H, W, C) (numpy or JAX; returns the same type). Batches (B, H, W, C) are cropped too.
  """
  scale = int(scale)
  if img.ndim == 2:
    h, w = img.shape
    return img[: h - h % scale, : w - w % scale]
  h, w = img.shape[-3], img.shape[-2]
  return img[..., : h - h % scale, : w - w % scale, :]


def cubic(x):
  """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic'), support [-2, 2]."""
  ax = np.abs(x)
  ax2, ax3 = ax * ax, ax * ax * ax
  return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
          + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


@functools.lru_cache(maxsize=256)
def resize_matrix(in_size: int, out_size: int, scale: float, antialiasing: bool = True,
                  shift: float = 0.0) -> np.ndarray:
  """MATLAB imresize's bicubic weights along one axis as a dense (out_size, in_size) float64 matrix.

  Follows MATLAB's `contributions`: output pixel x (1-based) maps to input coordinate u = x / scale + (1 - 1/scale)/2
  (+ `shift` input pixels: 0 is MATLAB; e.g. plane_net.chroma_shift for chroma samples not centred in their block);
  when scale < 1 (and antialiasing) the kernel becomes scale * cubic(scale * t) of width 4 / scale; the taps
  floor(u - width/2) + [0, ceil(width) + 2) are weighted, normalised to sum to 1, and the out-of-range ones mirrored
  onto the image ('symmetric': index 0 -> 1, -1 -> 2, in+1 -> in, ...), their weights summed.
  Read-only (cached): copy it before modifying.
  """
  in_size, out_size, scale, shift = int(in_size), int(out_size), float(scale), float(shift)
  if in_size < 1 or out_size < 1 or scale <= 0:
    raise ValueError(f"resize_matrix: bad sizes/scale in={in_size} out={out_size} scale={scale}")
  kernel_width = 4.0
  if scale < 1 and antialiasing:
    h = lambda t: scale * cubic(scale * t)
    kernel_width /= scale
  else:
    h = cubic
  x = np.arange(1, out_size + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1.0 - 1.0 / scale) + shift
  left = np.floor(u - kernel_width / 2.0)
  p = int(math.ceil(kernel_width)) + 2
  ind = left[:, None] + np.arange(p)[None, :]  # 1-based input indices (out, p)
  weights = h(u[:, None] - ind)
  weights = weights / weights.sum(axis=1, keepdims=True)
  aux = np.concatenate([np.arange(in_size), np.arange(in_size - 1, -1, -1)])  # 0-based, symmetric
  idx = aux[np.mod(ind.astype(np.int64) - 1, 2 * in_size)]
  m = np.zeros((out_size, in_size), np.float64)
  np.add.at(m, (np.repeat(np.arange(out_size), p), idx.ravel()), weights.ravel())
  m.setflags(write=False)
  return m


def _output_size(in_size: int, scale: float) -> int:
  """MATLAB's ceil(scale * in), computed exactly when scale is r or 1/r for an integer r."""
  inv = 1.0 / scale
  if scale < 1 and abs(inv - round(inv)) < 1e-9:
    return -(-in_size // int(round(inv)))
  if abs(scale - round(scale)) < 1e-9:
    return in_size * int(round(scale))
  return int(math.ceil(scale * in_size - 1e-9))


def imresize(img, scale: float | None = None, output_shape: tuple[int, int] | None = None,
             shift: tuple[float, float] = (0.0, 0.0)):
  """MATLAB `imresize(img, scale, 'bicubic')` (or to `output_shape` = (H', W')) on float images, float32 out.

  `img` is (H, W), (H, W, C) or (B, H, W, C); H and W are resized, the other axes kept. With `scale`, the output
  is ceil(scale * H) x ceil(scale * W) (e.g. scale=1/3 downsamples by 3, scale=3 upsamples by 3). With only
  `output_shape`, each axis uses its own scale out/in, as MATLAB. jit-friendly: shapes and scale are static.
  No clipping: bicubic over/undershoots [0, 1] near edges, as in MATLAB for double images.
  `shift` = (rows, columns): moves the sampling positions by that many input pixels (`resize_matrix`); (0, 0) is
  MATLAB's imresize.
  """
  x = img if isinstance(img, (np.ndarray, jax.Array)) else np.asarray(img)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"imresize expects a float image in [0, 1], got dtype {x.dtype}")
  x = x.astype(jnp.float32)
  if x.ndim not in (2, 3, 4):
    raise ValueError(f"imresize expects (H, W), (H, W, C) or (B, H, W, C), got shape {tuple(x.shape)}")
  gray = x.ndim == 2
  if gray:
    x = x[..., None]
  h, w = x.shape[-3], x.shape[-2]
  if scale is None and output_shape is None:
    raise ValueError("imresize: give scale or output_shape")
  if output_shape is not None:
    oh, ow = (int(s) for s in output_shape)
    sh, sw = (float(scale), float(scale)) if scale is not None else (oh / h, ow / w)
  else:
    sh = sw = float(scale)
    oh, ow = _output_size(h, sh), _output_size(w, sw)
  dy, dx = (float(d) for d in shift)
  taps_h, taps_w = upscale_taps(h, oh, sh, dy), upscale_taps(w, ow, sw, dx)
  if taps_h is not None and taps_w is not None:
    x = _upscale_axis(_upscale_axis(x, x.ndim - 3, *taps_h), x.ndim - 2, *taps_w)
  else:
    x = _separable(x, resize_matrix(h, oh, sh, shift=dy), resize_matrix(w, ow, sw, shift=dx))
  return x[..., 0] if gray else x


@functools.lru_cache(maxsize=256)
def upscale_taps(in_size: int, out_size: int, scale: float, shift: float = 0.0):
  """`resize_matrix(in_size, out_size, scale, shift=shift)` for an integer upscale r = scale = out_size / in_size as
  r phases: out[r i + q] = sum over (d, w) in phases[q] of w * x[i + d], with x mirrored ('symmetric') beyond its
  ends by `pad` pixels. Returns (pad, phases) with the zero weights left out (at most 4 taps per phase; 1 where an
  output pixel sits on an input pixel), or None when the factor is not an integer, the image is too small for a
  single mirroring, or the phases do not reproduce the matrix to 1e-12 (then `imresize` uses the matrix).
  """
  r = int(round(scale))
  if r < 2 or abs(scale - r) > 1e-9 or out_size != r * in_size:
    return None
  m = resize_matrix(in_size, out_size, scale, shift=shift)
  mid = in_size // 2  # an interior input pixel: its outputs' taps are not mirrored
  phases = []
  for q in range(r):
    row = m[r * mid + q]
    phases.append(tuple((int(j) - mid, float(row[j])) for j in np.flatnonzero(row)))
  pad = max(abs(d) for ph in phases for d, _ in ph)
  if in_size < pad + 1:
    return None
  # Check: the phases on the mirrored indices rebuild the matrix.
  idx = np.pad(np.arange(in_size), pad, mode="symmetric")
  rebuilt = np.zeros_like(m)
  for q, ph in enumerate(phases):
    for d, wt in ph:
      np.add.at(rebuilt, (np.arange(in_size) * r + q, idx[np.arange(in_size) + pad + d]), wt)
  if not np.allclose(rebuilt, m, rtol=0, atol=1e-12):
    return None
  return pad, tuple(phases)


def _upscale_axis(x, axis: int, pad: int, phases):
  """The phases of `upscale_taps` along `axis` of a float32 numpy or JAX array: slices of the mirrored array times
  constant weights, the phases interleaved by a reshape (XLA fuses it all into one pass)."""
  xp_mod = np if isinstance(x, np.ndarray) else jnp
  n = x.shape[axis]
  widths = [(0, 0)] * x.ndim
  widths[axis] = (pad, pad)
  xpad = xp_mod.pad(x, widths, mode="symmetric")
  cut = lambda d: xpad[(slice(None),) * axis + (slice(pad + d, pad + d + n),)]
  outs = []
  for ph in phases:
    acc = None
    for d, wt in ph:
      term = cut(d) * np.float32(wt)
      acc = term if acc is None else acc + term
    outs.append(acc)
  y = xp_mod.stack(outs, axis=axis + 1)  # (..., n, r, ...)
  return y.reshape(x.shape[:axis] + (n * len(phases),) + x.shape[axis + 1:])


@functools.lru_cache(maxsize=256)
def gaussian_matrix(in_size: int, scale: int, sigma: float, kernel_size: int) -> np.ndarray:
  """Gaussian blur (normalised `kernel_size` taps, std `sigma`, 'symmetric' borders as MATLAB imfilter) followed by
  keeping every `scale`-th sample starting at offset scale // 2, as one (in_size // scale, in_size) matrix.

  The kept pixel of each r x r block is (r // 2, r // 2): the centre for odd r ((1, 1) of 3x3 for r = 3), the
  lower-right pixel of the central 2x2 for even r.
  """
  if kernel_size < 1 or kernel_size % 2 == 0:
    raise ValueError(f"gaussian kernel_size must be odd and positive, got {kernel_size}")
  if sigma <= 0:
    raise ValueError(f"gaussian sigma must be > 0, got {sigma}")
  half = kernel_size // 2
  t = np.arange(-half, half + 1, dtype=np.float64)
  g = np.exp(-0.5 * (t / sigma) ** 2)
  g /= g.sum()
  out_size = in_size // scale
  centres = np.arange(out_size) * scale + scale // 2
  aux = np.concatenate([np.arange(in_size), np.arange(in_size - 1, -1, -1)])
  m = np.zeros((out_size, in_size), np.float64)
  for k, tap in enumerate(t.astype(np.int64)):
    np.add.at(m, (np.arange(out_size), aux[np.mod(centres + tap, 2 * in_size)]), g[k])
  m.setflags(write=False)
  return m


def gaussian_degrade(hr, scale: int, sigma: float = 1.6, kernel_size: int = 7):
  """The paper's degradation: Gaussian blur, then keep pixel (r // 2, r // 2) of every r x r block.

  The paper does not give sigma; the defaults (7 x 7, sigma 1.6) are the "BD" degradation of the SR literature.
  `hr` is (H, W), (H, W, C) or (B, H, W, C) float; output floor(H / r) x floor(W / r). jit-friendly.
  """
  x = hr if isinstance(hr, (np.ndarray, jax.Array)) else np.asarray(hr)
  x = x.astype(np.float32)
  if x.ndim not in (2, 3, 4):
    raise ValueError(f"gaussian_degrade expects (H, W), (H, W, C) or (B, H, W, C), got shape {tuple(x.shape)}")
  gray = x.ndim == 2
  if gray:
    x = x[..., None]
  h, w = x.shape[-3], x.shape[-2]
  x = _separable(x, gaussian_matrix(h, int(scale), float(sigma), int(kernel_size)),
                 gaussian_matrix(w, int(scale), float(sigma), int(kernel_size)))
  return x[..., 0] if gray else x


def _separable(x, m_h, m_w):
  """out[..., o, p, c] = sum_{h, w} m_h[o, h] m_w[p, w] x[..., h, w, c] in float32.

  JAX arrays (and tracers under jit) go through `jnp.einsum` at HIGHEST precision; numpy arrays stay in numpy, which
  avoids compiling a kernel for every new image size (evaluation of images of assorted sizes). Both agree to float32
  rounding.
  """
  if isinstance(x, np.ndarray):
    x = np.einsum("oh,...hwc->...owc", m_h.astype(np.float32), x, optimize=True)
    return np.einsum("pw,...owc->...opc", m_w.astype(np.float32), x, optimize=True)
  hp = jax.lax.Precision.HIGHEST
  x = jnp.einsum("oh,...hwc->...owc", jnp.asarray(m_h, jnp.float32), x, precision=hp)
  return jnp.einsum("pw,...owc->...opc", jnp.asarray(m_w, jnp.float32), x, precision=hp)


DEGRADATIONS = ("bicubic", "gaussian")


def degrade(hr, scale: int, method: str = "bicubic", *, sigma: float = 1.6, kernel_size: int = 7):
  """HR -> LR by an integer factor `scale`. "bicubic": MATLAB imresize(hr, 1/scale, 'bicubic') (the field's
  standard); "gaussian": `gaussian_degrade`. Use under `jax.jit` with scale/method/sigma/kernel_size static."""
  if int(scale) != scale or scale < 1:
    raise ValueError(f"degrade: scale must be a positive integer, got {scale}")
  if method == "bicubic":
    return imresize(hr, 1.0 / int(scale))
  if method == "gaussian":
    return gaussian_degrade(hr, int(scale), sigma, kernel_size)
  raise ValueError(f"degrade: unknown method {method!r}; expected one of {DEGRADATIONS}")


def make_degrade(scale: int, method: str = "bicubic", sigma: float | None = None,
                 kernel_size: int | None = None) -> Callable:
  """HR (B, H, W, C) in [0, 1] -> LR (B, H/scale, W/scale, C) with `degrade` (jit-friendly)."""
  kwargs = {}
  if sigma is not None:
    kwargs["sigma"] = sigma
  if kernel_size is not None:
    kwargs["kernel_size"] = kernel_size

  def degrade_batch(hr_BxHxWxC):
    return degrade(hr_BxHxWxC, scale, method=method, **kwargs)

  return degrade_batch
