"""Measures native-bf16's PSNR drift against float32 for every shipped ESPCN file the AMX kernel takes, into
espcn_jax/pretrained/native_bf16_drift.json (what `--method auto` reads: espcn_jax/auto_precision.py).

    python scripts/measure_bf16_drift.py            # needs a CPU with AMX-BF16 (Intel Sapphire Rapids or later)

Drift = mean Y PSNR (crop_border = scale) of native-bf16 minus that of the float32 native kernel, on the built-in
Set5 and Set14 with bicubic LR inputs (speed.psnr_drift, as `benchmark` prints it). Re-run it whenever a shipped file
or the bf16 kernel changes; tests/test_auto_precision.py re-measures one entry and checks every entry names a
shipped file.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import platform
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from espcn_jax import atomic_io, auto_precision, inference, native, speed, weights  # noqa: E402


def main() -> int:
  if not native.infer_has_amx():
    print("error: native-bf16 does not run here (needs AMX-BF16 and the avx512_amx kernel)", file=sys.stderr)
    return 1
  files = []
  for scale, variant in weights.available_pretrained():
    params, spec = weights.pretrained(scale, variant)
    if spec.kind != "espcn" or not native.bf16_takes(spec):
      continue
    drift = {}
    for dataset in ("set5", "set14"):
      scores = speed.psnr_drift(params, spec, ["native", "native-bf16"], dataset, "native")
      drift[dataset] = round(scores["native-bf16"] - scores["native"], 4)
    name = weights.pretrained_path(scale, variant).name
    ok = auto_precision.within_budget((drift["set5"], drift["set14"]))
    print(f"{name}: Set5 {drift['set5']:+.4f} dB, Set14 {drift['set14']:+.4f} dB"
          f" ({'within' if ok else 'over'} the {inference.NATIVE_BF16_DRIFT_BUDGET_DB} dB budget)", flush=True)
    files.append({"file": name, "fingerprint": weights.fingerprint(params), **drift})
  commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()
  atomic_io.write_text(auto_precision.DRIFT_FILE, json.dumps({
      "what": "PSNR drift (dB, Y, crop_border = scale, bicubic LR) of native-bf16 against float32 native per shipped "
              "file; `--method auto` runs native-bf16 for a file within budget_db on both sets",
      "command": "python scripts/measure_bf16_drift.py", "date": datetime.date.today().isoformat(),
      "commit": commit, "cpu": platform.processor() or platform.machine(),
      "budget_db": inference.NATIVE_BF16_DRIFT_BUDGET_DB, "files": files}, indent=1) + "\n")
  print(f"wrote {auto_precision.DRIFT_FILE}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
