"""The per-epoch validation: prepared once; its PSNR against the protocol written out by hand."""

import jax
import numpy as np
import pytest
from PIL import Image

from espcn_jax import image_files, model, validation

SPEC = model.Spec(scale=3, features=(8, 4))


def _hand_y8(path, scale):
  """The reference Y of the protocol written out with numpy alone: modcrop, then MATLAB's rgb2ycbcr Y on uint8
  (16 + (65.481 R + 128.553 G + 24.966 B) / 255, rounded)."""
  img = np.asarray(Image.open(path)).astype(np.float64)
  img = img[:img.shape[0] // scale * scale, :img.shape[1] // scale * scale]
  if img.ndim == 2:
    return img
  return np.floor(16 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255 + 0.5)


def test_set5_psnr_against_the_protocol_by_hand():
  folder = image_files.builtin_dataset_dir("set5")
  val = validation.load_set(folder, 3, name="set5")
  assert val.name == "set5" and len(val.images) == 5 and val.errors == ()
  assert val.bicubic_psnr == pytest.approx(30.3922, abs=2e-3)  # the published 30.39
  # A net whose output is 0.3 everywhere: its scored Y is round(0.3 * 255) = 77 on every pixel, so the PSNR is the
  # mean over the images of 10 log10(255^2 / mean((Y - 77)^2)) on Y without its 3-pixel border.
  params = jax.tree_util.tree_map(np.zeros_like, model.init(jax.random.PRNGKey(0), SPEC))
  params["conv3"]["bias"] = np.full_like(params["conv3"]["bias"], 0.3)
  want = np.mean([10 * np.log10(255 ** 2 / np.mean((_hand_y8(p, 3)[3:-3, 3:-3] - 77) ** 2))
                  for p in image_files.list_images(folder)])
  assert validation.espcn_psnr(val, params, SPEC) == pytest.approx(want, abs=1e-9)
  with pytest.raises(ValueError, match="x3"):
    validation.espcn_psnr(val, params, model.Spec(scale=2, features=(8, 4)))


def test_rgb_model_gray_image_and_bad_files(tmp_path):
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (40, 38, 3), dtype=np.uint8)).save(tmp_path / "a_rgb.png")
  Image.fromarray(rng.integers(0, 256, (31, 33), dtype=np.uint8)).save(tmp_path / "b_gray.png")
  Image.fromarray(rng.integers(0, 256, (2, 2, 3), dtype=np.uint8)).save(tmp_path / "c_tiny.png")
  (tmp_path / "d_broken.png").write_bytes(b"not a png")
  spec3 = model.Spec(scale=3, channels=3, features=(8, 4))
  val = validation.load_set(tmp_path, 3, channels=3)
  assert len(val.images) == 2 and len(val.errors) == 2
  assert "c_tiny.png" in val.errors[0] and "d_broken.png" in val.errors[1]
  assert [p.gray for p in val.images] == [False, True] and val.images[0].lr_hxwxC.shape == (13, 12, 3)
  # An RGB net whose output is 0.3 everywhere: on the colour image its RGB (77, 77, 77) has the Y
  # round(16 + 219 * 77 / 255) = 82; on the gray image the mean of its channels is scored: 77.
  params = jax.tree_util.tree_map(np.zeros_like, model.init(jax.random.PRNGKey(1), spec3))
  params["conv3"]["bias"] = np.full_like(params["conv3"]["bias"], 0.3)
  psnr = lambda name, y: 10 * np.log10(255 ** 2 / np.mean((_hand_y8(tmp_path / name, 3)[3:-3, 3:-3] - y) ** 2))
  want = (psnr("a_rgb.png", 82) + psnr("b_gray.png", 77)) / 2
  assert validation.espcn_psnr(val, params, spec3) == pytest.approx(want, abs=1e-9)


def test_no_usable_image_is_an_error(tmp_path):
  (tmp_path / "broken.png").write_bytes(b"not a png")
  with pytest.raises(image_files.ImageError, match="no usable validation image"):
    validation.load_set(tmp_path, 3)
  with pytest.raises(image_files.ImageError):
    validation.load_set(tmp_path / "missing", 3)
