"""The pure train step `(state, batch) -> (state, metrics)` and k steps in one program.

The batch is HR patches (B, P, P, C') in uint8 [0, 255] or float [0, 1]; C' = 3 is turned into luma when the model
is luma-only. The step makes the LR input on the device with `degrade_fn` (e.g. `image_ops.make_degrade(3)`, MATLAB
bicubic) and minimises the MSE between the model's output and the HR patch in [0, 1].

    step = train_step.make_train_step(spec, tx, degrade_fn=image_ops.make_degrade(3))
    multi = train_step.make_multi_step(step, num_steps=8, sample_fn=sampler.sample)  # 8 steps unrolled in one program
    mesh = data_parallel.make_mesh()
    multi = data_parallel.jit_multi_step(multi, mesh, with_batch=False,                # jitted once, state donated
                                         compiler_options=xla_options.compiler_options(jax.default_backend()))
    state, metrics = multi(state, sampler.data)

Which kernels the step runs (native C++ or XLA): `espcn_jax.kernel_choice`; the mesh, shardings and the jit:
`espcn_jax.data_parallel`; XLA:CPU options: `espcn_jax.xla_options`.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding

from espcn_jax import image_ops, model


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; `rng` and `step` also drive the patch sampler (exact resume)."""

  params: Any
  opt_state: Any
  step: jax.Array  # int32 scalar: optimizer steps done
  rng: jax.Array  # uint32[2] raw PRNG key: patch sampling uses fold_in(rng, step)


def create_state(rng, spec: model.Spec, tx: optax.GradientTransformation, params=None) -> TrainState:
  """Fresh params (from `rng`, or the given `params`) and optimizer state; the sampler key is split off the same
  `rng` either way (`init_key(rng)` is the key the fresh params are drawn with)."""
  key, data_key = jax.random.split(rng)
  params = model.init(key, spec) if params is None else params
  return TrainState(params=params, opt_state=tx.init(params), step=jnp.zeros((), jnp.int32),
                    rng=jax.random.key_data(data_key) if _is_typed_key(data_key) else data_key)


def init_key(rng):
  """The key `create_state` draws fresh params with."""
  return jax.random.split(rng)[0]


def _is_typed_key(k) -> bool:
  return jnp.issubdtype(k.dtype, jax.dtypes.prng_key)


def to_model_input(hr_BxHxWxC, channels: int):
  """uint8 or float HR patches -> float32 in [0, 1] with `channels` channels (RGB -> luma when channels == 1)."""
  x = hr_BxHxWxC
  if x.dtype == jnp.uint8:
    x = x.astype(jnp.float32) / 255.0
  x = x.astype(jnp.float32)
  if x.shape[-1] == 3 and channels == 1:
    x = image_ops.luma(x)
    if x.ndim == 3:
      x = x[..., None]
  if x.shape[-1] != channels:
    raise ValueError(f"batch has {x.shape[-1]} channels, the model wants {channels}")
  return x


LOSSES = ("mse", "l1", "charbonnier")


def pixel_loss(sr, hr, kind: str = "mse", eps: float = 1e-3):
  """The mean over pixels of (sr - hr)^2 ("mse", the paper), |sr - hr| ("l1") or sqrt((sr - hr)^2 + eps^2)
  ("charbonnier", a smooth L1)."""
  d = sr - hr
  if kind == "mse":
    return jnp.mean(jnp.square(d))
  if kind == "l1":
    return jnp.mean(jnp.abs(d))
  if kind == "charbonnier":
    return jnp.mean(jnp.sqrt(jnp.square(d) + eps * eps))
  raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def make_train_step(spec: model.Spec, tx: optax.GradientTransformationExtraArgs, *, degrade_fn: Callable,
                    dtype=None, native: bool = False, native_bf16: bool = False, loss: str = "mse",
                    charbonnier_eps: float = 1e-3, param_map: Callable | None = None,
                    loss_margin: int = 0) -> Callable:
  """Returns the pure `train_step(state, hr_BxHxWxC) -> (state, {"loss": scalar})`.

  `loss`: see `pixel_loss`. `loss_margin`: LR pixels at each edge of the patch whose HR outputs are left out of the
  loss (0: the whole patch). Those outputs see the patch's edges, which a whole image does not have there: the
  degradation's kernel reflected at the HR patch's edge (2 LR pixels for bicubic) and the net's zero padding (2 + 1
  + 1 = 4 LR pixels for 5-3-3), so a margin of 6 leaves only outputs computed as inside a whole image.
  `param_map`: the state's params -> the net's plain params, inside the differentiated function (e.g.
  `reparam.merge`: the branches get their gradients through it); None: the state holds plain params.

  `dtype` is the model's compute dtype (None: float32). `native`: the net's forward and backward pass by the C++
  kernels of `espcn_jax.native.training` (CPU, float32, one device; see `use_native`); `native_bf16`: their
  convolutions with >= 8 inputs multiply bf16 operands (float32 sums; see `use_native_bf16`). The plateau schedule
  receives `value=loss`.
  """
  if loss not in LOSSES:
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
  if loss_margin < 0:
    raise ValueError(f"loss_margin must be >= 0, got {loss_margin}")
  to_net, loss_kind, m = param_map or (lambda p: p), loss, loss_margin * spec.scale
  crop = (lambda x: x) if m == 0 else (lambda x_BxHxWxC: x_BxHxWxC[:, m:-m, m:-m, :])
  if native:
    from espcn_jax.native import training  # bottom layer, like the model; imported only when used
    if dtype not in (None, jnp.float32, "float32"):
      raise ValueError(f"the native training kernels are float32 only, got dtype {dtype}")
    forward = lambda params, lr: training.apply(params, lr, spec, bf16=native_bf16)
  else:
    forward = lambda params, lr: model.apply(params, lr, spec, dtype=dtype)

  def train_step(state: TrainState, hr_BxHxWxC):
    hr = to_model_input(hr_BxHxWxC, spec.channels)
    lr = jax.lax.stop_gradient(degrade_fn(hr))

    def loss_fn(params):
      return pixel_loss(crop(forward(to_net(params), lr)), crop(hr), loss_kind, charbonnier_eps)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
    return new_state, {"loss": loss}

  return train_step


def make_multi_step(train_step: Callable, num_steps: int, sample_fn: Callable | None = None,
                    batch_sharding: NamedSharding | None = None) -> Callable:
  """`num_steps` train steps in one program (one dispatch). Metrics come back stacked, shape (num_steps,).

  With `sample_fn(data, key) -> hr_BxHxWxC` the batches are drawn on the device from `data` with the key
  `fold_in(state.rng, state.step)`: `multi(state, data)`. Without it, `multi(state, hr_KxBxHxWxC)` consumes
  `num_steps` host batches stacked on a leading axis.
  """
  if num_steps < 1:
    raise ValueError(f"num_steps must be >= 1, got {num_steps}")

  def constrain(hr):
    return hr if batch_sharding is None else jax.lax.with_sharding_constraint(hr, batch_sharding)

  # A Python loop, i.e. unrolled: on XLA:CPU a `lax.scan` (while loop) around the convolutions' backward pass is
  # ~10x slower than the same steps unrolled (measured with jax 0.10 on 2 cores).
  def run(state, batches):
    losses = []
    for hr in batches:
      state, metrics = train_step(state, constrain(hr))
      losses.append(metrics["loss"])
    return state, {"loss": jnp.stack(losses)}

  if sample_fn is not None:
    def multi(state, data):
      def draws(s):
        for i in range(num_steps):
          yield sample_fn(data, jax.random.fold_in(jax.random.wrap_key_data(s.rng), s.step + i))
      return run(state, draws(state))
  else:
    def multi(state, hr_KxBxHxWxC):
      if hr_KxBxHxWxC.shape[0] != num_steps:
        raise ValueError(f"expected {num_steps} stacked batches, got {hr_KxBxHxWxC.shape[0]}")
      return run(state, (hr_KxBxHxWxC[i] for i in range(num_steps)))
  return multi


# Old names, for tests/test_native_training.py (another branch); new code imports image_ops / kernel_choice.
from espcn_jax.image_ops import make_degrade  # noqa: E402,F401  pylint: disable=wrong-import-position
from espcn_jax.kernel_choice import use_native, use_native_bf16  # noqa: E402,F401  pylint: disable=wrong-import-position
