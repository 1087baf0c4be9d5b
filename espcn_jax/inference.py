"""Upscaling arrays with ESPCN: exact padding to shape buckets, overlapping tiles, batching, fast CPU kernels.

    up = Upscaler(params, spec)                 # jitted once per canvas shape, not per image
    hr_HxWxC = up.network(lr_HxWxC)             # float in [0, 1] -> float32, the net only (Y or RGB)
    hr = up.image(img_uint8)                    # a whole picture: Y by the net, CbCr / alpha by bicubic
    hr_BxHxWxC = forward(params, lr_BxHxWxC, spec, method="conv")       # pure, jit it

Exact padding. With SAME zero padding every layer sees zeros outside the picture. Padding the picture to a bucket
and cropping is not enough: the padded pixels become tanh(bias) != 0 after the first layer, which leaks into the
border of the next. `forward` takes a `valid_Bx4` rectangle (y0, y1, x0, x1) per canvas and zeroes every
activation outside it, so each layer sees exactly the zeros SAME padding gives the unpadded picture: the valid
region is identical (bit for bit with the same kernels) whatever the canvas. Tiles use the same mask for the
picture's borders and a halo of `receptive_radius(spec)` LR pixels (2+1+1 = 4 for 5-3-3) on the inner sides, so
tiled output equals untiled output.

Methods (every forward pass of the net, and how each agrees with `model.apply`, is listed in espcn_jax/backends.py):
  "conv":      lax.conv_general_dilated, as `model.apply` (XLA:CPU runs it with Eigen; GPUs with cuDNN).
  "fma":       "conv", but a layer with ONE input channel (the luma net's 5x5 first layer) is computed as k*k shifted
               multiply-adds that XLA fuses into one loop (XLA:CPU's convolution with one input channel runs at
               ~11 GFLOP/s; the fused form made a 1080p x3 frame 7-17% faster on an AVX2 CPU).
  "native":    the whole net as one fused C++ kernel called through the XLA FFI (`espcn_jax.native`): CPU and
               float32 only. All layers run row by row in cache, vectorised for the CPU (AVX-512 / AVX2) on all
               cores, the 3x3 layers by Winograd F(4x4, 3x3): 2.3-3.7x faster than "conv" for 1080p x3 on a 2-core
               AMD EPYC (BENCHMARKS.md).
  "native-bf16": the native kernel with the layers of >= 8 input channels on AMX tiles (bf16 operands, float32 sums,
               bias and tanh; a one-input first layer on the tiles at float32's precision): CPUs with AMX-BF16 (Intel
               Sapphire Rapids and later) and the "avx512_amx" build (`native.infer_has_amx()`). Its PSNR drift
               against float32 depends on the weights: `benchmark` measures it (Set5 / Set14).
  "auto":      on the CPU: "native" in float32 when the kernel loads (native-bf16 if AUTO_NATIVE_BF16), else "fma";
               in bfloat16 "native-bf16" where it runs, else "fma"; "conv" elsewhere. `upscale` and `benchmark` also
               run native-bf16 for weights measured within the drift budget (espcn_jax/auto_precision.py).
A Winograd F(4x4, 3x3) written in jnp was removed: XLA:CPU ran it 2.1-2.8x slower than "conv" at every size measured
(LR 32x32, 96x128 and 360x640 at batch 1, 96x128 at batch 8; shipped x3 weights); the native kernel has the fast one.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from espcn_jax import image_ops, model, native, ps

METHODS = ("auto", "conv", "fma", "native", "native-bf16")
# `auto` may pick a reduced-precision path in float32's place only when its PSNR drift against float32 stays within
# this budget on Set5 and Set14. The drift of native-bf16 depends on the weights (the shipped x2 t91 net: -0.05 dB on
# Set5), so here, without knowing the weights, `auto` stays float32 (native); espcn_jax/auto_precision.py picks
# native-bf16 for the weights measured within the budget (espcn_jax/pretrained/native_bf16_drift.json).
NATIVE_BF16_DRIFT_BUDGET_DB = 0.02
AUTO_NATIVE_BF16 = False


def receptive_radius(spec: model.Spec) -> int:
  """How far (LR pixels) an output pixel sees: the sum of the kernels' half-widths."""
  return int(sum(k // 2 for k in spec.kernel_sizes))


def resolve_method(method: str, dtype=None) -> str:
  """The method "auto" stands for with this compute dtype on the default backend (see the module's docstring); also
  "native" in bfloat16 is "native-bf16" (where it runs)."""
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  name = "float32" if dtype is None else jnp.dtype(dtype).name
  if method in ("native", "native-bf16") and not native.available():
    raise ValueError(f"method {method!r} is unavailable here: {native.unavailable_reason()}")
  bf16_here = jax.default_backend() == "cpu" and native.available() and native.infer_has_amx()
  if method == "native" and name == "bfloat16" and bf16_here:
    return "native-bf16"
  if method == "native" and name != "float32":
    raise ValueError(f"method 'native' computes in float32 only, got dtype {name}")
  if method == "native-bf16":
    if not native.infer_has_amx():
      raise ValueError("method 'native-bf16' needs a CPU with AMX-BF16 and the avx512_amx kernel; not here")
    if name not in ("float32", "bfloat16"):
      raise ValueError(f"method 'native-bf16' computes in bfloat16, got dtype {name}")
  if method == "auto":
    if jax.default_backend() != "cpu":
      return "conv"
    if bf16_here and (name == "bfloat16" or (name == "float32" and AUTO_NATIVE_BF16)):
      return "native-bf16"
    return "native" if name == "float32" and native.available() else "fma"
  return method


def _conv(x, kernel, bias, dtype):
  """SAME conv + bias. Reduced precision: `dtype` operands, then bias and activation in float32 (mixed precision:
  Set5 x3 drift of bfloat16 -0.032 dB, against -0.057 dB with the bias and tanh in bfloat16 too)."""
  if dtype is not None:
    x, kernel = x.astype(dtype), kernel.astype(dtype)
  y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y.astype(jnp.float32) + bias.astype(jnp.float32)


def shifted_fma_conv(x_BxHxWx1, kernel_KxKx1xO, bias, dtype=None):
  """SAME convolution of a ONE-channel input as K*K shifted broadcast multiply-adds (one fused loop under jit).

  Reduced precision `dtype`: the operands are rounded to it, the sum is accumulated in float32 (as a conv would)."""
  if dtype is not None:
    x_BxHxWx1 = x_BxHxWx1.astype(dtype).astype(jnp.float32)
    kernel_KxKx1xO = kernel_KxKx1xO.astype(dtype).astype(jnp.float32)
  k = kernel_KxKx1xO.shape[0]
  r = k // 2
  _, h, w, _ = x_BxHxWx1.shape
  xp = jnp.pad(x_BxHxWx1, ((0, 0), (r, r), (r, r), (0, 0)))
  acc = bias.astype(jnp.float32)
  for i in range(k):
    for j in range(k):
      acc = acc + xp[:, i:i + h, j:j + w, :] * kernel_KxKx1xO[i, j, 0]
  return acc


def valid_mask(valid_Bx4, h: int, w: int):
  """(B, h, w, 1) float32: 1 inside each canvas' rectangle [y0, y1) x [x0, x1), else 0."""
  v = jnp.asarray(valid_Bx4, jnp.int32)
  iy = jnp.arange(h, dtype=jnp.int32)[None, :, None]
  ix = jnp.arange(w, dtype=jnp.int32)[None, None, :]
  m = ((iy >= v[:, 0, None, None]) & (iy < v[:, 1, None, None]) &
       (ix >= v[:, 2, None, None]) & (ix < v[:, 3, None, None]))
  return m[..., None].astype(jnp.float32)


def forward(params, lr_BxHxWxC, spec: model.Spec, *, valid_Bx4=None, dtype=None, method: str = "auto"):
  """LR canvases (B, H, W, C) -> HR (B, rH, rW, C) float32. Pure; jit it (spec, dtype, method static).

  Without `valid_Bx4` this is `model.apply` (to float32 rounding; tests/test_backends.py). With it, each canvas
  computes, on its valid rectangle, exactly what the net gives the rectangle's pixels alone (SAME zero padding at its
  edges).

  The HR-space nets (`spec.kind` "srcnn" / "hr", espcn_jax/baselines.py) run `model.apply` ("auto" or "conv";
  `valid_Bx4` must then cover the whole canvas: `Upscaler` gives them untiled, unpadded pictures).
  """
  if spec.kind != "espcn":
    if method not in ("auto", "conv"):
      raise ValueError(f"method {method!r} computes ESPCN only; the {spec.kind} net runs with 'conv' (or 'auto')")
    return model.apply(params, lr_BxHxWxC, spec, dtype=dtype)
  resolved = resolve_method(method, dtype)
  if resolved == "native-bf16" and not native.bf16_takes(spec):
    if method != "auto":
      raise ValueError(f"method 'native-bf16' takes nets whose first layer has < 8 inputs and the others >= 8: {spec}")
    resolved = "native"
  if resolved in ("native", "native-bf16"):
    return native.forward(params, lr_BxHxWxC, spec, valid_Bx4=valid_Bx4, bf16=resolved == "native-bf16")
  method = resolved
  act = model.ACTIVATIONS[spec.activation]
  x = jnp.asarray(lr_BxHxWxC, jnp.float32)
  b, h, w, _ = x.shape
  mask = None if valid_Bx4 is None else valid_mask(valid_Bx4, h, w)
  if mask is not None:
    x = x * mask
  n = spec.num_layers
  for i, k in enumerate(spec.kernel_sizes):
    p = params[f"conv{i + 1}"]
    if method == "fma" and p["kernel"].shape[2] == 1:
      x = shifted_fma_conv(x, p["kernel"], p["bias"], dtype)
    else:
      x = _conv(x, p["kernel"], p["bias"], dtype)
    if i < n - 1:
      x = act(x)  # float32; the next layer rounds its input to `dtype`
      if mask is not None:
        x = x * mask
  return ps.depth_to_space(x, spec.scale).astype(jnp.float32)


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def plan_canvases(h: int, w: int, tile: int, halo: int, bucket: int):
  """How to cover an h x w picture with equal canvases.

  Returns (canvas_hw, splits): `splits` lists (y, x, valid) with (y, x) the canvas' origin in picture coordinates
  (may be negative: the halo above / left of the picture) and valid = (y0, y1, x0, x1) the picture inside the
  canvas. A picture that fits in `tile` x `tile` is one canvas, its size rounded up to `bucket` (the shape bucket:
  one compile for all pictures of the bucket). Larger ones are split evenly into cores of at most
  `tile - 2 * halo`, each canvas = core + halo on every side.
  """
  if h <= tile and w <= tile:
    ch, cw = _round_up(h, bucket), _round_up(w, bucket)
    return (ch, cw), [(0, 0, (0, h, 0, w))]
  core_max = max(tile - 2 * halo, 8)
  ny, nx = -(-h // core_max), -(-w // core_max)
  core_h, core_w = _round_up(-(-h // ny), 8), _round_up(-(-w // nx), 8)
  ch, cw = core_h + 2 * halo, core_w + 2 * halo
  splits = []
  for i in range(ny):
    for j in range(nx):
      y, x = i * core_h - halo, j * core_w - halo
      splits.append((y, x, (max(0, -y), min(ch, h - y), max(0, -x), min(cw, w - x))))
  return (ch, cw), splits


def _crop_canvas(img_HxWxC, y: int, x: int, ch: int, cw: int):
  """The (ch, cw) window at (y, x) of the picture, zeros outside it."""
  h, w, c = img_HxWxC.shape
  out = np.zeros((ch, cw, c), np.float32)
  ys, xs = max(0, y), max(0, x)
  ye, xe = min(h, y + ch), min(w, x + cw)
  if ye > ys and xe > xs:
    out[ys - y:ye - y, xs - x:xe - x] = img_HxWxC[ys:ye, xs:xe]
  return out


class Upscaler:
  """Jitted ESPCN for pictures of any size: buckets small ones, tiles big ones, batches the canvases.

  Args:
    params, spec: the net.
    dtype: compute dtype (None = float32; jnp.bfloat16 / jnp.float16 are reduced precision).
    method: see `forward`.
    tile: largest canvas side in LR pixels; bigger pictures are tiled (memory stays bounded). Not for the
      HR-space nets (`spec.kind` "srcnn" / "hr"): they run on each whole picture.
    bucket: canvas sides of untiled pictures are rounded up to a multiple of it (1 for the HR-space nets).
    max_batch: canvases per call of the net.
  """

  def __init__(self, params, spec: model.Spec, *, dtype=None, method: str = "auto", tile: int = 512,
               bucket: int = 32, max_batch: int = 8):
    self.spec = spec
    self.params = jax.tree_util.tree_map(jnp.asarray, params)
    self.halo = receptive_radius(spec)
    if spec.kind != "espcn":  # the HR-space nets (bicubic first) have no exact tiling: whole pictures, no padding
      tile, bucket = max(tile, 1 << 30), 1
    if tile < 2 * self.halo + 8:
      raise ValueError(f"tile must be at least {2 * self.halo + 8} LR pixels, got {tile}")
    self.tile, self.bucket, self.max_batch = int(tile), max(int(bucket), 1), max(int(max_batch), 1)
    self._net = jax.jit(functools.partial(forward, spec=spec, dtype=dtype, method=method))
    self._resize = jax.jit(functools.partial(image_ops.imresize, scale=spec.scale))
    self._frames = jax.jit(functools.partial(frames_forward, spec=spec, dtype=dtype, method=method))
    self.shapes_seen: set = set()  # canvas batches compiled (for tests and --verbose)

  def _run_canvases(self, fn, canvases, valids=None):
    """Runs `fn` on the canvases in fixed-size batches (the last one padded), returns a list of numpy outputs."""
    out = []
    bsz = min(self.max_batch, len(canvases))
    for s in range(0, len(canvases), bsz):
      chunk = canvases[s:s + bsz]
      pad = bsz - len(chunk)
      x = np.stack(chunk + [np.zeros_like(chunk[0])] * pad)
      self.shapes_seen.add((fn is self._net,) + x.shape)
      if valids is None:
        y = fn(x)
      else:
        v = np.asarray(valids[s:s + bsz] + [(0, 0, 0, 0)] * pad, np.int32)
        y = fn(self.params, x, valid_Bx4=v)
      out.extend(np.asarray(y)[:len(chunk)])
    return out

  def network(self, lr_HxWxC):
    """The net on one picture (H, W, spec.channels) or (H, W) float in [0, 1] -> float32 (rH, rW[, C]), unclipped."""
    lr = np.asarray(lr_HxWxC, np.float32)
    squeeze = lr.ndim == 2
    if squeeze:
      lr = lr[..., None]
    if lr.shape[-1] != self.spec.channels:
      raise ValueError(f"the net takes {self.spec.channels} channel(s), got shape {lr.shape}")
    h, w, c = lr.shape
    (ch, cw), splits = plan_canvases(h, w, self.tile, self.halo, self.bucket)
    canvases = [_crop_canvas(lr, y, x, ch, cw) for y, x, _ in splits]
    outs = self._run_canvases(self._net, canvases, [v for _, _, v in splits])
    hr = self._assemble(outs, splits, h, w, c)
    return hr[..., 0] if squeeze else hr

  def _assemble(self, outs, splits, h, w, c):
    r = self.spec.scale
    hr = np.empty((r * h, r * w, c), np.float32)
    for out, (y, x, (y0, y1, x0, x1)) in zip(outs, splits):
      if len(splits) > 1:  # keep the core only: the halo's outputs are the neighbours' job
        y0, x0 = max(y0, self.halo), max(x0, self.halo)
        y1, x1 = min(y1, out.shape[0] // r - self.halo), min(x1, out.shape[1] // r - self.halo)
      hr[r * (y + y0):r * (y + y1), r * (x + x0):r * (x + x1)] = out[r * y0:r * y1, r * x0:r * x1]
    return hr

  def bicubic(self, img_HxWxC):
    """MATLAB bicubic x scale (float32, unclipped), tiled like `network` so memory stays bounded.

    The picture is mirrored ('symmetric', as MATLAB's imresize does at borders) by a halo first, so each canvas
    resizes exactly what the whole picture would.
    """
    img = np.asarray(img_HxWxC, np.float32)
    squeeze = img.ndim == 2
    if squeeze:
      img = img[..., None]
    h, w, c = img.shape
    hb = 4  # >= the cubic kernel's reach (2 taps) + 1
    # Mirror by hb on every side, then cover the mirrored picture with canvases: an output pixel of the picture
    # taps at most 2 pixels beyond it, all inside the mirrored margin, never the canvas' zero fill.
    m = np.pad(img, ((hb, hb), (hb, hb), (0, 0)), mode="symmetric")
    (ch, cw), splits = plan_canvases(h + 2 * hb, w + 2 * hb, self.tile, self.halo, self.bucket)
    canvases = [_crop_canvas(m, y, x, ch, cw) for y, x, _ in splits]
    outs = self._run_canvases(self._resize, canvases)
    hr_m = self._assemble(outs, splits, h + 2 * hb, w + 2 * hb, c)
    r = self.spec.scale
    hr = hr_m[r * hb:r * (hb + h), r * hb:r * (hb + w)]
    return hr[..., 0] if squeeze else hr

  def frames_per_call(self, h: int, w: int) -> int:
    """Frames of h x w LR pixels per call of `frames`: about tile x tile LR pixels in all, at most max_batch."""
    return max(1, min(self.max_batch, (self.tile * self.tile) // max(h * w, 1)))

  def frames(self, frames_BxHxWx3):
    """uint8 RGB frames (B, H, W, 3) of one video -> uint8 (B, rH, rW, 3). Frames up to tile x tile LR pixels go
    through one fused jitted program; larger ones are tiled one by one (`image`)."""
    f = np.asarray(frames_BxHxWx3)
    if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
      raise ValueError(f"expected uint8 frames (B, H, W, 3), got {f.dtype} {f.shape}")
    b, h, w, _ = f.shape
    if h * w > self.tile * self.tile:
      return np.stack([self.image(fr) for fr in f])
    self.shapes_seen.add(("frames",) + f.shape)
    return np.asarray(self._frames(self.params, f))

  def image(self, img):
    """A picture as `image_files.load_image` gives it (uint8 or float in [0, 1]; (H, W), (H, W, 1|2|3|4)) -> the same
    layout x scale, uint8 if the input was uint8 else float32 clipped to [0, 1].

    Colour with a luma net: Y by the net, Cb and Cr by bicubic (the paper's protocol); with an RGB net: RGB by the
    net. Grayscale: the pixel values are the luma. Alpha: bicubic.
    """
    arr = np.asarray(img)
    as_uint8 = arr.dtype == np.uint8
    x = arr.astype(np.float32) / 255.0 if as_uint8 else arr.astype(np.float32)
    squeeze = x.ndim == 2
    if squeeze:
      x = x[..., None]
    if x.ndim != 3 or x.shape[-1] not in (1, 2, 3, 4):
      raise ValueError(f"expected an (H, W), (H, W, 1|2|3|4) picture, got shape {arr.shape}")
    nc = x.shape[-1]
    color, alpha = (x[..., :3], x[..., 3:]) if nc in (3, 4) else (x[..., :1], x[..., 1:])
    if color.shape[-1] == 1:
      if self.spec.channels == 1:
        out = self.network(color)
      else:
        out = self.network(np.repeat(color, 3, axis=-1)).mean(axis=-1, keepdims=True)
    elif self.spec.channels == 3:
      out = self.network(color)
    else:
      ycc = np.asarray(image_ops.rgb_to_ycbcr(color))
      y_hr = np.clip(self.network(ycc[..., :1]), 0.0, 1.0)  # Y as an image (SRCNN's demo: uint8 Y, then RGB)
      cbcr_hr = self.bicubic(ycc[..., 1:])
      out = np.asarray(image_ops.ycbcr_to_rgb(np.concatenate([y_hr, cbcr_hr], axis=-1)))
    if alpha.shape[-1]:
      out = np.concatenate([out, self.bicubic(alpha)], axis=-1)
    out = np.clip(out, 0.0, 1.0)
    if squeeze:
      out = out[..., 0]
    return np.round(out * 255.0).astype(np.uint8) if as_uint8 else out.astype(np.float32)


def frames_forward(params, frames_BxHxWx3, spec: model.Spec, *, dtype=None, method: str = "auto"):
  """Video frames uint8 RGB (B, H, W, 3) -> uint8 (B, rH, rW, 3) in one jitted program: Y by the net and CbCr by
  bicubic for a luma net, RGB by the net for an RGB net. Same result as `Upscaler.image` on each frame."""
  x = jnp.asarray(frames_BxHxWx3).astype(jnp.float32) / 255.0
  if spec.channels == 3:
    rgb = forward(params, x, spec, dtype=dtype, method=method)
  else:
    ycc = image_ops.rgb_to_ycbcr(x)
    y = jnp.clip(forward(params, ycc[..., :1], spec, dtype=dtype, method=method), 0.0, 1.0)
    cbcr = image_ops.imresize(ycc[..., 1:], scale=spec.scale)
    rgb = image_ops.ycbcr_to_rgb(jnp.concatenate([y, cbcr], axis=-1))
  return jnp.round(jnp.clip(rgb, 0.0, 1.0) * 255.0).astype(jnp.uint8)


def network_flops(spec: model.Spec, lr_h: int, lr_w: int) -> int:
  """FLOPs (2 x multiply-adds) of one LR frame, as `model.flops_per_lr_pixel` counts them."""
  return int(model.flops_per_lr_pixel(spec)) * int(lr_h) * int(lr_w)


def lr_size(out_h: int, out_w: int, scale: int) -> tuple[int, int]:
  """The LR frame that upscales to (at least) out_h x out_w: ceil(out / scale)."""
  return math.ceil(out_h / scale), math.ceil(out_w / scale)
