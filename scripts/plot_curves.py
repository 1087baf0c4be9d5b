"""Training curves (Set5 PSNR vs wall time and vs epoch) of the shipped models, from their metrics.jsonl files.

    python scripts/plot_curves.py                       # docs/runs/*.metrics.jsonl -> docs/curves/*.png
    python scripts/plot_curves.py --runs WORKDIR/metrics.jsonl --out /tmp/curves
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from espcn_jax import atomic_io  # noqa: E402  (the one atomic write; the checkout's copy)
# The paper's Set5 numbers for each run (Table 1 for x3; x2/x4 have no T91 ESPCN entry in the paper); a run named
# NAME_seed<k> takes NAME's.
PAPER_SET5 = {"x3_t91_tanh": 32.55, "x3_t91_relu": 32.39, "x3_t91_bsd200": 33.00, "x3_t91_cpu": 32.55,
              "x3_t91_cpu_bf16": 32.55, "default_cmd_amx": 32.55, "default_cmd_amx_5min": 32.55}


def paper_set5(name: str) -> float | None:
  return PAPER_SET5.get(name.split("_seed")[0])


def load(path: pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def selection(path: pathlib.Path) -> tuple[str, dict]:
  """The validation set of a run (from its test_results.json beside the metrics: "holdout" in the CPU recipes,
  else Set5 as in Table 1's runs) and its test scores ({} when none)."""
  name = path.name.split(".")[0]
  results = path.with_name(f"{name}.test_results.json" if path.name != "metrics.jsonl" else "test_results.json")
  if not results.is_file():
    return "Set5", {}
  d = json.loads(results.read_text())
  val = {"holdout": "held-out T91 images", "set5": "Set5"}.get(d.get("val", "set5"), d.get("val", "Set5"))
  return val, {k: v["psnr"] for k, v in d.get("test", {}).items()}


def plot(name: str, rows: list[dict], out: pathlib.Path, val: str = "Set5", test: dict | None = None) -> pathlib.Path:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  rows = [r for r in rows if "val_psnr" in r]
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
  steps = rows[0]["step"] // max(rows[0]["epoch"], 1)
  for ax, key, label in ((axes[0], "elapsed_s", "wall time (min)"), (axes[1], "epoch", f"epoch ({steps} steps)")):
    xs = [r[key] / 60 if key == "elapsed_s" else r[key] for r in rows]
    ax.plot(xs, [r["val_psnr"] for r in rows], label="ESPCN (ours)")
    ax.axhline(rows[0]["val_bicubic_psnr"], color="gray", ls=":", label="bicubic")
    if paper_set5(name) is not None and val == "Set5":
      ax.axhline(paper_set5(name), color="red", ls="--", label="paper")
    ax.set_xlabel(label)
    ax.grid(alpha=0.3)
  best = max(r["val_psnr"] for r in rows)
  lo = rows[0]["val_bicubic_psnr"] - 0.5
  axes[0].set_ylim(lo, max(best, (paper_set5(name) if val == "Set5" else None) or best) + 0.3)
  axes[0].set_ylabel(f"{val} PSNR (dB, Y)")
  axes[1].legend(loc="lower right")
  tested = ", ".join(f"{k.capitalize()} {v:.3f}" for k, v in (test or {}).items())
  fig.suptitle(f"{name}: best {best:.3f} dB on {val}" + (f"; test with those weights: {tested} dB" if tested else ""))
  fig.tight_layout()
  out.mkdir(parents=True, exist_ok=True)
  target = out / f"{name}.png"
  with atomic_io.replacing(target) as tmp:
    fig.savefig(tmp, dpi=80, format="png")
  plt.close(fig)
  return target


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--runs", nargs="*", type=pathlib.Path, default=sorted((ROOT / "docs" / "runs").glob("*.metrics.jsonl")))
  p.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "curves")
  args = p.parse_args(argv)
  for path in args.runs:
    name = path.name.split(".")[0] if path.name != "metrics.jsonl" else path.parent.name
    val, test = selection(path)
    print(plot(name, load(path), args.out, val, test))
  return 0


if __name__ == "__main__":
  sys.exit(main())
