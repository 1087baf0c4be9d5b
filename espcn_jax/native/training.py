"""ESPCN for training on the CPU: the forward pass and its VJP (the weight gradients) as two C++ kernels.

    from espcn_jax.native import training
    if training.available():
      sr_BxrHxrWxC = training.apply(params, lr_BxHxWxC, spec)   # = model.apply(params, lr, spec), float32
      loss, grads = jax.value_and_grad(lambda p: jnp.mean((training.apply(p, lr, spec) - hr) ** 2))(params)

Why: a training batch is small (16 patches of 17x17 LR pixels in `configs/t91_x3_cpu.py`) and XLA:CPU runs each
layer's forward, input-gradient and weight-gradient convolutions as separate library calls. The kernels in
espcn_cpu_train.cc give each thread whole images of the batch and run every layer of one image while its
activations stay in L2 (BENCHMARKS.md, "Training speed": forward + backward ~2x XLA's on 2 cores).

`apply` is a `jax.custom_vjp`: the forward kernel also returns the hidden activations (an opaque float32 vector in
the kernel's padded layout), which the backward kernel reads. Gradients flow to the params only: the input is
treated as a constant (`stop_gradient`), which is all training needs. float32 (or, `bf16=True` on a CPU with
AVX512_BF16, bf16 dot products with float32 sums: ~1.6x the step), CPU, one device (under a multi-device
mesh the kernel would see a gathered batch; `train_step` uses XLA there). Same maths as `model.apply` to float32
rounding (tests/test_native_training.py).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from espcn_jax import native, ps

FORWARD, BACKWARD = native.TRAIN_TARGETS
_CS = 16  # the kernel pads channel counts to a multiple of this


def available() -> bool:
  """True when the native library builds and loads on this machine (see `native.unavailable_reason()`)."""
  return native.available()


def channels(spec) -> list[int]:
  return [spec.channels, *spec.features, spec.channels * spec.scale ** 2]


def acts_size(spec, b: int, h: int, w: int) -> int:
  """Floats of the saved hidden activations for a (b, h, w, C) input (the kernel's `espcn_train_acts_size`)."""
  c, k = channels(spec), spec.kernel_sizes
  return sum(b * (h + 2 * (k[l + 1] // 2)) * (w + 2 * (k[l + 1] // 2)) * (-(-c[l + 1] // _CS) * _CS)
             for l in range(spec.num_layers - 1))


def _attrs(spec, threads, bf16):
  return dict(kernel_sizes=np.asarray(spec.kernel_sizes, np.int64), channels=np.asarray(channels(spec), np.int64),
              activation=np.int64(native.ACTIVATION_CODES[spec.activation]), num_threads=np.int64(threads),
              bf16=np.int64(bool(bf16)))


def unpack(packed, spec):
  """The inverse of `native.pack_params`: a flat vector -> {"conv<i>": {"kernel": HWIO, "bias"}}."""
  from espcn_jax import model  # the shapes only
  out, i = {}, 0
  for name, (ks, bs) in model.layer_shapes(spec).items():
    nk, nb = int(np.prod(ks)), int(np.prod(bs))
    out[name] = {"kernel": packed[i:i + nk].reshape(ks), "bias": packed[i + nk:i + nk + nb].reshape(bs)}
    i += nk + nb
  return out


def _forward_call(packed, x, spec, threads, bf16):
  b, h, w, _ = x.shape
  call = jax.ffi.ffi_call(FORWARD, (jax.ShapeDtypeStruct((b, h, w, channels(spec)[-1]), jnp.float32),
                                    jax.ShapeDtypeStruct((acts_size(spec, b, h, w),), jnp.float32)))
  return call(x, packed, **_attrs(spec, threads, bf16))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _pre_shuffle(params, x, spec, threads, bf16):
  y, _ = _forward_call(native.pack_params(params, spec), x, spec, threads, bf16)
  return y


def _pre_shuffle_fwd(params, x, spec, threads, bf16):
  packed = native.pack_params(params, spec)
  y, acts = _forward_call(packed, x, spec, threads, bf16)
  return y, (packed, x, acts)


def _pre_shuffle_bwd(spec, threads, bf16, res, dy):
  packed, x, acts = res
  call = jax.ffi.ffi_call(BACKWARD, jax.ShapeDtypeStruct(packed.shape, jnp.float32))
  grads = call(x, packed, acts, dy.astype(jnp.float32), **_attrs(spec, threads, bf16))
  return unpack(grads, spec), jnp.zeros_like(x)  # x is a constant (stop_gradient in `apply`)


_pre_shuffle.defvjp(_pre_shuffle_fwd, _pre_shuffle_bwd)


def apply(params, lr_BxHxWxC, spec, *, threads: int | None = None, bf16: bool = False):
  """LR (B, H, W, C) -> HR (B, rH, rW, C), float32, as `model.apply`; differentiable w.r.t. `params` only.

  `bf16`: the convolutions with >= 8 input channels (the forward pass of every layer but the first, the input
  gradients, and the weight gradients of those layers, two images at a time) multiply bf16-rounded operands, summed
  in float32 (AVX512_BF16 dot products: twice the float32 rate; needs `native.train_has_bf16()`). The first layer,
  the saved activations, the outputs and the gradients returned stay float32.
  """
  if not available():
    raise RuntimeError(f"the native CPU kernels are unavailable: {native.unavailable_reason()}")
  if bf16 and not native.train_has_bf16():
    raise RuntimeError("bf16 training kernels need a CPU with AVX512_BF16 (this build has none)")
  x = jax.lax.stop_gradient(jnp.asarray(lr_BxHxWxC, jnp.float32))
  if x.ndim != 4 or x.shape[-1] != spec.channels:
    raise ValueError(f"the net takes (B, H, W, {spec.channels}) inputs, got shape {x.shape}")
  params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
  return ps.depth_to_space(_pre_shuffle(params, x, spec, int(threads or native.num_threads()), bool(bf16)),
                           spec.scale)
