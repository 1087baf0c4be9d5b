"""`--method auto` per weights (espcn_jax/auto_precision.py): native-bf16 only for weights measured within the drift
budget, and the record it reads (espcn_jax/pretrained/native_bf16_drift.json) is current."""

import numpy as np
import pytest
from PIL import Image

from espcn_jax import auto_precision, inference, model, native, speed, upscale, weights

needs_amx = pytest.mark.skipif(not native.infer_has_amx(), reason="no AMX-BF16 here (or not the avx512_amx build)")


def test_fingerprint_names_the_weights_not_the_file(tmp_path):
  params, spec = weights.pretrained(3, "best")
  weights.save(tmp_path / "copy.safetensors", params, spec, meta={"note": "another file, the same weights"})
  copy, _, _ = weights.load(tmp_path / "copy.safetensors")
  assert weights.fingerprint(copy) == weights.fingerprint(params)
  bumped = {k: dict(v) for k, v in copy.items()}
  k = np.array(bumped["conv2"]["kernel"])
  k.flat[7] = np.nextafter(k.flat[7], np.float32(1))  # one float32 step in one weight
  bumped["conv2"]["kernel"] = k
  assert weights.fingerprint(bumped) != weights.fingerprint(params)


def test_the_record_covers_exactly_the_shipped_files_it_can():
  """Every entry names a shipped file with the same weights (a retrained file must be measured again), and every
  shipped ESPCN file the bf16 kernel takes has an entry."""
  entries = {e["file"]: e for e in auto_precision.measured().values()}
  want = set()
  for scale, variant in weights.available_pretrained():
    params, spec = weights.pretrained(scale, variant)
    if spec.kind == "espcn" and native.bf16_takes(spec):
      name = weights.pretrained_path(scale, variant).name
      want.add(name)
      assert entries[name]["fingerprint"] == weights.fingerprint(params), f"{name}: re-run measure_bf16_drift.py"
  assert set(entries) == want


@pytest.mark.parametrize("drift, method, dtype, kind, want", [
    ((-0.014, -0.005), "auto", None, "espcn", "native-bf16"),
    ((-0.053, -0.020), "auto", None, "espcn", "auto"),  # over the budget on Set5
    ((0.003, -0.021), "auto", None, "espcn", "auto"),  # over it on Set14
    (None, "auto", None, "espcn", "auto"),  # not measured
    ((-0.014, -0.005), "native", None, "espcn", "native"),  # asked for by name
    ((-0.014, -0.005), "auto", "bfloat16", "espcn", "auto"),  # another dtype: inference's own rule
    ((-0.014, -0.005), "auto", None, "srcnn", "auto"),
])
def test_method_for_follows_the_budget(monkeypatch, drift, method, dtype, kind, want):
  monkeypatch.setattr(auto_precision, "drift_of", lambda params: drift)
  monkeypatch.setattr(auto_precision.inference, "resolve_method", lambda m, d=None: "native-bf16")
  monkeypatch.setattr(auto_precision.native, "bf16_takes", lambda spec: True)
  spec = model.Spec(scale=3, kind=kind, **({} if kind == "espcn" else {"kernel_sizes": (9, 5, 5)}))
  assert auto_precision.method_for({}, spec, method, dtype) == want


def test_without_amx_auto_stays_float32(monkeypatch):
  monkeypatch.setattr(auto_precision, "drift_of", lambda params: (0.0, 0.0))
  monkeypatch.setattr(auto_precision.inference, "resolve_method", lambda m, d=None: "fma")
  assert auto_precision.method_for({}, model.Spec(scale=3)) == "auto"


@needs_amx
def test_recorded_drift_is_what_the_kernel_gives():
  """The entry closest to the budget among those within it, re-measured on Set5."""
  entries = [e for e in auto_precision.measured().values() if auto_precision.within_budget((e["set5"], e["set14"]))]
  assert entries
  e = max(entries, key=lambda e: abs(e["set5"]))
  scale, variant = e["file"][len("espcn_x"):-len(".safetensors")].split("_", 1)
  params, spec = weights.pretrained(int(scale), variant)
  scores = speed.psnr_drift(params, spec, ["native", "native-bf16"], "set5", "native")
  assert scores["native-bf16"] - scores["native"] == pytest.approx(e["set5"], abs=2e-4), e["file"]
  assert abs(e["set5"]) <= inference.NATIVE_BF16_DRIFT_BUDGET_DB


@needs_amx
def test_upscale_runs_native_bf16_for_the_default_weights_and_float32_for_others(tmp_path):
  src = tmp_path / "in.png"
  u8 = np.random.default_rng(0).integers(0, 256, (21, 30), np.uint8)
  Image.fromarray(u8).save(src)
  # x3 best is within the budget, x2 t91 over it
  for scale, variant, method, other in ((3, "best", "native-bf16", "native"), (2, "t91", "native", "native-bf16")):
    out = tmp_path / f"{variant}.png"
    assert upscale.main([str(src), "-o", str(out), "--scale", str(scale), "--variant", variant, "--quiet"]) == 0
    params, spec = weights.pretrained(scale, variant)
    want = inference.Upscaler(params, spec, method=method).image(u8)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), want, err_msg=variant)
    assert not np.array_equal(inference.Upscaler(params, spec, method=other).image(u8), want)  # they differ here


def test_an_entry_with_null_drift_runs_float32(monkeypatch):
  """A shipped file trained on a CPU without AMX is recorded with a null drift: `auto` keeps float32 for it."""
  params = weights.pretrained(3, "best")[0]
  fp = weights.fingerprint(params)
  monkeypatch.setattr(auto_precision, "measured", lambda: {fp: {"file": "x", "fingerprint": fp, "set5": None,
                                                               "set14": None}})
  monkeypatch.setattr(auto_precision.inference, "resolve_method", lambda m, d=None: "native-bf16")
  monkeypatch.setattr(auto_precision.native, "bf16_takes", lambda spec: True)
  assert auto_precision.drift_of(params) is None
  assert not auto_precision.within_budget((None, None)) and not auto_precision.within_budget((0.001, None))
  assert auto_precision.method_for(params, model.Spec(scale=3)) == "auto"
