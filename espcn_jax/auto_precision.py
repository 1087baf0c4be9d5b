"""Which kernel `--method auto` runs for a given set of weights: native-bf16 (the AMX tile kernel) in float32's place,
only for weights whose PSNR drift against float32 was measured within inference.NATIVE_BF16_DRIFT_BUDGET_DB on Set5
and on Set14.

    method = auto_precision.method_for(params, spec)   # "native-bf16" where that holds and AMX runs, else "auto"

The drift belongs to the weights, not to the kernel alone (the x2 t91 net loses 0.05 dB on Set5, the x2 best net
0.01), so it is measured once per shipped file by `python scripts/measure_bf16_drift.py` into
espcn_jax/pretrained/native_bf16_drift.json, keyed by `weights.fingerprint`. Weights not in it (a model you trained,
an edited file), or in it with a null drift (a shipped file trained on a CPU without AMX, which could not measure
it), run in float32 until measured; `python -m espcn_jax.benchmark --weights FILE` prints their drift.
`upscale` and `benchmark` use this; `evaluate` scores in float32 always (a model's quality, not a kernel's).
"""

from __future__ import annotations

import functools
import json
import pathlib

from espcn_jax import inference, native, weights

DRIFT_FILE = pathlib.Path(weights.PRETRAINED_DIR) / "native_bf16_drift.json"


@functools.lru_cache(maxsize=1)
def measured() -> dict:
  """{fingerprint: {"file", "set5", "set14", ...}} from DRIFT_FILE ({} without it)."""
  if not DRIFT_FILE.is_file():
    return {}
  return {e["fingerprint"]: e for e in json.loads(DRIFT_FILE.read_text())["files"]}


def drift_of(params) -> tuple[float, float] | None:
  """native-bf16 minus float32 (dB) on (Set5, Set14) for these weights, if measured."""
  e = measured().get(weights.fingerprint(params))
  return None if e is None or e["set5"] is None or e["set14"] is None else (e["set5"], e["set14"])


def within_budget(drift) -> bool:
  return drift is not None and None not in drift and max(abs(d) for d in drift) <= inference.NATIVE_BF16_DRIFT_BUDGET_DB


def method_for(params, spec, method: str = "auto", dtype=None) -> str:
  """`method`, except "auto" in float32 becomes "native-bf16" where this CPU runs it for this net and the weights'
  measured drift is within the budget."""
  if method != "auto" or dtype is not None or spec.kind != "espcn":
    return method
  if inference.resolve_method("auto", "bfloat16") != "native-bf16" or not native.bf16_takes(spec):
    return method
  return "native-bf16" if within_budget(drift_of(params)) else method
