"""Training throughput of the jitted train step (patches/s), variants side by side in one process.

    python scripts/bench_train_step.py                                   # batch 128 and 16, with / without options
    python scripts/bench_train_step.py --batch 16 --steps-per-call 8 --reps 7
    python scripts/bench_train_step.py --batch 16 --steps-per-call 8 --options cpu-opts native   # C++ kernels
    python scripts/bench_train_step.py --batch 16 --steps-per-call 8 --options native native-bf16

The step is `python -m espcn_jax.train`'s (x3, 17x17 LR patches from T91 drawn on the device, flips / transposes,
bicubic degradation in the step, Adam + plateau schedule); no validation or checkpointing. Each variant is compiled
first, then the variants take turns (`--reps` rounds of `--patches` patches each), so a noisy machine affects them
alike; the median per variant is printed with its ratio to the first variant. "xla" is jax's default compilation,
"cpu-opts" adds `xla_options.CPU_COMPILER_OPTIONS`, "native" runs the net's forward / backward pass in the C++ kernels
of `espcn_jax.native.training` and the rest of the step with jax's default compilation (what `train` uses on the
CPU; the YNNPACK options only compete with the kernels for the cores), "native-bf16" the same with bf16 dot products
(`--config.native_bf16`; needs AVX512_BF16).
"""

from __future__ import annotations

import argparse
import itertools
import time

import jax
import numpy as np

from espcn_jax import data_parallel, image_ops, input_pipeline, model, optim, xla_options
from espcn_jax import train_step as ts


def make_runner(imgs, spec: model.Spec, batch: int, steps_per_call: int, compiler_options: dict | None,
                native: bool = False, native_bf16: bool = False):
  """A function (num_patches) -> patches/s that trains on, keeping its own state."""
  sampler = input_pipeline.PatchSampler(imgs, patch_size=17 * spec.scale, batch_size=batch, augment=True)
  tx = optim.make(model.init(jax.random.PRNGKey(0), spec), learning_rate=1e-3, min_learning_rate=1e-5,
                  steps_per_epoch=400)
  mesh = data_parallel.make_mesh()
  step = ts.make_train_step(spec, tx, degrade_fn=image_ops.make_degrade(spec.scale), native=native,
                            native_bf16=native_bf16)
  multi = data_parallel.jit_multi_step(ts.make_multi_step(step, steps_per_call, sampler.sample), mesh,
                                       with_batch=False, compiler_options=compiler_options)
  box = {"state": data_parallel.put_replicated(ts.create_state(jax.random.PRNGKey(0), spec, tx), mesh)}
  data = data_parallel.put_replicated(sampler.data, mesh)

  def run(num_patches: int) -> float:
    calls = max(1, num_patches // (batch * steps_per_call))
    state, t = box["state"], time.perf_counter()
    for _ in range(calls):
      state, metrics = multi(state, data)
    jax.block_until_ready(metrics)
    box["state"] = state
    return calls * batch * steps_per_call / (time.perf_counter() - t)

  run(batch * steps_per_call)  # compile
  return run


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch", type=int, nargs="+", default=[128, 16])
  p.add_argument("--steps-per-call", type=int, nargs="+", default=[1])
  p.add_argument("--options", nargs="+", choices=["xla", "cpu-opts", "native", "native-bf16"],
                 default=["xla", "cpu-opts"])
  p.add_argument("--reps", type=int, default=5)
  p.add_argument("--patches", type=int, default=8192, help="patches per timed repeat")
  args = p.parse_args(argv)
  spec = model.Spec(scale=3)
  imgs, _ = input_pipeline.load_images(["t91"], channels=1, min_size=17 * spec.scale)
  opts = {"xla": None, "cpu-opts": xla_options.compiler_options(jax.default_backend())}
  opts["native"] = opts["native-bf16"] = None  # see the docstring
  runs = {f"batch {b:>3}, {k} step(s)/call, {o}": make_runner(imgs, spec, b, k, opts[o], native=o.startswith("native"),
                                                              native_bf16=o == "native-bf16")
          for b, k, o in itertools.product(args.batch, args.steps_per_call, args.options)}
  rates = {name: [] for name in runs}
  for _ in range(args.reps):
    for name, run in runs.items():
      rates[name].append(run(args.patches))
  print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}; patches/s, median of {args.reps} (all repeats)")
  first = np.median(next(iter(rates.values())))
  for name, r in rates.items():
    print(f"{name:<38} {np.median(r):7.0f}  x{np.median(r) / first:.2f}  ({', '.join(f'{x:.0f}' for x in r)})")


if __name__ == "__main__":
  main()
