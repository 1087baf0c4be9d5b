"""Tests of espcn_jax.train_step (the pure step learns, k-step calls equal k single steps), image_ops.make_degrade,
xla_options (the options keep the math, unknown ones fall back) and data_parallel (4 devices equal 1)."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espcn_jax import data_parallel, image_ops, model, optim, xla_options
from espcn_jax import train_step as ts

SPEC = model.Spec(scale=2, features=(8, 4))


def _setup(lr=3e-3):
  params = model.init(jax.random.PRNGKey(0), SPEC)
  tx = optim.make(params, learning_rate=lr, min_learning_rate=lr / 100, steps_per_epoch=5)
  state = ts.create_state(jax.random.PRNGKey(1), SPEC, tx)
  step = ts.make_train_step(SPEC, tx, degrade_fn=image_ops.make_degrade(2))
  return state, step


def _smooth_batch(b=4, size=16):
  yy, xx = np.mgrid[:size, :size] / size
  imgs = [0.5 + 0.4 * np.sin(3 * (i + 1) * yy + 2 * xx + i) for i in range(b)]
  return jnp.asarray(np.stack(imgs)[..., None], jnp.float32)


def test_loss_decreases_on_a_tiny_problem():
  state, step = _setup()
  step = jax.jit(step)
  hr = _smooth_batch()
  losses = []
  for _ in range(40):
    state, m = step(state, hr)
    losses.append(float(m["loss"]))
  assert int(state.step) == 40
  assert losses[-1] < 0.2 * losses[0]


def test_make_degrade_passes_its_settings_on():
  """The factory the step uses: bicubic by default; the Gaussian blur with the sigma / kernel size it is given."""
  hr = _smooth_batch()
  bicubic = image_ops.make_degrade(2)(hr)
  assert bicubic.shape == (4, 8, 8, 1)
  np.testing.assert_allclose(bicubic, image_ops.imresize(np.asarray(hr), 0.5), atol=1e-6)
  wide = image_ops.make_degrade(2, "gaussian", sigma=2.0, kernel_size=9)(hr)
  np.testing.assert_allclose(wide, image_ops.gaussian_degrade(np.asarray(hr), 2, 2.0, 9), atol=1e-6)
  assert np.abs(np.asarray(wide) - np.asarray(image_ops.make_degrade(2, "gaussian")(hr))).max() > 1e-3


def test_to_model_input():
  u8 = jnp.full((1, 4, 4, 1), 255, jnp.uint8)
  np.testing.assert_allclose(ts.to_model_input(u8, 1), 1.0)
  rgb = jnp.ones((1, 4, 4, 3), jnp.float32)
  np.testing.assert_allclose(ts.to_model_input(rgb, 1), 235 / 255, atol=1e-5)  # MATLAB Y of white
  with pytest.raises(ValueError, match="channels"):
    ts.to_model_input(jnp.ones((1, 4, 4, 2)), 1)


def test_multi_step_equals_single_steps_with_sampler():
  state, step = _setup()
  data = {"img": _smooth_batch(8)}

  def sample(d, key):
    return d["img"][jax.random.permutation(key, 8)[:4]]

  multi = jax.jit(ts.make_multi_step(step, 3, sample))
  s3, m3 = multi(state, data)
  one = jax.jit(ts.make_multi_step(step, 1, sample))
  s1, losses = state, []
  for _ in range(3):
    s1, m = one(s1, data)
    losses.append(float(m["loss"][0]))
  np.testing.assert_allclose(m3["loss"], losses, rtol=1e-5)
  np.testing.assert_allclose(s3.params["conv1"]["kernel"], s1.params["conv1"]["kernel"], rtol=1e-5, atol=1e-7)
  assert int(s3.step) == 3


def test_cpu_compiler_options_keep_the_math():
  """The XLA:CPU YNNPACK fusions (dots, tanh, Adam's update, reductions) are a speed-up, not another model."""
  assert xla_options.compiler_options("gpu") is None and xla_options.compiler_options("tpu") is None
  opts = xla_options.compiler_options("cpu")
  assert opts == xla_options.CPU_COMPILER_OPTIONS and opts is not xla_options.CPU_COMPILER_OPTIONS
  state, step = _setup()
  mesh = data_parallel.make_mesh(jax.devices()[:1])
  data = {"img": _smooth_batch(8)}

  def sample(d, key):
    return d["img"][jax.random.permutation(key, 8)[:4]]

  def run(compiler_options):
    multi = data_parallel.jit_multi_step(ts.make_multi_step(step, 2, sample), mesh, with_batch=False,
                                         compiler_options=compiler_options)
    s, losses = data_parallel.put_replicated(jax.tree.map(jnp.array, state), mesh), []  # a copy: the state is donated
    for _ in range(3):
      s, m = multi(s, data)
      losses += np.asarray(m["loss"]).tolist()
    return s, losses

  s0, l0 = run(None)
  s1, l1 = run(opts if jax.default_backend() == "cpu" else None)
  np.testing.assert_allclose(l1, l0, rtol=1e-5)
  for layer in s0.params:
    np.testing.assert_allclose(s1.params[layer]["kernel"], s0.params[layer]["kernel"], rtol=1e-4, atol=1e-6)
  if jax.default_backend() == "cpu":  # the options take effect: more of the paper's net runs in YNNPACK fusions
    spec = model.Spec(scale=3)
    params = model.init(jax.random.PRNGKey(0), spec)
    tx = optim.make(params, steps_per_epoch=5)
    big = ts.make_train_step(spec, tx, degrade_fn=image_ops.make_degrade(3))
    args = (ts.create_state(jax.random.PRNGKey(1), spec, tx), jnp.zeros((16, 51, 51, 1), jnp.uint8))
    count = lambda o: jax.jit(big, compiler_options=o).lower(*args).compile().as_text().count('"__ynn_fusion"')
    assert count(opts) > count(None)


_DEVICES_SCRIPT = textwrap.dedent("""
  import sys, jax, numpy as np
  from espcn_jax import data_parallel, image_ops, model, optim, train_step as ts
  spec = model.Spec(scale=2, features=(8, 4))
  params = model.init(jax.random.PRNGKey(0), spec)
  tx = optim.make(params, learning_rate=3e-3, min_learning_rate=3e-5, steps_per_epoch=5)
  mesh = data_parallel.make_mesh()
  state = data_parallel.put_replicated(ts.create_state(jax.random.PRNGKey(1), spec, tx), mesh)
  step = ts.make_train_step(spec, tx, degrade_fn=image_ops.make_degrade(2))
  rng = np.random.default_rng(0)
  batches = rng.integers(0, 256, (2, 3, 8, 16, 16, 1)).astype(np.uint8)  # 2 calls of 3 steps, global batch 8
  multi = ts.make_multi_step(step, 3, None, data_parallel.batch_sharding(mesh))
  multi = data_parallel.jit_multi_step(multi, mesh, with_batch=True)
  for b in batches:
    state, m = multi(state, data_parallel.put_batch(b, mesh))
  print(len(jax.devices()), m["loss"].sharding.is_fully_replicated)
  np.save(sys.argv[1], np.asarray(state.params["conv2"]["kernel"]))
""")


def _run_devices(n, tmp_path):
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}", JAX_PLATFORMS="cpu")
  out = tmp_path / f"p{n}.npy"
  r = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT, str(out)], env=env, capture_output=True, text=True,
                     timeout=300, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert r.returncode == 0, r.stderr[-2000:]
  assert r.stdout.split()[0] == str(n)
  return np.load(out)


def test_four_devices_equal_one_device(tmp_path):
  p1 = _run_devices(1, tmp_path)
  p4 = _run_devices(4, tmp_path)
  np.testing.assert_allclose(p4, p1, rtol=1e-4, atol=1e-6)
  assert not np.allclose(p1, 0)


@pytest.mark.slow
def test_two_processes_train_in_lockstep():
  root = os.path.dirname(os.path.dirname(__file__))
  r = subprocess.run([sys.executable, os.path.join(root, "scripts", "distributed_cpu_check.py")], cwd=root,
                     capture_output=True, text=True, timeout=900, env=dict(os.environ, PYTHONPATH=root))
  assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


def test_unknown_cpu_compiler_options_fall_back(monkeypatch):
  monkeypatch.setattr(xla_options, "CPU_COMPILER_OPTIONS", {"xla_no_such_option_anywhere": "1"})
  xla_options._cpu_options_supported.cache_clear()
  try:
    assert xla_options.compiler_options("cpu") is None
  finally:
    monkeypatch.undo()
    xla_options._cpu_options_supported.cache_clear()
  assert xla_options.compiler_options("gpu") is None


def test_pixel_losses():
  sr = jnp.asarray([[0.0, 0.5], [1.0, 0.2]])
  hr = jnp.asarray([[0.1, 0.5], [0.7, 0.6]])
  d = np.asarray(sr - hr)
  np.testing.assert_allclose(ts.pixel_loss(sr, hr, "mse"), np.mean(d ** 2), rtol=1e-6)
  np.testing.assert_allclose(ts.pixel_loss(sr, hr, "l1"), np.mean(np.abs(d)), rtol=1e-6)
  np.testing.assert_allclose(ts.pixel_loss(sr, hr, "charbonnier", eps=0.01), np.mean(np.sqrt(d ** 2 + 1e-4)),
                             rtol=1e-6)
  with pytest.raises(ValueError, match="loss must be one of"):
    ts.make_train_step(SPEC, optim.make(model.init(jax.random.PRNGKey(0), SPEC)), degrade_fn=lambda x: x,
                       loss="ssim")


def test_step_trains_the_branches_through_param_map():
  """With reparam.merge as param_map the state holds the branches; the net they merge into learns."""
  from espcn_jax import reparam
  tparams = reparam.init(jax.random.PRNGKey(0), SPEC, ("1x1", "expand"))
  tx = optim.make(tparams, learning_rate=3e-3, min_learning_rate=3e-5, steps_per_epoch=5)
  state = ts.create_state(jax.random.PRNGKey(1), SPEC, tx, tparams)
  step = jax.jit(ts.make_train_step(SPEC, tx, degrade_fn=image_ops.make_degrade(2), param_map=reparam.merge))
  hr = _smooth_batch()
  losses = []
  for _ in range(40):
    state, m = step(state, hr)
    losses.append(float(m["loss"]))
  assert losses[-1] < 0.35 * losses[0]
  assert float(jnp.abs(state.params["conv1"]["k1x1"]).max()) > 0
  assert float(jnp.abs(state.params["conv3"]["squeeze"]).max()) > 0


def test_loss_margin_scores_only_the_patch_interior():
  """loss_margin=m: the step's loss is the MSE over the HR outputs of LR pixels m .. P-m-1 of the patch (m * scale HR
  pixels cut from each edge), computed from the same forward pass."""
  params = model.init(jax.random.PRNGKey(0), SPEC)
  tx = optim.make(params, learning_rate=1e-3, min_learning_rate=1e-5, steps_per_epoch=5)
  state = ts.create_state(jax.random.PRNGKey(1), SPEC, tx, params=params)
  hr = _smooth_batch(size=24)  # 12x12 LR patches
  degrade = image_ops.make_degrade(2)
  sr = model.apply(params, degrade(hr), SPEC)
  for m in (0, 1, 3):
    step = ts.make_train_step(SPEC, tx, degrade_fn=degrade, loss_margin=m)
    _, metrics = jax.jit(step)(state, hr)
    c = slice(2 * m, 24 - 2 * m)
    np.testing.assert_allclose(float(metrics["loss"]), float(jnp.mean((sr - hr)[:, c, c] ** 2)), rtol=1e-5)
  whole, inner = (float(jnp.mean((sr - hr)[:, c, c] ** 2)) for c in (slice(0, 24), slice(6, 18)))
  assert abs(whole - inner) > 0.01 * whole  # the edges differ, so cutting them changes the loss
  with pytest.raises(ValueError, match="loss_margin"):
    ts.make_train_step(SPEC, tx, degrade_fn=degrade, loss_margin=-1)
