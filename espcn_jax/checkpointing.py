"""Orbax checkpoints of the train state in a workdir: the latest ones (to resume) and the best by validation PSNR.

    ckpt = checkpointing.Checkpointer(workdir)
    ckpt.check_compatible(spec)                       # CheckpointError if the workdir holds another model
    if ckpt.latest_step() is not None:
      state, meta = ckpt.restore(abstract_state)      # meta: the JSON saved with the state (loop counters, ...)
    ckpt.save(step, state, meta)                      # workdir/checkpoints/<step>/{state,meta}
    ckpt.save_best(step, state, meta)                 # workdir/best_checkpoint/<step>/ (only the best is kept)

Orbax writes each checkpoint into a temporary folder and renames it when complete, and the previous checkpoint is
deleted only after the new one is finalised: a crash during a save leaves the last good checkpoint intact.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import jax
import orbax.checkpoint as ocp

from espcn_jax import model

LATEST_DIR = "checkpoints"
BEST_DIR = "best_checkpoint"


class CheckpointError(RuntimeError):
  """A workdir whose checkpoints cannot be used for this run; the message names the folder and the problem."""


class BrokenCheckpointError(CheckpointError):
  """A checkpoint whose files cannot be read (truncated, deleted): `restore_intact` falls back to an older one."""


def _manager(path: pathlib.Path, max_to_keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
  return ocp.CheckpointManager(path.resolve(), options=options, item_names=("state", "meta"))


class Checkpointer:
  """The latest `keep` checkpoints in workdir/checkpoints and the best one in workdir/best_checkpoint."""

  def __init__(self, workdir, keep: int = 2):
    self.workdir = pathlib.Path(workdir)
    if jax.process_index() == 0:  # the unfinished saves of a killed run (the workdir is locked by this run)
      for sub in (LATEST_DIR, BEST_DIR):
        for p in (self.workdir / sub).glob("*.orbax-checkpoint-tmp*"):
          shutil.rmtree(p, ignore_errors=True)
    self.latest = _manager(self.workdir / LATEST_DIR, keep)
    self.best = _manager(self.workdir / BEST_DIR, 1)

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def read_meta(self, step: int | None = None) -> dict | None:
    """The JSON saved with checkpoint `step` (default: the latest); None if there is no checkpoint."""
    step = self.latest_step() if step is None else step
    if step is None:
      return None
    try:
      return self.latest.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # orbax raises several types for unreadable folders
      raise BrokenCheckpointError(f"{self.workdir / LATEST_DIR}/{step}: unreadable checkpoint metadata "
                                  f"({type(e).__name__}: {e})".splitlines()[0]) from e

  def check_compatible(self, spec: model.Spec, extra: dict | None = None, meta: dict | None = None,
                       step: int | None = None) -> None:
    """Raises CheckpointError if the latest checkpoint (or the one of `step`, whose `meta` is given) was written for
    another architecture (or other `extra` settings that a resumed run must share, e.g. the batch size). Nothing is
    written or deleted."""
    step = self.latest_step() if step is None else step
    meta = self.read_meta(step) if meta is None else meta
    if meta is None:
      return
    where = self.workdir / LATEST_DIR / str(step)
    theirs = meta.get("spec")
    if isinstance(theirs, dict):  # written before model.Spec had a `kind`: an ESPCN
      theirs = {"kind": "espcn", **theirs}
    if theirs != json.loads(json.dumps(spec.to_dict())):
      raise CheckpointError(f"{where}: this workdir holds a checkpoint of another model ({theirs}, this run: "
                            f"{spec.to_dict()}); use another --workdir or delete this one")
    for k, v in (extra or {}).items():
      if k in meta.get("resume_keys", {}) and meta["resume_keys"][k] != json.loads(json.dumps(v)):
        raise CheckpointError(f"{where}: checkpoint written with {k}={meta['resume_keys'][k]!r}, this run has "
                              f"{k}={v!r}; resuming needs the same value (or use another --workdir)")

  def restore(self, abstract_state, step: int | None = None, best: bool = False):
    """Returns (state, meta) of checkpoint `step` (default: the latest) into the structure/shardings of
    `abstract_state` (a pytree of arrays or `jax.ShapeDtypeStruct`)."""
    mngr = self.best if best else self.latest
    step = mngr.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"{mngr.directory}: no checkpoint to restore")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    try:
      out = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                       meta=ocp.args.JsonRestore()))
    except Exception as e:
      raise BrokenCheckpointError(f"{mngr.directory}/{step}: cannot restore into this run's train state "
                                  f"({type(e).__name__}: {e})".splitlines()[0]) from e
    return out["state"], out["meta"]

  def restore_intact(self, abstract_state, spec: model.Spec, extra: dict | None = None, say=print):
    """(state, meta) of the newest intact checkpoint, or (None, None) when there is none yet.

    Newer checkpoints that cannot be read (a truncated shard, a deleted file) are moved to workdir/broken_checkpoints/
    and named with `say`. A checkpoint of another model or other `extra` settings raises CheckpointError, and so does
    a workdir where no checkpoint is intact (nothing is moved then)."""
    broken = []
    for step in sorted(self.latest.all_steps(), reverse=True):
      try:
        meta = self.read_meta(step)
        self.check_compatible(spec, extra, meta=meta, step=step)
        state, meta = self.restore(abstract_state, step)
      except BrokenCheckpointError as e:  # (another model / other settings raise CheckpointError: not caught)
        broken.append((step, e))
        continue
      if broken:
        self._set_aside(broken, step, say)
      return state, meta
    if broken:
      raise CheckpointError(f"{self.workdir / LATEST_DIR}: no intact checkpoint to resume from; newest: {broken[0][1]}")
    return None, None

  def _set_aside(self, broken, step: int, say) -> None:
    dest = self.workdir / "broken_checkpoints"
    if jax.process_index() == 0:
      dest.mkdir(exist_ok=True)
      for bad, _ in broken:
        target = dest / str(bad)
        n = 1
        while target.exists():
          target, n = dest / f"{bad}.{n}", n + 1
        os.rename(os.path.join(str(self.latest.directory), str(bad)), target)
    self.latest.reload()
    for bad, e in broken:
      say(f"note: checkpoint {bad} is broken ({e}); moved to {dest}")
    say(f"note: resuming from the newest intact checkpoint, step {step}")

  def _save(self, mngr, step: int, state, meta: dict) -> None:
    try:
      mngr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   meta=ocp.args.JsonSave(meta)), force=True)
      mngr.wait_until_finished()
    except Exception as e:  # a full disk, a read-only folder: orbax / tensorstore raise several types
      raise CheckpointError(f"{mngr.directory}/{step}: cannot save the checkpoint, the previous one is kept "
                            f"({type(e).__name__}: {e})".splitlines()[0]) from e

  def save(self, step: int, state, meta: dict) -> None:
    """Saves (replacing nothing until complete); a checkpoint already at `step` is left as is."""
    if self.latest.latest_step() == int(step):
      return
    self._save(self.latest, step, state, meta)

  def save_best(self, step: int, state, meta: dict) -> None:
    if self.best.latest_step() == int(step):
      return
    self._save(self.best, step, state, meta)

  def close(self) -> None:
    self.latest.close()
    self.best.close()
