"""Which kernels the train step runs: the native C++ CPU kernels (`espcn_jax.native.training`) or XLA, and whether
the native kernels multiply bf16 operands. Each answer comes with a one-line reason for the training log.

    native, why = kernel_choice.use_native("auto", backend=jax.default_backend(), num_devices=mesh.size)
    bf16, why_bf16 = kernel_choice.use_native_bf16("auto", native=native)
"""

from __future__ import annotations

import jax.numpy as jnp


def _on_off_auto(setting, what: str) -> str:
  """"auto", "on" or "off" (True / False mean on / off); else ValueError naming `what`."""
  if isinstance(setting, bool):
    setting = "on" if setting else "off"
  if setting not in ("auto", "on", "off"):
    raise ValueError(f"{what}: expected auto, on or off, got {setting!r}")
  return setting


def use_native(setting, *, backend: str, num_devices: int, dtype=None, kind: str = "espcn") -> tuple[bool, str]:
  """Whether the train step should use the native CPU kernels, and why: `setting` "auto" (when they can: an ESPCN
  (`model.Spec.kind`), the CPU, float32, one device, and they build here), "on" (the same conditions, else
  ValueError) or "off" (True / False mean on / off)."""
  setting = _on_off_auto(setting, "native training kernels")
  if setting == "off":
    return False, "XLA (native kernels turned off)"
  why = None
  if kind != "espcn":
    why = f"the model is {kind!r}: the kernels compute ESPCN only"
  elif backend != "cpu":
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
    return True, "bf16 dot products (float32 sums)" + (" on AMX tiles" if native_lib.train_has_amx() else "")
  if setting == "on":
    raise ValueError(f"native bf16 requested, but {why}")
  return False, f"float32 ({why})"
