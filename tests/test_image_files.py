"""Image reading (modes, formats, bad files), atomic writing, folder listing, built-in datasets, checksums."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image, ImageFile

from espcn_jax import image_files

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (13, 17, 3), dtype=np.uint8)
GRAY = RNG.integers(0, 256, (13, 17), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_roundtrip(tmp_path, suffix):
  for arr in (RGB, GRAY):
    p = image_files.save_image(tmp_path / f"x{suffix}", arr)
    out = image_files.load_image(p)
    assert out.dtype == np.uint8 and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


def test_jpeg_and_webp_load(tmp_path):
  Image.fromarray(RGB).save(tmp_path / "a.jpg", quality=95)
  Image.fromarray(RGB).save(tmp_path / "a.webp", lossless=True)
  Image.fromarray(GRAY).save(tmp_path / "g.jpeg")
  assert image_files.load_image(tmp_path / "a.jpg").shape == (13, 17, 3)
  np.testing.assert_array_equal(image_files.load_image(tmp_path / "a.webp"), RGB)
  assert image_files.load_image(tmp_path / "g.jpeg").shape == (13, 17)


def test_modes_rgba_la_palette_16bit(tmp_path):
  rgba = np.concatenate([RGB, np.full((13, 17, 1), 7, np.uint8)], axis=-1)
  Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
  np.testing.assert_array_equal(image_files.load_image(tmp_path / "rgba.png"), RGB)  # alpha dropped, not composited

  Image.fromarray(np.stack([GRAY, GRAY], axis=-1), "LA").save(tmp_path / "la.png")
  np.testing.assert_array_equal(image_files.load_image(tmp_path / "la.png"), GRAY)

  pal = Image.fromarray(RGB).quantize(colors=16)
  pal.save(tmp_path / "p.png")
  assert pal.mode == "P"
  np.testing.assert_array_equal(image_files.load_image(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))

  v16 = (GRAY.astype(np.uint16) * 257 + 100).astype(np.uint16)
  Image.fromarray(v16).save(tmp_path / "g16.png")
  assert Image.open(tmp_path / "g16.png").mode.startswith("I")
  np.testing.assert_array_equal(image_files.load_image(tmp_path / "g16.png"), GRAY)  # round((257 v + 100) / 257) = v

  Image.fromarray(GRAY > 128).save(tmp_path / "bw.png")
  np.testing.assert_array_equal(image_files.load_image(tmp_path / "bw.png"), np.where(GRAY > 128, 255, 0))


def _one_line_error(path, match):
  with pytest.raises(image_files.ImageError) as e:
    image_files.load_image(path)
  msg = str(e.value)
  assert msg.startswith(str(path)) and "\n" not in msg and match in msg
  return msg


def test_bad_files_raise_one_line_errors(tmp_path):
  (tmp_path / "notes.png").write_text("this is not an image\n")
  _one_line_error(tmp_path / "notes.png", "not an image")
  _one_line_error(tmp_path / "missing.png", "no such file")
  _one_line_error(tmp_path, "not a file")
  for name, kw in (("cut.png", {}), ("cut.jpg", {"quality": 90})):
    Image.fromarray(RGB.repeat(8, 0).repeat(8, 1)).save(tmp_path / name, **kw)
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    _one_line_error(tmp_path / name, "truncated")


def test_truncated_raises_even_if_pillow_is_told_to_load_truncated(tmp_path):
  Image.fromarray(RGB.repeat(8, 0)).save(tmp_path / "cut.jpg")
  data = (tmp_path / "cut.jpg").read_bytes()
  (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
  ImageFile.LOAD_TRUNCATED_IMAGES = True
  try:
    _one_line_error(tmp_path / "cut.jpg", "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored
  finally:
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_save_is_atomic(tmp_path, monkeypatch):
  p = image_files.save_image(tmp_path / "sub" / "out.png", GRAY)
  assert p.is_file()
  before = p.read_bytes()

  def boom(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(Image.Image, "save", boom)
  with pytest.raises(OSError, match="disk full"):
    image_files.save_image(p, RGB)
  assert p.read_bytes() == before  # the old file is untouched
  assert sorted(os.listdir(p.parent)) == ["out.png"]  # no temp file left


def test_save_checks_its_input(tmp_path):
  with pytest.raises(image_files.ImageError, match="shape"):
    image_files.save_image(tmp_path / "x.png", np.zeros((4, 4, 2), np.uint8))
  with pytest.raises(image_files.ImageError, match="suffix"):
    image_files.save_image(tmp_path / "x.xyz", GRAY)
  image_files.save_image(tmp_path / "f.png", np.array([[0.0, 0.5, 1.0, 2.0]]))  # float in [0, 1] is rounded
  np.testing.assert_array_equal(image_files.load_image(tmp_path / "f.png"), [[0, 128, 255, 255]])


def test_list_images(tmp_path):
  for name in ("b.PNG", "a.jpg", "c.webp", "SHA256SUMS", "notes.txt", ".hidden.png"):
    (tmp_path / name).write_bytes(b"x")
  (tmp_path / "sub").mkdir()
  (tmp_path / "sub" / "d.bmp").write_bytes(b"x")
  assert [p.name for p in image_files.list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.webp"]
  assert [p.name for p in image_files.list_images(tmp_path, recursive=True)] == ["a.jpg", "b.PNG", "c.webp", "d.bmp"]
  with pytest.raises(image_files.ImageError, match="no such folder"):
    image_files.list_images(tmp_path / "nope")
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "readme.txt").write_text("hi")
  with pytest.raises(image_files.ImageError, match="no images"):
    image_files.list_images(tmp_path / "empty")


def test_builtin_datasets(tmp_path, monkeypatch):
  monkeypatch.delenv(image_files.DATA_DIR_ENV, raising=False)
  set5 = image_files.builtin_dataset_dir("SET5")
  assert set5.name == "Set5"
  assert [p.stem for p in image_files.list_images(set5)] == ["baby", "bird", "butterfly", "head", "woman"]
  assert image_files.load_image(image_files.builtin_dataset_dir("set14") / "bridge.png").ndim == 2  # mode L
  with pytest.raises(image_files.ImageError, match="unknown built-in dataset"):
    image_files.builtin_dataset_dir("urban100")
  monkeypatch.setenv(image_files.DATA_DIR_ENV, str(tmp_path))
  with pytest.raises(image_files.ImageError, match="ESPCN_DATA_DIR"):
    image_files.builtin_dataset_dir("set5")
  (tmp_path / "Set5").mkdir()
  assert image_files.builtin_dataset_dir("set5") == tmp_path / "Set5"


def test_verify_checksums(tmp_path, monkeypatch):
  monkeypatch.delenv(image_files.DATA_DIR_ENV, raising=False)
  assert image_files.verify_checksums(image_files.builtin_dataset_dir("set5")) == 5
  copy = tmp_path / "Set5"
  shutil.copytree(image_files.builtin_dataset_dir("set5"), copy)
  with open(copy / "bird.png", "ab") as f:
    f.write(b"\0")
  (copy / "head.png").unlink()
  with pytest.raises(image_files.ImageError) as e:
    image_files.verify_checksums(copy)
  msg = str(e.value)
  assert "checksum mismatch for bird.png" in msg and "missing head.png" in msg and "\n" not in msg
  with pytest.raises(image_files.ImageError, match="no such checksum file"):
    image_files.verify_checksums(tmp_path)
