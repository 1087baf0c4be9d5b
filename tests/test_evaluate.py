"""The evaluation protocol: published bicubic baselines, model scoring, the CLI end to end, bad inputs."""

import json
import pathlib

import jax
import numpy as np
import pytest
from PIL import Image

from espcn_jax import evaluate, image_ops, metrics, model, validation, weights

# Published bicubic baselines (PSNR dB / SSIM on Y, e.g. VDSR / LapSRN tables) and what this protocol measures.
PUBLISHED = {2: {"Set5": (33.66, 0.9299), "Set14": (30.24, 0.8688)},
             3: {"Set5": (30.39, 0.8682), "Set14": (27.55, 0.7742)},
             4: {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027)}}
MEASURED = {2: {"Set5": (33.6614, 0.9299), "Set14": (30.2318, 0.8687)},
            3: {"Set5": (30.3922, 0.8682), "Set14": (27.5405, 0.7736)},
            4: {"Set5": (28.4207, 0.8104), "Set14": (26.0001, 0.7019)}}


@pytest.mark.parametrize("scale", [3, pytest.param(2, marks=pytest.mark.slow), pytest.param(4, marks=pytest.mark.slow)])
def test_bicubic_reproduces_published_baselines(scale, tmp_path, capsys):
  out = tmp_path / "r.json"
  args = ["--bicubic", "--data", "set5", "--data", "set14", "--scale", str(scale), "--json", str(out)]
  assert evaluate.main(args) == 0
  results = json.loads(out.read_text())["results"]
  assert [(r["dataset"], r["method"], r["images"], r["scale"]) for r in results] == [
      ("Set5", "bicubic", 5, scale), ("Set14", "bicubic", 14, scale)]
  for r in results:
    psnr, ssim = PUBLISHED[scale][r["dataset"]]
    assert abs(r["psnr"] - psnr) < 0.03, r
    assert r["psnr"] == pytest.approx(MEASURED[scale][r["dataset"]][0], abs=2e-3)
    assert r["ssim"] == pytest.approx(MEASURED[scale][r["dataset"]][1], abs=2e-4)
    assert abs(r["ssim"] - ssim) < 1e-3
  table = capsys.readouterr().out
  assert "Set5" in table and f"{MEASURED[scale]['Set5'][0]:.2f}" in table


def constant_model(spec, value):
  """Params whose output is `value` everywhere: zero kernels, last bias = value."""
  params = jax.tree_util.tree_map(np.zeros_like, model.init(jax.random.PRNGKey(0), spec))
  last = f"conv{spec.num_layers}"
  params[last]["bias"] = np.full_like(params[last]["bias"], value)
  return params


def test_model_output_is_scored_on_y_against_the_hr_y():
  rng = np.random.default_rng(0)
  hr = rng.integers(0, 256, (40, 38, 3), dtype=np.uint8)  # modcrop by 3 -> 39 x 36
  y8 = image_ops.luma_uint8(hr[:39, :36]).astype(np.float64)[3:-3, 3:-3]
  spec = model.Spec(scale=3, channels=1)
  res = evaluate.evaluate_image(hr, 3, params=constant_model(spec, 0.4), spec=spec)
  q = np.floor(0.4 * 255 + 0.5)  # 102
  assert res["espcn"][0] == pytest.approx(10 * np.log10(255 ** 2 / np.mean((q - y8) ** 2)), abs=1e-9)
  # an RGB model outputs RGB (0.4, 0.4, 0.4), whose MATLAB Y is round(16 + 219 * 102 / 255) = 104
  spec3 = model.Spec(scale=3, channels=3)
  res3 = evaluate.evaluate_image(hr, 3, params=constant_model(spec3, 0.4), spec=spec3)
  assert res3["espcn"][0] == pytest.approx(10 * np.log10(255 ** 2 / np.mean((104 - y8) ** 2)), abs=1e-9)
  assert res3["bicubic"] == res["bicubic"]
  # gray image: scored on its own pixels, the RGB model's channel mean
  gray = hr[..., 0]
  g8 = gray[:39, :36].astype(np.float64)[3:-3, 3:-3]
  res_g = evaluate.evaluate_image(gray, 3, params=constant_model(spec3, 0.4), spec=spec3)
  assert res_g["espcn"][0] == pytest.approx(10 * np.log10(255 ** 2 / np.mean((q - g8) ** 2)), abs=1e-9)


def test_bicubic_of_one_image_by_hand():
  hr = np.random.default_rng(1).integers(0, 256, (30, 27), dtype=np.uint8)
  y = hr / 255.0
  sr = metrics.quantize(image_ops.resize_matrix(10, 30, 3) @ (image_ops.resize_matrix(30, 10, 1 / 3) @ y
                        @ image_ops.resize_matrix(27, 9, 1 / 3).T) @ image_ops.resize_matrix(9, 27, 3).T)
  psnr, ssim = evaluate.evaluate_image(hr, 3)["bicubic"]
  assert psnr == pytest.approx(metrics.psnr(sr, hr, 3), abs=1e-4)
  assert ssim == pytest.approx(metrics.ssim(sr, hr, 3), abs=1e-5)


def test_gaussian_degradation_changes_the_scores():
  hr = np.random.default_rng(2).integers(0, 256, (36, 36), dtype=np.uint8)
  bic = evaluate.evaluate_image(hr, 3)["bicubic"]
  gau = evaluate.evaluate_image(hr, 3, degradation="gaussian")["bicubic"]
  assert abs(bic[0] - gau[0]) > 0.01


def _write_folder(folder):
  folder.mkdir()
  rng = np.random.default_rng(3)
  Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / "a.png")
  Image.fromarray(rng.integers(0, 256, (33, 35), dtype=np.uint8)).save(folder / "b.png")
  (folder / "c_not_image.png").write_text("hello")
  Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "d_cut.png")
  data = (folder / "d_cut.png").read_bytes()
  (folder / "d_cut.png").write_bytes(data[: len(data) // 2])
  (folder / "notes.txt").write_text("not listed")


@pytest.mark.parametrize("report", [False, True])
def test_cli_end_to_end_with_bad_inputs(tmp_path, capsys, monkeypatch, report):
  """The same scores, errors and exit code with or without --report; either way each image is scored once."""
  good = tmp_path / "mixed"
  _write_folder(good)
  (tmp_path / "empty").mkdir()
  spec = model.Spec(scale=3, channels=1)
  ckpt = weights.save(tmp_path / "const.safetensors", constant_model(spec, 0.5), spec, {"note": "test"})
  out = tmp_path / "out" / "r.json"
  calls = []
  model_y = validation.model_y
  monkeypatch.setattr(validation, "model_y", lambda *a, **k: calls.append(1) or model_y(*a, **k))
  rc = evaluate.main(["--weights", str(ckpt), "--data", str(good), "--data", str(tmp_path / "missing"),
                      "--data", str(tmp_path / "empty"), "--json", str(out), "--per-image"]
                     + (["--report", str(tmp_path / "rep")] if report else []))
  assert rc == 1
  assert len(calls) == 2  # a.png and b.png, once each
  assert (tmp_path / "rep" / "index.html").is_file() == report
  captured = capsys.readouterr()
  errs = [line for line in captured.err.splitlines() if line.startswith("error:")]
  assert len(errs) == 4, captured.err
  assert any("c_not_image.png" in e and "not an image" in e for e in errs)
  assert any("d_cut.png" in e and "truncated" in e for e in errs)
  assert any(str(tmp_path / "missing") in e for e in errs)
  assert any(str(tmp_path / "empty") in e and "no images" in e for e in errs)
  payload = json.loads(out.read_text())
  assert set(payload) == {"results"}
  rows = payload["results"]
  assert [(r["dataset"], r["method"], r["images"], r["scale"]) for r in rows] == [
      ("mixed", "bicubic", 2, 3), ("mixed", "espcn", 2, 3)]
  for r in rows:
    assert set(r) == {"dataset", "scale", "method", "psnr", "ssim", "images"}
    assert isinstance(r["psnr"], float) and isinstance(r["ssim"], float)
  # the constant 0.5 model scores, on average over a.png and b.png, what the hand computation gives
  expected = []
  for name in ("a.png", "b.png"):
    img = np.asarray(Image.open(good / name))
    y8 = image_ops.luma_uint8(image_ops.modcrop(img, 3)).astype(np.float64)
    expected.append(metrics.psnr(np.full_like(y8, 128.0), y8, 3))
  assert rows[1]["psnr"] == pytest.approx(np.mean(expected), abs=1e-9)
  assert "ESPCN PSNR" in captured.out and "mixed" in captured.out
  per_image = [line.split() for line in captured.out.splitlines() if line.startswith(str(good))]
  assert [(pathlib.Path(r[0]).name, r[1]) for r in per_image] == [
      ("a.png", "bicubic"), ("a.png", "espcn"), ("b.png", "bicubic"), ("b.png", "espcn")]
  assert float(per_image[1][3]) == pytest.approx(expected[0], abs=1e-3)
  assert not list(out.parent.glob("*.tmp"))


def test_cli_weights_problems_exit_2_or_1(tmp_path, capsys):
  spec = model.Spec(scale=3, channels=1)
  ckpt = weights.save(tmp_path / "x3.safetensors", constant_model(spec, 0.5), spec)
  assert evaluate.main(["--weights", str(ckpt), "--scale", "2", "--data", "set5"]) == 2
  assert "x3, not x2" in capsys.readouterr().err
  (tmp_path / "junk.safetensors").write_text("junk")
  assert evaluate.main(["--weights", str(tmp_path / "junk.safetensors"), "--data", "set5"]) == 1  # an input failed
  err = capsys.readouterr().err
  assert "junk.safetensors" in err and len(err.strip().splitlines()) == 1


def test_cli_default_uses_shipped_weights_when_present(tmp_path, monkeypatch, capsys):
  folder = tmp_path / "imgs"
  folder.mkdir()
  Image.fromarray(np.random.default_rng(4).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(folder / "a.png")
  monkeypatch.setattr(weights, "PRETRAINED_DIR", tmp_path / "pretrained")
  out = tmp_path / "r.json"
  assert evaluate.main(["--data", str(folder), "--scale", "2", "--json", str(out)]) == 0
  assert "bicubic baseline only" in capsys.readouterr().err
  assert [r["method"] for r in json.loads(out.read_text())["results"]] == ["bicubic"]
  spec = model.Spec(scale=3, channels=1)
  weights.save(weights.pretrained_path(3, "t91"), constant_model(spec, 0.5), spec)
  assert evaluate.main(["--data", str(folder), "--scale", "3", "--json", str(out)]) == 0
  assert [r["method"] for r in json.loads(out.read_text())["results"]] == ["bicubic", "espcn"]


def test_evaluate_folder_raises_without_error_list(tmp_path):
  folder = tmp_path / "mixed"
  _write_folder(folder)
  with pytest.raises(ValueError, match="c_not_image.png"):
    evaluate.evaluate_folder(folder, 3)
  errors = []
  rows = evaluate.evaluate_folder(folder, 3, errors=errors, dataset="Mixed")
  assert rows[0]["dataset"] == "Mixed" and rows[0]["images"] == 2 and len(errors) == 2


def test_cli_gaussian_degradation_and_its_arguments(tmp_path, capsys):
  folder = tmp_path / "imgs"
  folder.mkdir()
  Image.fromarray(np.random.default_rng(5).integers(0, 256, (30, 30), dtype=np.uint8)).save(folder / "a.png")
  out = tmp_path / "r.json"
  args = ["--bicubic", "--data", str(folder), "--scale", "3", "--json", str(out)]
  assert evaluate.main(args) == 0
  bicubic_lr = json.loads(out.read_text())["results"][0]["psnr"]
  assert evaluate.main(args + ["--degradation", "gaussian", "--sigma", "1.2", "--kernel-size", "5"]) == 0
  gaussian_lr = json.loads(out.read_text())["results"][0]["psnr"]
  assert abs(bicubic_lr - gaussian_lr) > 0.01
  assert "gaussian degradation" in capsys.readouterr().out
  assert evaluate.main(args + ["--degradation", "gaussian", "--kernel-size", "4"]) == 2
  assert "--kernel-size odd" in capsys.readouterr().err
