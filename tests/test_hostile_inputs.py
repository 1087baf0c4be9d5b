"""The commands as a user runs them (`python -m espcn_jax.X` in a subprocess) on generated bad files: exit codes,
one-line messages naming the file, the outputs, and inputs byte-identical afterwards. Few runs (each starts JAX)."""

import fcntl
import hashlib
import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from espcn_jax import model, weights

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _cli(module, *args, cwd=None):
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
  r = subprocess.run([sys.executable, "-m", f"espcn_jax.{module}", *map(str, args)], capture_output=True, text=True,
                     env=env, cwd=cwd, timeout=300)
  return r.returncode, r.stdout, r.stderr


def _errors(stderr):
  assert "Traceback" not in stderr, stderr
  return [l for l in re.split(r"[\r\n]", stderr) if l.startswith("error:")]


def _digests(folder):
  return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(pathlib.Path(folder).rglob("*"))
          if p.is_file()}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """A folder of inputs, good and bad, and a few weight files."""
  d = tmp_path_factory.mktemp("hostile")
  rng = np.random.default_rng(0)
  src = d / "in"
  src.mkdir()
  Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(src / "good.png")
  exif = Image.Exif()
  exif[0x0112] = 8  # rotate 90 CCW to display
  Image.fromarray(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)).save(src / "phone.jpg", exif=exif)
  Image.fromarray(rng.integers(0, 65536, (8, 8)).astype(np.uint16)).save(src / "depth16.png")
  png = (src / "good.png").read_bytes()
  (src / "truncated.png").write_bytes(png[:len(png) // 2])
  (src / "empty.jpg").write_bytes(b"")
  spec = model.Spec(scale=2)
  params = model.init(jax.random.PRNGKey(0), spec)
  w = weights.save(d / "w.safetensors", params, spec)
  nan = jax.tree_util.tree_map(np.array, params)
  nan["conv1"]["bias"][0] = np.nan
  weights.save(d / "nan.safetensors", nan, spec)
  return d, src, w


def test_upscale_a_folder_with_bad_files_twice_into_itself(files):
  d, src, w = files
  before = _digests(src)
  for _ in range(2):  # the second run must not read the outputs of the first
    code, _, err = _cli("upscale", src, "-o", src / "x2", "--weights", w, "--quiet")
    assert code == 1
    errs = _errors(err)
    assert len(errs) == 2 and any("truncated.png: truncated image" in e for e in errs), errs
    assert any("empty.jpg" in e for e in errs), errs
  out = src / "x2"
  assert sorted(p.name for p in out.iterdir()) == ["depth16.png", "good.png", "phone.jpg"]
  assert np.asarray(Image.open(out / "phone.jpg")).shape == (20, 12, 3)  # turned as the EXIF tag says
  assert np.asarray(Image.open(out / "depth16.png")).dtype == np.uint16
  assert {p: h for p, h in _digests(src).items() if out not in p.parents} == before


def test_export_over_its_own_checkpoint_and_nan_weights(files):
  d, _, w = files
  before = w.read_bytes()
  code, out, err = _cli("export", "--weights", w, "-o", w, "--format", "onnx")
  assert code == 2 and "verified" not in out
  assert _errors(err) == [f"error: {w}: is the --weights file ({w}); refusing to write over it"]
  assert w.read_bytes() == before
  code, _, err = _cli("evaluate", "--weights", d / "nan.safetensors", "--data", "set5", "--json", d / "r.json")
  assert code == 1 and not (d / "r.json").exists()  # an input (the weight file) failed
  assert _errors(err) == [f"error: {d / 'nan.safetensors'}: tensor conv1.bias holds 1 NaN/inf value(s); "
                          f"these weights are unusable"]


def test_train_on_a_workdir_in_use_by_another_process(tmp_path):
  wd = tmp_path / "wd"
  wd.mkdir()
  with open(wd / "train.lock", "w") as f:  # what a running `train` holds (flock is per process: a real conflict)
    fcntl.flock(f, fcntl.LOCK_EX)
    f.write(f"pid {os.getpid()} on testhost\n")
    f.flush()
    code, _, err = _cli("train", "--config", "smoke.py", "--workdir", wd, "--config.data.val=")
  assert code == 1
  assert _errors(err) == [f"error: {wd}: in use by another training run (pid {os.getpid()} on testhost); wait for "
                          f"it to end, stop it, or use another --workdir"]
  assert sorted(p.name for p in wd.iterdir()) == ["train.lock"]


def test_benchmark_usage_error(tmp_path):
  code, _, err = _cli("benchmark", "--batch", "1", "0", "--peers", "none", "--json", tmp_path / "b.json")
  assert code == 2 and "--batch: expected an integer >= 1, got 0" in err and "Traceback" not in err, err
  assert list(tmp_path.iterdir()) == []
