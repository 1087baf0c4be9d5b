"""benchmark: timing helper, sizes, the JSON schema, and that the peers really run the same net (same weights)."""

import json
import time

import jax
import numpy as np
import pytest

from espcn_jax import benchmark, inference, model


def _params(spec):
  p = model.init(jax.random.PRNGKey(0), spec)
  return jax.tree_util.tree_map(lambda a: a + 0.05 * jax.random.normal(jax.random.PRNGKey(1), a.shape), p)


def test_time_calls_median_and_warmup():
  calls = []

  def fn():
    calls.append(1)
    time.sleep(0.01 if len(calls) > 2 else 0.2)  # two slow warm-up calls are not timed

  med, ts = benchmark.time_calls(fn, iters=5, warmup=2)
  assert len(calls) == 7 and len(ts) == 5
  assert 0.009 < med < 0.1


def test_resolution_is_the_output_frame():
  assert inference.lr_size(*benchmark.RESOLUTIONS["1080p"], 3) == (360, 640)
  assert inference.lr_size(*benchmark.RESOLUTIONS["4k"], 2) == (1080, 1920)
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
  _, _, y = benchmark.torch_peer(benchmark.torch_net(params, spec), x, "float32", False, iters=1, warmup=0)
  np.testing.assert_allclose(y, want[0], atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_onnx_peers_are_the_same_net(tmp_path, channels):
  """onnxruntime and OpenCV run the project's own ONNX export (no PyTorch needed) and give our output."""
  pytest.importorskip("onnx")
  spec = model.Spec(scale=2, channels=channels)
  params = _params(spec)
  x = np.random.default_rng(1).random((1, 10, 12, channels), np.float32)
  want = np.asarray(inference.forward(params, x, spec, method="conv"))[0]
  benchmark.export_onnx(params, spec, tmp_path / "n.onnx")
  pytest.importorskip("onnxruntime")
  _, _, y, _ = benchmark.onnxruntime_peer(tmp_path / "n.onnx", x, iters=1, warmup=0)
  np.testing.assert_allclose(y, want, atol=1e-5)
  pytest.importorskip("cv2")
  _, _, y, = benchmark.opencv_peer(tmp_path / "n.onnx", x, iters=1, warmup=0)
  np.testing.assert_allclose(y, want, atol=1e-4)


def test_main_writes_the_json_schema(tmp_path, capsys):
  out = tmp_path / "b.json"
  rc = benchmark.main(["--resolution", "720p", "--scale", "4", "--iters", "1", "--warmup", "0", "--peers", "none",
                       "--psnr-set", "none", "--json", str(out)])
  assert rc == 0
  d = json.loads(out.read_text())
  assert isinstance(d["device"], str) and d["resolution"] == "720p" and d["scale"] == 4
  assert d["lr_size"] == [180, 320]
  names = [r["method"] for r in d["results"]]
  assert names[0].startswith("espcn-jax") and any(n.startswith("bicubic") for n in names)
  for r in d["results"]:
    assert {"method", "dtype", "batch", "ms_per_frame", "fps"} <= set(r)
    assert r["fps"] == pytest.approx(1000 / r["ms_per_frame"], rel=1e-2)
    if jax.default_backend() == "cpu":
      assert r["cpu_ms_per_frame"] > 0
  assert "ms/frame" in capsys.readouterr().out


def test_psnr_drift_on_set5():
  spec = model.Spec(scale=3)
  scores = benchmark.psnr_drift(_params(spec), spec, ["float32", "bfloat16"], "set5", "conv")
  assert set(scores) == {"float32", "bfloat16"}
  assert 0 < abs(scores["bfloat16"] - scores["float32"]) < 0.5
