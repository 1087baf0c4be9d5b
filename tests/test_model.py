"""ESPCN model: shapes, architecture, the sub-pixel conv = deconvolution equivalence, PyTorch weight import."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espcn_jax import model, ps


def _conv(x, k, b):
  return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision=jax.lax.Precision.HIGHEST) + b


@pytest.mark.parametrize("scale,channels", [(2, 1), (3, 1), (4, 3), (5, 1)])
def test_shapes_and_params(scale, channels):
  spec = model.Spec(scale=scale, channels=channels)
  params = model.init(jax.random.PRNGKey(0), spec)
  assert params["conv1"]["kernel"].shape == (5, 5, channels, 64)
  assert params["conv2"]["kernel"].shape == (3, 3, 64, 32)
  assert params["conv3"]["kernel"].shape == (3, 3, 32, channels * scale * scale)
  out = model.apply(params, jnp.zeros((2, 7, 9, channels)), spec)
  assert out.shape == (2, 7 * scale, 9 * scale, channels) and out.dtype == jnp.float32


def test_apply_is_the_paper_architecture():
  """conv-tanh-conv-tanh-conv-PS written out by hand gives the same output."""
  spec = model.Spec(scale=3, channels=1)
  p = model.init(jax.random.PRNGKey(1), spec)
  p = jax.tree_util.tree_map(lambda a: a + 0.01, p)  # nonzero biases
  x = jax.random.uniform(jax.random.PRNGKey(2), (1, 11, 13, 1))
  h = jnp.tanh(_conv(x, p["conv1"]["kernel"], p["conv1"]["bias"]))
  h = jnp.tanh(_conv(h, p["conv2"]["kernel"], p["conv2"]["bias"]))
  want = ps.depth_to_space(_conv(h, p["conv3"]["kernel"], p["conv3"]["bias"]), 3)
  np.testing.assert_allclose(model.apply(p, x, spec), want, atol=1e-5)
  relu = model.apply(p, x, model.Spec(scale=3, activation="relu"))
  assert not np.allclose(relu, want, atol=1e-3)


def test_configurable_widths_and_kernels():
  spec = model.Spec(scale=2, features=(16, 8, 8), kernel_sizes=(3, 3, 3, 3))
  params = model.init(jax.random.PRNGKey(0), spec)
  assert sorted(params) == ["conv1", "conv2", "conv3", "conv4"]
  assert model.apply(params, jnp.zeros((1, 5, 5, 1)), spec).shape == (1, 10, 10, 1)


def test_spec_validation_and_roundtrip():
  for bad in [dict(scale=1), dict(scale=2.5), dict(channels=2), dict(activation="gelu"), dict(kernel_sizes=(5, 3)),
              dict(kernel_sizes=(4, 3, 3))]:
    with pytest.raises(ValueError):
      model.Spec(**bad)
  spec = model.Spec(scale=4, channels=3, activation="relu")
  assert model.Spec.from_dict(spec.to_dict()) == spec and hash(spec) == hash(model.Spec.from_dict(spec.to_dict()))


def test_flops_and_param_count():
  spec = model.Spec(scale=3)
  # 2 * (25*1*64 + 9*64*32 + 9*32*9) = 2 * 22624 = 45248 per LR pixel; 640x360 LR (1080p out) -> 10.4 GFLOP.
  assert model.flops_per_lr_pixel(spec) == 45248
  assert abs(model.flops_per_lr_pixel(spec) * 640 * 360 / 1e9 - 10.43) < 0.01
  assert model.num_params(model.init(jax.random.PRNGKey(0), spec)) == 22624 + 64 + 32 + 9


@pytest.mark.parametrize("r,c,k", [(2, 1, 3), (3, 1, 3), (3, 3, 3), (4, 2, 5)])
def test_subpixel_conv_equals_deconvolution(r, c, k):
  """The authors' note: last conv in LR space + PS == a stride-r transposed conv with a (k*r)x(k*r) kernel."""
  rng = np.random.default_rng(r * 10 + c)
  kern = rng.normal(size=(k, k, 8, c * r * r)).astype(np.float32)
  bias = rng.normal(size=(c * r * r,)).astype(np.float32)
  x = rng.normal(size=(2, 6, 7, 8)).astype(np.float32)
  want = ps.depth_to_space(_conv(x, kern, bias), r)
  d, b = model.subpixel_to_deconv(kern, bias, r)
  assert d.shape == (k * r, k * r, 8, c) and b.shape == (r, r, c)
  np.testing.assert_allclose(model.deconv_apply(x, d, b, r), want, atol=1e-4)
  # and the same deconvolution through jax.lax.conv_transpose (scatter semantics, flipped kernel)
  # conv_transpose with transpose_kernel flips spatially and swaps I/O: give it (kr, kr, C, I).
  out = jax.lax.conv_transpose(x, jnp.swapaxes(d, 2, 3), (r, r), padding=[(k * r - 1 - r * (k // 2),
                               r - 1 + r * (k // 2))] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                               transpose_kernel=True, precision=jax.lax.Precision.HIGHEST)
  np.testing.assert_allclose(out + jnp.tile(b, (6, 7, 1)), want, atol=1e-4)


def test_deconvolution_with_pytorch_conv_transpose():
  torch = pytest.importorskip("torch")
  r, c, k = 3, 2, 3
  rng = np.random.default_rng(7)
  kern = rng.normal(size=(k, k, 4, c * r * r)).astype(np.float32)
  x = rng.normal(size=(1, 5, 6, 4)).astype(np.float32)
  want = np.asarray(ps.depth_to_space(_conv(x, kern, 0.0), r))
  d, _ = model.subpixel_to_deconv(kern, np.zeros(c * r * r, np.float32), r)
  deconv = torch.nn.ConvTranspose2d(4, c, k * r, stride=r, padding=r * (k // 2), bias=False)
  with torch.no_grad():
    deconv.weight.copy_(torch.from_numpy(np.asarray(d).transpose(2, 3, 0, 1).copy()))
    got = deconv(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(got, want, atol=1e-4)


def test_params_from_torch_state_dict():
  """A PyTorch ESPCN (conv-tanh-conv-tanh-conv-PixelShuffle) gives the same image after conversion (C=3: order matters)."""
  spec = model.Spec(scale=2, channels=3)
  rng = np.random.default_rng(8)
  shapes = [(64, 3, 5, 5), (32, 64, 3, 3), (12, 32, 3, 3)]
  names = ["first_part.0", "first_part.2", "last_part.0"]
  sd = {}
  for n, s in zip(names, shapes):
    sd[n + ".weight"] = (rng.normal(size=s) * 0.1).astype(np.float32)
    sd[n + ".bias"] = (rng.normal(size=s[0]) * 0.1).astype(np.float32)
  x_nchw = rng.uniform(size=(1, 3, 6, 7)).astype(np.float32)

  def torch_like(x):  # the PyTorch forward, in NCHW with lax
    for i, n in enumerate(names):
      x = jax.lax.conv_general_dilated(x, sd[n + ".weight"], (1, 1), "SAME", precision=jax.lax.Precision.HIGHEST)
      x = x + sd[n + ".bias"][None, :, None, None]
      x = jnp.tanh(x) if i < 2 else x
    return ps.pixel_shuffle_nchw(x, 2)

  want = np.asarray(torch_like(x_nchw)).transpose(0, 2, 3, 1)
  got = model.apply(model.params_from_torch(sd, spec), x_nchw.transpose(0, 2, 3, 1), spec)
  np.testing.assert_allclose(got, want, atol=1e-5)
  bad = model.params_from_torch({k: v for k, v in sd.items() if "last" not in k} | {"x.weight": sd["last_part.0.weight"],
                                "x.bias": sd["last_part.0.bias"]}, spec)  # name-agnostic, order-based
  np.testing.assert_allclose(model.apply(bad, x_nchw.transpose(0, 2, 3, 1), spec), want, atol=1e-5)


def test_bfloat16_compute_close_to_float32():
  spec = model.Spec(scale=3)
  p = model.init(jax.random.PRNGKey(3), spec)
  x = jax.random.uniform(jax.random.PRNGKey(4), (1, 16, 16, 1))
  a, b = model.apply(p, x, spec), model.apply(p, x, spec, dtype=jnp.bfloat16)
  assert b.dtype == jnp.float32 and 0 < float(jnp.abs(a - b).max()) < 0.05


def test_init_matches_flax_module_structure():
  spec = model.Spec(scale=3, channels=3, features=(16, 8))
  ours = model.init(jax.random.PRNGKey(0), spec)
  flax_params = model.ESPCN(spec).init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 3)))["params"]
  assert jax.tree_util.tree_map(jnp.shape, ours) == jax.tree_util.tree_map(jnp.shape, flax_params)
  k = np.asarray(ours["conv2"]["kernel"])  # fan-in scaled: std ~ 1/sqrt(3*3*16)
  assert 0.5 / 12 < k.std() < 1.5 / 12 and not np.allclose(ours["conv1"]["kernel"], 0)
