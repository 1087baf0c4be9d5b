"""baselines: SRCNN and the HR net (bicubic, then convolutions in HR space) against independent references, the
multiply counts of the equal-speed table in REPRODUCTION.md counted from the params, and the kind through the
weight files, the train step's kernel choice and inference."""

import fractions
import pathlib
import re

import jax
import numpy as np
import pytest

from espcn_jax import baselines, image_ops, inference, kernel_choice, model, weights

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRCNN = model.Spec(scale=3, kind="srcnn", features=(64, 32), kernel_sizes=(9, 5, 5), activation="relu")


def _spec(net: str, scale: int) -> model.Spec:
  return model.Spec(scale=scale, kind="espcn" if net == "lr" else "hr", **baselines.EQUAL_SPEED[scale][net])


def _numpy_same_conv(x_HxWxI, k_KhxKwxIxO, b_O):
  """Direct correlation with XLA's SAME padding: (k - 1) // 2 zeros before, k // 2 after (loops; no XLA)."""
  kh, kw, _, o = k_KhxKwxIxO.shape
  h, w, _ = x_HxWxI.shape
  xp = np.pad(x_HxWxI, (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
  out = np.zeros((h, w, o))
  for dy in range(kh):
    for dx in range(kw):
      out += xp[dy:dy + h, dx:dx + w] @ k_KhxKwxIxO[dy, dx]
  return out + b_O


@pytest.mark.parametrize("spec", [SRCNN, _spec("hr", 2), _spec("hr", 3)], ids=["srcnn", "hr_x2_6x6", "hr_x3_4x4"])
def test_apply_is_bicubic_then_same_convs(spec):
  params = model.init(jax.random.PRNGKey(1), spec)
  params = jax.tree_util.tree_map(lambda a: np.asarray(a) + 0.01, params)  # non-zero biases
  lr = np.random.default_rng(0).random((7, 9, 1), np.float32)
  got = np.asarray(model.apply(params, lr[None], spec))[0]
  x = np.asarray(image_ops.imresize(lr, spec.scale), np.float64)  # MATLAB bicubic x r
  act = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh}[spec.activation]
  for i in range(spec.num_layers):
    p = params[f"conv{i + 1}"]
    x = _numpy_same_conv(x, np.asarray(p["kernel"], np.float64), np.asarray(p["bias"], np.float64))
    x = act(x) if i < spec.num_layers - 1 else x
  assert got.shape == (7 * spec.scale, 9 * spec.scale, 1)
  np.testing.assert_allclose(got, x, rtol=1e-6, atol=2e-5)  # outputs ~50 from float32 sums of 9x9x64 terms


def test_identity_srcnn_is_bicubic():
  """1x1 kernels passing the input through (ReLU keeps the positive image): the output is MATLAB bicubic x3."""
  spec = model.Spec(scale=3, kind="srcnn", features=(1, 1), kernel_sizes=(1, 1, 1), activation="relu")
  one = {"kernel": np.ones((1, 1, 1, 1), np.float32), "bias": np.zeros((1,), np.float32)}
  lr = np.random.default_rng(2).uniform(0.3, 0.7, (10, 8)).astype(np.float32)
  got = np.asarray(model.apply({"conv1": one, "conv2": one, "conv3": one}, lr[None, ..., None], spec))[0, ..., 0]
  want = np.asarray(image_ops.imresize(lr, 3))
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_spec_kinds_and_errors():
  assert model.Spec().kind == "espcn" and model.Spec.from_dict({"scale": 3}).kind == "espcn"  # old weight files
  assert model.layer_shapes(SRCNN)["conv3"] == ((5, 5, 32, 1), (1,))  # C outputs, not C r^2
  assert model.layer_shapes(model.Spec())["conv3"] == ((3, 3, 32, 9), (9,))
  with pytest.raises(ValueError, match="kind must be one of"):
    model.Spec(kind="vdsr")
  with pytest.raises(ValueError, match="odd"):
    model.Spec(kind="espcn", features=(8, 8), kernel_sizes=(6, 6, 6))
  assert model.Spec(kind="hr", features=(8, 8), kernel_sizes=(6, 6, 6)).kernel_sizes == (6, 6, 6)


def _equal_speed_table() -> dict:
  """{(net, scale): {"conv1": n, ..., "total": n}} from REPRODUCTION.md's multiply-count table."""
  text = (ROOT / "REPRODUCTION.md").read_text()
  rows = re.findall(r"^\| (LR|HR) x(\d) \|[^|]*\|[^|]*\| ([\d/.]+) \| ([\d/.]+) \| ([\d/.]+) \| \*\*([\d/.]+)\*\* \|$",
                    text, flags=re.M)
  table = {}
  for net, scale, *counts in rows:
    table[(net.lower(), int(scale))] = dict(zip(("conv1", "conv2", "conv3", "total"), map(fractions.Fraction, counts)))
  return table


def test_equal_speed_table_counts_are_the_nets():
  """The multiply counts per output pixel REPRODUCTION.md claims are what the nets' params count."""
  table = _equal_speed_table()
  assert sorted(table) == [("hr", 2), ("hr", 3), ("lr", 2), ("lr", 3)]
  for (net, scale), claimed in table.items():
    params = model.init(jax.random.PRNGKey(0), _spec(net, scale))
    counted = baselines.mults_per_output_pixel(params, scale=scale, lr_space=net == "lr")
    assert counted == claimed, (net, scale)
  for scale in (2, 3):  # the note's construction: the middle layers cost the same per output pixel
    assert table[("lr", scale)]["conv2"] == table[("hr", scale)]["conv2"]


def test_mults_per_output_pixel_of_espcn_and_srcnn():
  espcn = baselines.mults_per_output_pixel(model.init(jax.random.PRNGKey(0), model.Spec()), scale=3, lr_space=True)
  assert espcn == {"conv1": fractions.Fraction(1600, 9), "conv2": 2048, "conv3": 288,
                   "total": fractions.Fraction(1600 + 18432 + 2592, 9)}
  assert espcn["total"] * 9 * 2 == model.flops_per_lr_pixel(model.Spec())
  srcnn = baselines.mults_per_output_pixel(model.init(jax.random.PRNGKey(0), SRCNN), scale=3, lr_space=False)
  assert srcnn["total"] == 81 * 64 + 25 * 64 * 32 + 25 * 32 == 57184
  assert model.flops_per_lr_pixel(SRCNN) == 2 * 57184 * 9


def test_weight_file_records_the_kind(tmp_path):
  params = model.init(jax.random.PRNGKey(0), SRCNN)
  weights.save(tmp_path / "s.safetensors", params, SRCNN)
  got, spec, _ = weights.load(tmp_path / "s.safetensors")
  assert spec == SRCNN
  lr = np.random.default_rng(0).random((1, 6, 5, 1), np.float32)
  np.testing.assert_array_equal(np.asarray(model.apply(got, lr, spec)), np.asarray(model.apply(params, lr, SRCNN)))


def test_native_training_kernels_are_espcn_only():
  native, why = kernel_choice.use_native("auto", backend="cpu", num_devices=1, kind="hr")
  assert not native and "'hr'" in why and "ESPCN only" in why
  with pytest.raises(ValueError, match="'srcnn'"):
    kernel_choice.use_native("on", backend="cpu", num_devices=1, kind="srcnn")


def test_upscaler_runs_the_hr_space_nets_on_whole_pictures():
  spec = _spec("hr", 2)
  params = model.init(jax.random.PRNGKey(3), spec)
  img = np.random.default_rng(0).integers(0, 256, (37, 45), np.uint8)
  up = inference.Upscaler(params, spec, tile=16)  # tile ignored: no exact tiling after a bicubic upsampling
  got = up.image(img)
  want = np.asarray(model.apply(params, img[None, ..., None].astype(np.float32) / 255.0, spec))[0, ..., 0]
  np.testing.assert_array_equal(got, np.round(np.clip(want, 0, 1) * 255).astype(np.uint8))
  with pytest.raises(ValueError, match="ESPCN only"):
    inference.forward(params, img[None, ..., None] / 255.0, spec, method="fma")


def test_only_xla_conv_backends_take_the_hr_space_nets():
  from espcn_jax import backends
  for name in ("native", "native-bf16", "fma", "onnxruntime"):
    assert "ESPCN only" in backends.get(name).unavailable_reason(SRCNN), name
  assert backends.get("conv").unavailable_reason(SRCNN) is None
