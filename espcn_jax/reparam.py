"""Structural re-parameterization: extra linear branches per convolution while training, one kernel to deploy.

Each k x k convolution of ESPCN trains as a sum of linear branches on the same input (RepVGG / ACNet / ECBSR):

    "1x1":    a 1x1 convolution                      -> its kernel in the centre tap
    "asym":   a 1 x k and a k x 1 convolution         -> the centre row and the centre column (ACNet)
    "expand": a 1x1 expansion to E = expand * C_out maps (no bias), then a k x k convolution to C_out
              -> kernel[dy, dx, i, o] = sum_e W1[i, e] W2[dy, dx, e, o]  (ECBSR's expand-squeeze, without the
              1x1's bias, so that the merge is exact with SAME zero padding too)

All branches are linear, so `merge(tparams)` gives the plain params {"conv<i>": {"kernel", "bias"}} of exactly the
same network (same shapes, same FLOPs): the deployed model, its exports and every backend are unchanged. Training
runs the net on the merged params (the native kernels or XLA), and JAX carries the gradient back through `merge` to
each branch. Only the parametrization, hence the optimizer's path, differs.

    tparams = reparam.init(rng, spec, ("1x1", "asym", "expand"), expand=2)
    out = model.apply(reparam.merge(tparams), lr_BxHxWxC, spec)

A new branch starts at zero (the expansion's 1x1 is random and its k x k zero), so `init` from given params
(`base=`) starts from exactly the network of those params.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from espcn_jax import model

BRANCHES = ("1x1", "asym", "expand")
_KEYS = {"1x1": ("k1x1",), "asym": ("k1xk", "kkx1"), "expand": ("expand", "squeeze")}


def parse(branches) -> tuple[str, ...]:
  """A branch list from a tuple or a string joined by "+" ("" or () : none). Unknown names are a ValueError."""
  names = [b for b in (branches.split("+") if isinstance(branches, str) else branches) if b]
  bad = [b for b in names if b not in BRANCHES]
  if bad:
    raise ValueError(f"unknown re-parameterization branch {bad[0]!r}; choose from {'+'.join(BRANCHES)}")
  if len(set(names)) != len(names):
    raise ValueError(f"a re-parameterization branch is named twice: {'+'.join(names)}")
  return tuple(names)


def init(rng, spec: model.Spec, branches: Sequence[str], *, expand: int = 2, base=None):
  """Training params: `base` (default: `model.init(rng, spec)`) with the extra branches of every conv layer."""
  branches = parse(branches)
  if spec.kind != "espcn":
    raise ValueError(f"re-parameterization is for ESPCN, not kind {spec.kind!r}")
  if expand < 1:
    raise ValueError(f"expand must be >= 1, got {expand}")
  params = model.init(rng, spec) if base is None else base
  gen = np.random.default_rng(np.asarray(jax.random.key_data(jax.random.fold_in(rng, 1))).ravel().tolist())
  out = {}
  for name, (ks, _) in model.layer_shapes(spec).items():
    k, _, cin, cout = ks
    layer = {"kernel": jnp.asarray(params[name]["kernel"], jnp.float32),
             "bias": jnp.asarray(params[name]["bias"], jnp.float32)}
    if "1x1" in branches:
      layer["k1x1"] = jnp.zeros((1, 1, cin, cout), jnp.float32)
    if "asym" in branches:
      layer["k1xk"] = jnp.zeros((1, k, cin, cout), jnp.float32)
      layer["kkx1"] = jnp.zeros((k, 1, cin, cout), jnp.float32)
    if "expand" in branches:
      e = expand * cout
      # Small on purpose: under Adam every squeeze weight moves by ~lr per step, so the merged kernel moves by ~lr
      # times sum_e |expand[i, e]|; with unit-variance rows that is ~E x lr (the conv1 of a run with std 1/sqrt(cin)
      # fell from 30.3 to 13.6 dB on the held-out images within 10 epochs). std 1/(E sqrt(cin)) keeps it ~lr.
      layer["expand"] = jnp.asarray(gen.standard_normal((1, 1, cin, e)) / (e * math.sqrt(cin)), jnp.float32)
      layer["squeeze"] = jnp.zeros((k, k, e, cout), jnp.float32)
    out[name] = layer
  return out


def branches_of(tparams) -> tuple[str, ...]:
  """The branches present in training params (() for plain params)."""
  layer = next(iter(tparams.values()))
  return tuple(b for b in BRANCHES if all(key in layer for key in _KEYS[b]))


def merge(tparams):
  """Training params -> the plain params of the same network: one k x k kernel and one bias per layer. Pure and
  differentiable (jit it with the step); plain params pass through unchanged."""
  out = {}
  for name, layer in tparams.items():
    kernel = layer["kernel"]
    if len(layer) > 2:  # branches to add (plain params pass through as they are)
      kernel = jnp.asarray(kernel)
    k = kernel.shape[0]
    c = k // 2
    if "k1x1" in layer:
      kernel = kernel.at[c:c + 1, c:c + 1].add(layer["k1x1"])
    if "k1xk" in layer:
      kernel = kernel.at[c:c + 1, :].add(layer["k1xk"]).at[:, c:c + 1].add(layer["kkx1"])
    if "expand" in layer:
      kernel = kernel + jnp.einsum("ie,hweo->hwio", layer["expand"][0, 0], layer["squeeze"],
                                   precision=jax.lax.Precision.HIGHEST)
    out[name] = {"kernel": kernel, "bias": layer["bias"]}
  return out
