"""ESPCN (Shi et al., CVPR 2016): convolutions in LR space, then the periodic shuffle PS to HR.

    f1: conv 5x5, C -> 64, tanh        (kernel sizes, widths and activation are configurable)
    f2: conv 3x3, 64 -> 32, tanh
    f3: conv 3x3, 32 -> C*r^2, linear
    PS: (H, W, C*r^2) -> (rH, rW, C)

Params are a plain pytree {"conv1": {"kernel": HWIO, "bias"}, ..., "conv<L>": ...}; `apply` is pure.
`Spec.kind` "srcnn" / "hr" are the nets ESPCN is compared with (convolutions in HR space after bicubic upsampling,
`espcn_jax.baselines`); `init`, `apply` and `layer_shapes` serve every kind.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from espcn_jax import baselines, ps

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}
# "espcn": convolutions in LR space, then PS; "srcnn" / "hr": bicubic upsampling, then convolutions in HR space
KINDS = ("espcn", "srcnn", "hr")


@dataclasses.dataclass(frozen=True)
class Spec:
  """The architecture. Hashable, so it can be a static argument of `jax.jit`."""

  scale: int = 3
  channels: int = 1  # 1: luma (the paper); 3: RGB
  features: tuple[int, ...] = (64, 32)
  kernel_sizes: tuple[int, ...] = (5, 3, 3)
  activation: str = "tanh"  # "tanh" (the paper) or "relu"
  kind: str = "espcn"  # one of KINDS

  def __post_init__(self):
    object.__setattr__(self, "features", tuple(int(f) for f in self.features))
    object.__setattr__(self, "kernel_sizes", tuple(int(k) for k in self.kernel_sizes))
    if int(self.scale) != self.scale or self.scale < 2:
      raise ValueError(f"scale must be an integer >= 2, got {self.scale}")
    if self.channels not in (1, 3):
      raise ValueError(f"channels must be 1 (luma) or 3 (RGB), got {self.channels}")
    if len(self.kernel_sizes) != len(self.features) + 1:
      raise ValueError(f"need one kernel size per layer: {len(self.features) + 1} layers, got {self.kernel_sizes}")
    if self.kind not in KINDS:
      raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
    if self.kind == "espcn" and any(k % 2 == 0 for k in self.kernel_sizes):
      raise ValueError(f"ESPCN's kernel sizes must be odd, got {self.kernel_sizes}")
    if any(k < 1 for k in self.kernel_sizes) or any(f < 1 for f in self.features):
      raise ValueError(f"kernel sizes and features must be >= 1, got {self.kernel_sizes} and {self.features}")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")

  @property
  def num_layers(self) -> int:
    return len(self.kernel_sizes)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "Spec":
    return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


class ESPCN(nn.Module):
  """Flax Linen module of ESPCN. Prefer the pure `init` / `apply` below."""

  spec: Spec
  dtype: jnp.dtype | None = None  # compute dtype (params stay float32)

  @nn.compact
  def __call__(self, lr_BxHxWxC):
    s = self.spec
    act = ACTIVATIONS[s.activation]
    widths = s.features + (s.channels * s.scale * s.scale,)
    x = lr_BxHxWxC
    for i, (k, f) in enumerate(zip(s.kernel_sizes, widths)):
      x = nn.Conv(f, (k, k), padding="SAME", dtype=self.dtype, name=f"conv{i + 1}",
                  kernel_init=nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal"))(x)
      if i < len(widths) - 1:
        x = act(x)
    return ps.depth_to_space(x, s.scale)


def layer_shapes(spec: Spec) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
  """{"conv<i>": (kernel HWIO shape, bias shape)} for `spec`."""
  last = spec.channels * spec.scale * spec.scale if spec.kind == "espcn" else spec.channels
  widths = (spec.channels,) + spec.features + (last,)
  return {f"conv{i + 1}": ((k, k, cin, cout), (cout,))
          for i, (k, cin, cout) in enumerate(zip(spec.kernel_sizes, widths[:-1], widths[1:]))}


def init(rng, spec: Spec):
  """Random params for `spec`: fan-in variance-scaling truncated-normal kernels (Flax's `lecun_normal`), zero biases.

  Drawn with numpy from the JAX key's bits: no XLA compilation, so it is instant on any machine (and not traceable:
  call it outside `jax.jit`; `layer_shapes(spec)` gives the shapes without drawing anything).
  """
  gen = np.random.default_rng(np.asarray(jax.random.key_data(rng)).ravel().tolist())
  params = {}
  for name, (ks, bs) in layer_shapes(spec).items():
    std = math.sqrt(1.0 / math.prod(ks[:-1])) / 0.87962566103423978  # std of N(0,1) truncated to [-2, 2]
    k = gen.standard_normal(ks)
    while np.any(bad := np.abs(k) > 2):
      k[bad] = gen.standard_normal(int(bad.sum()))
    params[name] = {"kernel": jnp.asarray(k * std, jnp.float32), "bias": jnp.zeros(bs, jnp.float32)}
  return params


def apply(params, lr_BxHxWxC, spec: Spec, *, dtype=None):
  """LR images (B, H, W, C) in [0, 1] -> HR images (B, rH, rW, C). Pure; jit it at the call site.

  `dtype` is the compute dtype (e.g. jnp.bfloat16); the output is returned in float32.
  """
  if spec.kind != "espcn":
    return baselines.apply(params, lr_BxHxWxC, scale=spec.scale, act=ACTIVATIONS[spec.activation], dtype=dtype)
  out = ESPCN(spec, dtype=dtype).apply({"params": params}, lr_BxHxWxC)
  return out.astype(jnp.float32)


def num_params(params) -> int:
  return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


def flops_per_lr_pixel(spec: Spec) -> int:
  """Multiply-adds x 2 per LR pixel (ignoring borders, bias, activations and the bicubic upsampling of the HR-space
  kinds, whose convolutions run on scale^2 pixels per LR pixel)."""
  per_lr = 1 if spec.kind == "espcn" else spec.scale * spec.scale
  return int(sum(2 * math.prod(ks) for ks, _ in layer_shapes(spec).values())) * per_lr


def subpixel_to_deconv(kernel_KxKxIxCrr, bias_Crr, r: int):
  """The authors' note: the last conv + PS equals a stride-r transposed convolution with a (k*r)x(k*r) kernel.

  Returns (deconv_kernel of shape (k*r, k*r, I, C), bias of shape (r, r, C)). The deconvolution scatters each LR
  pixel u, scaled, onto HR pixels r*u + t - r*(k//2), t in [0, k*r): this is PyTorch's
  `ConvTranspose2d(I, C, k*r, stride=r, padding=r*(k//2))` with weight `deconv_kernel.transpose(2, 3, 0, 1)`.
  The bias is periodic with period r (one value per sub-pixel phase); it is a plain per-channel bias only when
  all r*r phases share it.

      D[r*(k-1-dy) + a, r*(k-1-dx) + b, i, c] = K[dy, dx, i, (a*r + b)*C + c]
  """
  k, k2, cin, crr = kernel_KxKxIxCrr.shape
  assert k == k2 and k % 2 == 1 and crr % (r * r) == 0
  c = crr // (r * r)
  kk = jnp.asarray(kernel_KxKxIxCrr).reshape(k, k, cin, r, r, c)  # [dy, dx, i, a, b, c]
  kk = kk[::-1, ::-1]  # index k-1-dy, k-1-dx
  d = kk.transpose(0, 3, 1, 4, 2, 5).reshape(k * r, k * r, cin, c)  # [(dy', a), (dx', b), i, c]
  return d, jnp.asarray(bias_Crr).reshape(r, r, c)


def deconv_apply(x_BxHxWxI, deconv_kernel, bias_rxrxC, r: int):
  """Stride-r transposed convolution (scatter form) with the kernel of `subpixel_to_deconv`: (B, H, W, I) -> (B, rH, rW, C)."""
  kr = deconv_kernel.shape[0]
  pad = (kr - r) // 2  # = r * (k // 2) for odd k
  lo, hi = kr - 1 - pad, r - 1 + pad
  out = jax.lax.conv_general_dilated(
      x_BxHxWxI, deconv_kernel[::-1, ::-1], window_strides=(1, 1), padding=((lo, hi), (lo, hi)),
      lhs_dilation=(r, r), dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST)
  b, h, w, c = out.shape
  return out + jnp.tile(bias_rxrxC, (h // r, w // r, 1))[None]


def params_from_torch(state_dict, spec: Spec):
  """Params from a PyTorch ESPCN's state_dict (conv weights OIHW, in layer order, followed by nn.PixelShuffle).

  Takes the 4-D `*.weight` tensors and their `*.bias` in state_dict order (e.g. yjn870/ESPCN-pytorch's
  first_part.0, first_part.2, last_part.0), converts OIHW -> HWIO, and reorders the last layer's output channels
  from PixelShuffle's colour-major order to ours (`ps.torch_to_ours_perm`).
  """
  arrays = {k: np.asarray(getattr(v, "detach", lambda: v)().cpu().numpy() if hasattr(v, "cpu") else v)
            for k, v in state_dict.items()}
  weights = [k for k, v in arrays.items() if k.endswith("weight") and v.ndim == 4]
  if len(weights) != spec.num_layers:
    raise ValueError(f"expected {spec.num_layers} conv layers for {spec}, found {len(weights)}: {weights}")
  params = {}
  for i, wk in enumerate(weights):
    kernel = arrays[wk].transpose(2, 3, 1, 0)
    bias = arrays[wk[: -len("weight")] + "bias"]
    if i == len(weights) - 1:
      perm = ps.torch_to_ours_perm(spec.channels, spec.scale)
      kernel, bias = kernel[..., perm], bias[perm]
    params[f"conv{i + 1}"] = {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}
  return params
