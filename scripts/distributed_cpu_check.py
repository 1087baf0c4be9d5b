"""Multi-process check on one machine: 2 CPU processes joined by `jax.distributed` (localhost coordinator) train the
same model data-parallel and must stay in lockstep (same losses, same params in every process).

    python scripts/distributed_cpu_check.py            # exit 0 and "OK" when in lockstep

Each process has 1 CPU device; the global batch is sharded over the 2 devices of the 2 processes (in-memory T91
sampler, so every process draws the same global batch and keeps its half). `tests/test_train_step.py` runs this as a
slow test (`pytest -m slow`).
"""

import json
import os
import socket
import subprocess
import sys

STEPS = 6


def worker(port: int, pid: int) -> None:
  import jax
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)
  import numpy as np
  from espcn_jax import data_parallel, image_ops, input_pipeline, model, optim, train_step as ts
  spec = model.Spec(features=(16, 8))
  imgs, _ = input_pipeline.load_images(["t91"], min_size=51)
  sampler = input_pipeline.PatchSampler(imgs[:10], patch_size=51, batch_size=8)
  tx = optim.make(model.init(jax.random.PRNGKey(0), spec), steps_per_epoch=3)
  mesh = data_parallel.make_mesh()
  state = data_parallel.put_replicated(ts.create_state(jax.random.PRNGKey(0), spec, tx), mesh)
  step = ts.make_train_step(spec, tx, degrade_fn=image_ops.make_degrade(3))
  multi = ts.make_multi_step(step, 1, sampler.sample, data_parallel.batch_sharding(mesh))
  multi = data_parallel.jit_multi_step(multi, mesh, with_batch=False)
  data = data_parallel.put_replicated(sampler.data, mesh)
  losses = []
  for _ in range(STEPS):
    state, m = multi(state, data)
    losses.append(float(np.asarray(m["loss"].addressable_data(0))[0]))
  kernel = np.asarray(state.params["conv1"]["kernel"].addressable_data(0))
  print(json.dumps({"process": pid, "devices": jax.device_count(), "losses": losses,
                    "checksum": float(np.abs(kernel).sum())}), flush=True)
  jax.distributed.shutdown()


def main() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(port), str(i)], env=env, cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  results = []
  for p, (out, err) in zip(procs, outs):
    if p.returncode != 0:
      print(f"worker failed (exit {p.returncode}): {err.strip().splitlines()[-1] if err.strip() else ''}")
      return 1
    results.append(json.loads(out.strip().splitlines()[-1]))
  a, b = results
  print(json.dumps(results))
  if a["devices"] != 2 or b["devices"] != 2:
    print("FAIL: expected 2 global devices")
    return 1
  if a["losses"] != b["losses"] or a["checksum"] != b["checksum"]:
    print("FAIL: the processes diverged")
    return 1
  if not a["losses"][-1] < a["losses"][0]:
    print("FAIL: the loss did not decrease")
    return 1
  print("OK: 2 processes trained in lockstep")
  return 0


if __name__ == "__main__":
  if len(sys.argv) == 4 and sys.argv[1] == "--worker":
    worker(int(sys.argv[2]), int(sys.argv[3]))
  else:
    sys.exit(main())
