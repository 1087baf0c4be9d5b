"""Quality against speed, like the paper's Figure 1: Set5 x3 PSNR against ms per 1080p frame on this machine, for
bicubic, SRCNN, the equal-speed LR / HR nets and ESPCN (each shipped x3 weight file), from measured JSON only.

    python scripts/plot_quality_speed.py [--dir docs/bench/quality_speed] [--out docs/curves/quality_speed.png]

Reads DIR/*.bench.json (`python -m espcn_jax.benchmark --resolution 1080p --scale 3 --json`) and DIR/*.eval.json
(`python -m espcn_jax.evaluate --data set5 --scale 3 --json`), and the equal-speed runs' test results
(docs/runs/equal_speed_{lr,hr}_x3_seed*.test_results.json: the mean over seeds); DIR/README.md lists the commands.
Writes the points as DIR/points.json and the plot (atomically). A point whose files are missing is left out and
named on stderr.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from espcn_jax import atomic_io  # noqa: E402  (the one atomic write; the checkout's copy)

# label -> (eval file or "runs:NET" for the equal-speed runs, method row of the eval file, bench file, bench row
# prefix): the row prefix picks the timing row ("bicubic", "espcn-jax[native", "espcn-jax[conv", "srcnn[", ...)
POINTS = {
    "bicubic": ("espcn_x3_t91.eval.json", "bicubic", "espcn.bench.json", "bicubic"),
    "SRCNN 9-5-5, T91 (ours, XLA)": ("srcnn_x3_t91.eval.json", "espcn", "srcnn.bench.json", "srcnn["),
    "HR net x3, 4x4 n=8 (XLA, 6k steps)": ("runs:hr", None, "hr_x3.bench.json", "hr["),
    "LR net x3, 3x3 n=32 (XLA, 6k steps)": ("runs:lr", None, "lr_x3.bench.json", "lr["),
    "ESPCN t91 tanh (XLA)": ("espcn_x3_t91.eval.json", "espcn", "espcn.bench.json", "espcn-jax[conv"),
    "ESPCN t91 tanh (native)": ("espcn_x3_t91.eval.json", "espcn", "espcn.bench.json", "espcn-jax[native"),
    "ESPCN t91 relu (native)": ("espcn_x3_t91_relu.eval.json", "espcn", "espcn.bench.json", "espcn-jax[native"),
    "ESPCN t91+bsd200 relu (native)": ("espcn_x3_t91_bsd200.eval.json", "espcn", "espcn.bench.json",
                                       "espcn-jax[native"),
}


def set5_psnr(folder: pathlib.Path, source: str, method: str | None) -> float:
  if source.startswith("runs:"):
    files = sorted((ROOT / "docs" / "runs").glob(f"equal_speed_{source[5:]}_x3_seed*.test_results.json"))
    if not files:
      raise FileNotFoundError(f"docs/runs/equal_speed_{source[5:]}_x3_seed*.test_results.json")
    return statistics.mean(json.loads(f.read_text())["test"]["set5"]["psnr"] for f in files)
  rows = json.loads((folder / source).read_text())["results"]
  return next(r["psnr"] for r in rows if r["dataset"].lower() == "set5" and r["method"] == method and r["scale"] == 3)


def ms_per_frame(folder: pathlib.Path, bench: str, prefix: str) -> tuple[float, str]:
  d = json.loads((folder / bench).read_text())
  if d["resolution"] != "1080p" or d["scale"] != 3:
    raise ValueError(f"{bench}: measured at {d['resolution']} x{d['scale']}, not 1080p x3")
  row = next(r for r in d["results"] if r["method"].startswith(prefix) and r["batch"] == 1 and r["dtype"] == "float32")
  return row["ms_per_frame"], d["device"]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--dir", default=str(ROOT / "docs" / "bench" / "quality_speed"))
  p.add_argument("--out", default=str(ROOT / "docs" / "curves" / "quality_speed.png"))
  args = p.parse_args(argv)
  folder = pathlib.Path(args.dir)
  points, device = [], None
  for label, (source, method, bench, prefix) in POINTS.items():
    try:
      psnr = set5_psnr(folder, source, method)
      ms, device = ms_per_frame(folder, bench, prefix)
    except (OSError, StopIteration, KeyError, ValueError) as e:
      print(f"left out: {label} ({type(e).__name__}: {e})", file=sys.stderr)
      continue
    points.append({"label": label, "set5_x3_psnr": round(psnr, 3), "ms_per_1080p_frame": round(ms, 2)})
  if not points:
    print(f"error: {folder}: no point has both its files", file=sys.stderr)
    return 1
  atomic_io.write_text(folder / "points.json", json.dumps({"device": device, "points": points}, indent=1) + "\n")
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(10, 4.6))
  markers = "osD^vP*Xh<>"
  for i, pt in enumerate(points):  # a legend, not labels at the points: the ESPCN weights share one speed
    ax.scatter(pt["ms_per_1080p_frame"], pt["set5_x3_psnr"], s=36, marker=markers[i % len(markers)], alpha=0.8,
               label=f"{pt['label']}: {pt['set5_x3_psnr']:.2f} dB, {pt['ms_per_1080p_frame']:.0f} ms")
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  ax.set_xscale("log")
  ax.set_xlabel("ms per 1080p frame (x3: LR 640x360, luma; batch 1, float32)")
  ax.set_ylabel("Set5 x3 PSNR (dB, Y)")
  ax.set_title(f"Quality against speed on {device}", fontsize=8)
  ax.grid(True, which="both", alpha=0.3)
  fig.tight_layout()
  out = pathlib.Path(args.out)
  with atomic_io.replacing(out) as tmp:
    fig.savefig(tmp, dpi=110, format="png")
  print(f"{len(points)} points -> {out}, {folder / 'points.json'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
