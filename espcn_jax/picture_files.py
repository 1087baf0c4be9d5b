"""Picture files as `upscale` reads and writes them: everything that can be kept is kept.

    pic = picture_files.read("photo.jpg")        # frames (uint8 or uint16), durations, ICC profile, notes
    frames = [upscale(f) for f in pic.frames]
    notes = picture_files.write("photo_x3.png", pic.with_frames(frames), quality=95)

- The EXIF orientation is applied (the picture comes out the way a viewer shows it); the rest of the EXIF block
  (camera, date, ...) is copied into formats that hold one.
- 16-bit grayscale PNG/TIFF stays 16-bit (frames are uint16) when the output format holds it.
- Alpha is kept (HxWx2 gray + alpha, HxWx4 RGBA) where the format holds it.
- The ICC colour profile is copied into formats that hold one (PNG, JPEG, TIFF, WebP).
- Every frame of an animation (GIF, APNG, animated WebP) with its duration, into a format that holds animations.
What the output format cannot hold is returned as one-line notes (the caller says them once per file).
Errors are `images.ImageError` naming the file. Writes are atomic (espcn_jax.atomic_io).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
from PIL import Image, ImageOps

from espcn_jax import atomic_io, images

_ICC_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP")
_EXIF_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP")
_ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")
_SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
_ALPHA_FORMATS = ("PNG", "TIFF", "WEBP", "GIF")
DEFAULT_QUALITY = 95  # JPEG / WebP (Pillow's own default, 75, visibly blurs upscaled detail)


@dataclasses.dataclass
class Picture:
  frames: list  # np.uint8 or np.uint16 arrays: HxW, HxWx2 (LA), HxWx3 or HxWx4 (RGBA); one per frame
  durations: list | None = None  # ms per frame of an animation
  loop: int | None = None
  icc_profile: bytes | None = None
  exif: bytes | None = None  # the EXIF block, orientation tag removed (it has been applied)
  notes: list = dataclasses.field(default_factory=list)  # what reading could not keep

  def with_frames(self, frames) -> "Picture":
    return dataclasses.replace(self, frames=list(frames))


def _frame_array(img: Image.Image, animated: bool) -> np.ndarray:
  mode = img.mode
  if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
    return np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
  if mode == "F":
    raise ValueError("32-bit float images are not supported")
  has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in img.info
  if animated:  # frames of a GIF may switch between palette and RGB(A): one layout for all
    return np.asarray(img.convert("RGBA"), np.uint8)
  if mode in ("1", "L", "LA", "La"):
    return np.asarray(img.convert("LA" if has_alpha else "L"), np.uint8)
  return np.asarray(img.convert("RGBA" if has_alpha else "RGB"), np.uint8)


def _colour_depth_note(path: pathlib.Path, img: Image.Image) -> str | None:
  """Pillow reads 16-bit colour PNG/TIFF as 8 bits per channel: say so."""
  bits = None
  if img.format == "PNG" and img.mode in ("RGB", "RGBA", "LA"):
    with open(path, "rb") as f:
      head = f.read(25)
    bits = head[24] if len(head) == 25 else None  # the IHDR chunk's bit depth
  elif img.format == "TIFF" and img.mode in ("RGB", "RGBA", "LA"):
    bits = max(np.atleast_1d(img.tag_v2.get(258, 8)))
  if bits and bits > 8:
    return f"{bits}-bit colour is read as 8 bits per channel (Pillow): written as 8-bit"
  return None


def read(path) -> Picture:
  """All frames of `path` (EXIF orientation applied), their durations and ICC profile. Raises ImageError."""
  path = pathlib.Path(path)
  with images.decoding(path):
    with Image.open(path) as img:
      n = getattr(img, "n_frames", 1)
      animated = n > 1
      icc, loop = img.info.get("icc_profile"), img.info.get("loop")
      notes = [m for m in (_colour_depth_note(path, img),) if m]
      frames, durations, exif = [], [], None
      for i in range(n):
        img.seek(i)
        img.load()
        upright = img if animated else ImageOps.exif_transpose(img)
        exif = exif or upright.info.get("exif")
        frames.append(_frame_array(upright, animated))
        durations.append(int(img.info.get("duration") or 100))
  if any(f.size == 0 for f in frames):
    raise images.ImageError(f"{path}: empty image ({frames[0].shape})")
  return Picture(frames, durations if animated else None, loop, icc, exif, notes)


def _pil(arr: np.ndarray) -> Image.Image:
  """uint16 HxW -> I;16; uint8 HxW, HxWx2, HxWx3, HxWx4 -> L, LA, RGB, RGBA."""
  return Image.fromarray(np.ascontiguousarray(arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr))


def _fit(arr: np.ndarray, fmt: str, notes: set) -> np.ndarray:
  """`arr` in a layout `fmt` can hold, noting what is lost."""
  if arr.dtype == np.uint16 and fmt not in _SIXTEEN_BIT_FORMATS:
    notes.add(f"{fmt} holds 8 bits per channel: 16-bit written as 8-bit")
    arr = np.floor(arr.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
  if arr.ndim == 3 and arr.shape[-1] in (2, 4) and fmt not in _ALPHA_FORMATS:
    notes.add(f"{fmt} has no alpha channel: transparency dropped")
    arr = arr[..., :-1]
    arr = arr[..., 0] if arr.shape[-1] == 1 else arr
  return arr


def write(path, pic: Picture, *, quality: int = DEFAULT_QUALITY) -> list[str]:
  """Writes `pic` (format from the suffix) atomically; returns one-line notes on what the format could not keep."""
  path = pathlib.Path(path)
  fmt = Image.registered_extensions().get(path.suffix.lower())
  if fmt is None:
    raise images.ImageError(f"{path}: unknown image format for suffix {path.suffix!r}")
  notes: set = set()
  frames = pic.frames
  if len(frames) > 1 and fmt not in _ANIMATED_FORMATS:
    notes.add(f"{fmt} holds one frame: only the first of {len(frames)} frames written")
    frames = frames[:1]
  pils = [_pil(_fit(np.asarray(f), fmt, notes)) for f in frames]
  kw: dict = {}
  if fmt in ("JPEG", "WEBP"):
    kw["quality"] = int(quality)
  if pic.icc_profile:
    if fmt in _ICC_FORMATS:
      kw["icc_profile"] = pic.icc_profile
    else:
      notes.add(f"{fmt} holds no colour profile: ICC profile dropped")
  if pic.exif:
    if fmt in _EXIF_FORMATS:
      kw["exif"] = pic.exif
    else:
      notes.add(f"{fmt} holds no EXIF block: camera metadata dropped")
  if len(pils) > 1:
    kw.update(save_all=True, append_images=pils[1:], duration=pic.durations or 100, loop=pic.loop or 0)
    if fmt == "GIF":
      kw["disposal"] = 2
  with atomic_io.replacing(path) as tmp:
    pils[0].save(tmp, format=fmt, **kw)
  return sorted(notes)
