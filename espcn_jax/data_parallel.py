"""Data parallelism for the train step: a 1-D mesh over all devices, the batch and replicated shardings, placing
host arrays on them (across processes), and the one jit of the k-step program (state replicated and donated)."""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (global) devices with the axis name "data"."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ("data",))


def batch_sharding(mesh: Mesh, stacked: bool = False) -> NamedSharding:
  """Batch axis sharded over "data"; with `stacked` the leading axis is the step axis (k stacked batches)."""
  return NamedSharding(mesh, P(None, "data") if stacked else P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


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


def agree(value):
  """Process 0's value (an int or bool) on every process, so that all of them stop at the same step."""
  if jax.process_count() == 1:
    return value
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  return type(value)(multihost_utils.broadcast_one_to_all(int(value)))
