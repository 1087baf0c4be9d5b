"""Tests of espcn_jax.checkpointing: round trip, incompatible workdirs, crash-safe saves."""

import jax
import numpy as np
import pytest

from espcn_jax import checkpointing, model, optim
from espcn_jax import train_step as ts

SPEC = model.Spec(features=(8, 4))


def _state(seed=0, spec=SPEC):
  params = model.init(jax.random.PRNGKey(0), spec)
  return ts.create_state(jax.random.PRNGKey(seed), spec, optim.make(params, steps_per_epoch=3))


def test_round_trip(tmp_path):
  ck = checkpointing.Checkpointer(tmp_path)
  assert ck.latest_step() is None and ck.read_meta() is None
  s = _state(1)
  ck.save(5, s, {"spec": SPEC.to_dict(), "epoch": 2})
  ck.save_best(5, s, {"spec": SPEC.to_dict(), "best_psnr": 30.0})
  restored, meta = checkpointing.Checkpointer(tmp_path).restore(_state(2))
  assert meta["epoch"] == 2
  np.testing.assert_array_equal(restored.params["conv1"]["kernel"], s.params["conv1"]["kernel"])
  np.testing.assert_array_equal(restored.rng, s.rng)
  assert optim.plateau_state(restored.opt_state).scale == 1.0
  _, best_meta = ck.restore(_state(2), best=True)
  assert best_meta["best_psnr"] == 30.0


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
  ck.save(1, _state(), {"spec": SPEC.to_dict()})
  # What a crash in the middle of writing step 2 leaves: orbax's temporary folder, never renamed.
  tmp = tmp_path / checkpointing.LATEST_DIR / "2.orbax-checkpoint-tmp-123"
  (tmp / "state").mkdir(parents=True)
  (tmp / "state" / "garbage").write_bytes(b"\0" * 10)
  ck2 = checkpointing.Checkpointer(tmp_path)
  assert ck2.latest_step() == 1
  state, _ = ck2.restore(_state(3))
  assert int(state.step) == 0


def test_keeps_the_last_two(tmp_path):
  ck = checkpointing.Checkpointer(tmp_path, keep=2)
  for step in (1, 2, 3):
    ck.save(step, _state(), {"spec": SPEC.to_dict()})
  assert ck.latest.all_steps() == [2, 3]
