"""One conformance test: every forward pass of the net (espcn_jax.backends) agrees with `model.apply` on the same real
images (two Set5 pictures, bicubic / 3 as the evaluation makes LR inputs, odd-sized crops), each to its stated
tolerance: the shipped x3 luma weights on their Y, and an RGB net (random weights, nonzero biases: its 27 output
channels must be in our depth-to-space order, which a luma net cannot show) on their RGB."""

import jax
import numpy as np
import pytest

from espcn_jax import backends, benchmark, image_files, image_ops, inference, model, weights


def _rgb_net():
  spec = model.Spec(scale=3, channels=3)
  params = model.init(jax.random.PRNGKey(1), spec)
  rng = np.random.default_rng(1)
  return {k: {"kernel": np.asarray(v["kernel"]), "bias": rng.normal(0, 0.1, v["bias"].shape).astype(np.float32)}
          for k, v in params.items()}, spec


NETS = {"y-shipped": weights.pretrained(3), "rgb": _rgb_net()}


def _lr(name, hw, luma: bool):
  """The picture (its Y, MATLAB BT.601, for a luma net) bicubic / 3, an odd-sized crop: (1, h, w, C) float32."""
  hr = image_files.load_image(image_files.builtin_dataset_dir("set5") / name).astype(np.float32) / 255.0
  hr = np.asarray(image_ops.modcrop(hr, 3))
  if luma:
    y = np.asarray(image_ops.luma(hr))
    hr = y if y.ndim == 3 else y[..., None]
  lr = np.asarray(image_ops.imresize(hr, scale=1 / 3))
  h, w = hw
  return np.ascontiguousarray(lr[5:5 + h, 3:3 + w][None], np.float32)


@pytest.fixture(scope="module")
def cases():
  out = {}
  for net, (params, spec) in NETS.items():
    lrs = [_lr("butterfly.png", (45, 61), spec.channels == 1), _lr("bird.png", (53, 39), spec.channels == 1)]
    out[net] = [(lr, backends.reference(params, lr, spec)) for lr in lrs]
  return out


# torch.compile builds C++ for each input shape on the CPU (~1 min here): run with -m slow.
_SLOW = {n for n in backends.NAMES if n.startswith("torch_compile")}


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n
                                  for n in backends.NAMES])
def test_backend_agrees_with_model_apply(name, net, cases, tmp_path):
  b = backends.get(name)
  params, spec = NETS[net]
  reason = b.unavailable_reason(spec)
  if reason is not None:
    pytest.skip(f"{name}: {reason}")
  fn = b.prepare(params, spec, tmp_path)
  for lr, want in cases[net]:  # two sizes through one prepared backend
    got = np.asarray(fn(lr))
    assert got.shape == want.shape == (1, 3 * lr.shape[1], 3 * lr.shape[2], spec.channels)
    assert got.dtype == np.float32
    err = float(np.abs(got - want).max())
    assert err <= b.tolerance(), f"{name}: max |{name} - model.apply| = {err:.3g} > {b.tolerance():g}"
    if b.dtype != "float32":  # reduced precision really is reduced (not float32 under another name)
      assert err > backends.get("conv").atol, f"{name}: identical to float32 ({err:.3g})"


def test_every_benchmark_row_is_a_backend():
  """`python -m espcn_jax.benchmark` reports ours (--method x --dtype) and its peers: each row is a listed backend."""
  for method in inference.METHODS[1:]:  # but "auto", which is one of them
    for dtype in benchmark.DTYPES:
      amx = backends.get("native-bf16").unavailable_reason() is None
      if method == "native-bf16" or (method == "native" and dtype == "bfloat16" and amx):
        if not amx or dtype == "float16":
          with pytest.raises(ValueError, match="AMX|computes in bfloat16"):
            backends.choose(method, dtype)
        else:  # one kernel, bf16 operands, whatever dtype is asked
          assert backends.choose(method, dtype).name == "native-bf16"
        continue
      if method == "native" and dtype != "float32":
        with pytest.raises(ValueError, match="float32 only"):
          backends.choose(method, dtype)
        continue
      if method == "native" and backends.get("native").unavailable_reason():
        continue
      assert backends.choose(method, dtype).name == backends.name_of(method, dtype)
  for peer in benchmark.PEERS:
    for dtype in benchmark.DTYPES if peer.startswith("torch") else ("float32",):
      assert backends.name_of(peer, dtype) in backends.NAMES


def test_choose_auto_is_the_resolved_method():
  auto = backends.choose("auto")
  assert auto.method == inference.resolve_method("auto")
  assert auto.dtype == ("bfloat16" if auto.method == "native-bf16" else "float32")
  bf16 = inference.resolve_method("auto", "bfloat16")
  assert backends.choose("auto", "bfloat16").name == (bf16 if bf16 == "native-bf16" else
                                                      backends.name_of(bf16, "bfloat16"))
  with pytest.raises(ValueError, match="unknown backend 'fft'"):
    backends.get("fft")


def test_missing_package_is_a_reason_not_an_error(monkeypatch, tmp_path):
  monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
  b = backends.get("onnxruntime")
  assert b.unavailable_reason() == "onnx is not installed"
  with pytest.raises(RuntimeError, match="backend onnxruntime is unavailable here: onnx is not installed"):
    b.prepare(*NETS["y-shipped"], tmp_path)


def test_float32_tolerance_on_gpus_allows_tf32(monkeypatch):
  assert backends.get("torch").tolerance() == 1e-5 and backends.get("conv-bfloat16").tolerance() == 2e-2
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert backends.get("torch").tolerance() == backends.get("conv-float16").atol == 3e-3
  assert backends.get("conv-bfloat16").tolerance() == 2e-2
