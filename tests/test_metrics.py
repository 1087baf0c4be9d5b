"""PSNR / SSIM against hand-worked values, a brute-force ssim_index.m, and dm-pix."""

import math

import dm_pix as pix
import numpy as np
import pytest

from espcn_jax import metrics


def test_psnr_hand_worked():
  a = np.zeros((8, 8))
  b = np.full((8, 8), 10.0)
  assert metrics.psnr(a, b, 0) == pytest.approx(10 * math.log10(255 ** 2 / 100), abs=1e-12)  # 28.1308 dB
  b[0, 0] = 0.0  # MSE (63 * 100) / 64
  assert metrics.psnr(a, b, 0) == pytest.approx(10 * math.log10(255 ** 2 / (6300 / 64)), abs=1e-12)
  assert metrics.psnr(a / 255, b / 255, 0, max_val=1.0) == pytest.approx(metrics.psnr(a, b, 0), abs=1e-9)


def test_crop_border_shaves_each_side():
  a = np.random.default_rng(0).integers(0, 256, (30, 40)).astype(np.float64)
  b = a.copy()
  b[:3], b[-3:], b[:, :3], b[:, -3:] = 0, 0, 0, 0
  assert metrics.psnr(a, b, 3) == float("inf")
  assert metrics.ssim(a, b, 3) == pytest.approx(1.0, abs=1e-12)
  assert metrics.psnr(a, b, 2) < 40
  b[3, 3] += 1  # the first pixel inside the border counts: MSE = 1 / (24 * 34)
  assert metrics.psnr(a, b, 3) == pytest.approx(10 * math.log10(255 ** 2 * 24 * 34), abs=1e-9)


def test_ssim_of_constant_images_hand_worked():
  # Constant images: zero variances and covariance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 255)^2.
  # C1 = 6.5025: (2 * 100 * 110 + 6.5025) / (100^2 + 110^2 + 6.5025) = 22006.5025 / 22106.5025
  got = metrics.ssim(np.full((20, 20), 100.0), np.full((20, 20), 110.0), 0)
  assert got == pytest.approx(22006.5025 / 22106.5025, abs=1e-10)


def brute_force_ssim(a, b):
  """Wang et al.'s ssim_index.m with loops: fspecial('gaussian', 11, 1.5) windows over every valid position."""
  t = np.arange(11) - 5
  w = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.5 ** 2))
  w /= w.sum()
  c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
  vals = []
  for i in range(a.shape[0] - 10):
    for j in range(a.shape[1] - 10):
      pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
      ma, mb = (w * pa).sum(), (w * pb).sum()
      va, vb = (w * pa * pa).sum() - ma ** 2, (w * pb * pb).sum() - mb ** 2
      cov = (w * pa * pb).sum() - ma * mb
      vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
  return float(np.mean(vals))


def test_ssim_matches_brute_force_ssim_index_and_dm_pix():
  rng = np.random.default_rng(1)
  a = rng.integers(0, 256, (19, 23)).astype(np.float64)
  b = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).round()
  ours = metrics.ssim(a, b, 2)
  assert ours == pytest.approx(brute_force_ssim(a[2:-2, 2:-2], b[2:-2, 2:-2]), abs=1e-12)
  assert 0.3 < ours < 0.99
  theirs = float(pix.ssim(a[2:-2, 2:-2, None].astype(np.float32), b[2:-2, 2:-2, None].astype(np.float32),
                          max_val=255.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03))
  assert ours == pytest.approx(theirs, abs=1e-5)


def test_quantize_is_matlab_uint8_of_255x():
  x = np.array([-0.2, 0.0, 0.2, 0.5, 1.0, 1.3, 100.5 / 255, 100.49 / 255])
  np.testing.assert_array_equal(metrics.quantize(x), [0, 0, 51, 128, 255, 255, 101, 100])


def test_inputs_are_checked():
  with pytest.raises(ValueError, match="shape"):
    metrics.psnr(np.zeros((8, 8)), np.zeros((8, 9)), 0)
  with pytest.raises(ValueError, match="single-channel"):
    metrics.ssim(np.zeros((20, 20, 3)), np.zeros((20, 20, 3)), 0)
  with pytest.raises(ValueError, match="crop_border"):
    metrics.psnr(np.zeros((8, 8)), np.zeros((8, 8)), 4)
  with pytest.raises(ValueError, match="at least 11x11"):
    metrics.ssim(np.zeros((12, 12)), np.zeros((12, 12)), 1)
  # HxWx1 is accepted like HxW
  assert metrics.psnr(np.zeros((8, 8, 1)), np.ones((8, 8, 1)), 1) == pytest.approx(20 * math.log10(255))
