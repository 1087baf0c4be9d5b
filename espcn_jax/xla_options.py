"""The XLA compiler options the train step is jitted with, per backend, probed once against this jaxlib."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


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
