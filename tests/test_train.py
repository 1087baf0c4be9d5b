"""Tests of espcn_jax.train: flags, the smoke run, exact resume, and the clear errors."""

import json

import numpy as np
import pytest

from espcn_jax import checkpointing, train, train_config, weights

SMOKE = ["--config", str(train_config.CONFIG_DIR / "smoke.py"), "--config.data.val=set5"]  # from any directory


def _run(workdir, *extra):
  return train.main(SMOKE + ["--workdir", str(workdir), *extra])


def test_smoke_run_and_exact_resume(tmp_path):
  assert _run(tmp_path / "full", "--config.num_epochs=2") == 0
  assert _run(tmp_path / "split", "--config.num_epochs=1") == 0
  assert _run(tmp_path / "split", "--config.num_epochs=2") == 0  # resumes at epoch 1
  rows = [json.loads(r) for r in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
  rows2 = [json.loads(r) for r in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [4, 8] and [r["step"] for r in rows2] == [4, 8]
  assert {"train_loss", "val_psnr", "val_bicubic_psnr", "learning_rate"} <= set(rows[0])
  assert rows[1]["train_loss"] == pytest.approx(rows2[1]["train_loss"], rel=1e-6)
  assert rows[1]["val_psnr"] == pytest.approx(rows2[1]["val_psnr"], abs=1e-6)
  full = checkpointing.Checkpointer(tmp_path / "full")
  split = checkpointing.Checkpointer(tmp_path / "split")
  assert full.latest_step() == split.latest_step() == 8
  params, spec, meta = weights.load(tmp_path / "full" / "best.safetensors")
  assert spec.features == (16, 8) and meta["val_psnr"] == max(r["val_psnr"] for r in rows)
  a, _ = full.restore(_abstract(tmp_path / "full"))
  b, _ = split.restore(_abstract(tmp_path / "full"))
  for layer in a.params:
    np.testing.assert_allclose(a.params[layer]["kernel"], b.params[layer]["kernel"], rtol=1e-6, atol=1e-8)
  np.testing.assert_array_equal(a.rng, b.rng)


def _abstract(workdir):
  import jax
  from espcn_jax import model, optim, train_step as ts
  spec = model.Spec(features=(16, 8))
  return ts.create_state(jax.random.PRNGKey(0), spec, optim.make(model.init(jax.random.PRNGKey(0), spec),
                                                                   steps_per_epoch=4))


def test_incompatible_workdir_is_refused_untouched(tmp_path, capsys):
  assert _run(tmp_path, "--config.num_epochs=1") == 0
  before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.name != "train.lock"}
  assert _run(tmp_path, "--config.num_epochs=2", "--config.model.features=(8, 8)") == 1
  assert "another model" in capsys.readouterr().err
  assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.name != "train.lock"} == before


def test_nan_loss_is_an_error_and_keeps_the_last_checkpoint(tmp_path, capsys):
  assert _run(tmp_path, "--config.num_epochs=1") == 0
  # Resume with a huge lr: the loss overflows in epoch 2.
  code = _run(tmp_path, "--config.num_epochs=3", "--config.optim.learning_rate=1e30",
              "--config.optim.min_learning_rate=1e28")
  err = capsys.readouterr().err
  assert code == 1 and "loss became" in err and "step 4" in err
  assert checkpointing.Checkpointer(tmp_path).latest_step() == 4


def test_missing_or_empty_data_dir(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  assert _run(tmp_path / "wd", f"--config.data.train={tmp_path / 'empty'}") == 1
  assert "no images" in capsys.readouterr().err
  assert _run(tmp_path / "wd", f"--config.data.train={tmp_path / 'missing'}") == 1
  assert "no such folder" in capsys.readouterr().err
  assert not (tmp_path / "wd").exists()


def test_native_bf16_setting(tmp_path, capsys, monkeypatch):
  from espcn_jax import native
  if native.train_has_bf16():  # the bf16 kernels train (features 16 and 8: layers 2-3 take bf16 operands)
    assert _run(tmp_path / "bf16", "--config.num_epochs=1", "--config.native_bf16=on") == 0
    assert "bf16 dot products" in capsys.readouterr().err
  monkeypatch.setattr(native, "train_has_bf16", lambda: False)
  assert _run(tmp_path / "no", "--config.num_epochs=1", "--config.native_bf16=on") == 2
  err = capsys.readouterr().err
  assert "AVX512_BF16" in err and "native_bf16=off" in err and not (tmp_path / "no").exists()
  assert _run(tmp_path / "auto", "--config.num_epochs=1", "--config.native_bf16=auto") == 0  # float32 then


def test_selection_on_held_out_training_images_and_test_report(tmp_path, capsys):
  held = "t5.png+t15.png"
  assert _run(tmp_path, "--config.num_epochs=2", "--config.data.val=holdout", f"--config.data.holdout={held}",
              "--config.data.test=set5+set14") == 0
  err = capsys.readouterr().err
  assert "89 of 89 images loaded" in err and "holdout PSNR" in err  # the 2 held-out images are not trained on
  rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  _, _, meta = weights.load(tmp_path / "best.safetensors")
  assert meta["val_psnr"] == max(r["val_psnr"] for r in rows) and meta["val"] == "holdout"
  test = json.loads((tmp_path / "test_results.json").read_text())
  assert set(test["test"]) == {"set5", "set14"} and test["step"] == meta["step"]
  assert abs(test["test"]["set5"]["bicubic_psnr"] - 30.39) < 0.01  # Set5 x3, the standard protocol
  assert "test, best weights of step" in err and "set14" in err
  # Held-out names must exist in the training folders, and the validation set is never a training image by mistake
  assert _run(tmp_path / "bad", "--config.data.val=holdout", "--config.data.holdout=t5.png+nope.png") == 2
  assert "nope.png not found" in capsys.readouterr().err and not (tmp_path / "bad").exists()
  assert _run(tmp_path / "bad", "--config.data.val=holdout") == 2
  assert "needs data.holdout" in capsys.readouterr().err


def test_hr_net_trains_with_xla_and_its_weights_say_so(tmp_path, capsys):
  """A model kind other than ESPCN trains (XLA, native kernels off under auto; "on" is a one-line error) and its
  weight file records the kind, so evaluate / upscale / benchmark run the right net."""
  hr = ["--config.model.kind=hr", "--config.model.features=(4, 4)", "--config.model.kernel_sizes=(4, 4, 4)"]
  assert _run(tmp_path / "hr", "--config.num_epochs=1", *hr) == 0
  assert "XLA (the model is 'hr'" in capsys.readouterr().err
  _, spec, _ = weights.load(tmp_path / "hr" / "best.safetensors")
  assert spec.kind == "hr" and spec.kernel_sizes == (4, 4, 4)
  assert _run(tmp_path / "on", "--config.num_epochs=1", "--config.native_kernels=on", *hr) == 2  # usage: a setting this net cannot use
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "the kernels compute ESPCN only" in err
  assert _run(tmp_path / "bad", "--config.model.kind=vdsr") == 2
  assert "kind must be one of" in capsys.readouterr().err


def test_init_from_with_branches_starts_from_those_weights_and_exports_one_kernel(tmp_path, capsys):
  """init_from + reparam: at a negligible lr the exported (merged) weights are the starting file's; the checkpoint
  holds the branches; scale augmentation adds the down-scaled copies; a mismatched file is a one-line error."""
  src = tmp_path / "start.safetensors"
  import jax
  from espcn_jax import model
  spec = model.Spec(features=(16, 8))
  weights.save(src, model.init(jax.random.PRNGKey(7), spec), spec)
  assert _run(tmp_path / "w", "--config.num_epochs=1", f"--config.init_from={src}", "--config.loss=charbonnier",
              "--config.reparam.branches=1x1+asym+expand", "--config.data.scale_augment=(0.8,)",
              "--config.optim.learning_rate=1e-9", "--config.optim.min_learning_rate=1e-10") == 0
  assert "91 -> 182 images" in capsys.readouterr().err
  got, got_spec, _ = weights.load(tmp_path / "w" / "best.safetensors")
  want, _, _ = weights.load(src)
  assert got_spec == spec and set(got["conv1"]) == {"kernel", "bias"}
  for layer in want:
    np.testing.assert_allclose(got[layer]["kernel"], want[layer]["kernel"], atol=1e-6)
  meta = json.loads((tmp_path / "w" / "metrics.jsonl").read_text().splitlines()[0])
  assert meta["val_psnr"] > 0
  # resuming with another trick is refused; a file for another net is a one-line error before anything is written
  assert _run(tmp_path / "w", "--config.num_epochs=2", f"--config.init_from={src}", "--config.loss=mse",
              "--config.reparam.branches=1x1+asym+expand", "--config.data.scale_augment=(0.8,)") == 1
  assert "loss" in capsys.readouterr().err
  assert _run(tmp_path / "bad", "--config.init_from=t91") == 1
  err = capsys.readouterr().err
  assert "espcn_x3_t91.safetensors: init_from weights are for" in err and not (tmp_path / "bad").exists()
  assert _run(tmp_path / "bad", "--config.reparam.branches=1x1+nope") == 2
  assert "unknown re-parameterization branch 'nope'" in capsys.readouterr().err
  assert _run(tmp_path / "bad", "--config.data.scale_augment=(1.2,)") == 2
  assert "scale_augment factors must lie in (0, 1)" in capsys.readouterr().err
  assert _run(tmp_path / "bad", "--config.loss_margin=9", "--config.data.lr_patch=17") == 2
  assert "loss_margin (9) must be >= 0 and leave pixels of the 17x17 LR patch inside" in capsys.readouterr().err
