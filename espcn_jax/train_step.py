"""The pure train step `(state, batch) -> (state, metrics)`, its k-step scan, data-parallel jit, and a small Y eval.

The batch is HR patches (B, P, P, C') in uint8 [0, 255] or float [0, 1]; C' = 3 is turned into luma when the model
is luma-only. The step makes the LR input on the device with `degrade_fn` (by default `image_ops.degrade`, MATLAB
bicubic) and minimises the MSE between the model's output and the HR patch in [0, 1].

    step = train_step.make_train_step(spec, tx, degrade_fn=train_step.make_degrade(3))
    multi = train_step.make_multi_step(step, num_steps=8, sample_fn=sampler.sample)   # lax.scan over 8 steps
    mesh = train_step.make_mesh()
    multi = train_step.jit_multi_step(multi, mesh, with_batch=False,                  # jitted once, state donated
                                      compiler_options=train_step.compiler_options(jax.default_backend()))
    state, metrics = multi(state, sampler.data)
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from espcn_jax import model


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; `rng` and `step` also drive the patch sampler (exact resume)."""

  params: Any
  opt_state: Any
  step: jax.Array  # int32 scalar: optimizer steps done
  rng: jax.Array  # uint32[2] raw PRNG key: patch sampling uses fold_in(rng, step)


def create_state(rng, spec: model.Spec, tx: optax.GradientTransformation) -> TrainState:
  """Fresh params (from `rng`) and optimizer state; the sampler key is split off the same `rng`."""
  init_key, data_key = jax.random.split(rng)
  params = model.init(init_key, spec)
  return TrainState(params=params, opt_state=tx.init(params), step=jnp.zeros((), jnp.int32),
                    rng=jax.random.key_data(data_key) if _is_typed_key(data_key) else data_key)


def _is_typed_key(k) -> bool:
  return jnp.issubdtype(k.dtype, jax.dtypes.prng_key)


def make_degrade(scale: int, method: str = "bicubic", sigma: float | None = None,
                 kernel_size: int | None = None) -> Callable:
  """HR (B, H, W, C) in [0, 1] -> LR (B, H/scale, W/scale, C) with `image_ops.degrade` (jit-friendly)."""
  from espcn_jax import image_ops  # bottom layer; imported here so optim/eval users do not pay for it
  kwargs = {}
  if sigma is not None:
    kwargs["sigma"] = sigma
  if kernel_size is not None:
    kwargs["kernel_size"] = kernel_size

  def degrade(hr_BxHxWxC):
    return image_ops.degrade(hr_BxHxWxC, scale, method=method, **kwargs)

  return degrade


def to_model_input(hr_BxHxWxC, channels: int):
  """uint8 or float HR patches -> float32 in [0, 1] with `channels` channels (RGB -> luma when channels == 1)."""
  x = hr_BxHxWxC
  if x.dtype == jnp.uint8:
    x = x.astype(jnp.float32) / 255.0
  x = x.astype(jnp.float32)
  if x.shape[-1] == 3 and channels == 1:
    from espcn_jax import image_ops
    x = image_ops.luma(x)
    if x.ndim == 3:
      x = x[..., None]
  if x.shape[-1] != channels:
    raise ValueError(f"batch has {x.shape[-1]} channels, the model wants {channels}")
  return x


def make_train_step(spec: model.Spec, tx: optax.GradientTransformationExtraArgs, *, degrade_fn: Callable,
                    dtype=None, native: bool = False, native_bf16: bool = False) -> Callable:
  """Returns the pure `train_step(state, hr_BxHxWxC) -> (state, {"loss": scalar})`.

  `dtype` is the model's compute dtype (None: float32). `native`: the net's forward and backward pass by the C++
  kernels of `espcn_jax.native.training` (CPU, float32, one device; see `use_native`); `native_bf16`: their
  convolutions with >= 8 inputs multiply bf16 operands (float32 sums; see `use_native_bf16`). The plateau schedule
  receives `value=loss`.
  """
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
      return jnp.mean(jnp.square(forward(params, lr) - hr))

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
    return new_state, {"loss": loss}

  return train_step


def _on_off_auto(setting, what: str) -> str:
  """"auto", "on" or "off" (True / False mean on / off); else ValueError naming `what`."""
  if isinstance(setting, bool):
    setting = "on" if setting else "off"
  if setting not in ("auto", "on", "off"):
    raise ValueError(f"{what}: expected auto, on or off, got {setting!r}")
  return setting


def use_native(setting, *, backend: str, num_devices: int, dtype=None) -> tuple[bool, str]:
  """Whether the train step should use the native CPU kernels, and why: `setting` "auto" (when they can: the CPU,
  float32, one device, and they build here), "on" (the same conditions, else ValueError) or "off" (True / False
  mean on / off)."""
  setting = _on_off_auto(setting, "native training kernels")
  if setting == "off":
    return False, "XLA (native kernels turned off)"
  why = None
  if backend != "cpu":
    why = f"the backend is {backend}, not cpu"
  elif dtype not in (None, "float32", jnp.float32):
    why = f"the compute dtype is {dtype}, not float32"
  elif num_devices != 1:
    why = f"{num_devices} devices (the kernels run on one)"
  else:
    from espcn_jax import native
    if not native.available():
      why = f"they are unavailable: {native.unavailable_reason()}"
  if why is None:
    return True, "native CPU kernels (espcn_jax.native.training)"
  if setting == "on":
    raise ValueError(f"native training kernels requested, but {why}")
  return False, f"XLA ({why})"


def use_native_bf16(setting, *, native: bool) -> tuple[bool, str]:
  """Whether the native kernels should use bf16 dot products, and why: `setting` "auto" (when the native kernels
  run and the CPU has AVX512_BF16), "on" (the same, else ValueError) or "off" (True / False mean on / off)."""
  setting = _on_off_auto(setting, "native bf16")
  if setting == "off":
    return False, "float32"
  why = None
  if not native:
    why = "the native kernels are not in use"
  else:
    from espcn_jax import native as native_lib
    if not native_lib.train_has_bf16():
      why = "this CPU has no AVX512_BF16"
  if why is None:
    return True, "bf16 dot products (float32 sums)"
  if setting == "on":
    raise ValueError(f"native bf16 requested, but {why}")
  return False, f"float32 ({why})"


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


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (global) devices with the axis name "data"."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ("data",))


def batch_sharding(mesh: Mesh, stacked: bool = False) -> NamedSharding:
  """Batch axis sharded over "data"; with `stacked` the leading axis is the scan (step) axis."""
  return NamedSharding(mesh, P(None, "data") if stacked else P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


# XLA:CPU: hand dots, elementwise ops (tanh, bias, the Adam update) and reductions to YNNPACK fusions, not only the
# convolutions (jax 0.10's default). The train step's math is unchanged (gradients agree to ~1e-6 relative,
# tests/test_train_step.py); on 2 cores of an AMD EPYC (Zen 5, AVX-512) the step ran 2.45x faster at batch 128 and
# 1.3x at batch 16 (BENCHMARKS.md, "Training speed"). Per-jit options: nothing process-wide is changed.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ",".join(
    f"LIBRARY_FUSION_TYPE_{t}" for t in ("DOT", "ELTWISE", "REDUCE"))}


def compiler_options(backend: str) -> dict | None:
  """The XLA options `jit_multi_step` should compile the train step with on `backend` ("cpu", "gpu", "tpu"); None
  where there are none, or where this jaxlib does not know them (checked once by compiling a tiny program)."""
  if backend != "cpu" or not _cpu_options_supported():
    return None
  return dict(CPU_COMPILER_OPTIONS)


@functools.lru_cache(maxsize=None)
def _cpu_options_supported() -> bool:
  try:
    jax.jit(lambda x: x * 2.0, compiler_options=CPU_COMPILER_OPTIONS).lower(jnp.ones((2,), jnp.float32)).compile()
    return True
  except Exception:  # pylint: disable=broad-except  (an unknown option name or value: compile without it)
    return False


def jit_multi_step(multi: Callable, mesh: Mesh, *, with_batch: bool,
                   compiler_options: dict | None = None) -> Callable:
  """`jax.jit` once: state replicated and donated; the second argument is sampler data (replicated) or stacked
  host batches (batch axis sharded over "data"). `compiler_options`: XLA options for this program (see
  `compiler_options(backend)`)."""
  rep = replicated(mesh)
  second = batch_sharding(mesh, stacked=True) if with_batch else rep
  return jax.jit(multi, in_shardings=(rep, second), out_shardings=(rep, rep), donate_argnums=0,
                 compiler_options=compiler_options)


def put_replicated(tree, mesh: Mesh):
  """Places a host pytree replicated on every device of `mesh` (works across processes)."""
  sharding = replicated(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def put_batch(hr_KxBxHxWxC, mesh: Mesh):
  """This process's stacked batches (K, B_local, ...) -> one global array sharded over "data" on axis 1."""
  return jax.make_array_from_process_local_data(batch_sharding(mesh, stacked=True), np.asarray(hr_KxBxHxWxC))


def make_sr_fn(spec: model.Spec, dtype=None) -> Callable:
  """Jitted `(params, lr_HxWxC) -> sr_HxWxC` clipped to [0, 1] (one compile per image shape)."""

  @jax.jit
  def sr(params, lr_HxWxC):
    return jnp.clip(model.apply(params, lr_HxWxC[None], spec, dtype=dtype)[0], 0.0, 1.0)

  return sr


def psnr_y(a_HxWxC, b_HxWxC, crop_border: int) -> float:
  """PSNR in dB of two images in [0, 1] on the [0, 255] scale, `crop_border` pixels removed on each side."""
  a = np.asarray(a_HxWxC, np.float64) * 255.0
  b = np.asarray(b_HxWxC, np.float64) * 255.0
  if crop_border:
    a = a[crop_border:-crop_border, crop_border:-crop_border]
    b = b[crop_border:-crop_border, crop_border:-crop_border]
  mse = float(np.mean(np.square(a - b)))
  return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)
