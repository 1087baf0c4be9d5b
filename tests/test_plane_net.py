"""plane_net: chroma resized where its samples sit (4:2:0 siting), for the luma nets and the RGB ones."""

import jax
import numpy as np
import pytest

from espcn_jax import image_ops, model, plane_net


def test_chroma_shift_values():
  assert plane_net.chroma_shift("center", (2, 2), 3) == (0.0, 0.0)
  np.testing.assert_allclose(plane_net.chroma_shift("left", (2, 2), 3), (0.0, 1 / 6))  # H.264's default
  np.testing.assert_allclose(plane_net.chroma_shift("topleft", (2, 2), 2), (1 / 8, 1 / 8))
  np.testing.assert_allclose(plane_net.chroma_shift("bottom", (2, 2), 4), (-3 / 16, 0.0))
  np.testing.assert_allclose(plane_net.chroma_shift("left", (1, 2), 3), (0.0, 1 / 6))  # 4:2:2: rows not subsampled
  assert plane_net.chroma_shift("topleft", (1, 1), 3) == (0.0, 0.0)
  with pytest.raises(ValueError, match="unknown chroma siting 'middle'"):
    plane_net.chroma_shift("middle", (2, 2), 3)


def _field(y_luma, x_luma):
  """A smooth chroma value (0-255) at luma coordinates (pixel centres at integers)."""
  return 128 + 60 * np.sin(2 * np.pi * x_luma / 24 + 0.3) * np.cos(2 * np.pi * y_luma / 34)


def _sited_planes(siting, h, w, r=1):
  """4:2:0 Cb = Cr planes of an h x w luma frame sampled from _field where `siting` puts the samples; with r, the
  planes of the r-times larger frame, in the small frame's luma coordinates."""
  py, px = plane_net.SITINGS[siting]
  ys = ((2 * np.arange(-(-r * h // 2)) + py + 0.5) / r - 0.5)[:, None]
  xs = ((2 * np.arange(-(-r * w // 2)) + px + 0.5) / r - 0.5)[None, :]
  return _field(ys, xs)


class _BicubicRGB:
  """inference.forward as MATLAB's bicubic x r on RGB (the geometry of an ideal net)."""

  def __init__(self, r):
    self.r = r

  def __call__(self, params, x, spec, dtype=None, method="auto"):  # pylint: disable=unused-argument
    return image_ops.imresize(x, scale=self.r)


@pytest.mark.parametrize("siting", ["left", "topleft", "bottom", "center"])
@pytest.mark.parametrize("rgb", [False, True])
def test_chroma_lands_where_its_siting_says(siting, rgb, monkeypatch):
  # Chroma sampled from a smooth field at the positions `siting` gives, upscaled x3, must be the field at the
  # output's positions for that siting; resizing it as if centred (what the code did before) is off by 1/3 of an
  # input luma pixel horizontally for "left" (1 output pixel), measurably worse. For an RGB net the chroma goes
  # to the luma grid and back, both at the sited positions.
  r, h, w = 3, 24, 30
  if rgb:
    monkeypatch.setattr(plane_net.inference, "forward", _BicubicRGB(r))
  spec = model.Spec(scale=r, channels=3 if rgb else 1)
  net = plane_net.PlaneNet(model.init(jax.random.PRNGKey(0), spec), spec)
  c_in = np.round(_sited_planes(siting, h, w)).astype(np.uint8)
  y_in = np.full((1, h, w), 126, np.uint8)  # mid grey luma: RGB stays inside [0, 1]
  c_Bx2xhxw = np.stack([c_in, 255 - c_in])[None]
  want = _sited_planes(siting, h, w, r)
  inner = (slice(4, -4), slice(4, -4))  # away from the mirrored / repeated edges

  def err(as_siting):
    _, c = plane_net.upscale_planes(net, y_in, c_Bx2xhxw, (2, 2), (r * h, r * w), siting=as_siting)
    assert c.shape == (1, 2, r * h // 2, r * w // 2)
    np.testing.assert_allclose(c[0, 1].astype(float) + c[0, 0], 255, atol=2.01)  # Cr = 255 - Cb, both moved
    return np.abs(c[0, 0].astype(float) - want)[inner].mean()

  errors = {s: err(s) for s in (siting, "center")}
  assert errors[siting] < 0.5  # uint8 rounding, bicubic on the sampled field
  if siting != "center":
    assert errors["center"] > 1.2


def test_down_sited_picks_the_sited_luma_positions():
  # A linear ramp on the luma grid averaged down to chroma: sample k is the ramp at luma 2 k + p.
  down = plane_net._down_sited  # pylint: disable=protected-access
  x = np.arange(13, dtype=np.float32)[None, :, None] * 2.0 + 1.0  # value at luma X: 2 X + 1
  for p, want in [(0.5, 2 * (2 * np.arange(7) + 0.5) + 1), (0.0, 2 * (2 * np.arange(7) + 0.0) + 1),
                  (1.0, 2 * (2 * np.arange(7) + 1.0) + 1)]:
    got = np.asarray(down(x, 1, 2, p, 7))[0, :, 0]
    np.testing.assert_allclose(got[1:-1], want[1:-1], atol=1e-5)
  np.testing.assert_array_equal(np.asarray(down(x, 1, 1, 0.0, 13)), x)
