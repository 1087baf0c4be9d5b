"""Tests of espcn_jax.time_budget and of `max_minutes` in a training run, with a fake clock."""

import json
import types

import numpy as np
import pytest

from espcn_jax import checkpointing, time_budget, train


class FakeClock:
  def __init__(self, times):
    self.times = list(times)

  def __call__(self):
    return self.times.pop(0)


def test_fit_from_the_measured_epochs():
  # t0 = 0; epoch 1 ends at 30 s (compilation: not timed), epochs 2-3 take 10 s each -> 70 s of 100 s * 0.98 left
  b = time_budget.TimeBudget(100, steps_per_epoch=5, total_steps=1000, clock=FakeClock([0, 30, 40, 50]))
  assert b.epoch_end(5) is None and b.epoch_end(10) is None
  assert b.epoch_end(15) == 15 + 4 * 5 and b.epoch_s == 10  # 49 s left * 0.98 = 48 s: 4 more epochs
  assert b.fitted == 35


def test_fit_never_exceeds_the_run_or_goes_back():
  b = time_budget.TimeBudget(1000, steps_per_epoch=5, total_steps=20, clock=FakeClock([0, 1, 2, 3]))
  b.epoch_end(5), b.epoch_end(10)
  assert b.epoch_end(15) == 20  # the run fits: its own length
  b = time_budget.TimeBudget(10, steps_per_epoch=5, total_steps=100, clock=FakeClock([0, 5, 9, 13, 14]))
  b.epoch_end(5), b.epoch_end(10)
  assert b.epoch_end(15) == 15  # already over the budget: stop now
  assert b.exceeded()


def test_the_budget_can_start_before_the_first_step():
  # the command started at t = 0 (start-up: 20 s), the budget object is made at t = 20; epochs 2-3 take 10 s each
  b = time_budget.TimeBudget(100, steps_per_epoch=5, total_steps=1000, clock=FakeClock([30, 40, 50]), start=0)
  b.epoch_end(5), b.epoch_end(10)
  assert b.epoch_end(15) == 15 + 4 * 5  # 50 s used of 100, 49 s left: the start-up counts
  b = time_budget.TimeBudget(100, steps_per_epoch=5, total_steps=1000, clock=FakeClock([20, 30, 40, 50]))
  b.epoch_end(5), b.epoch_end(10)
  assert b.epoch_end(15) == 15 + 6 * 5  # from the object's creation: 30 s used, 68.6 s left


def test_bad_budget():
  with pytest.raises(ValueError, match="bad budget"):
    time_budget.TimeBudget(0, steps_per_epoch=5, total_steps=10)


def test_max_minutes_fits_the_cosine_to_the_budget(tmp_path, monkeypatch, capsys):
  """The smoke run with 20 epochs of 2 steps and a 1-minute budget on a clock that advances 5 s per reading (two
  readings per epoch): epochs 2-3 take 10 s, 34 s are left at the end of epoch 3, so 3 more epochs fit; the run must
  end there with the cosine at its end (the lr at min_learning_rate), not at step 40 nor at the budget."""
  ticks = iter(range(0, 10_000, 5))
  monkeypatch.setattr(time_budget, "time", types.SimpleNamespace(monotonic=lambda: next(ticks)))
  argv = ["--config", "configs/smoke.py", "--workdir", str(tmp_path), "--config.data.val=",
          "--config.steps_per_epoch=2", "--config.num_epochs=20", "--config.optim.decay_steps=40",
          "--config.optim.learning_rate=0.001", "--config.optim.min_learning_rate=0.00001", "--config.max_minutes=1"]
  assert train.main(argv) == 0
  assert "6 epochs fit; the lr's cosine now ends at step 12" in capsys.readouterr().err
  rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [2, 4, 6, 8, 10, 12]
  assert rows[-1]["learning_rate"] == pytest.approx(1e-5, rel=1e-3)  # the cosine ended at the last step
  assert rows[3]["learning_rate"] < 0.8e-3  # and decays over the fitted steps (the configured 40: 0.99e-3 at step 8)
  meta = checkpointing.Checkpointer(tmp_path).read_meta()
  assert meta["budget_fit"] == {"total_steps": 12, "decay_steps": 12}
  assert meta["config"]["optim"]["decay_steps"] == 12
  # The optimizer itself (not only the logged lr) follows the fitted cosine: the last 2 steps barely move the
  # weights (lr ~1e-5 to 8e-5), where the configured 40-step cosine would still be at ~0.9e-3 (moving them ~2e-3)
  a, b = _params(tmp_path, 10), _params(tmp_path, 12)
  assert max(float(np.abs(a[k]["kernel"] - b[k]["kernel"]).max()) for k in a) < 3e-4
  # Rerunning resumes the fitted run (nothing is left to do), it does not fit again
  assert train.main(argv) == 0 and len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 6


def _params(workdir, step):
  import jax
  from espcn_jax import model, optim, train_step as ts
  spec = model.Spec(features=(16, 8))
  tx = optim.make(model.init(jax.random.PRNGKey(0), spec), steps_per_epoch=2, decay_steps=12)
  state, _ = checkpointing.Checkpointer(workdir).restore(ts.create_state(jax.random.PRNGKey(0), spec, tx), step=step)
  return jax.device_get(state.params)


def _params(workdir, step):
  import jax
  from espcn_jax import model, optim, train_step as ts
  spec = model.Spec(features=(16, 8))
  tx = optim.make(model.init(jax.random.PRNGKey(0), spec), steps_per_epoch=2, decay_steps=12)
  abstract = ts.create_state(jax.random.PRNGKey(0), spec, tx)
  state, _ = checkpointing.Checkpointer(workdir).restore(abstract, step=step)
  return jax.device_get(state.params)
