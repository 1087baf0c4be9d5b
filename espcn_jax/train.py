"""`python -m espcn_jax.train`: trains ESPCN, validates on Set5 every epoch, checkpoints, exports the best weights.

    python -m espcn_jax.train                                   # x3 on T91, tanh, into workdirs/espcn_x3_t91
    python -m espcn_jax.train --config configs/t91_x2.py --workdir workdirs/x2 --config.batch_size=128
    python -m espcn_jax.train --config configs/t91_x3_cpu.py        # without a GPU: ~10 min on 2 cores
    python -m espcn_jax.train --config configs/smoke.py --workdir /tmp/smoke --config.optim.learning_rate=0.003

Rerunning the same command resumes exactly from the latest checkpoint in the workdir (the patch sampler's state is
part of the checkpoint). An "epoch" is `steps_per_epoch` optimizer steps (the data is an endless random-patch stream);
the plateau schedule, validation, logging, checkpoints and early stopping all count in these epochs. The workdir gets
checkpoints/ (latest), best_checkpoint/, best.safetensors (best Set5 PSNR), metrics.jsonl and TensorBoard events.
Ctrl-C (or SIGTERM) saves a checkpoint at the next step boundary and exits with code 130; a second Ctrl-C aborts.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import importlib.util
import json
import math
import pathlib
import sys
import time

from espcn_jax import train_io

DEFAULT_CONFIG = "t91_x3_tanh.py"
CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"  # installed with the package


class TrainError(RuntimeError):
  """A training run that cannot go on; the one-line message says why and what was kept."""


def default_config() -> dict:
  """Every field, with the paper's settings for x3 on T91 (the configs/ files start from this)."""
  return {
      "scale": 3,
      "model": {"channels": 1, "features": (64, 32), "kernel_sizes": (5, 3, 3), "activation": "tanh"},
      "data": {
          "train": "t91",  # built-in name / folder, a list of them, or "tfds:NAME[:SPLIT]", or "imagenet_subset"
          "backend": "auto",  # "memory" (on-device sampler), "tfdata", or "auto" (memory unless tfds/imagenet)
          "val": "set5",  # folder or built-in name; "" disables validation
          "lr_patch": 17,  # LR patch side; HR patches are lr_patch * scale
          "augment": False,  # random flips / transposes
          "degradation": "bicubic", "sigma": 1.6, "kernel_size": 7,  # "gaussian": the paper's blur + decimation
          "shuffle_buffer": 1024, "cache": True, "tfds_data_dir": "", "manual_dir": "", "subset_size": 50000,
      },
      "batch_size": 64,  # global, over all devices and processes
      "steps_per_call": 0,  # optimizer steps per jitted call (unrolled); 0: 8 on GPU/TPU, 1 on CPU (same math)
      "steps_per_epoch": 200,
      "num_epochs": 300,
      "optim": {"learning_rate": 0.01, "min_learning_rate": 1e-4, "plateau_factor": 0.1, "plateau_patience": 10,
                "plateau_rtol": 1e-3, "plateau_cooldown": 0, "last_layer_lr_scale": 0.1,
                "decay_steps": 0},  # > 0: cosine lr decay to min_learning_rate over that many steps
      "early_stop_patience": 100,  # epochs without improvement of `early_stop_metric`; 0 disables
      "early_stop_metric": "train_loss",  # "train_loss" (the paper) or "val_psnr"
      "eval_every_epochs": 1,
      "checkpoint_every_epochs": 1,
      "max_minutes": 0.0,  # wall-clock budget of this invocation (0: none); the best weights are exported anyway
      "seed": 0,
      "compute_dtype": "float32",  # or "bfloat16"
      "cpu_ynn_fusion": True,  # XLA:CPU: YNNPACK fusions for dots, elementwise ops, reductions (same math, faster)
      "native_kernels": "auto",  # the net's forward/backward in C++ (espcn_jax.native.training): auto, on or off;
      # auto = on the CPU in float32 on one device when the kernels build (1.45-1.7x XLA's step on 2 cores)
      "native_bf16": "off",  # the native kernels' convolutions with >= 8 inputs on bf16 operands (float32 sums):
      # auto (when the CPU has AVX512_BF16: 1.6-1.7x the float32 kernels' step), on or off
      "distributed": False,  # jax.distributed.initialize() (multi-host; coordinator from the environment)
      "coordinator_address": "", "num_processes": 0, "process_id": -1,
      "tensorboard": True,
      "workdir": "workdirs/espcn_x3_t91",
  }


# ----------------------------------------------------------------------------------------------------------------
# Config files and --config.FIELD=VALUE overrides.


def load_config(path) -> dict:
  """Runs a config file's `get_config()` (a nested dict)."""
  path = pathlib.Path(path)
  if not path.is_file():
    alt = CONFIG_DIR / path.name
    if path.parent.name in ("", "configs") and alt.is_file():  # "t91_x2.py" or "configs/t91_x2.py" from anywhere
      path = alt
    else:
      raise TrainError(f"{path}: no such config file")
  spec = importlib.util.spec_from_file_location(f"espcn_config_{path.stem}", path)
  mod = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(mod)
    cfg = mod.get_config()
  except Exception as e:
    raise TrainError(f"{path}: cannot load config ({type(e).__name__}: {e})".splitlines()[0]) from e
  if not isinstance(cfg, dict):
    raise TrainError(f"{path}: get_config() must return a dict, got {type(cfg).__name__}")
  return cfg


def _coerce(text: str, old, field: str):
  if isinstance(old, str):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if isinstance(old, bool) and text.lower() in ("true", "false"):
      return text.lower() == "true"
    raise TrainError(f"--config.{field}={text}: not a valid {type(old).__name__}") from None
  if isinstance(old, bool) and not isinstance(value, bool):
    raise TrainError(f"--config.{field}={text}: expected True or False")
  if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if isinstance(old, (tuple, list)) and isinstance(value, (tuple, list, int)):
    value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
  if old is not None and not isinstance(value, type(old)):
    raise TrainError(f"--config.{field}={text}: expected a {type(old).__name__}, got {type(value).__name__}")
  return value


def override(cfg: dict, field: str, text: str) -> None:
  """Sets cfg[a][b] from "a.b" and the text of a value, typed like the current value."""
  *parents, leaf = field.split(".")
  d = cfg
  for p in parents:
    if not isinstance(d.get(p), dict):
      raise TrainError(f"--config.{field}: unknown config field {p!r}")
    d = d[p]
  if leaf not in d:
    raise TrainError(f"--config.{field}: unknown config field; known here: {', '.join(sorted(d))}")
  d[leaf] = _coerce(text, d[leaf], field)


def parse_args(argv) -> tuple[dict, str | None]:
  """--config PATH, --workdir DIR, --config.FIELD=VALUE (or --config.FIELD VALUE). Returns (config, workdir)."""
  argv = list(argv)
  config_path, workdir, overrides = None, None, []
  i = 0
  while i < len(argv):
    arg = argv[i]
    name, eq, value = arg.partition("=")
    if name in ("-h", "--help"):
      print(__doc__)
      raise SystemExit(0)
    if not name.startswith("--") or name[2:] not in ("config", "workdir") and not name.startswith("--config."):
      raise TrainError(f"{arg}: unknown argument (use --config PATH, --workdir DIR, --config.FIELD=VALUE)")
    if not eq:
      if i + 1 >= len(argv):
        raise TrainError(f"{name}: missing value")
      value, i = argv[i + 1], i + 1
    if name == "--config":
      config_path = value
    elif name == "--workdir":
      workdir = value
    else:
      overrides.append((name[len("--config."):], value))
    i += 1
  cfg = load_config(config_path or CONFIG_DIR / DEFAULT_CONFIG)
  for field, value in overrides:
    override(cfg, field, value)
  return cfg, workdir


def resume_keys(cfg: dict) -> dict:
  """Settings a resumed run must share with the checkpoint (else its data stream / state would differ)."""
  d = cfg["data"]
  return {"batch_size": cfg["batch_size"], "steps_per_epoch": cfg["steps_per_epoch"], "seed": cfg["seed"],
          "train": d["train"], "lr_patch": d["lr_patch"], "augment": d["augment"], "degradation": d["degradation"]}


# ----------------------------------------------------------------------------------------------------------------
# The training loop.


def _check_config(cfg: dict, num_devices: int) -> None:
  spe, k, b = cfg["steps_per_epoch"], cfg["steps_per_call"], cfg["batch_size"]
  if k < 1 or spe < 1 or spe % k:
    raise TrainError(f"steps_per_epoch ({spe}) must be a positive multiple of steps_per_call ({k})")
  if b < 1 or b % num_devices:
    raise TrainError(f"batch_size ({b}) must be a positive multiple of the number of devices ({num_devices})")
  if cfg["data"]["backend"] not in ("auto", "memory", "tfdata"):
    raise TrainError(f"data.backend must be auto, memory or tfdata, got {cfg['data']['backend']!r}")
  if not isinstance(cfg["num_epochs"], int) or cfg["num_epochs"] < 1:
    raise TrainError(f"num_epochs must be a positive integer, got {cfg['num_epochs']!r}")
  if cfg["early_stop_metric"] not in ("train_loss", "val_psnr"):
    raise TrainError(f"early_stop_metric must be train_loss or val_psnr, got {cfg['early_stop_metric']!r}")


def _make_data(cfg: dict, spec, workdir: pathlib.Path, position: int):
  """("memory", PatchSampler) or ("tfdata", TfPatchStream). Folders are checked before anything compiles."""
  import jax
  from espcn_jax import input_pipeline, images
  d, p = cfg["data"], cfg["data"]["lr_patch"] * spec.scale
  remote = input_pipeline.is_remote(d["train"])
  backend = d["backend"] if d["backend"] != "auto" else ("tfdata" if remote else "memory")
  if backend == "memory":
    if remote:
      raise TrainError(f"data.train={d['train']!r} needs data.backend=tfdata")
    sources = input_pipeline.train_sources(d["train"])
    imgs, stats = input_pipeline.load_images(sources, channels=spec.channels, min_size=p, progress=train_io.primary())
    train_io.say(f"training data {d['train']}: {stats.summary()}")
    for msg in stats.corrupt:
      train_io.say(f"  skipped: {msg}")
    return backend, input_pipeline.PatchSampler(imgs, patch_size=p, batch_size=cfg["batch_size"],
                                                augment=d["augment"])
  if not remote:
    for name in input_pipeline.train_sources(d["train"]):
      images.list_images(input_pipeline.resolve_folder(name))
    if len(input_pipeline.train_sources(d["train"])) > 1:
      raise TrainError("data.backend=tfdata reads one source; use the memory backend for several folders")
  source = input_pipeline.train_sources(d["train"])[0]
  stream = input_pipeline.TfPatchStream(
      source, patch_size=p, batch_size=cfg["batch_size"] // jax.process_count(), channels=spec.channels,
      seed=cfg["seed"], augment=d["augment"], shuffle_buffer=d["shuffle_buffer"], cache=d["cache"],
      start_element=position, data_dir=d["tfds_data_dir"] or None, manual_dir=d["manual_dir"] or None,
      subset_size=d["subset_size"], subset_record=str(workdir / "imagenet_subset_ids.txt"))
  return backend, stream


def train(cfg: dict, workdir) -> int:
  """Trains (or resumes) into `workdir`. Returns 0 when done, 130 when stopped by a signal (after saving).
  The workdir is locked for the run (train_io.WorkdirLock): a second run on it fails with a message."""
  with contextlib.ExitStack() as held:
    return _train(cfg, workdir, held)


def _train(cfg: dict, workdir, held: contextlib.ExitStack) -> int:
  cfg = copy.deepcopy(cfg)
  workdir = pathlib.Path(workdir)
  if cfg["distributed"]:
    import jax
    kw = {k: cfg[k] for k in ("coordinator_address", "num_processes", "process_id") if cfg[k] not in ("", 0, -1)}
    jax.distributed.initialize(**kw)
  import jax
  import numpy as np
  from tqdm import tqdm
  from espcn_jax import checkpointing, images, input_pipeline, model, optim, validation, weights
  from espcn_jax import train_step as ts

  mesh = ts.make_mesh()
  if cfg["steps_per_call"] == 0:  # auto: on XLA:CPU with the YNNPACK fusions 8 steps per call gain only ~4% at
    # batch 128 (1.3x at batch 16: configs/t91_x3_cpu.py sets 8), and 1 keeps epochs short; accelerators need 8
    cfg["steps_per_call"] = 1 if jax.default_backend() == "cpu" else 8
  _check_config(cfg, mesh.size)
  try:
    spec = model.Spec(scale=cfg["scale"], **cfg["model"])
  except (TypeError, ValueError) as e:
    raise TrainError(f"bad model config: {e}") from e
  d, o, spe, k = cfg["data"], cfg["optim"], cfg["steps_per_epoch"], cfg["steps_per_call"]
  val_dir = input_pipeline.resolve_folder(d["val"]) if d["val"] else None
  val_set = None if val_dir is None else validation.load_set(  # HR Y, LR inputs, bicubic PSNR: once per run
      val_dir, spec.scale, channels=spec.channels, degradation=d["degradation"], sigma=d["sigma"],
      kernel_size=d["kernel_size"], name=d["val"])
  if not input_pipeline.is_remote(d["train"]):
    for name in input_pipeline.train_sources(d["train"]):  # missing / empty folders: fail before the workdir is touched
      images.list_images(input_pipeline.resolve_folder(name))
  # Which forward / backward pass (and a clear error for an impossible setting) before the workdir is touched
  dtype = None if cfg["compute_dtype"] == "float32" else cfg["compute_dtype"]
  try:
    native, why = ts.use_native(cfg["native_kernels"], backend=jax.default_backend(), num_devices=mesh.size,
                                dtype=dtype)
  except ValueError as e:
    raise TrainError(str(e)) from e
  try:
    bf16, why_bf16 = ts.use_native_bf16(cfg["native_bf16"], native=native)
  except ValueError as e:
    raise TrainError(f"{e} (--config.native_bf16=off, or configs/t91_x3_cpu.py, trains in float32)") from e
  train_io.say(f"forward / backward pass: {why}" + (f", {why_bf16}" if native else ""))
  if train_io.primary():
    held.enter_context(train_io.WorkdirLock(workdir))
  ckpt = checkpointing.Checkpointer(workdir)
  tx = optim.make(model.init(jax.random.PRNGKey(0), spec), steps_per_epoch=spe, **o)
  state = ts.put_replicated(ts.create_state(jax.random.PRNGKey(cfg["seed"]), spec, tx), mesh)
  restored, meta = ckpt.restore_intact(state, spec, resume_keys(cfg), say=train_io.say)
  if restored is not None:  # (newer broken checkpoints were set aside, and said so)
    state = restored
    train_io.say(f"resuming from {workdir}/{checkpointing.LATEST_DIR} at step {int(state.step)}")
  meta = meta or {}
  backend, data = _make_data(cfg, spec, workdir, meta.get("stream_position", 0))
  degrade = ts.make_degrade(spec.scale, d["degradation"], d["sigma"], d["kernel_size"])
  step_fn = ts.make_train_step(spec, tx, degrade_fn=degrade, dtype=dtype, native=native, native_bf16=bf16)
  stacked = ts.batch_sharding(mesh)
  # The YNNPACK fusions speed up XLA's convolutions; beside the native kernels they only compete for the cores (the
  # native step with them: 0.73x of the one without, BENCHMARKS.md)
  copts = ts.compiler_options(jax.default_backend()) if cfg["cpu_ynn_fusion"] and not native else None
  if backend == "memory":
    multi = ts.jit_multi_step(ts.make_multi_step(step_fn, k, data.sample, stacked), mesh, with_batch=False,
                              compiler_options=copts)
    data_dev = ts.put_replicated(data.data, mesh)
    next_input = lambda: data_dev
  else:
    multi = ts.jit_multi_step(ts.make_multi_step(step_fn, k, None, stacked), mesh, with_batch=True,
                              compiler_options=copts)
    next_input = lambda: ts.put_batch(data.take(k), mesh)

  step, total = int(state.step), cfg["num_epochs"] * spe
  logs = train_io.Logs(workdir, step, cfg["tensorboard"]) if train_io.primary() else None
  partial = meta.get("partial", {"sum": 0.0, "n": 0})
  best = {key: meta.get(key) for key in ("best_psnr", "best_step", "best_loss", "bad_epochs", "bicubic_psnr")}
  best["bad_epochs"] = best["bad_epochs"] or 0
  t_start, t_epoch, pending, stop_code = time.time(), time.time(), [], None

  def meta_now():
    return {"spec": spec.to_dict(), "resume_keys": resume_keys(cfg), "step": step, "epoch": step // spe,
            "partial": partial, "config": json.loads(json.dumps(cfg)), **best,
            "stream_position": getattr(data, "position", 0)}

  def drain():
    if pending:
      losses = np.concatenate([np.asarray(x) for x in jax.device_get(pending)])
      pending.clear()
      partial["sum"] += float(losses.sum())
      partial["n"] += int(losses.size)
    if partial["n"] and not math.isfinite(partial["sum"]):
      last = ckpt.latest_step()
      kept = (f"the last good checkpoint (step {last}) in {workdir} is kept" if last is not None
              else f"no checkpoint was saved yet in {workdir}")
      raise TrainError(f"training loss became {partial['sum']} by step {step} (epoch {(step - 1) // spe + 1}); "
                       f"{kept}; try a lower optim.learning_rate")

  bar = tqdm(total=total, initial=step, unit="step", desc=f"ESPCN x{spec.scale}", disable=not train_io.primary(),
             dynamic_ncols=True, file=sys.stderr)
  held.callback(bar.close)  # also on an error: its message then starts on a line of its own
  with train_io.StopFlag() as stop:
    while step < total:
      state, metrics = multi(state, next_input())
      pending.append(metrics["loss"])
      step += k
      bar.update(k)
      if step % spe and not stop.requested:
        continue
      drain()
      if step % spe:  # stopped mid-epoch: save what is needed to resume exactly
        ckpt.save(step, state, meta_now())
        train_io.say(f"stopped at step {step}; checkpoint saved in {workdir}; rerun the same command to resume")
        stop_code = 130
        break
      epoch, seconds = step // spe, time.time() - t_epoch
      row = {"step": step, "epoch": epoch, "train_loss": partial["sum"] / partial["n"],
             "learning_rate": float(optim.current_learning_rate(state.opt_state, o["learning_rate"],
                                                                min_learning_rate=o["min_learning_rate"],
                                                                decay_steps=o["decay_steps"])),
             "patches_per_s": spe * cfg["batch_size"] / seconds, "elapsed_s": time.time() - t_start}
      partial = {"sum": 0.0, "n": 0}
      improved = False
      if val_dir is not None and (epoch % cfg["eval_every_epochs"] == 0 or step >= total):
        row["val_psnr"] = validation.espcn_psnr(val_set, jax.device_get(state.params), spec)
        row["val_bicubic_psnr"] = best["bicubic_psnr"] = val_set.bicubic_psnr
        improved = best["best_psnr"] is None or row["val_psnr"] > best["best_psnr"]
      elif val_dir is None:
        improved = True  # no validation: the latest weights are exported
      if improved:
        best["best_psnr"], best["best_step"] = row.get("val_psnr"), step
      if cfg["early_stop_metric"] == "train_loss":
        better = best["best_loss"] is None or row["train_loss"] < (1 - o["plateau_rtol"]) * best["best_loss"]
        best["best_loss"] = row["train_loss"] if better else best["best_loss"]
      else:
        better = improved
      best["bad_epochs"] = 0 if better else best["bad_epochs"] + 1
      if logs is not None:
        logs.write(row)
      val = (f", {d['val']} PSNR {row['val_psnr']:.2f} dB (bicubic {row['val_bicubic_psnr']:.2f})"
             if "val_psnr" in row else "")
      train_io.say(f"epoch {epoch}/{cfg['num_epochs']}: loss {row['train_loss']:.6f}{val}, "
                   f"lr {row['learning_rate']:.2g}, {row['patches_per_s']:.0f} patches/s")
      bar.set_postfix(loss=f"{row['train_loss']:.5f}", psnr=f"{row.get('val_psnr', float('nan')):.2f}")
      done = step >= total
      if cfg["early_stop_patience"] and best["bad_epochs"] >= cfg["early_stop_patience"]:
        train_io.say(f"early stop: no improvement of {cfg['early_stop_metric']} for {best['bad_epochs']} epochs")
        done = True
      if cfg["max_minutes"] and time.time() - t_start > 60 * cfg["max_minutes"]:
        train_io.say(f"time budget of {cfg['max_minutes']} min reached")
        done = True
      if epoch % cfg["checkpoint_every_epochs"] == 0 or done or stop.requested:
        ckpt.save(step, state, meta_now())
      if improved:
        ckpt.save_best(step, state, meta_now())
        if train_io.primary():
          weights.save(workdir / "best.safetensors", jax.device_get(state.params), spec,
                       {"train": d["train"], "val": d["val"], "val_psnr": row.get("val_psnr"), "step": step,
                        "epoch": epoch, "degradation": d["degradation"], "config": meta_now()["config"]})
      t_epoch = time.time()
      if stop.requested:
        train_io.say(f"stopped at step {step}; checkpoint saved in {workdir}; rerun the same command to resume")
        stop_code = 130
      if done or stop_code:
        break
  bar.close()
  ckpt.close()
  if stop_code is None and best["best_psnr"] is not None:
    train_io.say(f"best {d['val']} PSNR {best['best_psnr']:.2f} dB at step {best['best_step']} "
         f"(bicubic {best['bicubic_psnr']:.2f}); weights: {workdir / 'best.safetensors'}")
  return stop_code or 0



def main(argv) -> int:
  try:
    cfg, workdir = parse_args(argv)
    return train(cfg, workdir or cfg["workdir"])
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    return 130
  except Exception as e:  # one clear line for the known failures; a traceback for bugs
    from espcn_jax import checkpointing, images, weights
    if isinstance(e, (TrainError, checkpointing.CheckpointError, images.ImageError, weights.WeightsError)):
      print(f"error: {e}", file=sys.stderr)
      return 1
    if isinstance(e, OSError):  # a full disk, a workdir that is a file or read-only, one in use by another run
      msg = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else (str(e).strip() or type(e).__name__)
      print(f"error: {msg.splitlines()[0]}", file=sys.stderr)
      return 1
    raise


def run():
  sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
  run()
