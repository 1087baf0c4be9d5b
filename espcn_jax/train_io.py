"""What a training run does besides training: messages, the stop signals, metrics.jsonl and TensorBoard events.

Used by `espcn_jax.train`. Messages are printed by the first process only; `Logs` is made there only.
"""

from __future__ import annotations

import json
import pathlib
import signal
import sys


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


class Logs:
  """metrics.jsonl (rows after the resumed step are dropped first) and TensorBoard events when available."""

  def __init__(self, workdir: pathlib.Path, resume_step: int, tensorboard: bool):
    self.path, self.tb, self.tbx = workdir / "metrics.jsonl", None, None
    if self.path.exists():
      rows = [r for r in self.path.read_text().splitlines() if r.strip() and json.loads(r)["step"] <= resume_step]
      tmp = self.path.with_name(self.path.name + ".tmp")
      tmp.write_text("".join(r + "\n" for r in rows))
      tmp.replace(self.path)
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
