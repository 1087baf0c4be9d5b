"""Standalone weight files: round trip, no-code format, clear errors, shipped weights."""

import jax
import numpy as np
import pytest

from espcn_jax import model, weights


def test_save_load_roundtrip(tmp_path):
  spec = model.Spec(scale=4, channels=3, activation="relu")
  params = model.init(jax.random.PRNGKey(0), spec)
  path = weights.save(tmp_path / "sub" / "w.safetensors", params, spec, {"dataset": "T91", "psnr": 32.1})
  got, got_spec, meta = weights.load(path)
  assert got_spec == spec and meta == {"dataset": "T91", "psnr": 32.1}
  for layer in params:
    for name in params[layer]:
      np.testing.assert_array_equal(got[layer][name], params[layer][name])
  assert [p.name for p in path.parent.iterdir()] == ["w.safetensors"]  # no temp file left behind


def test_file_is_safetensors_not_pickle(tmp_path):
  spec = model.Spec()
  path = weights.save(tmp_path / "w.safetensors", model.init(jax.random.PRNGKey(0), spec), spec)
  head = path.read_bytes()[:16]
  assert head[8:9] == b"{"  # 8-byte little-endian header length, then JSON: no pickle opcodes
  assert path.stat().st_size < 120_000


def test_load_errors_name_the_file(tmp_path):
  with pytest.raises(weights.WeightsError, match="missing.safetensors: no such weight file"):
    weights.load(tmp_path / "missing.safetensors")
  junk = tmp_path / "junk.safetensors"
  junk.write_bytes(b"not a weight file at all")
  with pytest.raises(weights.WeightsError, match="junk.safetensors: not a readable"):
    weights.load(junk)
  spec = model.Spec(scale=3)
  params = model.init(jax.random.PRNGKey(0), spec)
  params["conv3"]["kernel"] = params["conv3"]["kernel"][..., :4]
  bad = weights.save(tmp_path / "bad.safetensors", params, spec)
  with pytest.raises(weights.WeightsError, match="bad.safetensors: tensors"):
    weights.load(bad)


def test_missing_pretrained_variant_is_a_clear_error():
  with pytest.raises(weights.WeightsError, match="no shipped weights for scale 7"):
    weights.pretrained(scale=7, variant="nope")
