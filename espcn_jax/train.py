"""`python -m espcn_jax.train`: trains ESPCN, validates every epoch, checkpoints, exports the best weights.

    python -m espcn_jax.train                      # x3 on T91 with the recipe for this hardware (one line says which)
    python -m espcn_jax.train --config configs/t91_x2.py --workdir workdirs/x2 --config.batch_size=128
    python -m espcn_jax.train --config configs/t91_x3_cpu.py --config.max_minutes=5   # the lr decay fits 5 min
    python -m espcn_jax.train --config configs/smoke.py --workdir /tmp/smoke --config.optim.learning_rate=0.003

Without --config the recipe is chosen for the hardware: configs/t91_x3_tanh.py on a GPU / TPU, t91_x3_cpu_bf16.py on
a CPU with AVX512_BF16 and the native kernels, t91_x3_cpu.py on other CPUs (on XLA where the kernels do not load).
A config file (espcn_jax/configs/*.py, an ml_collections ConfigDict) is the record of a run, its command in its
docstring; `--config.a.b=VALUE` overrides a field (typed; an unknown field is an error). Rerunning the same command
resumes exactly from the latest checkpoint in the workdir (the patch sampler's state is part of the checkpoint). An
"epoch" is `steps_per_epoch` optimizer steps (the data is an endless random-patch stream); the plateau schedule,
validation, logging, checkpoints and early stopping all count in these epochs. The best checkpoint is chosen on
`data.val` (Set5 in the Table 1 configs, held-out T91 images in the CPU ones); `data.test` sets are scored with it at
the end (test_results.json). The workdir gets checkpoints/ (latest), best_checkpoint/, best.safetensors, metrics.jsonl
and TensorBoard events. Ctrl-C (or SIGTERM) saves a checkpoint at the next step boundary and exits with code 130; a
second Ctrl-C aborts. `max_minutes` (a budget) shortens the run to the epochs that fit, the lr's cosine ending with
them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pathlib
import sys

import ml_collections

from espcn_jax import atomic_io, time_budget, train_config, train_io, train_loop
from espcn_jax.train_loop import TrainError, resume_keys  # pylint: disable=unused-import  (this module's API)


def parse_args(argv) -> tuple:
  """--config PATH, --workdir DIR, --config.FIELD=VALUE -> (locked ConfigDict, workdir or None). No --config: the
  recipe for this hardware (`train_config.choose_recipe`). Raises train_config.ConfigError on a usage error."""
  cfg, workdir, _ = train_config.parse(argv, doc=__doc__)
  return cfg, workdir


class ConfigValueError(TrainError):
  """A config value, or a combination of them, that cannot train: a usage error (exit 2), as an unknown field is."""


def _check_config(cfg: dict, num_devices: int) -> None:
  spe, k, b = cfg["steps_per_epoch"], cfg["steps_per_call"], cfg["batch_size"]
  if k < 1 or spe < 1 or spe % k:
    raise ConfigValueError(f"steps_per_epoch ({spe}) must be a positive multiple of steps_per_call ({k})")
  if b < 1 or b % num_devices:
    raise ConfigValueError(f"batch_size ({b}) must be a positive multiple of the number of devices ({num_devices})")
  if cfg["data"]["backend"] not in ("auto", "memory", "tfdata"):
    raise ConfigValueError(f"data.backend must be auto, memory or tfdata, got {cfg['data']['backend']!r}")
  if not isinstance(cfg["num_epochs"], int) or cfg["num_epochs"] < 1:
    raise ConfigValueError(f"num_epochs must be a positive integer, got {cfg['num_epochs']!r}")
  if cfg["early_stop_metric"] not in ("train_loss", "val_psnr"):
    raise ConfigValueError(f"early_stop_metric must be train_loss or val_psnr, got {cfg['early_stop_metric']!r}")
  if cfg["loss"] not in ("mse", "l1", "charbonnier"):
    raise ConfigValueError(f"loss must be mse, l1 or charbonnier, got {cfg['loss']!r}")
  if cfg["loss_margin"] < 0 or 2 * cfg["loss_margin"] >= cfg["data"]["lr_patch"]:
    raise ConfigValueError(f"loss_margin ({cfg['loss_margin']}) must be >= 0 and leave pixels of the "
                           f"{cfg['data']['lr_patch']}x{cfg['data']['lr_patch']} LR patch inside")
  if any(not 0 < float(f) < 1 for f in cfg["data"]["scale_augment"]):
    raise ConfigValueError(f"data.scale_augment factors must lie in (0, 1), got {tuple(cfg['data']['scale_augment'])}")
  if (cfg["reparam"]["branches"] or cfg["init_from"]) and cfg["model"]["kind"] != "espcn":
    raise ConfigValueError(f"reparam and init_from are for ESPCN, not model.kind={cfg['model']['kind']!r}")


def _split_holdout(d: dict) -> tuple[list | None, list | None]:
  """With data.val="holdout": (training image paths without the held-out ones, the held-out paths); else (None,
  None). Each name in data.holdout must be the file name of exactly one image of the training folders."""
  from espcn_jax import input_pipeline, image_files
  if d["val"] != "holdout":
    return None, None
  names = [n for n in d["holdout"].split("+") if n]
  if not names:
    raise ConfigValueError("data.val=holdout needs data.holdout: training image file names joined by '+'")
  if input_pipeline.is_remote(d["train"]) or d["backend"] == "tfdata":
    raise ConfigValueError(f"data.val=holdout takes images out of training folders read by the memory backend, "
                     f"not data.train={d['train']!r} with data.backend={d['backend']!r}")
  paths = [p for f in input_pipeline.train_sources(d["train"])
           for p in image_files.list_images(input_pipeline.resolve_folder(f))]
  for name in names:
    if (n := sum(p.name == name for p in paths)) != 1:
      raise ConfigValueError(f"data.holdout: {name} {'not found' if not n else f'names {n} images'} in the training "
                       f"folders of data.train={d['train']!r}")
  return [p for p in paths if p.name not in names], [p for p in paths if p.name in names]


def _report_test(d: dict, workdir: pathlib.Path) -> None:
  """Scores the exported best weights on the data.test sets (test results: not used to select them)."""
  import jax
  from espcn_jax import input_pipeline, validation, weights
  names = [n for n in d["test"].split("+") if n]
  if not names or not (workdir / "best.safetensors").is_file():
    return
  params, spec, meta = weights.load(workdir / "best.safetensors")
  params, results = jax.device_get(params), {}
  for name in names:
    val = validation.load_set(input_pipeline.resolve_folder(name), spec.scale, channels=spec.channels,
                              degradation=d["degradation"], sigma=d["sigma"], kernel_size=d["kernel_size"])
    results[name] = {"psnr": validation.espcn_psnr(val, params, spec), "bicubic_psnr": val.bicubic_psnr}
  same = " (also the validation set)" if d["val"] in names else ""
  train_io.say(f"test, best weights of step {meta.get('step')}: " + ", ".join(
      f"{n} {r['psnr']:.2f} dB (bicubic {r['bicubic_psnr']:.2f}){same if n == d['val'] else ''}"
      for n, r in results.items()))
  atomic_io.write_text(workdir / "test_results.json",
                       json.dumps({"step": meta.get("step"), "val": d["val"], "test": results}, indent=1) + "\n")


def _make_data(cfg: dict, spec, workdir: pathlib.Path, position: int, paths=None):
  """("memory", PatchSampler) or ("tfdata", TfPatchStream). Folders are checked before anything compiles. `paths`:
  the training images (else every image of the data.train folders)."""
  import jax
  from espcn_jax import input_pipeline, image_files
  d, p = cfg["data"], cfg["data"]["lr_patch"] * spec.scale
  remote = input_pipeline.is_remote(d["train"])
  backend = d["backend"] if d["backend"] != "auto" else ("tfdata" if remote else "memory")
  if backend == "memory":
    if remote:
      raise ConfigValueError(f"data.train={d['train']!r} needs data.backend=tfdata")
    sources = input_pipeline.train_sources(d["train"])
    imgs, stats = input_pipeline.load_images(sources, channels=spec.channels, min_size=p, progress=train_io.primary(),
                                             paths=paths)
    train_io.say(f"training data {d['train']}: {stats.summary()}")
    for msg in stats.corrupt:
      train_io.say(f"  skipped: {msg}")
    if d["scale_augment"]:
      n = len(imgs)
      imgs = input_pipeline.scale_augment(imgs, d["scale_augment"], min_size=p)
      train_io.say(f"scale augmentation x{'/'.join(f'{f:g}' for f in d['scale_augment'])}: {n} -> {len(imgs)} images")
    return backend, input_pipeline.PatchSampler(imgs, patch_size=p, batch_size=cfg["batch_size"],
                                                augment=d["augment"])
  if not remote:
    for name in input_pipeline.train_sources(d["train"]):
      image_files.list_images(input_pipeline.resolve_folder(name))
    if len(input_pipeline.train_sources(d["train"])) > 1:
      raise ConfigValueError("data.backend=tfdata reads one source; use the memory backend for several folders")
  source = input_pipeline.train_sources(d["train"])[0]
  stream = input_pipeline.TfPatchStream(
      source, patch_size=p, batch_size=cfg["batch_size"] // jax.process_count(), channels=spec.channels,
      seed=cfg["seed"], augment=d["augment"], shuffle_buffer=d["shuffle_buffer"], cache=d["cache"],
      start_element=position, data_dir=d["tfds_data_dir"] or None, manual_dir=d["manual_dir"] or None,
      subset_size=d["subset_size"], subset_record=str(workdir / "imagenet_subset_ids.txt"))
  return backend, stream


def train(cfg: dict, workdir, *, started: float | None = None) -> int:
  """Trains (or resumes) into `workdir`. Returns 0 when done, 130 when stopped by a signal (after saving).
  The workdir is locked for the run (train_io.WorkdirLock): a second run on it fails with a message. `started`
  (time_budget.now() at the command's start): where `max_minutes` counts from; default: when the budget is set up."""
  cfg = cfg.to_dict() if isinstance(cfg, ml_collections.ConfigDict) else copy.deepcopy(cfg)
  workdir = pathlib.Path(workdir)
  if cfg["distributed"]:  # unset (None) fields come from the environment; process_id 0 is a value
    import jax
    kw = {k: cfg[k] for k in ("coordinator_address", "num_processes", "process_id") if cfg.get(k) is not None}
    jax.distributed.initialize(**kw)
  from tqdm import tqdm
  with contextlib.ExitStack() as held:
    run, state, ls = _prepare(cfg, workdir, held, started)
    net = "ESPCN" if run.spec.kind == "espcn" else run.spec.kind.upper()
    bar = tqdm(total=ls.total, initial=ls.step, unit="step", desc=f"{net} x{run.spec.scale}",
               disable=not train_io.primary(), dynamic_ncols=True, file=sys.stderr)
    held.callback(bar.close)  # also on an error: its message then starts on a line of its own
    with train_io.StopFlag() as stop:
      stop_code = train_loop.run_loop(run, ls, state, stop, bar)
    bar.close()
    run.ckpt.close()
    _finish(run, ls, stopped=stop_code is not None)
    return stop_code or 0


def _validation_set(d: dict, spec, val_paths):
  """The data.val set prepared once per run (HR Y, LR inputs, bicubic PSNR), or None without validation."""
  from espcn_jax import input_pipeline, validation
  if not d["val"]:
    return None
  folder = input_pipeline.resolve_folder(d["val"]) if val_paths is None else "holdout"
  return validation.load_set(folder, spec.scale, channels=spec.channels, degradation=d["degradation"],
                             sigma=d["sigma"], kernel_size=d["kernel_size"], name=d["val"], paths=val_paths)


def _choose_kernels(cfg: dict, num_devices: int, dtype) -> tuple[bool, bool]:
  """(native, bf16): which forward / backward pass, said in one line; an impossible setting is a TrainError."""
  import jax
  from espcn_jax import kernel_choice
  try:
    native, why = kernel_choice.use_native(cfg["native_kernels"], backend=jax.default_backend(),
                                           num_devices=num_devices, dtype=dtype, kind=cfg["model"]["kind"])
  except ValueError as e:
    raise ConfigValueError(str(e)) from e
  try:
    bf16, why_bf16 = kernel_choice.use_native_bf16(cfg["native_bf16"], native=native)
  except ValueError as e:
    raise ConfigValueError(f"{e} (--config.native_bf16=off, or configs/t91_x3_cpu.py, trains in float32)") from e
  train_io.say(f"forward / backward pass: {why}" + (f", {why_bf16}" if native else ""))
  return native, bf16


def _initial_params(cfg: dict, spec, key):
  """The params a new run starts from: `init_from` (a weights file or a shipped variant's name, e.g. "t91") or
  fresh ones drawn with `key`, with the re-parameterization branches of `reparam.branches` (espcn_jax/reparam.py);
  None: fresh plain params (drawn by create_state with the same key)."""
  from espcn_jax import reparam, weights
  base, src = None, cfg["init_from"]
  if src:
    path = pathlib.Path(src).expanduser()
    if not path.is_file() and (spec.scale, src) in weights.available_pretrained():
      path = weights.pretrained_path(spec.scale, src)
    base, file_spec, _ = weights.load(path)
    if file_spec != spec:
      raise TrainError(f"{path}: init_from weights are for {file_spec}, this run trains {spec}")
  try:
    branches = reparam.parse(cfg["reparam"]["branches"])
    if branches:
      return reparam.init(key, spec, branches, expand=cfg["reparam"]["expand"], base=base)
  except ValueError as e:
    raise ConfigValueError(f"reparam: {e}") from e
  return base


def _prepare(cfg: dict, workdir: pathlib.Path, held: contextlib.ExitStack, started: float | None = None):
  """Checks, the workdir lock, the (restored) state, the data and the compiled step -> (Run, TrainState, LoopState).
  Everything that can fail on a bad setting or folder fails before the workdir is touched."""
  import jax
  from espcn_jax import checkpointing, data_parallel, image_files, input_pipeline, model, optim
  from espcn_jax import train_step as ts
  mesh = data_parallel.make_mesh()
  if cfg["steps_per_call"] == 0:  # auto: on XLA:CPU with the YNNPACK fusions 8 steps per call gain only ~4% at
    # batch 128 (1.3x at batch 16: configs/t91_x3_cpu.py sets 8), and 1 keeps epochs short; accelerators need 8
    cfg["steps_per_call"] = 1 if jax.default_backend() == "cpu" else 8
  _check_config(cfg, mesh.size)
  try:
    spec = model.Spec(scale=cfg["scale"], **cfg["model"])
  except (TypeError, ValueError) as e:
    raise ConfigValueError(f"bad model config: {e}") from e
  d, spe, k = cfg["data"], cfg["steps_per_epoch"], cfg["steps_per_call"]
  if not input_pipeline.is_remote(d["train"]):
    for name in input_pipeline.train_sources(d["train"]):  # missing / empty folders
      image_files.list_images(input_pipeline.resolve_folder(name))
  train_paths, val_paths = _split_holdout(d)
  val_set = _validation_set(d, spec, val_paths)
  dtype = None if cfg["compute_dtype"] == "float32" else cfg["compute_dtype"]
  native, bf16 = _choose_kernels(cfg, mesh.size, dtype)
  rng = jax.random.PRNGKey(cfg["seed"])
  start_params = _initial_params(cfg, spec, ts.init_key(rng))  # (a bad init_from fails before the workdir exists)
  if train_io.primary():
    held.enter_context(train_io.WorkdirLock(workdir))
  ckpt = checkpointing.Checkpointer(workdir)
  # The state's structure does not depend on the lr schedule's length, so a checkpoint restores before the optimizer
  # is rebuilt with a budget fitted by an earlier invocation.
  tx = optim.make(model.init(jax.random.PRNGKey(0), spec), steps_per_epoch=spe, **cfg["optim"])
  state = data_parallel.put_replicated(ts.create_state(rng, spec, tx, start_params), mesh)
  restored, meta = ckpt.restore_intact(state, spec, resume_keys(cfg), say=train_io.say)
  if restored is not None:  # (newer broken checkpoints were set aside, and said so)
    state = restored
    train_io.say(f"resuming from {workdir}/{checkpointing.LATEST_DIR} at step {int(state.step)}")
  meta = meta or {}
  backend, data = _make_data(cfg, spec, workdir, meta.get("stream_position", 0), train_paths)
  ls = train_loop.LoopState.resume(meta, int(state.step), cfg["num_epochs"] * spe)
  if ls.budget_fit:  # the run's length and lr decay fitted to max_minutes by an earlier invocation
    cfg["optim"]["decay_steps"] = ls.budget_fit["decay_steps"]
  run = train_loop.Run(cfg, workdir, spec, mesh, ckpt, backend, data, val_set, dtype, native, bf16)
  run.compile_step()
  if backend == "memory":
    data_dev = data_parallel.put_replicated(data.data, mesh)
    run.next_input = lambda: data_dev
  else:
    run.next_input = lambda: data_parallel.put_batch(data.take(k), mesh)
  run.budget = None if not cfg["max_minutes"] else time_budget.TimeBudget(  # timed over whole validation cycles
      60 * cfg["max_minutes"], steps_per_epoch=spe, total_steps=ls.total,
      measure_epochs=max(2, cfg["eval_every_epochs"], cfg["checkpoint_every_epochs"]), start=started)
  run.logs = train_io.Logs(workdir, ls.step, cfg["tensorboard"]) if train_io.primary() else None
  return run, state, ls


def _finish(run: train_loop.Run, ls: train_loop.LoopState, stopped: bool) -> None:
  """The report; when the run ended (not stopped): the best PSNR line and the data.test scores."""
  d = run.cfg["data"]
  if train_io.primary():
    write_report(run.workdir, run.cfg)
  if not stopped and ls.best_psnr is not None:
    train_io.say(f"best {d['val']} PSNR {ls.best_psnr:.2f} dB at step {ls.best_step} "
                 f"(bicubic {ls.bicubic_psnr:.2f}); weights: {run.workdir / 'best.safetensors'}")
  if not stopped and train_io.primary():
    _report_test(d, run.workdir)


def write_report(workdir: pathlib.Path, cfg: dict) -> None:
  """workdir/report/index.html: this run's curves from metrics.jsonl. A problem is one printed line, never a failure."""
  try:
    from espcn_jax import report
    path = report.write_report(workdir / "report", runs=[report.load_run(workdir, config=cfg)],
                               title=f"ESPCN training run {workdir}")
    train_io.say(f"report: {path}")
  except Exception as e:  # the report must never make a training run fail
    train_io.say(f"note: no report written ({type(e).__name__}: {e})".splitlines()[0])


def quiet_tensorflow() -> None:
  """TensorFlow (tf.data, TensorBoard events) prints its start-up lines (oneDNN, CPU features) once per library
  that loads; without INFO logs and without its oneDNN ops (unused here: no TF math trains) it prints none. Must run
  before TensorFlow is imported; a value set by the user is kept."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def main(argv) -> int:
  started = time_budget.now()  # `max_minutes` counts from the command's start (start-up and compilation included)
  quiet_tensorflow()
  try:
    cfg, workdir, chosen = train_config.parse(argv, doc=__doc__)
    if chosen:
      print(chosen, file=sys.stderr)
    return train(cfg, workdir or cfg.workdir, started=started)
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    return 130
  except (train_config.ConfigError, ConfigValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except Exception as e:  # one clear line for the known failures; a traceback for bugs
    from espcn_jax import checkpointing, image_files, weights
    if isinstance(e, (TrainError, checkpointing.CheckpointError, image_files.ImageError, weights.WeightsError)) or (
        isinstance(e, ImportError) and "pip install" in str(e)):  # an extra the run needs (e.g. espcn-jax[tf])
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
