"""Tests of espcn_jax.optim: the plateau schedule lives in the optimizer state; the last layer gets 0.1x lr."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espcn_jax import model, optim

SPEC = model.Spec(features=(8, 4))


def _params():
  return model.init(jax.random.PRNGKey(0), SPEC)


def test_last_layer_name():
  assert optim.last_layer_name(_params()) == "conv3"
  assert optim.last_layer_name({"conv2": {}, "conv10": {}, "conv9": {}}) == "conv10"


def test_plateau_lowers_lr_down_to_the_minimum():
  p = _params()
  tx = optim.make(p, learning_rate=0.01, min_learning_rate=1e-4, steps_per_epoch=2, plateau_patience=1)
  s = tx.init(p)
  g = jax.tree.map(jnp.ones_like, p)
  lrs = []
  for _ in range(12):  # a constant loss: no improvement after the first epoch
    _, s = tx.update(g, s, p, value=1.0)
    lrs.append(float(optim.current_learning_rate(s, 0.01)))
  assert lrs[0] == pytest.approx(0.01)
  assert lrs[3] == pytest.approx(0.001)  # epoch 2 without improvement -> x0.1
  assert lrs[-1] == pytest.approx(1e-4)  # never below the minimum
  assert min(lrs) == pytest.approx(1e-4)


def test_improving_loss_keeps_lr():
  p = _params()
  tx = optim.make(p, steps_per_epoch=2, plateau_patience=1, plateau_rtol=0.01)
  s = tx.init(p)
  g = jax.tree.map(jnp.ones_like, p)
  for i in range(20):
    _, s = tx.update(g, s, p, value=0.9 ** i)
  assert float(optim.current_learning_rate(s, 0.01)) == pytest.approx(0.01)


def test_last_layer_gets_a_tenth_of_the_step():
  p = _params()
  tx = optim.make(p, learning_rate=0.01, steps_per_epoch=100)
  s = tx.init(p)
  g = jax.tree.map(lambda x: jnp.full_like(x, 0.5), p)
  u, _ = tx.update(g, s, p, value=1.0)
  # Adam's first step is lr * sign(g) (up to eps): -0.01 everywhere, -0.001 in the last layer.
  np.testing.assert_allclose(u["conv1"]["kernel"], -0.01, rtol=1e-4)
  np.testing.assert_allclose(u["conv2"]["bias"], -0.01, rtol=1e-4)
  np.testing.assert_allclose(u["conv3"]["kernel"], -0.001, rtol=1e-4)
  np.testing.assert_allclose(u["conv3"]["bias"], -0.001, rtol=1e-4)


def test_cosine_decay_over_decay_steps():
  p = _params()
  tx = optim.make(p, learning_rate=1e-3, min_learning_rate=1e-5, steps_per_epoch=2, decay_steps=10,
                  plateau_patience=1000, last_layer_lr_scale=1.0)
  s = tx.init(p)
  g = jax.tree.map(jnp.ones_like, p)
  steps, lrs = [], []
  for _ in range(12):
    u, s = tx.update(g, s, p, value=1.0)
    steps.append(-float(u["conv1"]["bias"][0]))  # Adam's step with a constant gradient is its lr
    lrs.append(float(optim.current_learning_rate(s, 1e-3, min_learning_rate=1e-5, decay_steps=10)))
  want = [1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + np.cos(np.pi * min(t, 10) / 10)) for t in range(12)]
  np.testing.assert_allclose(steps, want, rtol=1e-4)
  np.testing.assert_allclose(lrs, want[1:] + [1e-5], rtol=1e-4)  # the lr of the next step
  np.testing.assert_allclose(u["conv3"]["kernel"], -1e-5, rtol=1e-3)  # last layer at 1x, decayed too
  with pytest.raises(ValueError, match="decay_steps"):
    optim.make(p, decay_steps=-1)


def test_bad_arguments():
  with pytest.raises(ValueError, match="min_learning_rate"):
    optim.make(_params(), learning_rate=1e-3, min_learning_rate=1e-2)
  with pytest.raises(ValueError, match="steps_per_epoch"):
    optim.make(_params(), steps_per_epoch=0)
