"""PS against the paper's formula, tf.nn.depth_to_space, and PyTorch's PixelShuffle order."""

import itertools

import numpy as np
import pytest

from espcn_jax import ps


def paper_ps(t, r):
  """Eq. 4 of the paper, element by element: PS(T)[x, y, c] = T[x//r, y//r, C*r*(y%r) + C*(x%r) + c].

  x is the horizontal (column) coordinate and y the vertical (row) one; arrays are indexed [row, col, channel].
  """
  h, w, crr = t.shape
  c_out = crr // (r * r)
  out = np.zeros((h * r, w * r, c_out), t.dtype)
  for y, x, c in itertools.product(range(h * r), range(w * r), range(c_out)):
    out[y, x, c] = t[y // r, x // r, c_out * r * (y % r) + c_out * (x % r) + c]
  return out


@pytest.mark.parametrize("r,c", [(2, 1), (3, 1), (2, 3), (3, 3), (4, 2)])
def test_depth_to_space_matches_paper_formula(r, c):
  t = np.random.default_rng(0).normal(size=(4, 5, c * r * r)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(ps.depth_to_space(t, r)), paper_ps(t, r))


def test_formula_is_not_symmetric_in_x_and_y():
  # Guards the test above: reading x as the row would give a different (transposed-phase) image.
  r, t = 2, np.arange(1 * 1 * 4, dtype=np.float32).reshape(1, 1, 4)
  out = np.asarray(ps.depth_to_space(t, r))[..., 0]
  np.testing.assert_array_equal(out, [[0, 1], [2, 3]])  # row offset is the slow index


@pytest.mark.parametrize("r,c", [(2, 1), (3, 3), (4, 2)])
def test_depth_to_space_matches_tensorflow(r, c):
  tf = pytest.importorskip("tensorflow")
  x = np.random.default_rng(1).normal(size=(2, 3, 4, c * r * r)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(ps.depth_to_space(x, r)), tf.nn.depth_to_space(x, r).numpy())
  np.testing.assert_array_equal(np.asarray(ps.space_to_depth(tf.nn.depth_to_space(x, r).numpy(), r)), x)


@pytest.mark.parametrize("r,c", [(2, 1), (3, 3)])
def test_space_to_depth_inverts(r, c):
  x = np.random.default_rng(2).normal(size=(2, 3 * r, 5 * r, c)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(ps.depth_to_space(ps.space_to_depth(x, r), r)), x)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match="multiple of r"):
    ps.depth_to_space(np.zeros((2, 2, 5)), 2)
  with pytest.raises(ValueError, match="multiple of r"):
    ps.space_to_depth(np.zeros((3, 4, 1)), 2)


def test_reference_pixel_shuffle_is_pytorch_semantics():
  # PixelShuffle's documented rule: out[n, c, h*r+i, w*r+j] = in[n, c*r*r + i*r + j, h, w].
  r, c = 2, 3
  x = np.random.default_rng(3).normal(size=(1, c * r * r, 2, 3)).astype(np.float32)
  out = np.asarray(ps.pixel_shuffle_nchw(x, r))
  for cc, h, w, i, j in itertools.product(range(c), range(2), range(3), range(r), range(r)):
    assert out[0, cc, h * r + i, w * r + j] == x[0, cc * r * r + i * r + j, h, w]


@pytest.mark.parametrize("r,c", [(2, 1), (3, 3), (4, 2)])
def test_torch_order_converter(r, c):
  """Torch-ordered channels, permuted by torch_to_ours_perm, give the same image through our PS."""
  x_nchw = np.random.default_rng(4).normal(size=(2, c * r * r, 3, 4)).astype(np.float32)
  want = np.asarray(ps.pixel_shuffle_nchw(x_nchw, r)).transpose(0, 2, 3, 1)
  x_ours = x_nchw.transpose(0, 2, 3, 1)[..., ps.torch_to_ours_perm(c, r)]
  np.testing.assert_array_equal(np.asarray(ps.depth_to_space(x_ours, r)), want)
  back = x_ours[..., ps.ours_to_torch_perm(c, r)]
  np.testing.assert_array_equal(back, x_nchw.transpose(0, 2, 3, 1))
  if c > 1:  # the orders really differ for colour
    assert not np.array_equal(ps.torch_to_ours_perm(c, r), np.arange(c * r * r))


def test_torch_pixel_shuffle_when_installed():
  torch = pytest.importorskip("torch")
  r, c = 3, 3
  x = np.random.default_rng(5).normal(size=(2, c * r * r, 4, 5)).astype(np.float32)
  want = torch.nn.PixelShuffle(r)(torch.from_numpy(x)).numpy()
  np.testing.assert_array_equal(np.asarray(ps.pixel_shuffle_nchw(x, r)), want)
  ours = np.asarray(ps.depth_to_space(x.transpose(0, 2, 3, 1)[..., ps.torch_to_ours_perm(c, r)], r))
  np.testing.assert_array_equal(ours, want.transpose(0, 2, 3, 1))
