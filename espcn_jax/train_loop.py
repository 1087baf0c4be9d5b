"""The training loop of `python -m espcn_jax.train` (part of the command: it reads the run's config dict).

`train.py` sets a run up (`Run`: data, the compiled k-step program, checkpointer, validation set) and restores its
`LoopState`; `run_loop` steps until the end, an early stop, the time budget or a signal, and at each epoch's end logs,
validates, fits the lr schedule to the time budget, checkpoints and exports the best weights.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from typing import Any, Callable

from espcn_jax import train_io


class TrainError(RuntimeError):
  """A training run that cannot go on; the one-line message says why and what was kept."""


def resume_keys(cfg: dict) -> dict:
  """Settings a resumed run must share with the checkpoint (else its data stream / state would differ)."""
  d = cfg["data"]
  return {"batch_size": cfg["batch_size"], "steps_per_epoch": cfg["steps_per_epoch"], "seed": cfg["seed"],
          "train": d["train"], "lr_patch": d["lr_patch"], "augment": d["augment"], "degradation": d["degradation"],
          "scale_augment": list(d["scale_augment"]), "reparam": cfg["reparam"]["branches"], "loss": cfg["loss"],
          "loss_margin": cfg["loss_margin"],
          "init_from": cfg["init_from"]}


def _fit_schedule(o: dict, total: int, budget, max_minutes: float, spe: int) -> dict:
  """Ends the cosine lr decay (if any) at the step that fits the budget; returns what resumed runs reuse."""
  if o["decay_steps"]:
    o["decay_steps"] = min(o["decay_steps"], total)
    how = f"the lr's cosine now ends at step {total}"
  else:
    how = "the plateau schedule cannot be fitted (no decay_steps); the run stops there"
  train_io.say(f"time budget {max_minutes:g} min, {budget.epoch_s:.1f} s per epoch: {total // spe} epochs fit; {how}")
  return {"total_steps": total, "decay_steps": o["decay_steps"]}


_BEST_KEYS = ("best_psnr", "best_step", "best_loss", "bad_epochs", "bicubic_psnr")


@dataclasses.dataclass
class LoopState:
  """What the training loop carries from step to step besides the TrainState; a checkpoint's metadata keeps it."""

  step: int
  total: int  # the step the run ends at (earlier once a time budget has been fitted)
  budget_fit: dict | None = None  # {"total_steps", "decay_steps"} once fitted to max_minutes (kept on resume)
  loss_sum: float = 0.0  # this epoch's losses so far
  loss_n: int = 0
  best_psnr: float | None = None
  best_step: int | None = None
  best_loss: float | None = None
  bad_epochs: int = 0
  bicubic_psnr: float | None = None
  pending: list = dataclasses.field(default_factory=list)  # loss arrays not yet fetched from the device
  t_start: float = dataclasses.field(default_factory=time.time)
  t_epoch: float = dataclasses.field(default_factory=time.time)

  @classmethod
  def resume(cls, meta: dict, step: int, total: int) -> "LoopState":
    partial = meta.get("partial") or {"sum": 0.0, "n": 0}
    best = {key: meta.get(key) for key in _BEST_KEYS}
    best["bad_epochs"] = best["bad_epochs"] or 0
    fit = meta.get("budget_fit")
    return cls(step=step, total=fit["total_steps"] if fit else total, budget_fit=fit, loss_sum=partial["sum"],
               loss_n=partial["n"], **best)

  def to_meta(self) -> dict:
    return {"partial": {"sum": self.loss_sum, "n": self.loss_n}, "budget_fit": self.budget_fit,
            **{key: getattr(self, key) for key in _BEST_KEYS}}


@dataclasses.dataclass
class Run:
  """The parts of a training run that `train._prepare` sets up once."""

  cfg: dict
  workdir: pathlib.Path
  spec: Any
  mesh: Any
  ckpt: Any
  backend: str  # "memory" (PatchSampler) or "tfdata" (TfPatchStream)
  data: Any
  val_set: Any  # validation.ValSet or None (no validation: the latest weights are exported)
  dtype: Any
  native: bool
  bf16: bool
  multi: Callable | None = None  # the jitted k-step program; rebuilt when a time budget shortens the lr decay
  next_input: Callable | None = None
  logs: Any = None
  budget: Any = None

  def compile_step(self) -> None:
    """The optimizer (with the lr schedule now in cfg["optim"]) and the jitted k steps."""
    import jax
    from espcn_jax import data_parallel, image_ops, model, optim, reparam, xla_options
    from espcn_jax import train_step as ts
    cfg, d, spec = self.cfg, self.cfg["data"], self.spec
    tx = optim.make(model.init(jax.random.PRNGKey(0), spec), steps_per_epoch=cfg["steps_per_epoch"], **cfg["optim"])
    degrade = image_ops.make_degrade(spec.scale, d["degradation"], d["sigma"], d["kernel_size"])
    step_fn = ts.make_train_step(spec, tx, degrade_fn=degrade, dtype=self.dtype, native=self.native,
                                 native_bf16=self.bf16, loss=cfg["loss"], charbonnier_eps=cfg["charbonnier_eps"],
                                 loss_margin=cfg["loss_margin"],
                                 param_map=reparam.merge if cfg["reparam"]["branches"] else None)
    # The YNNPACK fusions speed up XLA's convolutions; beside the native kernels they only compete for the cores
    # (the native step with them: 0.73x of the one without, BENCHMARKS.md)
    copts = xla_options.compiler_options(jax.default_backend()) if cfg["cpu_ynn_fusion"] and not self.native else None
    sample = self.data.sample if self.backend == "memory" else None
    multi = ts.make_multi_step(step_fn, cfg["steps_per_call"], sample, data_parallel.batch_sharding(self.mesh))
    self.multi = data_parallel.jit_multi_step(multi, self.mesh, with_batch=self.backend != "memory",
                                              compiler_options=copts)

  def meta(self, ls: LoopState) -> dict:
    """The checkpoint's metadata: what an exact resume needs."""
    return {"spec": self.spec.to_dict(), "resume_keys": resume_keys(self.cfg), "step": ls.step,
            "epoch": ls.step // self.cfg["steps_per_epoch"], "config": json.loads(json.dumps(self.cfg)),
            "stream_position": getattr(self.data, "position", 0), **ls.to_meta()}


def drain(run: Run, ls: LoopState) -> None:
  """Adds the losses still on the device to the epoch's sum; a non-finite loss stops the run (TrainError)."""
  import jax
  import numpy as np
  if ls.pending:
    losses = np.concatenate([np.asarray(x) for x in jax.device_get(ls.pending)])
    ls.pending.clear()
    ls.loss_sum += float(losses.sum())
    ls.loss_n += int(losses.size)
  if ls.loss_n and not math.isfinite(ls.loss_sum):
    last, spe = run.ckpt.latest_step(), run.cfg["steps_per_epoch"]
    kept = (f"the last good checkpoint (step {last}) in {run.workdir} is kept" if last is not None
            else f"no checkpoint was saved yet in {run.workdir}")
    raise TrainError(f"training loss became {ls.loss_sum} by step {ls.step} (epoch {(ls.step - 1) // spe + 1}); "
                     f"{kept}; try a lower optim.learning_rate")


def run_loop(run: Run, ls: LoopState, state, stop, bar) -> int | None:
  """Steps until the run ends (None) or a signal stops it (130, after saving a checkpoint)."""
  k, spe = run.cfg["steps_per_call"], run.cfg["steps_per_epoch"]
  while ls.step < ls.total:
    state, metrics = run.multi(state, run.next_input())
    ls.pending.append(metrics["loss"])
    ls.step += k
    bar.update(k)
    if ls.step % spe and not stop.requested:
      continue
    drain(run, ls)
    if ls.step % spe:  # stopped mid-epoch: save what is needed to resume exactly
      run.ckpt.save(ls.step, state, run.meta(ls))
    done = _end_epoch(run, ls, state, stop.requested, bar) if not ls.step % spe else False
    if stop.requested:
      train_io.say(f"stopped at step {ls.step}; checkpoint saved in {run.workdir}; rerun the same command to resume")
      return 130
    if done:
      break
  return None


def _score_epoch(run: Run, ls: LoopState, state) -> tuple[dict, bool]:
  """The epoch's metrics row (and validation PSNR when due); updates the best / early-stop counters. Returns (row,
  whether these weights are the best so far)."""
  import jax
  from espcn_jax import optim, reparam, validation
  cfg, o, spe = run.cfg, run.cfg["optim"], run.cfg["steps_per_epoch"]
  epoch = ls.step // spe
  lr = optim.current_learning_rate(state.opt_state, o["learning_rate"], min_learning_rate=o["min_learning_rate"],
                                   decay_steps=o["decay_steps"])
  row = {"step": ls.step, "epoch": epoch, "train_loss": ls.loss_sum / ls.loss_n, "learning_rate": float(lr),
         "patches_per_s": spe * cfg["batch_size"] / (time.time() - ls.t_epoch), "elapsed_s": time.time() - ls.t_start}
  ls.loss_sum, ls.loss_n = 0.0, 0
  improved = False
  if run.val_set is not None and (epoch % cfg["eval_every_epochs"] == 0 or ls.step >= ls.total):
    row["val_psnr"] = validation.espcn_psnr(run.val_set, reparam.merge(jax.device_get(state.params)), run.spec)
    row["val_bicubic_psnr"] = ls.bicubic_psnr = run.val_set.bicubic_psnr
    improved = ls.best_psnr is None or row["val_psnr"] > ls.best_psnr
  elif run.val_set is None:
    improved = True  # no validation: the latest weights are exported
  if improved:
    ls.best_psnr, ls.best_step = row.get("val_psnr"), ls.step
  if cfg["early_stop_metric"] == "train_loss":
    better = ls.best_loss is None or row["train_loss"] < (1 - o["plateau_rtol"]) * ls.best_loss
    ls.best_loss = row["train_loss"] if better else ls.best_loss
  else:
    better = improved
  ls.bad_epochs = 0 if better else ls.bad_epochs + 1
  return row, improved


def _end_epoch(run: Run, ls: LoopState, state, stopping: bool, bar) -> bool:
  """Logs the epoch, checks early stop and the time budget, saves checkpoints and the best weights. Returns whether
  the run is done."""
  import jax
  from espcn_jax import data_parallel, reparam, weights
  cfg, d = run.cfg, run.cfg["data"]
  row, improved = _score_epoch(run, ls, state)
  epoch = row["epoch"]
  if run.logs is not None:
    run.logs.write(row)
  val = (f", {d['val']} PSNR {row['val_psnr']:.2f} dB (bicubic {row['val_bicubic_psnr']:.2f})"
         if "val_psnr" in row else "")
  train_io.say(f"epoch {epoch}/{cfg['num_epochs']}: loss {row['train_loss']:.6f}{val}, "
               f"lr {row['learning_rate']:.2g}, {row['patches_per_s']:.0f} patches/s")
  bar.set_postfix(loss=f"{row['train_loss']:.5f}", psnr=f"{row.get('val_psnr', float('nan')):.2f}")
  done = ls.step >= ls.total
  if cfg["early_stop_patience"] and ls.bad_epochs >= cfg["early_stop_patience"]:
    train_io.say(f"early stop: no improvement of {cfg['early_stop_metric']} for {ls.bad_epochs} epochs")
    done = True
  budget = run.budget
  if budget is not None and not ls.budget_fit and (n := budget.epoch_end(ls.step)) is not None and (
      n := data_parallel.agree(n)) < ls.total:
    ls.total = n
    ls.budget_fit = _fit_schedule(cfg["optim"], n, budget, cfg["max_minutes"], cfg["steps_per_epoch"])
    run.compile_step()  # the same optimizer state; the cosine now ends at `total`
    bar.total = ls.total
    done = done or ls.step >= ls.total
  if budget is not None and data_parallel.agree(budget.exceeded()):
    train_io.say(f"time budget of {cfg['max_minutes']} min reached")
    done = True
  if epoch % cfg["checkpoint_every_epochs"] == 0 or done or stopping:
    run.ckpt.save(ls.step, state, run.meta(ls))
  if improved:
    run.ckpt.save_best(ls.step, state, run.meta(ls))
    if train_io.primary():
      weights.save(run.workdir / "best.safetensors", reparam.merge(jax.device_get(state.params)), run.spec,
                   {"train": d["train"], "val": d["val"], "val_psnr": row.get("val_psnr"), "step": ls.step,
                    "epoch": epoch, "degradation": d["degradation"], "config": run.meta(ls)["config"]})
  ls.t_epoch = time.time()
  return done
