"""benchmark: timing helper, sizes, the JSON schema, and that the peers really run the same net (same weights)."""

import json

import jax
import numpy as np
import pytest

from espcn_jax import benchmark, inference, model, speed


def _params(spec):
  p = model.init(jax.random.PRNGKey(0), spec)
  return jax.tree_util.tree_map(lambda a: a + 0.05 * jax.random.normal(jax.random.PRNGKey(1), a.shape), p)


def test_time_calls_median_and_warmup(monkeypatch):
  """A clock that only the calls advance (no sleeping: the machine's load cannot change the result)."""
  clock = {"t": 0.0}
  monkeypatch.setattr(speed.time, "perf_counter", lambda: clock["t"])
  durations = iter([5.0, 5.0, 0.1, 0.2, 3.0, 0.5, 0.4])  # two slow warm-up calls, then the 5 timed ones

  def fn():
    clock["t"] += next(durations)

  med, ts = speed.time_calls(fn, iters=5, warmup=2)
  assert ts == pytest.approx([0.1, 0.2, 3.0, 0.5, 0.4], abs=1e-12)  # warm-up calls not timed
  assert med == pytest.approx(0.4, abs=1e-12)  # the median: one slow call does not move it (the mean: 0.84)


def test_resolution_is_the_output_frame():
  """The named resolution is the output frame; where a side is not a multiple of the scale, the LR side is rounded
  up and the net's output cropped, and the printed line says so."""
  assert benchmark.frame_sizes("1080p", 3) == {"frame": (1080, 1920), "lr": (360, 640), "net_out": (1080, 1920)}
  assert benchmark.frame_sizes("4k", 2) == {"frame": (2160, 3840), "lr": (1080, 1920), "net_out": (2160, 3840)}
  for scale, lr in ((2, (360, 640)), (4, (180, 320))):
    sizes = benchmark.frame_sizes("720p", scale)
    assert sizes["lr"] == lr and sizes["net_out"] == sizes["frame"] == (720, 1280)
    assert benchmark.describe_sizes(sizes) == f"LR {lr[1]}x{lr[0]} -> 1280x720"
  x3 = benchmark.frame_sizes("720p", 3)
  assert x3 == {"frame": (720, 1280), "lr": (240, 427), "net_out": (720, 1281)}
  assert benchmark.describe_sizes(x3) == "LR 427x240 -> 1281x720, cropped to 1280x720"
  assert benchmark.frame_sizes("1440p", 3)["lr"] == (480, 854)  # 2562 wide, cropped to 2560
  spec = model.Spec()
  assert inference.network_flops(spec, 360, 640) == model.flops_per_lr_pixel(spec) * 230400
  assert 10.3e9 < inference.network_flops(spec, 360, 640) < 10.5e9


@pytest.mark.parametrize("channels", [1, 3])
def test_torch_peer_is_the_same_net(channels):
  pytest.importorskip("torch")
  spec = model.Spec(scale=3, channels=channels)
  params = _params(spec)
  x = np.random.default_rng(0).random((2, 9, 11, channels), np.float32)
  want = np.asarray(inference.forward(params, x, spec, method="conv"))
  _, _, y = speed.torch_peer(speed.torch_net(params, spec), x, "float32", False, iters=1, warmup=0)
  np.testing.assert_allclose(y, want[0], atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_onnx_peers_are_the_same_net(tmp_path, channels):
  """onnxruntime and OpenCV run the project's own ONNX export (no PyTorch needed) and give our output."""
  pytest.importorskip("onnx")
  spec = model.Spec(scale=2, channels=channels)
  params = _params(spec)
  x = np.random.default_rng(1).random((1, 10, 12, channels), np.float32)
  want = np.asarray(inference.forward(params, x, spec, method="conv"))[0]
  speed.export_onnx(params, spec, tmp_path / "n.onnx")
  pytest.importorskip("onnxruntime")
  _, _, y, _ = speed.onnxruntime_peer(tmp_path / "n.onnx", x, iters=1, warmup=0)
  np.testing.assert_allclose(y, want, atol=1e-5)
  pytest.importorskip("cv2")
  _, _, y, = speed.opencv_peer(tmp_path / "n.onnx", x, iters=1, warmup=0)
  np.testing.assert_allclose(y, want, atol=1e-4)


def test_main_writes_the_json_schema(tmp_path, capsys):
  out = tmp_path / "b.json"
  rc = benchmark.main(["--resolution", "720p", "--scale", "4", "--iters", "1", "--warmup", "0", "--peers", "none",
                       "--psnr-set", "none", "--json", str(out)])
  assert rc == 0
  d = json.loads(out.read_text())
  assert isinstance(d["device"], str) and d["resolution"] == "720p" and d["scale"] == 4
  assert d["lr_size"] == [180, 320] and d["frame_size"] == d["net_output_size"] == [720, 1280]
  names = [r["method"] for r in d["results"]]
  assert names[0].startswith("espcn-jax") and any(n.startswith("bicubic") for n in names)
  for r in d["results"]:
    assert {"method", "dtype", "batch", "ms_per_frame", "fps"} <= set(r)
    assert r["fps"] == pytest.approx(1000 / r["ms_per_frame"], rel=1e-2)
    if jax.default_backend() == "cpu":
      assert r["cpu_ms_per_frame"] > 0
  out = capsys.readouterr().out
  assert "ms/frame" in out and "720p x4: LR 320x180 -> 1280x720 |" in out
  # the header names the kernel `upscale` runs for these weights when it is not the float32 one
  from espcn_jax import auto_precision, weights  # pylint: disable=import-outside-toplevel
  bf16_default = auto_precision.method_for(*weights.pretrained(scale=4, variant="best")) == "native-bf16"
  assert ("and native-bf16 (the default for these weights)" in out) == bf16_default


def test_psnr_drift_on_set5():
  spec = model.Spec(scale=3)
  scores = speed.psnr_drift(_params(spec), spec, ["float32", "bfloat16"], "set5", "conv")
  assert set(scores) == {"float32", "bfloat16"}
  assert 0 < abs(scores["bfloat16"] - scores["float32"]) < 0.5


def test_model_hr_times_the_equal_speed_net(tmp_path, capsys):
  """--model hr: the HR net of baselines.EQUAL_SPEED (XLA, no peers), its FLOPs counted from its params."""
  from espcn_jax import baselines
  out = tmp_path / "hr.json"
  rc = benchmark.main(["--model", "hr", "--scale", "2", "--resolution", "720p", "--iters", "1", "--warmup", "0",
                       "--no-bicubic", "--psnr-set", "none", "--json", str(out)])
  assert rc == 0
  d = json.loads(out.read_text())
  assert d["model"] == "hr" and d["spec"]["kind"] == "hr" and d["spec"]["kernel_sizes"] == [6, 6, 6]
  assert [r["method"] for r in d["results"]] == ["hr[conv]"]
  spec = model.Spec.from_dict(d["spec"])
  mults = baselines.mults_per_output_pixel(model.init(jax.random.PRNGKey(0), spec), scale=2, lr_space=False)
  assert d["gflop_per_frame"] == pytest.approx(2 * mults["total"] * 720 * 1280 / 1e9, abs=1e-3)
  assert "RANDOM HR net" in capsys.readouterr().out


def test_model_usage_errors(capsys):
  assert benchmark.main(["--model", "lr", "--scale", "4", "--peers", "none"]) == 2
  assert "equal-speed nets are defined at scales [2, 3]" in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:
    benchmark.main(["--model", "srcnn", "--weights", "w.safetensors"])
  assert e.value.code == 2
