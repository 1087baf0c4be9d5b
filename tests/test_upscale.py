"""upscale CLI: files, folders (recursive, names kept), formats, gray / alpha, videos, bad files, no TensorFlow."""

import subprocess
import sys

import imageio_ffmpeg
import jax
import numpy as np
import pytest
from PIL import Image

from espcn_jax import image_files, inference, model, upscale, video, weights


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
  spec = model.Spec(scale=2)
  p = model.init(jax.random.PRNGKey(0), spec)
  p = jax.tree_util.tree_map(lambda a: a + 0.05 * jax.random.normal(jax.random.PRNGKey(1), a.shape), p)
  path = weights.save(tmp_path_factory.mktemp("w") / "x2.safetensors", p, spec)
  return path, p, spec


def _rgb(h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_folder_recursive_formats_gray_alpha_and_bad_file(tmp_path, ckpt, capsys):
  path, params, spec = ckpt
  src = tmp_path / "in"
  (src / "sub").mkdir(parents=True)
  Image.fromarray(_rgb(10, 13)).save(src / "a.png")
  Image.fromarray(_rgb(9, 8, 1)[..., 0]).save(src / "sub" / "g.bmp")
  Image.fromarray(np.concatenate([_rgb(7, 6, 2), np.full((7, 6, 1), 128, np.uint8)], -1)).save(src / "sub" / "t.png")
  (src / "sub" / "broken.jpg").write_bytes(b"\xff\xd8 nope")
  (src / "notes.txt").write_text("ignored")
  rc = upscale.main([str(src), "-o", str(tmp_path / "out"), "--weights", str(path), "--quiet"])
  assert rc == 1  # one bad file
  err = capsys.readouterr().err
  assert "broken.jpg" in err and len([l for l in err.splitlines() if l.startswith("error:")]) == 1
  out = tmp_path / "out"
  assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
      "a.png", "sub/g.bmp", "sub/t.png"]
  a = image_files.load_image(out / "a.png")
  np.testing.assert_array_equal(a, inference.Upscaler(params, spec).image(image_files.load_image(src / "a.png")))
  g = image_files.load_image(out / "sub" / "g.bmp")
  assert g.shape == (18, 16)  # gray stays gray
  with Image.open(out / "sub" / "t.png") as t:
    assert t.mode == "RGBA" and t.size == (12, 14)
    assert np.abs(np.asarray(t)[..., 3].astype(int) - 128).max() <= 1  # constant alpha stays constant


def test_single_file_output_name_sets_format(tmp_path, ckpt):
  path, _, _ = ckpt
  Image.fromarray(_rgb(8, 9)).save(tmp_path / "x.png")
  assert upscale.main([str(tmp_path / "x.png"), "-o", str(tmp_path / "y.jpg"), "--weights", str(path),
                       "--quiet"]) == 0
  with Image.open(tmp_path / "y.jpg") as im:
    assert im.format == "JPEG" and im.size == (18, 16)


def test_never_overwrites_an_input(tmp_path, ckpt, capsys):
  path, _, _ = ckpt
  Image.fromarray(_rgb(8, 9)).save(tmp_path / "x.png")
  before = (tmp_path / "x.png").read_bytes()
  assert upscale.main([str(tmp_path / "x.png"), "-o", str(tmp_path), "--weights", str(path), "--quiet"]) == 1
  assert "overwrite" in capsys.readouterr().err
  assert (tmp_path / "x.png").read_bytes() == before


def test_missing_input_and_scale_mismatch(tmp_path, ckpt, capsys):
  path, _, _ = ckpt
  assert upscale.main([str(tmp_path / "nope.png"), "-o", str(tmp_path / "o"), "--quiet"]) == 1
  assert "nope.png" in capsys.readouterr().err
  Image.fromarray(_rgb(8, 9)).save(tmp_path / "x.png")
  assert upscale.main([str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--weights", str(path),
                       "--scale", "3"]) == 2  # a usage error
  assert "x2" in capsys.readouterr().err


def test_video_through_the_cli(tmp_path, ckpt):
  path, _, _ = ckpt
  src = tmp_path / "clip.mp4"
  subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                  "testsrc=size=16x12:rate=8", "-t", "0.5", "-pix_fmt", "yuv420p", str(src)], check=True)
  assert upscale.main([str(src), "-o", str(tmp_path / "o.mp4"), "--weights", str(path), "--quiet"]) == 0
  meta, frames = video.open_video(tmp_path / "o.mp4")
  assert meta["size"] == (32, 24) and meta["fps"] == 8 and len(list(frames)) == 4


def test_plan_jobs_multiple_inputs(tmp_path):
  (tmp_path / "A").mkdir()
  (tmp_path / "A" / "p.png").write_bytes(b"")
  (tmp_path / "f.jpg").write_bytes(b"")
  jobs = upscale.plan_jobs([tmp_path / "A", tmp_path / "f.jpg"], tmp_path / "out")
  assert [d.relative_to(tmp_path / "out").as_posix() for _, d in jobs] == ["A/p.png", "f.jpg"]
  (tmp_path / "E").mkdir()
  with pytest.raises(ValueError, match="no images or videos"):
    upscale.plan_jobs([tmp_path / "E"], tmp_path / "out")


def test_cli_modules_do_not_import_tensorflow():
  code = ("import sys, espcn_jax.upscale, espcn_jax.benchmark, espcn_jax.inference, espcn_jax.video; "
          "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets', 'torch')]; "
          "assert not bad, bad")
  subprocess.run([sys.executable, "-c", code], check=True)
