"""Tests of espcn_jax.reparam: the merged kernel is the sum of the branches (checked against running each branch
as its own convolution), a new branch starts at zero, and the gradient reaches every branch through `merge`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espcn_jax import model, ps, reparam

SPEC = model.Spec(scale=3, features=(16, 8))


def _conv(x, k):
  return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision=jax.lax.Precision.HIGHEST)


def _branchwise(tparams, x, spec):
  """The training-time net as it is written: every branch its own convolution on the layer's input."""
  h = x
  for i in range(spec.num_layers):
    layer = tparams[f"conv{i + 1}"]
    y = _conv(h, layer["kernel"]) + layer["bias"]
    if "k1x1" in layer:
      y = y + _conv(h, layer["k1x1"])
    if "k1xk" in layer:
      y = y + _conv(h, layer["k1xk"]) + _conv(h, layer["kkx1"])
    if "expand" in layer:
      y = y + _conv(_conv(h, layer["expand"]), layer["squeeze"])
    h = jnp.tanh(y) if i < spec.num_layers - 1 else y
  return ps.depth_to_space(h, spec.scale)


def _randomize(tparams, seed=1):
  leaves, tree = jax.tree.flatten(tparams)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  return jax.tree.unflatten(tree, [0.2 * jax.random.normal(k, l.shape) for k, l in zip(keys, leaves)])


@pytest.mark.parametrize("branches", [("1x1",), ("asym",), ("expand",), ("1x1", "asym", "expand")])
def test_merged_net_equals_the_branches(branches):
  tparams = _randomize(reparam.init(jax.random.PRNGKey(0), SPEC, branches, expand=2))
  x = jax.random.uniform(jax.random.PRNGKey(2), (2, 9, 11, 1))
  want = _branchwise(tparams, x, SPEC)
  got = model.apply(reparam.merge(tparams), x, SPEC)
  np.testing.assert_allclose(got, want, atol=2e-5)
  # every branch matters (a merge that dropped one would differ from the branch-wise net)
  assert float(jnp.abs(want - model.apply(reparam.merge(
      {n: {"kernel": l["kernel"], "bias": l["bias"]} for n, l in tparams.items()}), x, SPEC)).max()) > 1e-2


def test_new_branches_start_from_the_given_net():
  base = model.init(jax.random.PRNGKey(5), SPEC)
  tparams = reparam.init(jax.random.PRNGKey(0), SPEC, "1x1+asym+expand", base=base)
  assert reparam.branches_of(tparams) == ("1x1", "asym", "expand")
  merged = reparam.merge(tparams)
  assert jax.tree.structure(merged) == jax.tree.structure(base)
  for a, b in zip(jax.tree.leaves(merged), jax.tree.leaves(base)):
    np.testing.assert_array_equal(a, b)
  assert reparam.merge(base) is not None and reparam.branches_of(base) == ()


def test_gradient_reaches_every_branch():
  tparams = reparam.init(jax.random.PRNGKey(0), SPEC, ("1x1", "asym", "expand"))
  x = jax.random.uniform(jax.random.PRNGKey(2), (1, 8, 8, 1))
  hr = jax.random.uniform(jax.random.PRNGKey(3), (1, 24, 24, 1))
  grads = jax.grad(lambda p: jnp.mean((model.apply(reparam.merge(p), x, SPEC) - hr) ** 2))(tparams)
  for name, layer in grads.items():
    for key, g in layer.items():
      if key != "expand":  # the expansion's gradient is zero while its squeeze is (it starts at zero)
        assert float(jnp.abs(g).max()) > 0, (name, key)


def test_bad_branch_names():
  with pytest.raises(ValueError, match="unknown re-parameterization branch 'rep'"):
    reparam.parse("1x1+rep")
  with pytest.raises(ValueError, match="named twice"):
    reparam.parse(("1x1", "1x1"))
  assert reparam.parse("") == ()
