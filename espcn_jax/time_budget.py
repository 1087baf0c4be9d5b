"""A wall-clock budget for a training run: how many epochs fit, from the measured time per epoch.

    budget = time_budget.TimeBudget(600, steps_per_epoch=2000, total_steps=380_000)
    ...                                          # at the end of every epoch (validation and checkpoint included):
    steps = budget.epoch_end(step)               # once: the steps that fit (a multiple of steps_per_epoch), else None
    budget.exceeded()                            # the hard stop

The first `warmup_epochs` epochs (compilation, first decode) are not timed; the next `measure_epochs` give the time
per epoch, validation and checkpoints included. The epochs that fit are those whose end lies before the budget, less
`margin` (a share of the remaining time kept for a slower stretch). A cosine lr schedule that ends at that step
gives the run its full decay before the budget (`espcn_jax.train` uses it for `max_minutes`).
"""

from __future__ import annotations

import math
import time
from typing import Callable


def now() -> float:
  """The budget's clock (time.monotonic), e.g. to note a command's start for `TimeBudget(start=...)`."""
  return time.monotonic()


class TimeBudget:
  """Fits a run to `budget_s` seconds from now (the clock is injectable for tests)."""

  def __init__(self, budget_s: float, *, steps_per_epoch: int, total_steps: int, warmup_epochs: int = 1,
               measure_epochs: int = 2, margin: float = 0.02, clock: Callable[[], float] | None = None,
               start: float | None = None):
    if budget_s <= 0 or steps_per_epoch < 1 or measure_epochs < 1 or warmup_epochs < 0:
      raise ValueError(f"bad budget: {budget_s} s, {steps_per_epoch} steps per epoch, {warmup_epochs} warm-up and "
                       f"{measure_epochs} measured epochs")
    self.budget_s, self.spe, self.total_steps = float(budget_s), steps_per_epoch, total_steps
    self.warmup, self.measure, self.margin = warmup_epochs, measure_epochs, margin
    self.clock = clock or (lambda: time.monotonic())
    # start: when the budget began on `clock` (e.g. the command's start, so start-up counts); default: now
    self.t0, self.epochs, self.t_warm = self.clock() if start is None else start, 0, None
    self.fitted: int | None = None
    self.epoch_s: float | None = None

  def elapsed(self) -> float:
    return self.clock() - self.t0

  def exceeded(self) -> bool:
    return self.elapsed() > self.budget_s

  def epoch_end(self, step: int) -> int | None:
    """Call at the end of each epoch of this run (`step`: the optimizer step now). Returns, once, the total number
    of steps that fit in the budget (at most `total_steps`, at least `step`); None before and after."""
    self.epochs += 1
    now = self.clock()
    if self.epochs == self.warmup:
      self.t_warm = now
    if self.fitted is not None or self.epochs != self.warmup + self.measure:
      return None
    start = self.t0 if self.t_warm is None else self.t_warm
    self.epoch_s = (now - start) / self.measure
    left_s = (self.budget_s - (now - self.t0)) * (1 - self.margin)
    more = max(0, math.floor(left_s / self.epoch_s)) if self.epoch_s > 0 else self.total_steps
    self.fitted = int(min(self.total_steps, step + more * self.spe))
    return self.fitted
