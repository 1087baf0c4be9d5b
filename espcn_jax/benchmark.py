"""Speed of ESPCN inference on this machine, side by side with bicubic and the same net in other frameworks.

    python -m espcn_jax.benchmark --resolution 1080p --scale 3 --batch 1 8 --dtype float32 bfloat16 --json b.json

The resolution is the OUTPUT frame (1080p at x3: a 640x360 LR input, one luma channel); where a side is not a
multiple of the scale the LR side is rounded up and the output cropped (720p at x3: 427x240 -> 1281x720, cropped to
1280x720; `frame_sizes`). For each (dtype, batch):
compile time, ms/frame and frames/s (median of --iters timed calls after --warmup, block_until_ready), achieved
GFLOP/s (`model.flops_per_lr_pixel`) and, where the device's peak is known, the fraction of it. In the same run:
our JAX bicubic `imresize`, and the same net with the same weights in PyTorch (channels_last, eager and
torch.compile), OpenCV dnn and onnxruntime (the file `python -m espcn_jax.export` writes) when installed, each
reported as a ratio to ours. On a CPU with AMX-BF16 the native bf16 kernel ("native-bf16") gets a row of its own
(and the peers' ratios to it). Then the PSNR drift against float32 of every reduced-precision path timed (bfloat16 /
float16 rows, native-bf16) on Set5 and Set14 (Y, crop_border = scale), and whether `auto` uses it.

`--model` times the nets ESPCN is compared with instead (espcn_jax/baselines.py): `srcnn` (the shipped
espcn_x{scale}_srcnn_{variant} weights, else random ones), and the equal-speed pair `lr` / `hr` (random weights of
`baselines.EQUAL_SPEED`, speed only); they run through XLA ("conv"), without the peers.

    python -m espcn_jax.benchmark --model srcnn --peers none --json srcnn.json

Imports only jax, numpy, pillow and espcn_jax (no TensorFlow), so it runs on bare accelerator boxes.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys
import tempfile

import numpy as np

from espcn_jax import atomic_io, cli, speed

RESOLUTIONS = {"720p": (720, 1280), "1080p": (1080, 1920), "1440p": (1440, 2560), "4k": (2160, 3840)}
DTYPES = cli.DTYPES
PEERS = ("torch", "torch_compile", "opencv", "onnxruntime")  # each one in espcn_jax.backends (tests/test_backends.py)
MODELS = ("espcn", "srcnn", "lr", "hr")  # --model: ESPCN, SRCNN, the equal-speed LR / HR nets



def frame_sizes(resolution: str, scale: int) -> dict:
  """The LR input for an output frame of `resolution` at `scale`: each side ceil(frame / scale), so that the net's
  output covers the frame; a side that is not a multiple of the scale comes out larger and is cropped to the frame
  (720p at x3: LR 427x240 -> 1281x720 -> 1280x720). {"frame", "lr", "net_out"}: (height, width) each."""
  out_h, out_w = RESOLUTIONS[resolution]
  lr_h, lr_w = -(-out_h // scale), -(-out_w // scale)
  return {"frame": (out_h, out_w), "lr": (lr_h, lr_w), "net_out": (lr_h * scale, lr_w * scale)}


def describe_sizes(sizes: dict) -> str:
  """"LR 640x360 -> 1920x1080", or with the crop: "LR 427x240 -> 1281x720, cropped to 1280x720"."""
  (lr_h, lr_w), (net_h, net_w), (out_h, out_w) = sizes["lr"], sizes["net_out"], sizes["frame"]
  crop = f", cropped to {out_w}x{out_h}" if (net_h, net_w) != (out_h, out_w) else ""
  return f"LR {lr_w}x{lr_h} -> {net_w}x{net_h}{crop}"


def _parse(argv):
  p = cli.parser("python -m espcn_jax.benchmark", __doc__.split("\n\n")[0])
  p.add_argument("--resolution", choices=sorted(RESOLUTIONS), default="1080p", help="output frame size")
  p.add_argument("--scale", type=int, default=3, help="upscaling factor (of the shipped weights)")
  p.add_argument("--batch", type=cli.positive_int, metavar="N", nargs="+", default=[1],
                 help="frames per call of the net (several: one row each)")
  p.add_argument("--dtype", choices=cli.DTYPES, nargs="+", default=["float32"],
                 help="compute dtype of our net (several: one row each)")
  p.add_argument("--method", nargs="+", default=["auto"],
                 help="our kernels: auto, conv, fma or native (espcn_jax.backends lists them); the first is the one "
                      "the peers are compared with, the others get rows of their own (e.g. --method native conv)")
  p.add_argument("--iters", type=cli.positive_int, default=10, help="timed calls per measurement")
  p.add_argument("--warmup", type=int, default=2, help="untimed calls after compiling")
  cli.add_weights(p)  # no weight file and no shipped ones: random weights (fine for speed; said in the output)
  p.add_argument("--peers", default=",".join(PEERS),
                 help=f"comma list of peers to run ({', '.join(PEERS)}), or 'none'")
  p.add_argument("--no-bicubic", action="store_true", help="skip timing our bicubic imresize")
  p.add_argument("--psnr-set", default="set5,set14",
                 help="built-in datasets (comma list) for the precision drift, or 'none'")
  p.add_argument("--json", default=None, help="write the results here (atomically)")
  p.add_argument("--model", choices=MODELS, default=None,
                 help="the net without --weights: espcn (default), srcnn (shipped srcnn_VARIANT or random), lr / hr "
                      "(the equal-speed pair, random weights); --weights brings its own")
  args = p.parse_args(argv)
  if args.model is not None and args.weights:
    p.error("--model and --weights: give one (a weight file holds its own net)")
  if args.warmup < 0:
    p.error(f"--warmup must be >= 0, got {args.warmup}")
  if args.json and pathlib.Path(args.json).is_dir():
    p.error(f"--json {args.json}: is a folder; give a file name")
  if args.json and args.weights and atomic_io.same_file(args.json, args.weights):
    p.error(f"--json {args.json}: is the --weights file; refusing to write over it")
  return args


def load_params(weight_file, scale, variant: str | None = None, net: str | None = None):
  """(params, spec, note) from a weight file, the shipped weights of `net` (MODELS; None: espcn), or random ones.
  ValueError for an equal-speed net at a scale it is not defined for."""
  import jax  # pylint: disable=import-outside-toplevel
  from espcn_jax import baselines, model, weights  # pylint: disable=import-outside-toplevel
  if weight_file:
    params, spec, _ = weights.load(weight_file)
    return params, spec, f"weights: {weight_file}"
  net = net or "espcn"
  if net in ("lr", "hr"):
    if scale not in baselines.EQUAL_SPEED:
      raise ValueError(f"--model {net}: the equal-speed nets are defined at scales {sorted(baselines.EQUAL_SPEED)}")
    spec = model.Spec(scale=scale, kind="espcn" if net == "lr" else "hr", **baselines.EQUAL_SPEED[scale][net])
    return model.init(jax.random.PRNGKey(0), spec), spec, f"weights: RANDOM {net.upper()} net (speed only)"
  if net == "srcnn":
    variant = f"srcnn_{'t91' if variant in (None, weights.DEFAULT_VARIANT) else variant}"
  variant = weights.resolve_variant(scale, variant)
  try:
    params, spec = weights.pretrained(scale, variant)
    return params, spec, f"weights: shipped x{scale} {variant}"
  except weights.WeightsError:
    spec = model.Spec(scale=scale) if net == "espcn" else model.Spec(
        scale=scale, kind="srcnn", features=(64, 32), kernel_sizes=(9, 5, 5), activation="relu")
    return model.init(jax.random.PRNGKey(0), spec), spec, "weights: RANDOM (no shipped x%d; speed only)" % scale


class _Table:
  """The rows of one run: printed as they come, kept for the JSON."""

  def __init__(self, flops: float, kind: str):
    self.flops, self.kind, self.rows, self.ours_s = flops, kind, [], {}
    self.ours_rows = {}  # (name dtype, batch) -> seconds per call, for the ratios of every peer to each of ours
    self.reduced = {}  # the reduced-precision paths timed (dtype names, "native-bf16"), in order

  def add(self, name, dtype, batch, sec_per_call, compile_s, **extra):
    ms = 1e3 * sec_per_call / batch
    row = {"method": name, "dtype": dtype, "batch": batch, "ms_per_frame": round(ms, 3),
           "fps": round(1e3 / ms, 2), "compile_s": round(compile_s, 2),
           "gflops_per_s": round(self.flops / (ms * 1e-3) / 1e9, 1)}
    if self.kind == "cpu" and speed.CPU_TIMES:
      row["cpu_ms_per_frame"] = round(1e3 * statistics.median(speed.CPU_TIMES) / batch, 3)
    row.update(extra)
    if "vs_ours" in row and not name.startswith("espcn-jax"):  # a peer: its time over each of ours
      row["vs"] = {k: round(sec_per_call / v, 3) for (k, b), v in self.ours_rows.items() if b == batch}
    self.rows.append(row)
    ratio = f" | ours/this speed {row['vs_ours']:.2f}x" if "vs_ours" in row else ""
    if len(row.get("vs", {})) > 1:  # a peer, and more than one of ours: its time over each
      ratio = " | this/ours: " + ", ".join(f"{k.split()[0][10:-1]} {v:.2f}x" for k, v in row["vs"].items())
    peak = f" | {100 * row['frac_peak']:.1f}% of peak" if row.get("frac_peak") is not None else ""
    cpu = f" ({row['cpu_ms_per_frame']:.0f} CPU-ms)" if "cpu_ms_per_frame" in row else ""
    print(f"{name:>22} {dtype:>8} b{batch:<3} {ms:9.2f} ms/frame{cpu} {row['fps']:9.1f} fps  compile {compile_s:6.2f} s "
          f"{row['gflops_per_s']:8.1f} GFLOP/s{peak}{ratio}", flush=True)

  def vs_ours(self, sec, dtype, batch, base_dtype):
    return round(sec / self.ours_s.get((dtype, batch), self.ours_s[(base_dtype, batch)]), 3)


def _say(notes: list, msg: str) -> None:
  notes.append(msg)
  print("  (skipped) " + msg, flush=True)


def _run_ours(args, params, spec, lr_hw, table: _Table) -> None:
  """Our kernels (--method, the first is the reference of the ratios) for every --batch and --dtype."""
  from espcn_jax import backends  # pylint: disable=import-outside-toplevel
  for batch in args.batch:
    for dtype in args.dtype:
      done = set()
      for i, name in enumerate(args.method):
        try:
          m = backends.choose(name, None if dtype == "float32" else dtype).method
        except ValueError as e:  # e.g. native in bfloat16: the first method's row falls back to XLA ("conv")
          print(f"  ({'conv instead' if i == 0 else 'skipped'}) {e}", flush=True)
          if i > 0:
            continue
          m = "conv"
        if m in done:
          continue
        done.add(m)
        med, comp, _ = speed.ours(params, spec, *lr_hw, dtype, batch, m, args.iters, args.warmup)
        computes = "bfloat16" if m == "native-bf16" else dtype  # its operands, whatever dtype was asked
        # the CPU's peak is its float32 FMA rate: none given for AMX tiles
        pk = None if m == "native-bf16" else speed.peak_tflops(table.kind, computes)
        frac = None if pk is None else round((table.flops * batch / med) / (pk * 1e12), 4)
        label = "espcn-jax" if spec.kind == "espcn" and args.model in (None, "espcn") else args.model or spec.kind
        if computes != "float32":
          table.reduced.setdefault(m if m == "native-bf16" else dtype, None)
        if i == 0:
          table.add(f"{label}[{m}]", computes, batch, med, comp, frac_peak=frac)
          table.ours_s[(dtype, batch)] = med
        elif (dtype, batch) in table.ours_s:
          table.add(f"{label}[{m}]", computes, batch, med, comp, frac_peak=frac,
                    vs_ours=round(med / table.ours_s[(dtype, batch)], 3))
        table.ours_rows[(f"espcn-jax[{m}] {computes}", batch)] = med


def _run_peer(peer, args, params, spec, x, ref, net, onnx_path, table: _Table, base_dt) -> None:
  batch = x.shape[0]
  if peer in ("torch", "torch_compile"):
    for dtype in args.dtype:
      if dtype == "float16" and table.kind == "cpu":
        continue
      med, comp, y = speed.torch_peer(net, x, dtype, peer == "torch_compile", args.iters, args.warmup)
      table.add(f"pytorch {'compile' if peer == 'torch_compile' else 'eager'} (NHWC)", dtype, batch, med, comp,
                vs_ours=table.vs_ours(med, dtype, batch, base_dt), max_abs_diff=float(np.abs(y - ref).max()))
    return
  if not onnx_path.exists():
    speed.export_onnx(params, spec, onnx_path)
  if peer == "onnxruntime":
    med, comp, y, prov = speed.onnxruntime_peer(onnx_path, x, args.iters, args.warmup)
    name = f"onnxruntime ({prov.replace('ExecutionProvider', '')})"
  else:
    med, comp, y = speed.opencv_peer(onnx_path, x, args.iters, args.warmup)
    name = "opencv dnn"
  table.add(name, "float32", batch, med, comp, vs_ours=table.vs_ours(med, "float32", batch, base_dt),
            max_abs_diff=float(np.abs(y - ref).max()))


def _run_peers(args, params, spec, lr_hw, table: _Table, notes: list, base_dt: str) -> None:
  """The same net and weights in PyTorch, onnxruntime and OpenCV dnn (those installed), on the same inputs."""
  from espcn_jax import inference  # pylint: disable=import-outside-toplevel
  peers = [] if args.peers == "none" else [p.strip() for p in args.peers.split(",") if p.strip()]
  for peer in peers:
    if peer not in PEERS:
      notes.append(f"unknown peer {peer!r}")
  peers = [p for p in peers if p in PEERS]
  net = None
  if any(p.startswith("torch") for p in peers):
    try:
      net = speed.torch_net(params, spec)
    except ImportError:
      _say(notes, "torch not installed: PyTorch peers skipped")
      peers = [p for p in peers if not p.startswith("torch")]
  rng = np.random.default_rng(0)
  with tempfile.TemporaryDirectory() as tmpdir:
    for batch in args.batch:
      x = rng.random((batch, *lr_hw, spec.channels), np.float32)
      ref = np.asarray(inference.forward(params, x[:1], spec, method="conv"))[0] if peers else None
      for peer in peers:
        try:
          _run_peer(peer, args, params, spec, x, ref, net, pathlib.Path(tmpdir) / "espcn.onnx", table, base_dt)
        except ImportError as e:
          _say(notes, f"{peer}: not installed ({e.name}), skipped")
        except Exception as e:  # pylint: disable=broad-except
          msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
          _say(notes, f"{peer} b{batch}: failed ({type(e).__name__}: {msg})")


def _run_drift(args, params, spec, notes: list, paths):
  """{set: {path: PSNR - float32's PSNR}} of each reduced-precision path timed on each --psnr-set (None: none)."""
  from espcn_jax import backends  # pylint: disable=import-outside-toplevel
  if not paths or args.psnr_set == "none":
    return None
  ref = "native" if backends.get("native").unavailable_reason() is None else "fma"  # float32
  out = {}
  for dataset in [d.strip() for d in args.psnr_set.split(",") if d.strip()]:
    try:
      scores = speed.psnr_drift(params, spec, [ref] + list(paths), dataset, args.method[0])
    except (ValueError, OSError) as e:
      _say(notes, f"PSNR drift on {dataset} skipped: {e}")
      continue
    out[dataset] = {d: round(scores[d] - scores[ref], 4) for d in paths}
    print(f"PSNR on {dataset} (Y, x{spec.scale}): float32 ({ref}) {scores[ref]:.3f} dB | drift vs float32: "
          + ", ".join(f"{d} {v:+.4f} dB" for d, v in out[dataset].items()), flush=True)
  return out or None


def _say_default(drift, notes: list, params, spec) -> str:
  """Which kernel `auto` runs for these weights (espcn_jax/auto_precision.py), said beside this run's drift."""
  from espcn_jax import auto_precision, inference  # pylint: disable=import-outside-toplevel
  default = auto_precision.method_for(params, spec)
  worst = None if not drift else min((d["native-bf16"] for d in drift.values() if "native-bf16" in d), default=None)
  if worst is None:
    return default
  budget = inference.NATIVE_BF16_DRIFT_BUDGET_DB
  if default == "native-bf16":
    why = "these weights' recorded drift is within it (espcn_jax/pretrained/native_bf16_drift.json)"
  else:
    recorded = auto_precision.drift_of(params)
    why = ("float32: no recorded drift for these weights (scripts/measure_bf16_drift.py records the shipped files')"
           if recorded is None else f"float32: their recorded drift is over it ({recorded[0]:+.4f} / "
           f"{recorded[1]:+.4f} dB)") + "; native-bf16 by --method native-bf16 or --dtype bfloat16"
  msg = (f"native-bf16 drift here (worst of {', '.join(drift)}): {worst:+.4f} dB, "
         f"{'within' if abs(worst) <= budget else 'over'} the {budget} dB budget; "
         f"the default (auto) is {default}: {why}")
  notes.append(msg)
  print("  note: " + msg, flush=True)
  return default


@cli.exits_130_on_interrupt
def main(argv) -> int:
  args = _parse(argv)
  import jax  # pylint: disable=import-outside-toplevel
  from espcn_jax import backends, inference, native, weights  # pylint: disable=import-outside-toplevel
  try:
    params, spec, wnote = load_params(args.weights, args.scale, args.variant, args.model)
  except weights.WeightsError as e:  # an unusable weight file: an input that failed
    print(f"error: {e}", file=sys.stderr)
    return cli.FAILED
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return cli.USAGE
  if spec.kind != "espcn" and (args.method != ["conv"] or args.peers != "none"):
    print(f"  note: the {spec.kind} net runs with XLA ('conv') only, without peers", flush=True)
    args.method, args.peers = ["conv"], "none"
  sizes = frame_sizes(args.resolution, spec.scale)
  lr_hw = sizes["lr"]
  flops = inference.network_flops(spec, *lr_hw)
  dev, kind = speed.device_info()
  method = backends.choose(args.method[0]).method
  if method == "native":
    method = f"native-{speed.native_isa()}"
  ours = method
  if args.method[0] == "auto" and spec.kind == "espcn":  # what `upscale` runs for these weights, if not this one
    from espcn_jax import auto_precision  # pylint: disable=import-outside-toplevel
    if auto_precision.method_for(params, spec) == "native-bf16":
      ours = f"{method} (float32) and native-bf16 (the default for these weights)"
  print(f"{dev} | jax {jax.__version__} | {args.resolution} x{spec.scale}: {describe_sizes(sizes)} | "
        f"{flops / 1e9:.2f} GFLOP/frame | ours: {ours} | {wnote}", flush=True)
  notes, table = [wnote], _Table(flops, kind)
  if method.startswith("native") and native.has_winograd():
    notes.append("GFLOP/s and % of peak count direct-convolution FLOPs; the native kernel's Winograd F(4x4, 3x3) "
                 "does 1/4 of the 3x3 layers' multiplies, so its effective rate can exceed the hardware's")
    print("  note: " + notes[-1], flush=True)
  if "native-bf16" not in args.method and backends.get("native-bf16").unavailable_reason(spec) is None:
    args.method = list(args.method) + ["native-bf16"]  # AMX here: the bf16 kernel's row too
  _run_ours(args, params, spec, lr_hw, table)
  base_dt = "float32" if "float32" in args.dtype else args.dtype[0]
  if not args.no_bicubic:
    for batch in args.batch:
      med, comp = speed.bicubic(spec, *lr_hw, batch, args.iters, args.warmup)
      table.add("bicubic (jax imresize)", "float32", batch, med, comp, vs_ours=table.vs_ours(med, base_dt, batch,
                                                                                            base_dt))
  _run_peers(args, params, spec, lr_hw, table, notes, base_dt)
  drift = _run_drift(args, params, spec, notes, list(table.reduced))
  default = _say_default(drift, notes, params, spec)
  if args.json:
    atomic_io.write_text(args.json, json.dumps({
        "device": dev, "resolution": args.resolution, "scale": spec.scale, "lr_size": list(lr_hw),
        "net_output_size": list(sizes["net_out"]), "frame_size": list(sizes["frame"]),
        "model": args.model or spec.kind, "spec": spec.to_dict(),
        "gflop_per_frame": round(flops / 1e9, 3), "jax": jax.__version__, "method": method,
        "default_method": default, "results": table.rows,
        "psnr_drift_db": _worst(drift), "psnr_drift_by_set_db": drift, "notes": notes}, indent=1))
  return cli.OK


def _worst(drift):
  """{path: the drift of largest size over the sets} (None without any)."""
  if not drift:
    return None
  paths = {p for d in drift.values() for p in d}
  return {p: max((d[p] for d in drift.values() if p in d), key=abs) for p in sorted(paths)}


def run():
  sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
  run()
