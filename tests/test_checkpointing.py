"""Tests of espcn_jax.checkpointing: round trip, incompatible workdirs, crash-safe saves."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from espcn_jax import checkpointing, model, optim
from espcn_jax import train_step as ts

SPEC = model.Spec(features=(8, 4))


def _state(seed=0, spec=SPEC, step=0):
  """A state whose params, sampler key and step differ with `seed` / `step` (so a restore that does nothing shows)."""
  params = model.init(jax.random.PRNGKey(0), spec)
  s = ts.create_state(jax.random.PRNGKey(seed), spec, optim.make(params, steps_per_epoch=3))
  return s.replace(step=jnp.asarray(step, jnp.int32))


def _assert_same(a, b):
  assert int(a.step) == int(b.step)
  np.testing.assert_array_equal(a.rng, b.rng)
  for layer in b.params:
    np.testing.assert_array_equal(a.params[layer]["kernel"], b.params[layer]["kernel"])
    np.testing.assert_array_equal(a.params[layer]["bias"], b.params[layer]["bias"])


def test_round_trip(tmp_path):
  ck = checkpointing.Checkpointer(tmp_path)
  assert ck.latest_step() is None and ck.read_meta() is None
  s, target = _state(1, step=5), _state(2)
  assert not np.array_equal(s.params["conv1"]["kernel"], target.params["conv1"]["kernel"])
  ck.save(5, s, {"spec": SPEC.to_dict(), "epoch": 2})
  ck.save_best(5, s, {"spec": SPEC.to_dict(), "best_psnr": 30.0})
  restored, meta = checkpointing.Checkpointer(tmp_path).restore(target)
  assert meta["epoch"] == 2
  _assert_same(restored, s)  # the saved state, not the target
  assert optim.plateau_state(restored.opt_state).scale == 1.0
  best, best_meta = ck.restore(_state(2), best=True)
  assert best_meta["best_psnr"] == 30.0
  _assert_same(best, s)


def test_incompatible_spec_and_settings(tmp_path):
  ck = checkpointing.Checkpointer(tmp_path)
  ck.save(1, _state(), {"spec": SPEC.to_dict(), "resume_keys": {"batch_size": 64}})
  ck.check_compatible(SPEC, {"batch_size": 64})
  with pytest.raises(checkpointing.CheckpointError, match="another model"):
    ck.check_compatible(model.Spec(features=(16, 4)))
  with pytest.raises(checkpointing.CheckpointError, match="batch_size=64"):
    ck.check_compatible(SPEC, {"batch_size": 32})
  other = _state(spec=model.Spec(features=(16, 4)))
  with pytest.raises(checkpointing.CheckpointError, match="cannot restore"):
    ck.restore(other)
  assert ck.latest_step() == 1


def test_unfinished_save_is_ignored(tmp_path):
  ck = checkpointing.Checkpointer(tmp_path)
  saved = _state(4, step=1)
  ck.save(1, saved, {"spec": SPEC.to_dict()})
  # What a crash in the middle of writing step 2 leaves: orbax's temporary folder, never renamed.
  tmp = tmp_path / checkpointing.LATEST_DIR / "2.orbax-checkpoint-tmp-123"
  (tmp / "state").mkdir(parents=True)
  (tmp / "state" / "garbage").write_bytes(b"\0" * 10)
  ck2 = checkpointing.Checkpointer(tmp_path)
  assert ck2.latest_step() == 1
  state, _ = ck2.restore(_state(3))
  _assert_same(state, saved)  # step 1's state (step 1, its params and key), not the target's


def test_keeps_the_last_two(tmp_path):
  ck = checkpointing.Checkpointer(tmp_path, keep=2)
  for step in (1, 2, 3):
    ck.save(step, _state(), {"spec": SPEC.to_dict()})
  assert ck.latest.all_steps() == [2, 3]


def test_checkpoint_from_before_kinds_is_an_espcn(tmp_path):
  """Checkpoints written before `Spec.kind` existed (no "kind" in their spec) resume as ESPCN, not as another kind."""
  ck = checkpointing.Checkpointer(tmp_path)
  old = {k: v for k, v in SPEC.to_dict().items() if k != "kind"}
  ck.save(1, _state(), {"spec": old})
  ck.check_compatible(SPEC)
  hr = model.Spec(features=(8, 4), kind="hr")
  with pytest.raises(checkpointing.CheckpointError, match="another model"):
    ck.check_compatible(hr)
