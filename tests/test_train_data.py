"""Every training data path through `train.main` (tiny runs: 2 epochs of 2 steps): the in-memory sampler (in
test_train.py), the tf.data stream from a folder with exact resume, `tfds:NAME` and the ImageNet subset (with
`tfds.testing.mock_data`, nothing downloaded), and `distributed=True` with process id 0."""

import json
import shutil

import pytest

from espcn_jax import image_files, train

TINY = ["--config", "configs/smoke.py", "--config.steps_per_epoch=2", "--config.batch_size=4",
        "--config.data.val=", "--config.data.shuffle_buffer=16"]


def _run(workdir, *extra):
  return train.main(TINY + ["--workdir", str(workdir), *extra])


def _rows(workdir):
  return [json.loads(r) for r in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def folder(tmp_path):
  out = tmp_path / "imgs"
  out.mkdir()
  for p in image_files.list_images(image_files.builtin_dataset_dir("t91"))[:6]:
    shutil.copy(p, out)
  return out


def test_tfdata_folder_and_exact_resume(tmp_path, folder):
  data = [f"--config.data.train={folder}", "--config.data.backend=tfdata"]
  assert _run(tmp_path / "full", *data, "--config.num_epochs=2") == 0
  assert _run(tmp_path / "split", *data, "--config.num_epochs=1") == 0
  assert _run(tmp_path / "split", *data, "--config.num_epochs=2") == 0  # resumes at the stream's position
  full, split = _rows(tmp_path / "full"), _rows(tmp_path / "split")
  assert [r["step"] for r in full] == [r["step"] for r in split] == [2, 4]
  assert split[1]["train_loss"] == pytest.approx(full[1]["train_loss"], rel=1e-6)
  assert (tmp_path / "full" / "best.safetensors").is_file()


def test_tfds_source(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6):  # random images of ~20-50 pixels: 12-pixel patches
    assert _run(tmp_path, "--config.data.train=tfds:div2k/bicubic_x2", "--config.data.lr_patch=4",
                "--config.num_epochs=2") == 0
  rows = _rows(tmp_path)
  assert [r["step"] for r in rows] == [2, 4] and all(r["train_loss"] > 0 for r in rows)


def test_imagenet_subset(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6):
    assert _run(tmp_path, "--config.data.train=imagenet_subset", "--config.data.subset_size=4",
                "--config.data.lr_patch=4", "--config.num_epochs=2") == 0
  ids = (tmp_path / "imagenet_subset_ids.txt").read_text().split("\n")
  assert len([i for i in ids if i]) == 4 and [r["step"] for r in _rows(tmp_path)] == [2, 4]


def test_distributed_with_process_id_0(tmp_path, monkeypatch):
  import jax
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  assert _run(tmp_path, "--config.num_epochs=1", "--config.distributed=True", "--config.process_id=0",
              "--config.num_processes=1", "--config.coordinator_address=localhost:12345") == 0
  assert calls == [{"coordinator_address": "localhost:12345", "num_processes": 1, "process_id": 0}]
  calls.clear()
  assert _run(tmp_path / "env", "--config.num_epochs=1", "--config.distributed=True") == 0
  assert calls == [{}]  # unset fields: jax.distributed reads the cluster from the environment


def test_a_run_prints_progress_epochs_and_nothing_else(tmp_path, folder):
  """A user's run through tf.data and TensorBoard (both load TensorFlow) in a fresh process, with the environment a
  user has (no TF_CPP_MIN_LOG_LEVEL): every line is ours or a progress bar (no oneDNN / absl start-up lines)."""
  import os
  import subprocess
  import sys
  env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
  r = subprocess.run([sys.executable, "-m", "espcn_jax.train", *TINY, "--workdir", str(tmp_path / "wd"),
                      f"--config.data.train={folder}", "--config.data.backend=tfdata", "--config.tensorboard=True",
                      "--config.num_epochs=1", "--config.data.test=set5"],
                     capture_output=True, text=True, env=dict(env, JAX_PLATFORMS="cpu"), timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  ours = ("forward / backward pass:", "epoch 1/1:", "test, best weights", "ESPCN x3:", "report: ")
  lines = [ln.strip() for ln in r.stderr.replace("\r", "\n").splitlines() if ln.strip()]
  assert [ln for ln in lines if not ln.startswith(ours)] == [] and r.stdout == ""
  assert (tmp_path / "wd" / "tensorboard").is_dir()
