"""The nets ESPCN is compared with: convolutions in HR space after a MATLAB-bicubic upsampling of the LR input.

    SRCNN (Dong et al. 2014; the ESPCN paper's Table 1): bicubic x r, conv 9x9 C -> 64, ReLU, conv 5x5 64 -> 32,
        ReLU, conv 5x5 32 -> C (model.Spec(kind="srcnn", features=(64, 32), kernel_sizes=(9, 5, 5), activation="relu"))
    HR net (Shi et al. 2016, "Is the deconvolution layer the same as a convolutional layer?"): the same structure with
        n = 8 feature maps and 6x6 kernels at r = 2 (model.Spec(kind="hr", ...)): `EQUAL_SPEED` pairs it with an LR
        net (an ESPCN) of the same multiply count per output pixel.

Both take the LR image like ESPCN does (B, H, W, C) -> (B, rH, rW, C): `model.apply` dispatches here on `spec.kind`,
so training, validation, `evaluate` and `benchmark` run them unchanged. Params are the same plain pytree as ESPCN's
({"conv<i>": {"kernel": HWIO, "bias"}}), with C output channels in the last layer. Padding is SAME (odd or even
kernels; an even kernel pads one pixel less on the top / left, as XLA's SAME does).

`mults_per_output_pixel` counts a net's multiplies per HR output pixel from its params' kernel shapes alone.
"""

from __future__ import annotations

import fractions
from typing import Callable

import jax
import jax.numpy as jnp

from espcn_jax import image_ops

# (scale) -> the note's equal-speed pair at that scale: {"lr": Spec fields of the LR net (an ESPCN),
# "hr": Spec fields of the HR net}. Same depth (3 convolutions), same activation. At r = 2 the note's recipe: LR
# n = 32 with 3x3 kernels, HR n = 8 with 6x6 (the deconvolution view of a 3x3 LR conv with 32 maps is a 6x6 HR conv
# with 32 / r^2 = 8 maps). At r = 3 that view gives 9x9 kernels with 32 / 9 maps, not an integer; the middle layer's
# multiplies per output pixel, n_lr^2 k_lr^2 / r^2 = 1024, are matched exactly by n = 8 with 4x4 kernels (n k = 32).
EQUAL_SPEED = {
    2: {"lr": {"features": (32, 32), "kernel_sizes": (3, 3, 3)},
        "hr": {"features": (8, 8), "kernel_sizes": (6, 6, 6)}},
    3: {"lr": {"features": (32, 32), "kernel_sizes": (3, 3, 3)},
        "hr": {"features": (8, 8), "kernel_sizes": (4, 4, 4)}},
}


def upsample(lr_BxHxWxC, scale: int):
  """MATLAB bicubic x `scale` (the input SRCNN was defined on; no clipping)."""
  return image_ops.imresize(lr_BxHxWxC, scale=int(scale))


def apply(params, lr_BxHxWxC, *, scale: int, act: Callable, dtype=None):
  """LR (B, H, W, C) in [0, 1] -> HR (B, rH, rW, C) float32: bicubic x scale, then the SAME convolutions of
  `params` in layer order with `act` between them (none after the last). `dtype`: the convolutions' operand dtype
  (None: float32); bias and activation in float32."""
  x = upsample(jnp.asarray(lr_BxHxWxC, jnp.float32), scale)
  n = len(params)
  for i in range(n):
    p = params[f"conv{i + 1}"]
    kernel = p["kernel"]
    if dtype is not None:
      x, kernel = x.astype(dtype), kernel.astype(dtype)
    x = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    x = x.astype(jnp.float32) + p["bias"].astype(jnp.float32)
    if i < n - 1:
      x = act(x)
  return x


def mults_per_output_pixel(params, *, scale: int, lr_space: bool) -> dict[str, fractions.Fraction]:
  """Multiplies per HR output pixel of each convolution, read from the kernels' shapes (kh * kw * in * out per pixel
  of the layer's grid; a layer on the LR grid serves scale^2 output pixels per position), and their "total".
  `lr_space`: the convolutions run on the LR grid (ESPCN, followed by the periodic shuffle), else on the HR grid
  (after the bicubic upsampling, whose multiplies are not counted: 4 + 4 / r per pixel for the separable taps).
  Borders, biases and activations are ignored."""
  per_grid = fractions.Fraction(1, int(scale) ** 2) if lr_space else fractions.Fraction(1)
  out = {}
  for name in sorted(params, key=lambda s: int(s[len("conv"):])):
    kh, kw, cin, cout = (int(d) for d in params[name]["kernel"].shape)
    out[name] = kh * kw * cin * cout * per_grid
  out["total"] = sum(out.values(), fractions.Fraction(0))
  return out
