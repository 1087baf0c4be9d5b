"""Issue 14, "nothing lost, nothing silent": one test per numbered case, in-process (the subprocess runs of the
commands on bad files are in test_hostile_inputs.py)."""

import errno
import json
import os
import pathlib
import re
import shutil
import stat
import subprocess
import sys

import imageio_ffmpeg
import jax
import numpy as np
import pytest
from PIL import Image, ImageCms

from espcn_jax import (atomic_io, benchmark, checkpointing, evaluate, export, image_files, model, optim, train,
                       train_io, upscale, video, weights)
from espcn_jax import train_step as ts

DATA = pathlib.Path(__file__).resolve().parent.parent / "espcn_jax" / "data"
SMOKE = ["--config", "smoke.py", "--config.data.val=set5"]


@pytest.fixture(scope="module")
def w2(tmp_path_factory):
  """Small x2 weights (not random-looking: the net must not be the identity)."""
  spec = model.Spec(scale=2)
  p = model.init(jax.random.PRNGKey(0), spec)
  return weights.save(tmp_path_factory.mktemp("w") / "x2.safetensors", p, spec)


def _rgb(h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _one_line(err: str, *needles):
  lines = [l for l in re.split(r"[\r\n]", err) if l.startswith("error:")]  # (\r: progress bars)
  assert lines and "Traceback" not in err, err
  for n in needles:
    assert n in lines[0], err


# 1 ------------------------------------------------------------------------------------------------------------------


def test_1_no_command_writes_over_its_own_input(w2, tmp_path, capsys):
  original = w2.read_bytes()
  w = tmp_path / "w.safetensors"
  shutil.copy(w2, w)
  os.symlink(w, tmp_path / "link.onnx")
  os.link(w, tmp_path / "hard.onnx")
  for out in (w, tmp_path / "link.onnx", tmp_path / "hard.onnx"):
    assert export.main(["--weights", str(w), "-o", str(out), "--format", "onnx"]) == 2
    _one_line(capsys.readouterr().err, str(out), "refusing")
    assert w.read_bytes() == original
  # upscale: an output that is a hard link of an input is refused too
  img = tmp_path / "in.png"
  Image.fromarray(_rgb(8, 8)).save(img)
  os.link(img, tmp_path / "out.png")
  before = img.read_bytes()
  assert upscale.main([str(img), "-o", str(tmp_path / "out.png"), "--weights", str(w), "--quiet"]) == 1
  _one_line(capsys.readouterr().err, "out.png")
  assert img.read_bytes() == before


# 2 ------------------------------------------------------------------------------------------------------------------


def test_2_a_workdir_is_locked_by_the_run_using_it(tmp_path, capsys):
  wd = tmp_path / "wd"
  with train_io.WorkdirLock(wd):  # another run holds it (flock: also across processes, see test_hostile_inputs)
    assert train.main(SMOKE + ["--workdir", str(wd)]) == 1
    _one_line(capsys.readouterr().err, str(wd), "in use", f"pid {os.getpid()}")
  assert not (wd / "checkpoints").exists()
  # A run killed with SIGKILL: the OS drops its lock, its pid stays in the file; the next run takes over, saying so.
  holder = subprocess.Popen([sys.executable, "-c", "import sys; from espcn_jax import train_io; "
                             f"train_io.WorkdirLock({str(wd)!r}).__enter__(); print('held', flush=True); "
                             "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=DATA.parent.parent)
  assert holder.stdout.readline().strip() == "held"
  with pytest.raises(OSError, match=f"in use by another training run \\(pid {holder.pid} on "):
    train_io.WorkdirLock(wd).__enter__()
  holder.kill()
  holder.wait()
  with train_io.WorkdirLock(wd):
    assert f"pid {os.getpid()}" in (wd / "train.lock").read_text()
  assert f"killed (pid {holder.pid} on" in capsys.readouterr().err
  assert (wd / "train.lock").read_text() == ""  # a run that ends normally clears it


# 3 ------------------------------------------------------------------------------------------------------------------


def test_3_written_files_get_the_mode_open_gives(w2, tmp_path):
  old = os.umask(0o022)
  try:
    weights.save(tmp_path / "w.safetensors", *weights.load(w2)[:2])
    image_files.save_image(tmp_path / "a.png", _rgb(4, 4))
    evaluate.write_json(tmp_path / "r.json", {"a": 1})
    (tmp_path / "shared.png").write_bytes(b"")
    os.chmod(tmp_path / "shared.png", 0o664)
    image_files.save_image(tmp_path / "shared.png", _rgb(4, 4))
  finally:
    os.umask(old)
  for name in ("w.safetensors", "a.png", "r.json"):
    assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
  assert stat.S_IMODE((tmp_path / "shared.png").stat().st_mode) == 0o664


# 4 ------------------------------------------------------------------------------------------------------------------


def test_4_exif_orientation_is_applied(w2, tmp_path):
  stored = _rgb(6, 10)  # 10 wide, 6 high as stored
  exif = Image.Exif()
  exif[0x0112] = 6  # "rotate 90 CW to display": a portrait phone photo
  exif[0x010F] = "TestCam"  # Make
  Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=100)
  assert image_files.load_image(tmp_path / "phone.jpg").shape == (10, 6, 3)
  assert upscale.main([str(tmp_path / "phone.jpg"), "-o", str(tmp_path / "up.jpg"), "--weights", str(w2),
                       "--quiet"]) == 0
  with Image.open(tmp_path / "up.jpg") as up:
    assert np.asarray(up).shape == (20, 12, 3)
    assert up.getexif().get(0x010F) == "TestCam" and up.getexif().get(0x0112, 1) == 1  # kept; applied, not re-applied


# 5 ------------------------------------------------------------------------------------------------------------------


def test_5_no_random_weights_unless_asked(tmp_path, capsys):
  Image.fromarray(_rgb(8, 8)).save(tmp_path / "in.png")
  assert upscale.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--scale", "5", "--quiet"]) == 1
  _one_line(capsys.readouterr().err, "no shipped weights for scale 5", "--random-weights")
  assert not (tmp_path / "out.png").exists()


# 6 ------------------------------------------------------------------------------------------------------------------


def test_6_non_finite_weights_are_refused_and_nan_never_verifies(w2, tmp_path, capsys, monkeypatch):
  params, spec, _ = weights.load(w2)
  params = jax.tree_util.tree_map(np.array, params)
  params["conv2"]["kernel"][0, 0, 0, 0] = np.nan
  params["conv3"]["bias"][1] = np.inf
  bad = weights.save(tmp_path / "nan.safetensors", params, spec)
  with pytest.raises(weights.WeightsError, match="nan.safetensors: tensor conv2.kernel holds 1 NaN/inf"):
    weights.load(bad)
  # an export whose check gives NaN (e.g. a runtime that overflows) is an error, not "verified"
  monkeypatch.setattr(export.export_formats, "max_error", lambda *a, **k: float("nan"))
  assert export.main(["--weights", str(w2), "-o", str(tmp_path / "m.onnx")]) == 1
  _one_line(capsys.readouterr().err, "m.onnx", "differs")


# 7 ------------------------------------------------------------------------------------------------------------------


def _video(path, seconds=4, faststart=True):
  cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "testsrc=size=32x24:rate=25", "-t", str(seconds), "-c:v", "libx264", "-pix_fmt", "yuv420p"]
  subprocess.run(cmd + (["-movflags", "+faststart"] if faststart else []) + [str(path)], check=True)
  return path


def _nearest(batch):
  return batch.repeat(2, axis=1).repeat(2, axis=2)


def test_7_a_truncated_video_is_an_error_unless_partial_output_is_accepted(w2, tmp_path, capsys):
  full = _video(tmp_path / "full.mp4")
  data = full.read_bytes()
  cut = tmp_path / "cut.mp4"
  cut.write_bytes(data[:len(data) // 2])  # the index (moov) is at the front: the container still says 100 frames
  with pytest.raises(video.VideoError, match=r"cut.mp4: only \d+ of ~100 frames"):
    video.upscale_video(cut, tmp_path / "out.mp4", _nearest, progress=False)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4", "full.mp4"]  # nothing written, no temp left
  notes = []
  n = video.upscale_video(cut, tmp_path / "out.mp4", _nearest, progress=False, allow_partial=True, notes=notes)
  assert 0 < n < 90 and (tmp_path / "out.mp4").is_file() and "--allow-partial" in notes[0]
  assert video.upscale_video(full, tmp_path / "full_x2.mp4", _nearest, progress=False) == 100
  # the command: exit 1 and one line naming the input; with --allow-partial the output and a note
  run = lambda *extra: upscale.main([str(cut), "-o", str(tmp_path / "cli.mp4"), "--weights", str(w2), "--quiet",
                                     *extra])
  assert run() == 1 and not (tmp_path / "cli.mp4").exists()
  _one_line(capsys.readouterr().err, f"{cut}: only")
  assert run("--allow-partial") == 0 and (tmp_path / "cli.mp4").is_file()
  assert "kept the" in capsys.readouterr().err


# 8 ------------------------------------------------------------------------------------------------------------------


def test_8_an_output_folder_inside_the_input_folder_is_not_read_back(w2, tmp_path):
  src = tmp_path / "photos"
  (src / "sub").mkdir(parents=True)
  Image.fromarray(_rgb(6, 6)).save(src / "a.png")
  Image.fromarray(_rgb(6, 6, 1)).save(src / "sub" / "b.png")
  for _ in range(2):
    assert upscale.main([str(src), "-o", str(src / "x2"), "--weights", str(w2), "--quiet"]) == 0
  outs = sorted(str(p.relative_to(src)) for p in src.rglob("*.png"))
  assert outs == ["a.png", "sub/b.png", "x2/a.png", "x2/sub/b.png"]


# 9 ------------------------------------------------------------------------------------------------------------------


def test_9_sixteen_bit_icc_gif_frames_and_jpeg_quality_are_kept(w2, tmp_path, capsys):
  run = lambda src, out, *extra: upscale.main([str(src), "-o", str(tmp_path / out), "--weights", str(w2),
                                               "--quiet", *extra])
  g16 = (np.random.default_rng(0).integers(0, 65536, (6, 7))).astype(np.uint16)
  Image.fromarray(g16).save(tmp_path / "g16.png")
  assert run(tmp_path / "g16.png", "g16_x2.png") == 0
  out16 = np.asarray(Image.open(tmp_path / "g16_x2.png"))
  assert out16.dtype == np.uint16 and out16.shape == (12, 14) and (out16 % 257).any()  # not 8-bit values x 257
  icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
  Image.fromarray(_rgb(6, 6)).save(tmp_path / "icc.png", icc_profile=icc)
  assert run(tmp_path / "icc.png", "icc_x2.png") == 0 and run(tmp_path / "icc.png", "icc_x2.jpg") == 0
  assert Image.open(tmp_path / "icc_x2.png").info.get("icc_profile") == icc
  assert Image.open(tmp_path / "icc_x2.jpg").info.get("icc_profile") == icc
  frames = [Image.fromarray(_rgb(6, 8, i)) for i in range(3)]
  frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=[50, 120, 200], loop=0)
  capsys.readouterr()
  assert run(tmp_path / "anim.gif", "x.gif") == 0 and (tmp_path / "x.gif").is_file()
  with Image.open(tmp_path / "x.gif") as gif:
    assert gif.n_frames == 3 and gif.size == (16, 12)
    durations = []
    for i in range(3):
      gif.seek(i)
      durations.append(gif.info["duration"])
  assert durations == [50, 120, 200]
  assert run(tmp_path / "anim.gif", "first.png.bmp") == 0  # a format without frames: said once
  err = capsys.readouterr().err
  assert err.count("only the first of 3 frames") == 1 and "first.png.bmp" in err
  ref = tmp_path / "q95.jpg"
  Image.fromarray(_rgb(8, 8)).save(ref, quality=95)
  Image.fromarray(_rgb(6, 6)).save(tmp_path / "in.png")
  assert run(tmp_path / "in.png", "default.jpg") == 0 and run(tmp_path / "in.png", "q60.jpg", "--quality", "60") == 0
  assert Image.open(tmp_path / "default.jpg").quantization == Image.open(ref).quantization
  assert Image.open(tmp_path / "q60.jpg").quantization != Image.open(ref).quantization


# 10 -----------------------------------------------------------------------------------------------------------------


def test_10_a_partial_last_metrics_line_is_dropped_on_resume(tmp_path, capsys):
  rows = [json.dumps({"step": s, "train_loss": 0.1}) for s in (4, 8, 12)]
  (tmp_path / "metrics.jsonl").write_text("\n".join(rows) + '\n{"step": 16, "train_lo')
  logs = train_io.Logs(tmp_path, resume_step=8, tensorboard=False)
  logs.write({"step": 12, "train_loss": 0.05})
  got = [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert got == [4, 8, 12]
  assert "dropped its partial last line" in capsys.readouterr().err


# 11 -----------------------------------------------------------------------------------------------------------------


def _state(seed=0):
  spec = model.Spec(features=(8, 4))
  return ts.create_state(jax.random.PRNGKey(seed), spec, optim.make(model.init(jax.random.PRNGKey(0), spec),
                                                                     steps_per_epoch=3))


@pytest.mark.parametrize("damage", ["truncate_shard", "delete_meta"])
def test_11_a_broken_latest_checkpoint_falls_back_to_the_previous_intact_one(tmp_path, damage):
  spec = model.Spec(features=(8, 4))
  ck = checkpointing.Checkpointer(tmp_path)
  ck.save(1, _state(1), {"spec": spec.to_dict(), "step": 1})
  ck.save(2, _state(2), {"spec": spec.to_dict(), "step": 2})
  ck.close()
  step2 = tmp_path / "checkpoints" / "2"
  if damage == "truncate_shard":
    for f in (step2 / "state").rglob("*"):
      if f.is_file() and f.stat().st_size > 100 and "d" in f.parent.name:  # the ocdbt data files
        f.write_bytes(f.read_bytes()[:50])
  else:
    shutil.rmtree(step2 / "meta")
  said = []
  ck = checkpointing.Checkpointer(tmp_path)
  state, meta = ck.restore_intact(_state(9), spec, say=said.append)
  assert meta["step"] == 1
  np.testing.assert_array_equal(state.rng, _state(1).rng)
  assert any("step 1" in s for s in said) and any("checkpoint 2 is broken" in s for s in said)
  assert (tmp_path / "broken_checkpoints" / "2").is_dir() and ck.latest_step() == 1
  ck.save(2, _state(3), {"spec": spec.to_dict(), "step": 2})  # the resumed run saves step 2 again
  assert checkpointing.Checkpointer(tmp_path).read_meta(2)["step"] == 2


# 12 -----------------------------------------------------------------------------------------------------------------


def test_12_a_planted_link_at_a_temp_name_is_not_followed(tmp_path):
  victim = tmp_path / "victim.txt"
  victim.write_text("precious")
  wd = tmp_path / "wd"
  wd.mkdir()
  (wd / "metrics.jsonl").write_text(json.dumps({"step": 4}) + "\n")
  os.symlink(victim, wd / "metrics.jsonl.tmp")  # the fixed temp name of the old code
  train_io.Logs(wd, resume_step=4, tensorboard=False)
  assert victim.read_text() == "precious"
  assert (wd / "metrics.jsonl").read_text() == json.dumps({"step": 4}) + "\n"


# 13 -----------------------------------------------------------------------------------------------------------------


def test_13_stale_temp_files_of_a_killed_run_are_cleaned_and_never_inputs(w2, tmp_path):
  dead = subprocess.Popen(["true"])
  dead.wait()
  src, out = tmp_path / "in", tmp_path / "out"
  src.mkdir()
  out.mkdir()
  Image.fromarray(_rgb(6, 6)).save(src / "a.png")
  name = f".a.png.espcn-tmp-{dead.pid}-{atomic_io.HOST_TAG}0a1b2c3d.png"  # what a killed upscale leaves
  leftovers = [out / name, src / name]
  for p in leftovers:
    p.write_bytes(b"half a png")
  orbax_tmp = tmp_path / "wd" / "checkpoints" / "3.orbax-checkpoint-tmp-1234"
  orbax_tmp.mkdir(parents=True)
  assert upscale.main([str(src), "-o", str(out), "--weights", str(w2), "--quiet"]) == 0
  assert sorted(p.name for p in out.iterdir()) == ["a.png"]  # the stale temp file is gone, none read as input
  checkpointing.Checkpointer(tmp_path / "wd").close()
  assert not orbax_tmp.exists()


# 14 -----------------------------------------------------------------------------------------------------------------


def test_14_errors_are_one_line_naming_the_file(w2, tmp_path, capsys, monkeypatch):
  # evaluate --json pointing at a folder: said before any work
  assert evaluate.main(["--bicubic", "--data", "set5", "--json", str(tmp_path)]) == 2
  _one_line(capsys.readouterr().err, str(tmp_path), "folder")
  # weights with a malformed tensor name / metadata: upscale and evaluate name the file, no traceback
  import safetensors.numpy
  meta = {"format": "espcn-jax/1", "spec": json.dumps(model.Spec(scale=2).to_dict())}
  safetensors.numpy.save_file({"conv1kernel": np.zeros(3, np.float32)}, tmp_path / "name.safetensors", metadata=meta)
  safetensors.numpy.save_file({"conv1.kernel": np.zeros(3, np.float32)}, tmp_path / "meta.safetensors",
                              metadata=dict(meta, meta="{not json"))
  Image.fromarray(_rgb(6, 6)).save(tmp_path / "in.png")
  for bad in ("name.safetensors", "meta.safetensors"):
    assert upscale.main([str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--weights",
                         str(tmp_path / bad)]) == 1
    _one_line(capsys.readouterr().err, str(tmp_path / bad))
    assert evaluate.main(["--weights", str(tmp_path / bad), "--data", "set5"]) == 1
    _one_line(capsys.readouterr().err, str(tmp_path / bad))
  # benchmark --batch 0: a usage error, not an IndexError
  with pytest.raises(SystemExit) as e:
    benchmark.main(["--batch", "0", "--peers", "none"])
  assert e.value.code == 2 and "--batch: expected an integer >= 1, got 0" in capsys.readouterr().err
  # a video without frames: the input is named, not "Error opening output files"
  subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                  "testsrc=size=32x24:rate=25", "-frames:v", "0", "-c:v", "libx264", str(tmp_path / "zero.mp4")],
                 check=True)
  with pytest.raises(video.VideoError, match="zero.mp4: no video frames"):
    video.open_video(tmp_path / "zero.mp4")
  # train with a workdir that is a file, and on a full disk
  (tmp_path / "wd_file").write_text("x")
  assert train.main(SMOKE + ["--workdir", str(tmp_path / "wd_file")]) == 1
  _one_line(capsys.readouterr().err, str(tmp_path / "wd_file"), "not a folder")

  def full_disk(self, row):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
  monkeypatch.setattr(train_io.Logs, "write", full_disk)
  assert train.main(SMOKE + ["--workdir", str(tmp_path / "wd"), "--config.num_epochs=1"]) == 1
  _one_line(capsys.readouterr().err, str(tmp_path / "wd" / "metrics.jsonl"), "No space left on device")


# 15 -----------------------------------------------------------------------------------------------------------------


def test_15_small_ones(tmp_path, capsys):
  assert train.main(SMOKE + ["--workdir", str(tmp_path / "a"), "--config.num_epochs=-1"]) == 2  # a bad value: usage
  _one_line(capsys.readouterr().err, "num_epochs")
  with pytest.raises(SystemExit) as e:
    benchmark.main(["--iters", "0", "--peers", "none"])
  assert e.value.code == 2 and "--iters: expected an integer >= 1, got 0" in capsys.readouterr().err
  # a training folder whose name holds "+" is one folder; a diverging first epoch names epoch 1 and no checkpoint
  folder = tmp_path / "my+photos"
  folder.mkdir()
  for name in ("baby.png", "bird.png"):
    shutil.copy(DATA / "Set5" / name, folder / name)
  code = train.main(SMOKE + ["--workdir", str(tmp_path / "wd"), f"--config.data.train={folder}",
                             "--config.optim.learning_rate=1e30", "--config.optim.min_learning_rate=1e28"])
  err = capsys.readouterr().err
  assert code == 1 and "training data" in err and "my+photos" in err
  _one_line(err, "by step 4 (epoch 1)", "no checkpoint was saved yet")
