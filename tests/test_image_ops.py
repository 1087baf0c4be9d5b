"""image_ops against MATLAB's rgb2ycbcr values and imresize weights worked out by hand from the cubic kernel."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espcn_jax import image_ops


def keys_cubic(t):
  """Keys' kernel, a = -0.5, written out again for the tests."""
  t = abs(t)
  if t <= 1:
    return 1.5 * t ** 3 - 2.5 * t ** 2 + 1
  if t <= 2:
    return -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2
  return 0.0


def matlab_contributions(in_size, out_size, scale):
  """MATLAB imresize's `contributions` with explicit loops (1-based, as in imresize.m), as a dense matrix."""
  width = 4.0 / scale if scale < 1 else 4.0
  h = (lambda t: scale * keys_cubic(scale * t)) if scale < 1 else keys_cubic
  m = np.zeros((out_size, in_size))
  for x in range(1, out_size + 1):
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = math.floor(u - width / 2)
    taps = [(j, h(u - j)) for j in range(left, left + math.ceil(width) + 2)]
    total = sum(w for _, w in taps)
    for j, w in taps:
      k = j  # mirror into 1..in_size: 0 -> 1, -1 -> 2, in+1 -> in, ...
      while k < 1 or k > in_size:
        k = 1 - k if k < 1 else 2 * in_size + 1 - k
      m[x - 1, k - 1] += w / total
  return m


def test_cubic_kernel_values():
  np.testing.assert_allclose(image_ops.cubic(np.array([0.0, 0.25, 0.75, 1.0, 1.25, 1.75, 2.0, 2.5])),
                             [1.0, 0.8671875, 0.2265625, 0.0, -0.0703125, -0.0234375, 0.0, 0.0])


def test_resize_matrix_upscale_by_hand():
  # in=2, out=4, scale 2: output x=1 sits at u = 0.75, taps -2..3 at distances 2.75 .. -2.25; weights
  # cubic(1.75) = -0.0234375 (tap -1 -> pixel 2), cubic(0.75) = 0.2265625 (tap 0 -> pixel 1),
  # cubic(0.25) = 0.8671875 (tap 1), cubic(1.25) = -0.0703125 (tap 2): row [1.09375, -0.09375].
  expected = np.array([[1.09375, -0.09375], [0.796875, 0.203125], [0.203125, 0.796875], [-0.09375, 1.09375]])
  np.testing.assert_allclose(image_ops.resize_matrix(2, 4, 2.0), expected, atol=1e-15)
  # MATLAB: imresize([1 2], [1 4]) = [0.9063 1.2031 1.7969 2.0938]
  out = image_ops.imresize(np.array([[1.0, 2.0]]), output_shape=(1, 4))
  np.testing.assert_allclose(out, [[0.90625, 1.203125, 1.796875, 2.09375]], atol=1e-6)


def test_resize_matrix_antialiased_downscale_by_hand():
  # in=4, out=2, scale 1/2: kernel 0.5 * cubic(t / 2), width 8. Output x=1 at u = 1.5, taps -3..6 with weights
  # 0, -0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875, 0;
  # mirrored -2 -> 3, -1 -> 2, 0 -> 1, 5 -> 4 and summed per pixel.
  row = [0.11328125 + 0.43359375, -0.03515625 + 0.43359375, -0.01171875 + 0.11328125, -0.03515625 - 0.01171875]
  np.testing.assert_allclose(image_ops.resize_matrix(4, 2, 0.5), [row, row[::-1]], atol=1e-15)
  # MATLAB: imresize(1:4, [1 2]) = [1.4609 3.5391]
  out = image_ops.imresize(np.array([[1.0, 2.0, 3.0, 4.0]]), output_shape=(1, 2))
  np.testing.assert_allclose(out, [[1.4609375, 3.5390625]], atol=1e-6)


@pytest.mark.parametrize("in_size,scale", [(17, 3), (51, 1 / 3), (12, 1 / 2), (30, 1 / 4), (9, 4), (7, 2),
                                           (5, 1 / 3)])
def test_resize_matrix_matches_matlab_contributions_and_rows_sum_to_one(in_size, scale):
  out_size = math.ceil(in_size * scale - 1e-9)
  m = image_ops.resize_matrix(in_size, out_size, scale)
  np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
  np.testing.assert_allclose(m, matlab_contributions(in_size, out_size, scale), atol=1e-12)


def test_imresize_constant_stays_constant_and_sizes_are_matlabs():
  img = np.full((10, 7, 3), 0.37, np.float32)
  up = image_ops.imresize(img, 3)
  assert up.shape == (30, 21, 3)
  np.testing.assert_allclose(up, 0.37, atol=1e-6)
  down = image_ops.imresize(img, 1 / 3)
  assert down.shape == (4, 3, 3)  # ceil(10 / 3), ceil(7 / 3)
  np.testing.assert_allclose(down, 0.37, atol=1e-6)
  assert image_ops.imresize(np.zeros((255, 255)), 1 / 3).shape == (85, 85)  # exact, not ceil(85.0000001)


def test_imresize_is_separable_matrix_product_and_layouts_agree():
  rng = np.random.default_rng(0)
  img = rng.random((2, 12, 9, 3)).astype(np.float32)
  mh, mw = image_ops.resize_matrix(12, 4, 1 / 3), image_ops.resize_matrix(9, 3, 1 / 3)
  expected = np.einsum("oh,bhwc,pw->bopc", mh, img.astype(np.float64), mw)
  batch = image_ops.imresize(img, 1 / 3)
  np.testing.assert_allclose(batch, expected, atol=1e-5)
  np.testing.assert_allclose(image_ops.imresize(img[1], 1 / 3), expected[1], atol=1e-5)
  np.testing.assert_allclose(image_ops.imresize(img[1, ..., 2], 1 / 3), expected[1, ..., 2], atol=1e-5)
  # JAX input takes the jnp path; both agree
  jax_out = image_ops.imresize(jnp.asarray(img), 1 / 3)
  assert isinstance(jax_out, jax.Array)
  np.testing.assert_allclose(np.asarray(jax_out), expected, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_integer_upscale_phases_rebuild_the_matrix_and_imresize_matches_it(scale):
  # The r phases (<= 4 taps each) on the mirrored image are MATLAB's weight matrix, for every size that can be
  # mirrored once; smaller ones fall back to the matrix. Either way imresize equals the dense product.
  for n in range(1, 41):
    taps = image_ops.upscale_taps(n, scale * n, float(scale))
    if n >= 5:
      assert taps is not None, n
    if taps is not None:
      pad, phases = taps
      assert len(phases) == scale and pad <= 3 and all(1 <= len(ph) <= 4 for ph in phases)
  assert image_ops.upscale_taps(10, 25, 2.5) is None and image_ops.upscale_taps(12, 4, 1 / 3) is None
  rng = np.random.default_rng(scale)
  for shape in [(2, 17, 23, 2), (5, 7), (4, 4, 1), (1, 6, 3), (40, 9, 3)]:
    img = rng.random(shape).astype(np.float32)
    x = img[..., None] if img.ndim == 2 else img
    h, w = x.shape[-3], x.shape[-2]
    expected = np.einsum("oh,...hwc,pw->...opc", image_ops.resize_matrix(h, scale * h, scale), x.astype(np.float64),
                         image_ops.resize_matrix(w, scale * w, scale)).reshape(
                             img.shape[:-2] + (scale * h, scale * w) if img.ndim == 2 else img.shape[:-3] + (
                                 scale * h, scale * w, img.shape[-1]))
    out_np = image_ops.imresize(img, scale)
    out_jax = jax.jit(lambda a: image_ops.imresize(a, scale=scale))(jnp.asarray(img))
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32 and out_np.shape == expected.shape
    np.testing.assert_allclose(out_np, expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out_jax), expected, atol=1e-6)


@pytest.mark.parametrize("scale, shift", [(3, 1 / 6), (2, 1 / 8), (4, -3 / 16), (3, 0.5)])
def test_shifted_resize_samples_a_quadratic_at_the_shifted_positions(scale, shift):
  # Keys' cubic reproduces quadratics exactly, so away from the mirrored edges output k of a shifted upscale is the
  # quadratic at input coordinate (k + 0.5) / r - 0.5 + shift (0-based, pixel centres at integers), on both axes and
  # by both paths (the r phases and the dense matrix).
  n = 24
  f = lambda u: 0.2 + 0.03 * u + 0.001 * u * u
  img = np.add.outer(f(np.arange(n)), 0.5 * f(np.arange(n + 3))).astype(np.float64)
  u = lambda m, d: (np.arange(scale * m) + 0.5) / scale - 0.5 + d
  expected = np.add.outer(f(u(n, shift)), 0.5 * f(u(n + 3, -shift)))
  out = image_ops.imresize(img.astype(np.float32), scale, shift=(shift, -shift))
  inner = slice(3 * scale, -3 * scale)
  np.testing.assert_allclose(out[inner, inner], expected[inner, inner], atol=2e-6)
  assert image_ops.upscale_taps(n, scale * n, float(scale), shift) is not None
  dense = np.einsum("oh,hw,pw->op", image_ops.resize_matrix(n, scale * n, scale, shift=shift), img,
                    image_ops.resize_matrix(n + 3, scale * (n + 3), scale, shift=-shift))
  np.testing.assert_allclose(out, dense, atol=2e-6)  # the edges too
  # Unshifted, the same outputs sit where MATLAB puts them, `shift` input pixels away.
  moved = image_ops.imresize(img.astype(np.float32), scale)
  assert np.abs(moved[inner, inner] - expected[inner, inner]).max() > 0.01 * abs(shift)


def test_imresize_rejects_integer_images():
  with pytest.raises(TypeError, match="float"):
    image_ops.imresize(np.zeros((4, 4), np.uint8), 2)


def test_degrade_under_jit_on_patch_batches():
  rng = np.random.default_rng(1)
  hr = jnp.asarray(rng.random((4, 51, 51, 1)), jnp.float32)
  f = jax.jit(image_ops.degrade, static_argnames=("scale", "method", "sigma", "kernel_size"))
  for method in image_ops.DEGRADATIONS:
    lr = f(hr, scale=3, method=method)
    assert lr.shape == (4, 17, 17, 1)
    np.testing.assert_allclose(np.asarray(lr), np.asarray(image_ops.degrade(np.asarray(hr), 3, method)), atol=1e-5)
  with pytest.raises(ValueError, match="unknown method"):
    image_ops.degrade(hr, 3, "nearest")


def test_gaussian_degrade_keeps_the_centre_pixel_of_each_block():
  rng = np.random.default_rng(2)
  hr = rng.random((12, 9)).astype(np.float32)
  for r in (2, 3):
    lr = image_ops.gaussian_degrade(hr, r, sigma=0.05, kernel_size=3)  # ~ a delta: no blur
    np.testing.assert_allclose(lr, hr[r // 2::r, r // 2::r][: 12 // r, : 9 // r], atol=1e-6)


def test_gaussian_degrade_blur_weights_and_symmetric_border():
  g = np.exp(-0.5 * (np.arange(-3, 4) / 1.6) ** 2)
  g /= g.sum()
  m = image_ops.gaussian_matrix(12, 3, 1.6, 7)
  np.testing.assert_allclose(m[1, 1:8], g, atol=1e-12)  # output 1 keeps input 4 = 3 + 1, taps 1..7
  # output 0 is centred on input 1: taps -2, -1 mirror onto 1, 0 (symmetric, MATLAB imfilter 'symmetric')
  np.testing.assert_allclose(m[0, :5], [g[2] + g[1], g[3] + g[0], g[4], g[5], g[6]], atol=1e-12)
  np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
  const = image_ops.gaussian_degrade(np.full((12, 12, 1), 0.6, np.float32), 3)
  np.testing.assert_allclose(const, 0.6, atol=1e-6)


def test_rgb_to_ycbcr_matches_matlab_uint8_values():
  # MATLAB: rgb2ycbcr(uint8([255 0 0])) = [81 90 240], green [145 54 34], blue [41 240 110],
  # white [235 128 128], black [16 128 128].
  rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]], np.uint8)
  expected = [[81, 90, 240], [145, 54, 34], [41, 240, 110], [235, 128, 128], [16, 128, 128]]
  ycc = np.asarray(image_ops.rgb_to_ycbcr(rgb / 255.0))
  np.testing.assert_array_equal(np.floor(ycc * 255 + 0.5), expected)
  np.testing.assert_array_equal(image_ops.luma_uint8(rgb[None]), [[81, 145, 41, 235, 16]])
  # double input: Y of red = 16/255 + 65.481/255
  np.testing.assert_allclose(ycc[0, 0], (16 + 65.481) / 255, atol=1e-6)


def test_ycbcr_to_rgb_inverts_rgb_to_ycbcr():
  rgb = np.random.default_rng(3).random((5, 6, 3)).astype(np.float32)
  np.testing.assert_allclose(np.asarray(image_ops.ycbcr_to_rgb(image_ops.rgb_to_ycbcr(rgb))), rgb, atol=1e-5)
  # MATLAB ycbcr2rgb([16 128 128]/255) is black, [235 128 128]/255 white
  np.testing.assert_allclose(np.asarray(image_ops.ycbcr_to_rgb(np.array([[16, 128, 128], [235, 128, 128]]) / 255.0)),
                             [[0, 0, 0], [1, 1, 1]], atol=1e-6)


def test_luma_of_gray_is_the_image_and_of_rgb_is_y():
  gray = np.random.default_rng(4).random((6, 5)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(image_ops.luma(gray)), gray)
  np.testing.assert_array_equal(np.asarray(image_ops.luma(gray[..., None])), gray[..., None])
  rgb = np.stack([gray] * 3, axis=-1)
  y = np.asarray(image_ops.luma(rgb))
  assert y.shape == (6, 5, 1)
  np.testing.assert_allclose(y[..., 0], 16 / 255 + gray * 219 / 255, atol=1e-6)  # 65.481+128.553+24.966 = 219
  g8 = (gray * 255).astype(np.uint8)
  np.testing.assert_array_equal(image_ops.luma_uint8(g8), g8)


def test_modcrop():
  img = np.arange(10 * 8 * 3).reshape(10, 8, 3)
  assert image_ops.modcrop(img, 3).shape == (9, 6, 3)
  np.testing.assert_array_equal(image_ops.modcrop(img, 3), img[:9, :6])
  assert image_ops.modcrop(img[..., 0], 4).shape == (8, 8)
  assert image_ops.modcrop(np.zeros((2, 10, 8, 1)), 3).shape == (2, 9, 6, 1)
