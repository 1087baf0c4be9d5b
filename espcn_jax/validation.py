"""The evaluation protocol's per-image steps, and a validation set prepared once for scoring during training.

`evaluate` (the command line) scores folders with PSNR and SSIM through these steps; `train` validates every epoch
with `load_set` once and `espcn_psnr` per epoch: the HR Y, the LR inputs and the bicubic PSNR do not change
between epochs, so only the network's outputs and their PSNR are computed then (no SSIM).

    val = validation.load_set("data/Set5", 3)                      # once
    val.bicubic_psnr                                              # 30.39 on Set5 x3
    validation.espcn_psnr(val, params, spec)                      # every epoch; = evaluate's "espcn" PSNR

Per image (see `espcn_jax.evaluate` for the protocol): HR = modcrop(image, scale), its MATLAB uint8 Y is the
reference; LR = degrade(Y / 255) (float, not quantised) for a luma model, degrade(RGB / 255) for an RGB one;
outputs are clipped, quantised to uint8 levels and scored on Y with `scale` pixels shaved.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import numpy as np

from espcn_jax import image_files, image_ops, metrics, model

_apply = jax.jit(model.apply, static_argnames=("spec",))


@dataclasses.dataclass(frozen=True)
class Prepared:
  """One HR image made ready for scoring at `scale`."""

  y8_HxW: np.ndarray  # uint8 Y of the modcropped HR image: the reference
  lr_y_hxw: np.ndarray  # float32 degraded Y in [0, 1]: the bicubic baseline's input (and a luma model's)
  lr_hxwxC: np.ndarray  # float32 model input with `channels` channels
  gray: bool  # the HR image had no colour (an RGB model's output is then scored by its channel mean)


@dataclasses.dataclass(frozen=True)
class ValSet:
  """A prepared validation folder: what `espcn_psnr` needs, and the constant bicubic PSNR."""

  name: str
  scale: int
  images: tuple[Prepared, ...]
  bicubic_psnr: float  # mean over the images
  errors: tuple[str, ...] = ()  # one line per image that could not be used


def prepare(hr_u8, scale: int, *, channels: int = 1, degradation: str = "bicubic", sigma: float = 1.6,
            kernel_size: int = 7) -> Prepared:
  """uint8 HR image (HxW or HxWx3) -> its reference Y and LR inputs. Raises ValueError if smaller than `scale`."""
  hr_u8 = image_ops.modcrop(np.asarray(hr_u8), scale)
  if min(hr_u8.shape[:2]) < scale:
    raise ValueError(f"image of {hr_u8.shape[0]}x{hr_u8.shape[1]} pixels is smaller than the scale {scale}")
  y8 = image_ops.luma_uint8(hr_u8)
  if y8.ndim == 3:
    y8 = y8[..., 0]
  deg = dict(method=degradation, sigma=sigma, kernel_size=kernel_size)
  lr_y = np.asarray(image_ops.degrade(y8.astype(np.float32) / 255.0, scale, **deg), np.float32)
  gray = hr_u8.ndim == 2
  if channels == 1:
    lr = lr_y[..., None]
  else:
    rgb = np.repeat(hr_u8[..., None], 3, axis=-1) if gray else hr_u8
    lr = np.asarray(image_ops.degrade(rgb.astype(np.float32) / 255.0, scale, **deg), np.float32)
  return Prepared(y8_HxW=y8, lr_y_hxw=lr_y, lr_hxwxC=lr, gray=gray)


def bicubic_y(p: Prepared, scale: int) -> np.ndarray:
  """The bicubic baseline's Y, quantised to {0, ..., 255} (float64 HxW)."""
  return metrics.quantize(image_ops.imresize(p.lr_y_hxw, scale, output_shape=p.y8_HxW.shape))


def output_y(p: Prepared, sr_HxWxC) -> np.ndarray:
  """A model output in [0, 1] (HxWxC) -> the Y that is scored, quantised to {0, ..., 255} (float64 HxW)."""
  sr = np.asarray(sr_HxWxC)
  if sr.shape[-1] == 1:
    return metrics.quantize(sr[..., 0])
  if p.gray:
    return metrics.quantize(sr.mean(axis=-1))
  return image_ops.luma_uint8(metrics.quantize(sr).astype(np.uint8)).astype(np.float64)


def model_y(p: Prepared, params, spec: model.Spec) -> np.ndarray:
  """The network's scored Y for one prepared image (jitted apply, one compile per image shape)."""
  return output_y(p, _apply(params, p.lr_hxwxC[None], spec)[0])


def load_set(folder, scale: int, *, channels: int = 1, degradation: str = "bicubic", sigma: float = 1.6,
             kernel_size: int = 7, name: str | None = None, paths=None) -> ValSet:
  """Prepares every image of `folder` (or the image files `paths`); unreadable or too small ones are listed in
  `errors`, not raised.

  Raises ImageError when the folder is missing or no image can be used.
  """
  folder = pathlib.Path(folder)
  prepared, psnrs, errors = [], [], []
  for path in image_files.list_images(folder) if paths is None else paths:
    try:
      p = prepare(image_files.load_image(path), scale, channels=channels, degradation=degradation, sigma=sigma,
                  kernel_size=kernel_size)
    except (image_files.ImageError, ValueError) as e:
      errors.append(str(e) if isinstance(e, image_files.ImageError) else f"{path}: {e}")
      continue
    prepared.append(p)
    psnrs.append(metrics.psnr(bicubic_y(p, scale), p.y8_HxW, scale))
  if not prepared:
    raise image_files.ImageError(f"{folder}: no usable validation image ({'; '.join(errors[:1]) or 'none found'})")
  return ValSet(name=name or folder.name, scale=int(scale), images=tuple(prepared),
                bicubic_psnr=float(np.mean(psnrs)), errors=tuple(errors))


def espcn_psnr(val: ValSet, params, spec: model.Spec) -> float:
  """Mean PSNR (dB) of the network over the prepared images: `evaluate`'s "espcn" PSNR for the same folder."""
  if spec.scale != val.scale:
    raise ValueError(f"the model is x{spec.scale}, the validation set x{val.scale}")
  return float(np.mean([metrics.psnr(model_y(p, params, spec), p.y8_HxW, val.scale) for p in val.images]))
