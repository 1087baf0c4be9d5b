"""Standalone weight files: safetensors (no code runs on load) holding the params and the architecture `Spec`.

    save(path, params, spec, meta={"dataset": "T91", ...})
    params, spec, meta = load(path)
    params, spec = pretrained(scale=3, variant="t91")   # files shipped in espcn_jax/pretrained/
    params, spec = pretrained(scale=3)                  # the default: "best" where it ships (DEFAULT_VARIANT)
"""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import safetensors.numpy

from espcn_jax import atomic_io, model

PRETRAINED_DIR = pathlib.Path(__file__).parent / "pretrained"


class WeightsError(ValueError):
  """A weight file that cannot be used; the message names the file and the problem."""


def _flatten(params) -> dict[str, np.ndarray]:
  return {f"{layer}.{name}": np.asarray(v, np.float32) for layer, d in params.items() for name, v in d.items()}


def fingerprint(params) -> str:
  """sha256 of the weights themselves (float32 bytes, in name order): the same for a set of weights whatever file it
  was loaded from (the file's own bytes also hold metadata)."""
  h = hashlib.sha256()
  for name, a in sorted(_flatten(params).items()):
    h.update(f"{name}{a.shape};".encode())
    h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()


def save(path, params, spec: model.Spec, meta: dict | None = None) -> pathlib.Path:
  """Writes atomically (espcn_jax.atomic_io)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  metadata = {"format": "espcn-jax/1", "spec": json.dumps(spec.to_dict()), "meta": json.dumps(meta or {})}
  try:
    with atomic_io.replacing(path) as tmp:
      safetensors.numpy.save_file(_flatten(params), tmp, metadata=metadata)
  except Exception as e:  # a full disk: OSError or safetensors' own error type
    raise WeightsError(f"{path}: cannot write ({type(e).__name__}: {e})".splitlines()[0]) from e
  return path


def load(path):
  """Returns (params, spec, meta). Raises WeightsError with a one-line message on any problem."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise WeightsError(f"{path}: no such weight file")
  try:
    with safetensors.safe_open(str(path), framework="np") as f:
      metadata = f.metadata() or {}
      tensors = {k: f.get_tensor(k) for k in f.keys()}
  except Exception as e:  # safetensors raises several types for corrupt files
    raise WeightsError(f"{path}: not a readable safetensors weight file ({type(e).__name__}: {e})".splitlines()[0]) from e
  if metadata.get("format") != "espcn-jax/1" or "spec" not in metadata:
    raise WeightsError(f"{path}: not an espcn-jax weight file (missing format/spec metadata)")
  try:
    spec = model.Spec.from_dict(json.loads(metadata["spec"]))
  except (ValueError, TypeError, AttributeError) as e:
    raise WeightsError(f"{path}: bad architecture metadata ({type(e).__name__}: {e})".splitlines()[0]) from e
  try:
    meta = json.loads(metadata.get("meta", "{}"))
    if not isinstance(meta, dict):
      raise ValueError(f"a JSON {type(meta).__name__}, not an object")
  except ValueError as e:
    raise WeightsError(f"{path}: bad 'meta' metadata ({e})".splitlines()[0]) from e
  params: dict = {}
  for key, v in tensors.items():
    layer, dot, name = key.partition(".")
    if not (dot and layer and name):
      raise WeightsError(f"{path}: malformed tensor name {key!r} (expected LAYER.kernel or LAYER.bias)")
    params.setdefault(layer, {})[name] = v
  exp_shapes = {f"{layer}.{name}": shape for layer, (ks, bs) in model.layer_shapes(spec).items()
                for name, shape in (("kernel", ks), ("bias", bs))}
  got_shapes = {k: tuple(v.shape) for k, v in _flatten(params).items()}
  if exp_shapes != got_shapes:
    raise WeightsError(f"{path}: tensors {got_shapes} do not match the architecture {spec}")
  for key, v in _flatten(params).items():
    bad = int(np.size(v) - np.count_nonzero(np.isfinite(v)))
    if bad:
      raise WeightsError(f"{path}: tensor {key} holds {bad} NaN/inf value(s); these weights are unusable")
  return params, spec, meta


# The shipped weights used when no variant is named: the best ESPCN of each scale (configs/best_x*.py); "t91" (the
# paper's Table 1 reproduction) for a scale without one.
DEFAULT_VARIANT, FALLBACK_VARIANT = "best", "t91"


def default_variant(scale: int) -> str:
  """The variant `pretrained(scale)` loads: DEFAULT_VARIANT where it ships for `scale`, else FALLBACK_VARIANT."""
  best = PRETRAINED_DIR / f"espcn_x{scale}_{DEFAULT_VARIANT}.safetensors"
  return DEFAULT_VARIANT if best.is_file() else FALLBACK_VARIANT


def resolve_variant(scale: int, variant: str | None) -> str:
  """None or DEFAULT_VARIANT ("best") -> `default_variant(scale)`; another name as it is."""
  return default_variant(scale) if variant in (None, DEFAULT_VARIANT) else variant


def pretrained_path(scale: int = 3, variant: str | None = None) -> pathlib.Path:
  """The shipped file of `variant` (None or "best": `default_variant(scale)`)."""
  return PRETRAINED_DIR / f"espcn_x{scale}_{resolve_variant(scale, variant)}.safetensors"


def available_pretrained() -> list[tuple[int, str]]:
  out = []
  for p in sorted(PRETRAINED_DIR.glob("espcn_x*_*.safetensors")):
    scale, variant = p.stem[len("espcn_x"):].split("_", 1)
    out.append((int(scale), variant))
  return out


def pretrained(scale: int = 3, variant: str | None = None):
  """Shipped weights (None or "best": `default_variant(scale)`): returns (params, spec). Raises WeightsError naming what is
  available if absent."""
  variant = resolve_variant(scale, variant)
  path = pretrained_path(scale, variant)
  if not path.is_file():
    raise WeightsError(f"{path}: no shipped weights for scale {scale}, variant {variant!r}; "
                       f"available: {available_pretrained() or 'none yet'}")
  params, spec, _ = load(path)
  return params, spec
