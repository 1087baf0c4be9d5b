"""The periodic shuffle PS of the paper (depth-to-space) and its inverse, as pure reshapes/transposes.

The paper (Shi et al. 2016, eq. 4) defines, for a tensor T of shape H x W x C*r^2,

    PS(T)[x, y, c] = T[floor(x / r), floor(y / r), C*r*mod(y, r) + C*mod(x, r) + c]

with x the horizontal (column) and y the vertical (row) coordinate, as usual for images. In NHWC arrays, indexed
[row, col, channel], output pixel (r*h + i, r*w + j, c) takes input channel (i*r + j)*C + c: the row offset i is the
slowest index, then the column offset j, then the colour c. This is exactly `tf.nn.depth_to_space` (NHWC, "DCR" in
ONNX's words).

PyTorch's `nn.PixelShuffle` (NCHW) orders the same r^2*C channels colour-major: channel c*r^2 + i*r + j ("CRD" in
ONNX). The orders agree when C = 1 and differ when C > 1; `torch_to_ours_perm` converts conv weights between them.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def depth_to_space(x, r: int):
  """PS: (..., H, W, C*r*r) -> (..., r*H, r*W, C). Works on NHWC batches and single HWC images."""
  *lead, h, w, crr = x.shape
  if crr % (r * r):
    raise ValueError(f"depth_to_space: {crr} channels is not a multiple of r*r = {r * r}")
  c = crr // (r * r)
  x = x.reshape(*lead, h, w, r, r, c)  # [.., h, w, i, j, c]
  n = len(lead)
  x = x.transpose(*range(n), n, n + 2, n + 1, n + 3, n + 4)  # [.., h, i, w, j, c]
  return x.reshape(*lead, h * r, w * r, c)


def space_to_depth(x, r: int):
  """Inverse of `depth_to_space`: (..., r*H, r*W, C) -> (..., H, W, C*r*r)."""
  *lead, hr, wr, c = x.shape
  if hr % r or wr % r:
    raise ValueError(f"space_to_depth: spatial size {hr}x{wr} is not a multiple of r = {r}")
  h, w = hr // r, wr // r
  x = x.reshape(*lead, h, r, w, r, c)  # [.., h, i, w, j, c]
  n = len(lead)
  x = x.transpose(*range(n), n, n + 2, n + 1, n + 3, n + 4)  # [.., h, w, i, j, c]
  return x.reshape(*lead, h, w, r * r * c)


def torch_to_ours_perm(channels: int, r: int) -> np.ndarray:
  """Index array p with ours[..., k] = torch[..., p[k]] for the C*r*r channels that PS consumes.

  Ours: channel (i*r + j)*C + c. PyTorch PixelShuffle: channel c*r*r + i*r + j.
  Use it on the last conv's output axis: `kernel_ours = kernel_torch[..., p]`, `bias_ours = bias_torch[p]`.
  """
  return np.arange(channels * r * r).reshape(channels, r * r).T.reshape(-1)


def ours_to_torch_perm(channels: int, r: int) -> np.ndarray:
  """Inverse of `torch_to_ours_perm`: torch[..., k] = ours[..., p[k]]."""
  return np.argsort(torch_to_ours_perm(channels, r))


def pixel_shuffle_nchw(x, r: int):
  """PyTorch's `nn.PixelShuffle` semantics written with jnp, for reference and tests: (N, C*r*r, H, W) -> (N, C, rH, rW)."""
  n, crr, h, w = x.shape
  c = crr // (r * r)
  x = jnp.reshape(x, (n, c, r, r, h, w))  # [n, c, i, j, h, w]
  x = jnp.transpose(x, (0, 1, 4, 2, 5, 3))  # [n, c, h, i, w, j]
  return jnp.reshape(x, (n, c, h * r, w * r))
