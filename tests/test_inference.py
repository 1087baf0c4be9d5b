"""inference: exact bucket padding (masking), tiled == untiled, the fused first layer, colour handling, frames."""

import jax
import numpy as np
import pytest

from espcn_jax import image_ops, inference, model


def _params(spec, seed=0):
  p = model.init(jax.random.PRNGKey(seed), spec)
  # Nonzero biases: with zero biases tanh(0) = 0 and naive padding would look exact by accident.
  return jax.tree_util.tree_map(lambda a: a + 0.05 * jax.random.normal(jax.random.PRNGKey(seed + 1), a.shape), p)


SPEC = model.Spec(scale=3)
PARAMS = _params(SPEC)


def _ref(x_BxHxWxC, spec=SPEC, params=PARAMS):
  return np.asarray(model.apply(params, x_BxHxWxC, spec))


def test_receptive_radius():
  assert inference.receptive_radius(SPEC) == 4
  assert inference.receptive_radius(model.Spec(kernel_sizes=(9, 5, 5))) == 8


# Each method's agreement with model.apply on real images is tests/test_backends.py; here: masks, tiles, buckets.
XLA_METHODS = ["conv", "fma"]


@pytest.mark.parametrize("method", XLA_METHODS)
def test_masked_padding_is_exact(method):
  """A picture padded to a bucket with zeros, masked, gives exactly the unpadded output on its region."""
  x = np.random.default_rng(2).random((1, 19, 26, 1), np.float32)
  canvas = np.zeros((1, 32, 32, 1), np.float32)
  canvas[:, :19, :26] = x
  want = np.asarray(inference.forward(PARAMS, x, SPEC, method=method))
  got = inference.forward(PARAMS, canvas, SPEC, valid_Bx4=np.array([[0, 19, 0, 26]]), method=method)
  np.testing.assert_allclose(np.asarray(got)[:, :57, :78], want, atol=1e-6)
  # Without the mask the padding leaks tanh(bias) into the picture's border: the scheme matters.
  naive = np.asarray(inference.forward(PARAMS, canvas, SPEC, method=method))[:, :57, :78]
  assert np.abs(naive - want).max() > 1e-3
  # Edge replication is not exact either.
  edge = np.pad(x, ((0, 0), (0, 13), (0, 6), (0, 0)), mode="edge")
  edge_out = np.asarray(inference.forward(PARAMS, edge, SPEC, method=method))[:, :57, :78]
  assert np.abs(edge_out - want).max() > 1e-3


def test_plan_canvases_covers_the_picture():
  (ch, cw), splits = inference.plan_canvases(100, 37, tile=32, halo=4, bucket=8)
  covered = np.zeros((100, 37), int)
  for y, x, (y0, y1, x0, x1) in splits:
    core = (slice(max(y + max(y0, 4), 0), y + min(y1, ch - 4)), slice(max(x + max(x0, 4), 0), x + min(x1, cw - 4)))
    covered[core] += 1
  assert (covered == 1).all()
  assert ch <= 32 + 8 and cw <= 32 + 8
  (ch, cw), splits = inference.plan_canvases(20, 30, tile=64, halo=4, bucket=16)
  assert (ch, cw) == (32, 32) and splits == [(0, 0, (0, 20, 0, 30))]


@pytest.mark.parametrize("method", XLA_METHODS)
def test_tiled_equals_untiled(method):
  img = np.random.default_rng(3).random((70, 95), np.float32)
  up = inference.Upscaler(PARAMS, SPEC, tile=24, method=method, max_batch=4)
  got = up.network(img)
  assert got.shape == (210, 285)
  assert len({s for s in up.shapes_seen if s[0] is True}) == 1  # one canvas shape (and batch) for all tiles
  np.testing.assert_allclose(got, _ref(img[None, ..., None])[0, ..., 0], atol=2e-5)


def test_bucketing_compiles_once_per_bucket():
  up = inference.Upscaler(PARAMS, SPEC, bucket=32, method="conv")
  rng = np.random.default_rng(4)
  for h, w in [(20, 30), (25, 17), (32, 32)]:  # all in the 32x32 bucket
    img = rng.random((h, w), np.float32)
    np.testing.assert_allclose(up.network(img), _ref(img[None, ..., None])[0, ..., 0], atol=1e-5)
  assert up.shapes_seen == {(True, 1, 32, 32, 1)}
  assert up._net._cache_size() == 1  # pylint: disable=protected-access


def test_bicubic_tiled_equals_imresize():
  img = np.random.default_rng(5).random((50, 61, 2), np.float32)
  want = np.asarray(image_ops.imresize(img, scale=3))
  for tile in (16, 512):
    got = inference.Upscaler(PARAMS, SPEC, tile=tile).bicubic(img)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_image_colour_gray_alpha():
  rng = np.random.default_rng(6)
  up = inference.Upscaler(PARAMS, SPEC, method="conv")
  rgb = rng.integers(0, 256, (12, 17, 3), dtype=np.uint8)
  out = up.image(rgb)
  assert out.shape == (36, 51, 3) and out.dtype == np.uint8
  # Y of the output is the net on Y of the input; CbCr are bicubic.
  ycc = np.asarray(image_ops.rgb_to_ycbcr(rgb / 255.0))
  y_want = np.clip(_ref(ycc[None, ..., :1])[0, ..., 0], 0, 1)
  cbcr_want = np.asarray(image_ops.imresize(ycc[..., 1:], scale=3))
  rgb_want = np.asarray(image_ops.ycbcr_to_rgb(np.concatenate([y_want[..., None], cbcr_want], -1)))
  assert np.abs(out.astype(float) - np.round(np.clip(rgb_want, 0, 1) * 255)).max() <= 1
  gray = rgb[..., 0]
  g = up.image(gray)
  assert g.shape == (36, 51) and g.dtype == np.uint8
  np.testing.assert_array_equal(g, np.round(np.clip(_ref(gray[None, ..., None] / 255.0)[0, ..., 0], 0, 1) * 255))
  rgba = np.concatenate([rgb, rng.integers(0, 256, (12, 17, 1), dtype=np.uint8)], -1)
  o4 = up.image(rgba)
  assert o4.shape == (36, 51, 4)
  np.testing.assert_array_equal(o4[..., :3], out)
  a_want = np.round(np.clip(np.asarray(image_ops.imresize(rgba[..., 3] / 255.0, scale=3)), 0, 1) * 255)
  np.testing.assert_array_equal(o4[..., 3], a_want)


def test_rgb_net_takes_rgb():
  spec = model.Spec(scale=2, channels=3)
  params = _params(spec, 7)
  rgb = np.random.default_rng(8).random((9, 11, 3), np.float32)
  got = inference.Upscaler(params, spec).image(rgb)
  np.testing.assert_allclose(got, np.clip(_ref(rgb[None], spec, params)[0], 0, 1), atol=1e-5)


def test_frames_match_image():
  up = inference.Upscaler(PARAMS, SPEC, method="conv")
  frames = np.random.default_rng(9).integers(0, 256, (3, 10, 14, 3), dtype=np.uint8)
  got = up.frames(frames)
  assert got.shape == (3, 30, 42, 3) and got.dtype == np.uint8
  for f, g in zip(frames, got):
    assert np.abs(g.astype(int) - up.image(f).astype(int)).max() <= 1


def test_bad_arguments():
  with pytest.raises(ValueError, match="method"):
    inference.forward(PARAMS, np.zeros((1, 8, 8, 1), np.float32), SPEC, method="fft")
  with pytest.raises(ValueError, match="tile"):
    inference.Upscaler(PARAMS, SPEC, tile=8)
  with pytest.raises(ValueError, match="channel"):
    inference.Upscaler(PARAMS, SPEC).network(np.zeros((8, 8, 3), np.float32))


@pytest.mark.parametrize("k", [3, 5])
def test_shifted_fma_conv_equals_convolution(k):
  rng = np.random.default_rng(k)
  x = rng.random((2, 9, 13, 1), np.float32)
  kern = rng.normal(size=(k, k, 1, 6)).astype(np.float32)
  bias = rng.normal(size=(6,)).astype(np.float32)
  want = jax.lax.conv_general_dilated(x, kern, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision=jax.lax.Precision.HIGHEST) + bias
  np.testing.assert_allclose(inference.shifted_fma_conv(x, kern, bias), want, atol=1e-5)
  assert not np.allclose(inference.shifted_fma_conv(x, kern[::-1], bias), want, atol=1e-3)  # orientation matters
