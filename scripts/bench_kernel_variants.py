"""CPU time per 1080p x3 frame of each prebuilt native kernel variant, and of a -march=native developer build.

    python scripts/bench_kernel_variants.py --json docs/bench/kernel_variants.json

Each variant runs in its own process (ESPCN_JAX_NATIVE_VARIANT, or ESPCN_JAX_NATIVE_BUILD=1 for the -march=native
build), the processes take turns for `--rounds` rounds, and each reports the best of its repeats of `--frames` calls
as process CPU time per frame (less sensitive to a shared machine than wall time) and wall time per frame.
Variants this CPU cannot run are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

_CHILD = r"""
import json, sys, time
import jax, numpy as np
from espcn_jax import native, weights
params, spec = weights.pretrained(3)[:2]
x = np.random.default_rng(0).random((1, 360, 640, 1), np.float32)
f = jax.jit(lambda p, x: native.forward(p, x, spec))
f(params, x).block_until_ready()
frames, reps = int(sys.argv[1]), int(sys.argv[2])
cpu, wall = [], []
for _ in range(reps):
  t, w = time.process_time(), time.perf_counter()
  for _ in range(frames):
    f(params, x).block_until_ready()
  cpu.append((time.process_time() - t) / frames * 1e3)
  wall.append((time.perf_counter() - w) / frames * 1e3)
print(json.dumps({"library": native.library_path().name, "isa": native.isa(), "cpu_ms": min(cpu),
                  "wall_ms": min(wall)}))
"""


def run_variant(env_extra: dict, frames: int, reps: int) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", **env_extra)
  out = subprocess.run([sys.executable, "-c", _CHILD, str(frames), str(reps)], env=env, capture_output=True,
                       text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--frames", type=int, default=10)
  p.add_argument("--reps", type=int, default=3)
  p.add_argument("--no-native-build", action="store_true", help="skip the -march=native developer build")
  p.add_argument("--json", type=pathlib.Path)
  args = p.parse_args(argv)
  from espcn_jax import atomic_io, native
  best = native.cpu_variant()
  runs = {v: {"ESPCN_JAX_NATIVE_VARIANT": v} for v in native.VARIANTS[native.VARIANTS.index(best):]}
  if not args.no_native_build:
    runs["-march=native (developer build)"] = {"ESPCN_JAX_NATIVE_BUILD": "1"}
  results = {name: [] for name in runs}
  for _ in range(args.rounds):
    for name, env in runs.items():
      results[name].append(run_variant(env, args.frames, args.reps))
  rows = []
  for name, rs in results.items():
    row = {"variant": name, "library": rs[0]["library"], "cpu_ms_per_frame": min(r["cpu_ms"] for r in rs),
           "wall_ms_per_frame": min(r["wall_ms"] for r in rs), "rounds": [r["cpu_ms"] for r in rs]}
    rows.append(row)
    print(f"{name:34s} {row['cpu_ms_per_frame']:7.1f} CPU-ms/frame  {row['wall_ms_per_frame']:7.1f} ms wall  "
          f"({row['library']})")
  if args.json:
    cpu = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": ") if os.path.exists(
        "/proc/cpuinfo") else ""
    atomic_io.write_text(args.json, json.dumps({"cpu": cpu, "threads": native.num_threads(), "best_variant": best,
                                                "input": "640x360 -> 1920x1080, x3, shipped weights",
                                                "results": rows}, indent=1) + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
