"""PSNR and SSIM as the SR literature's MATLAB scripts compute them (SRCNN, VDSR, ESPCN tables).

The protocol (`evaluate` follows it; its bicubic rows reproduce the published baselines):
  1. Y of the HR image as MATLAB's `rgb2ycbcr` on uint8 gives it: rounded to uint8 levels (gray images: as is).
  2. The SR output (float) is clipped to [0, 1] and quantised as MATLAB's `uint8(255 * x)`: `quantize`.
  3. `crop_border` (= the scale) pixels are shaved off each side of both images.
  4. PSNR = 10 log10(255^2 / MSE) and SSIM (Wang et al. 2004, `ssim_index.m`: 11x11 Gaussian window with
     sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering, no downsampling, mean of the SSIM map),
     both on Y in [0, 255], computed in float64.

Inputs are HxW or HxWx1 arrays of Y values in [0, 255] (uint8 or float). Everything runs in numpy float64: exact,
and ~20x faster on CPU than compiling a JAX kernel per image size. `tests/test_metrics.py` checks that dm-pix's
`ssim` (float32, same window and constants) agrees to 1e-5.
"""

from __future__ import annotations

import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def quantize(img01) -> np.ndarray:
  """Float image in [0, 1] -> float64 values in {0, ..., 255}: clip, then MATLAB's uint8(255 * x) (halves round up)."""
  x = np.clip(np.asarray(img01, np.float64), 0.0, 1.0) * 255.0
  return np.floor(x + 0.5)


def _prepare(a, b, crop_border: int):
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
  if a.ndim == 3 and a.shape[-1] == 1:
    a, b = a[..., 0], b[..., 0]
  if a.ndim != 2:
    raise ValueError(f"expected single-channel images HxW or HxWx1 (score Y), got shape {a.shape}")
  c = int(crop_border)
  if c < 0 or 2 * c >= min(a.shape):
    raise ValueError(f"crop_border {c} leaves nothing of a {a.shape[0]}x{a.shape[1]} image")
  if c:
    a, b = a[c:-c, c:-c], b[c:-c, c:-c]
  return a, b


def psnr(a, b, crop_border: int, max_val: float = 255.0) -> float:
  """PSNR in dB between Y images a and b (values in [0, max_val]) after shaving `crop_border` pixels per side.

  Identical images give inf.
  """
  a, b = _prepare(a, b, crop_border)
  mse = np.mean((a - b) ** 2)
  if mse == 0:
    return float("inf")
  return float(10.0 * np.log10(max_val ** 2 / mse))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
  """1-D normalised Gaussian; its outer product is MATLAB's fspecial('gaussian', size, sigma)."""
  t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  g = np.exp(-(t * t) / (2.0 * sigma * sigma))
  return g / g.sum()


def _filter_valid(x, g):
  """2-D 'valid' correlation with the separable window g g^T (MATLAB filter2(w, x, 'valid'))."""
  n = g.shape[0]
  x = np.lib.stride_tricks.sliding_window_view(x, n, axis=0) @ g  # (H-n+1, W)
  return np.lib.stride_tricks.sliding_window_view(x, n, axis=1) @ g  # (H-n+1, W-n+1)


def ssim_map(a, b, max_val: float = 255.0) -> np.ndarray:
  """The SSIM map of two equally shaped 2-D float64 images (no cropping), `ssim_index.m`'s formula."""
  g = gaussian_window()
  if min(a.shape) < g.shape[0]:
    raise ValueError(f"SSIM needs images of at least {g.shape[0]}x{g.shape[0]} pixels, got {a.shape}")
  c1 = (SSIM_K1 * max_val) ** 2
  c2 = (SSIM_K2 * max_val) ** 2
  mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
  var_a = _filter_valid(a * a, g) - mu_a * mu_a
  var_b = _filter_valid(b * b, g) - mu_b * mu_b
  cov = _filter_valid(a * b, g) - mu_a * mu_b
  return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim(a, b, crop_border: int, max_val: float = 255.0) -> float:
  """Mean SSIM between Y images a and b (values in [0, max_val]) after shaving `crop_border` pixels per side."""
  a, b = _prepare(a, b, crop_border)
  return float(np.mean(ssim_map(a, b, max_val)))
