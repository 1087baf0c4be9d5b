"""The paper's optimizer: Adam, a plateau schedule that lives in the optimizer state, the last layer at 0.1x lr.

Shi et al. (2016): "the initial learning rate is set to 0.01 and the final learning rate to 0.0001, updated gradually
when the improvement of the cost function is smaller than a threshold mu", and "the last layer has a learning rate
10 times smaller". Here:

    tx = optim.make(params, learning_rate=0.01, min_learning_rate=1e-4, steps_per_epoch=1000)
    updates, opt_state = tx.update(grads, opt_state, params, value=loss)   # `value=` is required

The plateau logic is `optax.contrib.reduce_on_plateau` with `accumulation_size=steps_per_epoch`: it averages the
per-step training loss over one epoch and multiplies the lr by `plateau_factor` when that epoch-mean loss has not
improved by more than the relative threshold `plateau_rtol` (the paper's mu) for `plateau_patience` epochs, down to
`min_learning_rate`. Everything, including the current lr scale, is in the optimizer state, so checkpoints resume it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from optax.contrib import ReduceLROnPlateauState


def last_layer_name(params) -> str:
  """The output convolution: the highest-numbered "conv<i>" entry of the params."""
  names = [k for k in params if str(k).startswith("conv") and str(k)[4:].isdigit()]
  if not names:
    raise ValueError(f"no conv<i> layers in params with keys {sorted(params)}")
  return max(names, key=lambda k: int(k[4:]))


def make(params, *, learning_rate: float = 0.01, min_learning_rate: float = 1e-4, steps_per_epoch: int = 1,
         plateau_factor: float = 0.1, plateau_patience: int = 10, plateau_rtol: float = 1e-3,
         plateau_atol: float = 0.0, plateau_cooldown: int = 0, last_layer_lr_scale: float = 0.1,
         decay_steps: int = 0, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> optax.GradientTransformationExtraArgs:
  """Adam -> last layer x `last_layer_lr_scale` -> plateau scale. Call `update(..., value=loss)` every step.

  Args:
    params: the model params (only their structure is used: the last layer is found by name).
    learning_rate: the initial lr (paper: 0.01).
    min_learning_rate: the lr is never lowered below this (paper: 1e-4).
    steps_per_epoch: losses averaged per plateau decision (patience and cooldown count in these epochs).
    plateau_factor: lr multiplier at each plateau, in (0, 1).
    plateau_patience: epochs without an improvement > plateau_rtol before the lr is lowered.
    plateau_rtol: the paper's threshold mu, relative to the best epoch loss so far.
    plateau_atol: absolute threshold (added to the relative one).
    plateau_cooldown: epochs after a lowering during which no plateau is counted.
    last_layer_lr_scale: the last layer's lr multiplier (paper: 0.1).
    decay_steps: if > 0, Adam's lr follows a cosine from `learning_rate` down to `min_learning_rate` over this
      many steps (then stays there), for runs with a fixed step budget; the plateau scale still multiplies it.
    b1, b2, eps: Adam's parameters.
  """
  if not 0 < min_learning_rate <= learning_rate:
    raise ValueError(f"need 0 < min_learning_rate <= learning_rate, got {min_learning_rate} and {learning_rate}")
  if steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
  if decay_steps < 0:
    raise ValueError(f"decay_steps must be >= 0, got {decay_steps}")
  last = last_layer_name(params)

  def labels(p):
    return {k: jax.tree.map(lambda _, k=k: "last" if k == last else "rest", v) for k, v in p.items()}

  per_layer = optax.multi_transform(
      {"rest": optax.identity(), "last": optax.scale(last_layer_lr_scale)}, labels)
  return optax.chain(
      optax.adam(schedule(learning_rate, min_learning_rate, decay_steps), b1=b1, b2=b2, eps=eps),
      per_layer,
      optax.contrib.reduce_on_plateau(
          factor=plateau_factor, patience=plateau_patience, rtol=plateau_rtol, atol=plateau_atol,
          cooldown=plateau_cooldown, accumulation_size=steps_per_epoch,
          min_scale=min_learning_rate / learning_rate),
  )


def schedule(learning_rate: float, min_learning_rate: float, decay_steps: int):
  """Adam's lr: the constant `learning_rate`, or with `decay_steps` > 0 a cosine down to `min_learning_rate`."""
  if not decay_steps:
    return learning_rate
  return optax.cosine_decay_schedule(learning_rate, decay_steps, alpha=min_learning_rate / learning_rate)


def plateau_state(opt_state) -> ReduceLROnPlateauState:
  """The `ReduceLROnPlateauState` inside an optimizer state made by `make`."""
  found = [s for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, ReduceLROnPlateauState))
           if isinstance(s, ReduceLROnPlateauState)]
  if len(found) != 1:
    raise ValueError(f"expected one ReduceLROnPlateauState in the optimizer state, found {len(found)}")
  return found[0]


def current_learning_rate(opt_state, learning_rate: float, *, min_learning_rate: float = 0.0, decay_steps: int = 0):
  """The lr now in force for all but the last layer (a scalar array): Adam's lr (give `make`'s `min_learning_rate`
  and `decay_steps` when it decays) x the plateau scale."""
  lr = jnp.asarray(learning_rate, jnp.float32)
  if decay_steps:
    counts = [s.count for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByScheduleState))
              if isinstance(s, optax.ScaleByScheduleState)]
    lr = jnp.asarray(schedule(learning_rate, min_learning_rate, decay_steps)(counts[0]), jnp.float32)
  return lr * plateau_state(opt_state).scale
