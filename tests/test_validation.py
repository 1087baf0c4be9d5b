"""The per-epoch validation: prepared once, and the same PSNR as `evaluate` gives for the same folder."""

import jax
import numpy as np
import pytest
from PIL import Image

from espcn_jax import evaluate, image_files, model, validation

SPEC = model.Spec(scale=3, features=(8, 4))


def test_set5_matches_evaluate_folder():
  params = model.init(jax.random.PRNGKey(0), SPEC)
  folder = image_files.builtin_dataset_dir("set5")
  val = validation.load_set(folder, 3, name="set5")
  assert val.name == "set5" and len(val.images) == 5 and val.errors == ()
  rows = {r["method"]: r for r in evaluate.evaluate_folder(folder, 3, params=params, spec=SPEC)}
  assert val.bicubic_psnr == pytest.approx(rows["bicubic"]["psnr"], abs=1e-9)
  assert val.bicubic_psnr == pytest.approx(30.3922, abs=2e-3)  # the published 30.39
  assert validation.espcn_psnr(val, params, SPEC) == pytest.approx(rows["espcn"]["psnr"], abs=1e-9)
  with pytest.raises(ValueError, match="x3"):
    validation.espcn_psnr(val, params, model.Spec(scale=2, features=(8, 4)))


def test_rgb_model_gray_image_and_bad_files(tmp_path):
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (40, 38, 3), dtype=np.uint8)).save(tmp_path / "a_rgb.png")
  Image.fromarray(rng.integers(0, 256, (31, 33), dtype=np.uint8)).save(tmp_path / "b_gray.png")
  Image.fromarray(rng.integers(0, 256, (2, 2, 3), dtype=np.uint8)).save(tmp_path / "c_tiny.png")
  (tmp_path / "d_broken.png").write_bytes(b"not a png")
  spec3 = model.Spec(scale=3, channels=3, features=(8, 4))
  params = model.init(jax.random.PRNGKey(1), spec3)
  val = validation.load_set(tmp_path, 3, channels=3)
  assert len(val.images) == 2 and len(val.errors) == 2
  assert [p.gray for p in val.images] == [False, True] and val.images[0].lr_hxwxC.shape == (13, 12, 3)
  errors = []
  rows = {r["method"]: r for r in evaluate.evaluate_folder(tmp_path, 3, params=params, spec=spec3, errors=errors)}
  assert len(errors) == 2
  assert val.bicubic_psnr == pytest.approx(rows["bicubic"]["psnr"], abs=1e-9)
  assert validation.espcn_psnr(val, params, spec3) == pytest.approx(rows["espcn"]["psnr"], abs=1e-9)


def test_no_usable_image_is_an_error(tmp_path):
  (tmp_path / "broken.png").write_bytes(b"not a png")
  with pytest.raises(image_files.ImageError, match="no usable validation image"):
    validation.load_set(tmp_path, 3)
  with pytest.raises(image_files.ImageError):
    validation.load_set(tmp_path / "missing", 3)
