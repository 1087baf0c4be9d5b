"""Image files: reading with one-line errors, atomic writing, listing folders, the built-in datasets in `data/`.

    img = load_image("data/Set5/baby.png")        # np.uint8, HxW (gray) or HxWx3 (RGB): what training/scoring use
    paths = list_images(builtin_dataset_dir("set14"))
    save_image("out/baby_x3.png", img)             # atomic (espcn_jax.atomic_io)

Pictures as `upscale` reads and writes them, everything that can be kept is kept:

    pic = read_picture("photo.jpg")                # frames (uint8 or uint16), durations, ICC profile, EXIF, notes
    notes = write_picture("photo_x3.png", pic.with_frames([upscale(f) for f in pic.frames]), quality=95)

- The EXIF orientation is applied (the picture comes out the way a viewer shows it); the rest of the EXIF block
  (camera, date, ...) is copied into formats that hold one.
- 16-bit grayscale PNG/TIFF stays 16-bit (frames are uint16) when the output format holds it.
- Alpha is kept (HxWx2 gray + alpha, HxWx4 RGBA) where the format holds it.
- The ICC colour profile is copied into formats that hold one (PNG, JPEG, TIFF, WebP).
- Every frame of an animation (GIF, APNG, animated WebP) with its duration, into a format that holds animations.
What the output format cannot hold is returned as one-line notes (the caller says them once per file).

Every problem with a file raises `ImageError` (a ValueError) whose one-line message starts with the path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pathlib

import numpy as np
from PIL import Image, ImageFile, ImageOps

from espcn_jax import atomic_io

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
BUILTIN_DATASETS = {"set5": "Set5", "set14": "Set14", "t91": "T91", "bsd200": "BSD200"}
DATA_DIR_ENV = "ESPCN_DATA_DIR"
_ICC_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP")
_EXIF_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP")
_ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")
_SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
_ALPHA_FORMATS = ("PNG", "TIFF", "WEBP", "GIF")
DEFAULT_QUALITY = 95  # JPEG / WebP (Pillow's own default, 75, visibly blurs upscaled detail)


class ImageError(ValueError):
  """An unusable image file, folder or dataset; the one-line message names the path and the problem."""


def _one_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _to_array(img: Image.Image) -> np.ndarray:
  """A decoded Pillow image -> uint8 HxW or HxWx3 (alpha dropped, not composited)."""
  mode = img.mode
  if mode == "L":
    return np.asarray(img, np.uint8)
  if mode in ("1", "LA", "La"):
    return np.asarray(img.convert("L"), np.uint8)
  if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
    # 16-bit grayscale (PNG/TIFF): 0..65535 -> 0..255 as MATLAB's im2uint8 (divide by 257, round).
    v = np.asarray(img).astype(np.float64)
    return np.clip(np.floor(v / 257.0 + 0.5), 0, 255).astype(np.uint8)
  if mode == "F":
    raise ValueError("32-bit float images are not supported")
  if mode == "P":
    has_alpha = "transparency" in img.info or (img.palette is not None and img.palette.mode == "RGBA")
    img = img.convert("RGBA" if has_alpha else "RGB")
  elif mode == "PA":
    img = img.convert("RGBA")
  if img.mode in ("RGBA", "RGBa", "RGBX"):
    return np.asarray(img.convert("RGBA"), np.uint8)[..., :3].copy()
  if img.mode != "RGB":
    img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV
  return np.asarray(img, np.uint8)


@contextlib.contextmanager
def decoding(path: pathlib.Path):
  """Decode a Pillow image inside this block: any decoding problem becomes an ImageError naming `path` (with
  Pillow's LOAD_TRUNCATED_IMAGES forced off, so a truncated file is an error, not a grey band)."""
  if not path.exists():
    raise ImageError(f"{path}: no such file")
  if not path.is_file():
    raise ImageError(f"{path}: not a file")
  saved = ImageFile.LOAD_TRUNCATED_IMAGES
  ImageFile.LOAD_TRUNCATED_IMAGES = False
  try:
    yield
  except ImageError:
    raise
  except Image.UnidentifiedImageError:
    raise ImageError(f"{path}: not an image (format not recognised)") from None
  except (OSError, SyntaxError, ValueError, EOFError) as e:
    msg = str(e).lower()
    what = "truncated image" if ("truncated" in msg or "eof" in msg or isinstance(e, EOFError)) else "unreadable image"
    raise ImageError(f"{path}: {what} ({_one_line(e)})") from None
  except Exception as e:  # Pillow plugins raise assorted types on corrupt data
    raise ImageError(f"{path}: unreadable image ({_one_line(e)})") from None
  finally:
    ImageFile.LOAD_TRUNCATED_IMAGES = saved


def load_image(path) -> np.ndarray:
  """Reads an image as np.uint8: HxW for gray files (L, 1, LA, I;16), HxWx3 otherwise (RGBA/PA drop alpha,
  palette images are expanded). Any format Pillow decodes (png, jpg, bmp, tiff, webp, gif: its first frame, ...).
  An EXIF orientation is applied (as a photo viewer shows the picture).

  Truncated or corrupt files raise ImageError (the whole image is decoded here, with Pillow's
  LOAD_TRUNCATED_IMAGES forced off for the call).
  """
  path = pathlib.Path(path)
  with decoding(path):
    with Image.open(path) as img:
      img.load()
      arr = _to_array(ImageOps.exif_transpose(img))
  if arr.size == 0:
    raise ImageError(f"{path}: empty image ({arr.shape})")
  return arr


def save_image(path, arr) -> pathlib.Path:
  """Writes uint8 HxW / HxWx1 / HxWx3 (or float in [0, 1], rounded) atomically; the format follows the suffix."""
  path = pathlib.Path(path)
  a = np.asarray(arr)
  if a.dtype != np.uint8:
    if not np.issubdtype(a.dtype, np.floating):
      raise ImageError(f"{path}: cannot save dtype {a.dtype}; give uint8 or float in [0, 1]")
    a = np.floor(np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
  if a.ndim == 3 and a.shape[-1] == 1:
    a = a[..., 0]
  if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3)):
    raise ImageError(f"{path}: cannot save an array of shape {a.shape}; give HxW or HxWx3")
  fmt = Image.registered_extensions().get(path.suffix.lower())
  if fmt is None:
    raise ImageError(f"{path}: unknown image format for suffix {path.suffix!r}")
  with atomic_io.replacing(path) as tmp:
    Image.fromarray(a).save(tmp, format=fmt)
  return path


def list_images(folder, recursive: bool = False) -> list[pathlib.Path]:
  """Sorted image files (by suffix, case-insensitive) in `folder` (and its subfolders if `recursive`).

  Other files (SHA256SUMS, notes) are skipped. Raises ImageError for a missing folder or one without images.
  """
  folder = pathlib.Path(folder)
  if not folder.exists():
    raise ImageError(f"{folder}: no such folder")
  if not folder.is_dir():
    raise ImageError(f"{folder}: not a folder")
  candidates = folder.rglob("*") if recursive else folder.iterdir()
  paths = sorted(p for p in candidates
                 if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
  if not paths:
    raise ImageError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder"
                     + (" or its subfolders" if recursive else ""))
  return paths


def data_root() -> pathlib.Path:
  """$ESPCN_DATA_DIR if set, else the package's own `espcn_jax/data/` (installed with it; `data/` in a clone)."""
  env = os.environ.get(DATA_DIR_ENV)
  return pathlib.Path(env) if env else pathlib.Path(__file__).resolve().parent / "data"


def builtin_dataset_dir(name: str) -> pathlib.Path:
  """The folder of a built-in dataset: "set5", "set14", "t91" or "bsd200" (case-insensitive) -> <data>/<Name>."""
  key = str(name).lower()
  if key not in BUILTIN_DATASETS:
    raise ImageError(f"{name}: unknown built-in dataset; expected one of {', '.join(BUILTIN_DATASETS)}")
  folder = data_root() / BUILTIN_DATASETS[key]
  if not folder.is_dir():
    raise ImageError(f"{folder}: built-in dataset {BUILTIN_DATASETS[key]} not found "
                     f"(set {DATA_DIR_ENV} to the folder holding {BUILTIN_DATASETS[key]}/)")
  return folder


def sha256(path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def verify_checksums(folder) -> int:
  """Checks every file listed in `folder`/SHA256SUMS (`sha256sum` format). Returns how many were verified.

  Raises ImageError naming the missing, altered and malformed entries.
  """
  folder = pathlib.Path(folder)
  sums = folder / "SHA256SUMS"
  if not sums.is_file():
    raise ImageError(f"{sums}: no such checksum file")
  missing, altered, bad = [], [], []
  n = 0
  for i, line in enumerate(sums.read_text().splitlines(), 1):
    if not line.strip():
      continue
    parts = line.strip().split(maxsplit=1)
    if len(parts) != 2 or len(parts[0]) != 64:
      bad.append(str(i))
      continue
    digest, name = parts[0].lower(), parts[1].lstrip("*")
    target = folder / name
    if not target.is_file():
      missing.append(name)
    elif sha256(target) != digest:
      altered.append(name)
    else:
      n += 1
  problems = []
  if missing:
    problems.append(f"missing {', '.join(missing)}")
  if altered:
    problems.append(f"checksum mismatch for {', '.join(altered)}")
  if bad:
    problems.append(f"malformed lines {', '.join(bad)}")
  if problems:
    raise ImageError(f"{sums}: " + "; ".join(problems))
  return n


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


def read_picture(path) -> Picture:
  """All frames of `path` (EXIF orientation applied), their durations and ICC profile. Raises ImageError."""
  path = pathlib.Path(path)
  with decoding(path):
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
    raise ImageError(f"{path}: empty image ({frames[0].shape})")
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


def write_picture(path, pic: Picture, *, quality: int = DEFAULT_QUALITY) -> list[str]:
  """Writes `pic` (format from the suffix) atomically; returns one-line notes on what the format could not keep."""
  path = pathlib.Path(path)
  fmt = Image.registered_extensions().get(path.suffix.lower())
  if fmt is None:
    raise ImageError(f"{path}: unknown image format for suffix {path.suffix!r}")
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
