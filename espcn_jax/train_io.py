"""What a training run does besides training: messages, the stop signals, metrics.jsonl and TensorBoard events.

Used by `espcn_jax.train`. Messages are printed by the first process only; `Logs` is made there only.
"""

from __future__ import annotations

import json
import pathlib
import signal
import sys

from espcn_jax import atomic_io


def primary() -> bool:
  import jax
  return jax.process_index() == 0


def say(msg: str) -> None:
  if primary():
    from tqdm import tqdm
    tqdm.write(msg, file=sys.stderr)


class StopFlag:
  """First SIGINT / SIGTERM: ask the loop to save and stop at the next step boundary; second SIGINT: abort."""

  def __init__(self):
    self.requested, self._old = False, {}

  def _handler(self, signum, frame):
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.requested = True
    say("stop requested: saving a checkpoint at the next step boundary (Ctrl-C again to abort)")

  def __enter__(self):
    import threading
    if threading.current_thread() is threading.main_thread():
      for s in (signal.SIGINT, signal.SIGTERM):
        self._old[s] = signal.signal(s, self._handler)
    return self

  def __exit__(self, *exc):
    for s, h in self._old.items():
      signal.signal(s, h)


class WorkdirLock:
  """An exclusive OS lock (flock) on WORKDIR/train.lock for the life of a run: a second run on the same workdir
  fails at once with a message naming the holder (pid and host are written in the file). The OS releases the lock
  when its process dies, so the next run takes over a killed run's workdir (and says so: the file still holds the
  killed run's pid, which a run that ends normally clears)."""

  NAME = "train.lock"

  def __init__(self, workdir):
    self.workdir, self.fd = pathlib.Path(workdir), None

  def __enter__(self):
    import fcntl
    import os
    import socket
    if self.workdir.exists() and not self.workdir.is_dir():
      raise OSError(f"{self.workdir}: the workdir is not a folder")
    path = self.workdir / self.NAME
    try:
      self.workdir.mkdir(parents=True, exist_ok=True)
      fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
      raise OSError(f"{self.workdir}: cannot use this workdir ({e.strerror or e})") from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
      os.close(fd)
      raise OSError(f"{self.workdir}: in use by another training run ({holder}); wait for it to end, stop it, "
                    f"or use another --workdir") from None
    stale = os.pread(fd, 200, 0).decode(errors="replace").strip()
    if stale:  # a run that ended without clearing it: killed
      say(f"note: {path}: taking over the workdir from a run that was killed ({stale})")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    self.fd = fd
    return self

  def __exit__(self, *exc):
    import os
    if self.fd is not None:
      os.ftruncate(self.fd, 0)
      os.close(self.fd)  # releases the lock; the file stays (removing it would race with a waiting run)
      self.fd = None


def _read_rows(path: pathlib.Path, resume_step: int) -> list[str]:
  """The rows of metrics.jsonl up to `resume_step`; a line that does not parse (a kill or a full disk mid-append
  leaves a partial last line) is dropped with a message."""
  rows = []
  lines = path.read_text(errors="replace").splitlines()
  for i, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      step = json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
      where = "its partial last line" if i == len(lines) else f"line {i}, which does not parse"
      say(f"note: {path}: dropped {where} ({line[:60]!r}{'...' if len(line) > 60 else ''})")
      continue
    if step <= resume_step:
      rows.append(line)
  return rows


class Logs:
  """metrics.jsonl (rows after the resumed step are dropped first) and TensorBoard events when available."""

  def __init__(self, workdir: pathlib.Path, resume_step: int, tensorboard: bool):
    self.path, self.tb, self.tbx = workdir / "metrics.jsonl", None, None
    if self.path.exists():
      atomic_io.write_text(self.path, "".join(r + "\n" for r in _read_rows(self.path, resume_step)))
    if not tensorboard:
      return
    try:
      import tensorboard  # noqa: F401  (TensorFlow >= 2.20 writes summaries only when it is installed)
      import tensorflow as tf
      tf.config.set_visible_devices([], "GPU")
      self.tb = tf.summary.create_file_writer(str(workdir / "tensorboard"))
    except ImportError:
      try:
        import tensorboardX
        self.tbx = tensorboardX.SummaryWriter(str(workdir / "tensorboard"))
      except ImportError:
        say("note: neither TensorFlow nor tensorboardX is installed: no TensorBoard events (metrics.jsonl only)")

  def write(self, row: dict) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and k not in ("step", "epoch")}
    if self.tb is not None:
      import tensorflow as tf
      with self.tb.as_default():
        for k, v in scalars.items():
          tf.summary.scalar(k, v, step=row["step"])
      self.tb.flush()
    if self.tbx is not None:
      for k, v in scalars.items():
        self.tbx.add_scalar(k, v, row["step"])
      self.tbx.flush()
