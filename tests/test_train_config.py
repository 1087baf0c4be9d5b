"""Tests of espcn_jax.train_config: config files, --config.FIELD overrides, --help, and the recipe for the hardware."""

import os
import subprocess
import sys

import ml_collections
import pytest

from espcn_jax import train, train_config

NO_RECIPE = lambda: pytest.fail("the hardware recipe must not be chosen when --config is given")  # noqa: E731


def test_overrides_are_typed():
  cfg, wd = train.parse_args(["--config", "configs/smoke.py", "--workdir", "/tmp/x", "--config.batch_size=16",
                              "--config.optim.learning_rate", "0.003", "--config.model.features=(8, 4)",
                              "--config.data.augment=True", "--config.data.train=t91+bsd200",
                              "--config.max_minutes=5", "--config.process_id=0"])
  assert wd == "/tmp/x" and cfg.batch_size == 16 and cfg.optim.learning_rate == 0.003
  assert cfg.model.features == (8, 4) and cfg.data.augment is True and cfg.data.train == "t91+bsd200"
  assert cfg.max_minutes == 5.0 and isinstance(cfg.max_minutes, float)
  assert cfg.process_id == 0 and cfg.num_processes is None  # 0 is a value, unset stays None
  assert cfg.num_epochs == 3  # from smoke.py
  with pytest.raises(AttributeError, match="locked"):
    cfg.nope = 1


def test_config_found_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  for name in ("t91_x2.py", "configs/t91_x2.py"):
    cfg, _, note = train_config.parse(["--config", name], recipe=NO_RECIPE)
    assert cfg.scale == 2 and note == ""
  (tmp_path / "mine.py").write_text("from espcn_jax.configs import smoke\n"
                                    "def get_config():\n  c = smoke.get_config()\n  c.seed = 7\n  return c\n")
  cfg, _, _ = train_config.parse(["--config=mine.py"], recipe=NO_RECIPE)
  assert cfg.seed == 7 and cfg.batch_size == 8


@pytest.mark.parametrize("argv, match", [
    (["--config.optim.learning_rat=1"], r"unknown config field; did you mean optim\.learning_rate"),
    (["--config.batchsize=1"], r"did you mean batch_size"),
    (["--config.zzzzz=1"], r"--help lists the \d+ fields"),
    (["--config.batch_size=abc"], "batch_size=abc"),
    (["--config.batch_size=1.5"], "batch_size=1.5"),
    (["--config.data.augment=maybe"], "augment"),
    (["--bogus"], "--bogus: unknown argument"),
    (["--config", "missing.py"], "missing.py: no such config file"),
    (["--config"], "missing value"),
])
def test_usage_errors(argv, match):
  with pytest.raises(train_config.ConfigError, match=match):
    train_config.parse(["--config", "configs/smoke.py", *argv] if argv[0] != "--config" else argv, recipe=NO_RECIPE)


def test_usage_error_is_one_line_and_exit_2(capsys):
  assert train.main(["--config", "configs/smoke.py", "--config.optim.lr=1"]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("error: --config.optim.lr: unknown config field")


def test_config_files_do_not_import_the_command_line():
  for path in train_config.CONFIG_DIR.glob("*.py"):
    assert "espcn_jax import train" not in path.read_text(), path
  for name in train_config.shipped():
    cfg = train_config.load(name)
    assert isinstance(cfg, ml_collections.ConfigDict) and cfg.data.train, name
    assert "python -m espcn_jax.train" in (train_config.CONFIG_DIR / name).read_text(), name  # the run command


def test_shipped_recipes_keep_their_values():
  """The records of the shipped weights and of Table 1 (REPRODUCTION.md): a changed value here changes a recipe."""
  x3 = train_config.load("t91_x3_tanh.py")
  assert (x3.batch_size, x3.steps_per_epoch, x3.num_epochs, x3.optim.learning_rate, x3.optim.min_learning_rate,
          x3.optim.plateau_patience, x3.optim.last_layer_lr_scale, x3.data.augment, x3.data.val) == (
              128, 400, 300, 1e-3, 1e-5, 40, 0.1, True, "set5")
  cpu = train_config.load("t91_x3_cpu.py")
  assert (cpu.batch_size, cpu.steps_per_call, cpu.steps_per_epoch, cpu.num_epochs, cpu.optim.decay_steps,
          cpu.optim.last_layer_lr_scale, cpu.max_minutes, cpu.native_bf16) == (16, 8, 2000, 120, 240000, 1.0, 10.0,
                                                                               "off")
  assert (cpu.data.val, cpu.data.test) == ("holdout", "set5+set14") and len(cpu.data.holdout.split("+")) == 5
  bf16 = train_config.load("t91_x3_cpu_bf16.py")
  assert (bf16.num_epochs, bf16.optim.decay_steps, bf16.native_kernels, bf16.native_bf16, bf16.batch_size) == (
      190, 380000, "on", "auto", 16)
  for name, scale, patch, batch, epochs, minutes in [("best_x3.py", 3, 34, 4, 480, 28.0),
                                                     ("best_x4.py", 4, 24, 8, 300, 19.0),
                                                     ("best_x2.py", 2, 34, 4, 320, 19.0)]:
    c = train_config.load(name)  # the records of the shipped "best" weights (REPRODUCTION.md, issue #17)
    assert (c.scale, c.data.train, c.data.scale_augment, c.data.lr_patch, c.batch_size, c.num_epochs,
            c.optim.decay_steps, c.max_minutes, c.model.activation, c.reparam.branches, c.loss, c.data.val) == (
                scale, "t91", (0.9, 0.8, 0.7, 0.6), patch, batch, epochs, epochs * 2000, minutes, "tanh", "", "mse",
                "holdout"), name
  for name, first, lr, src in [("best_x4_more.py", "best_x4.py", 3e-4, "best"),
                                ("best_x2_more.py", "best_x2.py", 3e-4, "best"),
                                ("best_x4_third.py", "best_x4.py", 1.5e-4, "best_more"),
                                ("best_x2_third.py", "best_x2.py", 1.5e-4, "best_more"),
                                ("best_x4_fourth.py", "best_x4.py", 7.5e-5, "best_third")]:
    c, c0 = train_config.load(name), train_config.load(first)  # more cosine cycles from the previous runs' weights
    assert (c.init_from, c.optim.learning_rate) == (f"workdirs/espcn_x{c.scale}_{src}/best.safetensors", lr), name
    assert (c.data.to_dict(), c.num_epochs, c.optim.decay_steps) == (c0.data.to_dict(), c0.num_epochs,
                                                                    c0.optim.decay_steps), name
  for name, scale, act in [("t91_x2.py", 2, "tanh"), ("t91_x4.py", 4, "tanh"), ("t91_x3_relu.py", 3, "relu"),
                           ("t91_bsd200_x3.py", 3, "relu"), ("imagenet50k_x3_relu.py", 3, "relu")]:
    c = train_config.load(name)
    assert (c.scale, c.model.activation, c.data.val) == (scale, act, "set5"), name


@pytest.mark.parametrize("facts, config, words", [
    (dict(backend="gpu", native_available=False, has_bf16=False), "t91_x3_tanh.py", "gpu"),
    (dict(backend="tpu", native_available=True, has_bf16=True), "t91_x3_tanh.py", "tpu"),
    (dict(backend="cpu", native_available=True, has_bf16=True), "t91_x3_cpu_bf16.py", "AVX512_BF16"),
    (dict(backend="cpu", native_available=True, has_bf16=True, has_amx=True), "t91_x3_cpu_bf16.py", "AMX tiles"),
    (dict(backend="cpu", native_available=True, has_bf16=False), "t91_x3_cpu.py", "float32 kernels"),
    (dict(backend="cpu", native_available=False, has_bf16=False, native_reason="no C++ compiler"), "t91_x3_cpu.py",
     "XLA"),
])
def test_choose_recipe(facts, config, words):
  name, why = train_config.choose_recipe(**facts)
  assert name == config and words in why and "\n" not in why
  assert (train_config.CONFIG_DIR / name).is_file()
  if not facts["native_available"] and facts["backend"] == "cpu":
    assert "no C++ compiler" in why


def test_default_command_takes_the_recipe_and_says_so(monkeypatch):
  from espcn_jax import native
  monkeypatch.setattr(native, "available", lambda: True)
  monkeypatch.setattr(native, "train_has_bf16", lambda: False)
  cfg, wd, note = train_config.parse(["--config.seed=3"])
  assert wd is None and cfg.seed == 3 and cfg.num_epochs == 120 and cfg.native_bf16 == "off"  # t91_x3_cpu.py
  assert note.startswith("recipe: configs/t91_x3_cpu.py") and "\n" not in note
  monkeypatch.setattr(native, "train_has_bf16", lambda: True)
  cfg, _, note = train_config.parse([])
  assert cfg.num_epochs == 190 and "t91_x3_cpu_bf16.py" in note


def test_help_lists_every_field_with_its_default():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-m", "espcn_jax.train", "--help"], capture_output=True, text=True, env=env,
                       check=True).stdout
  base = train_config.load("base.py")
  for field, value in train_config.fields(base).items():
    assert f"--config.{field}={value!r}" in out, field
  assert "t91_x3_cpu_bf16.py" in out and "t91_x2.py" in out
