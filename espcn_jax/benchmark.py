"""Speed of ESPCN inference on this machine, side by side with bicubic and the same net in other frameworks.

    python -m espcn_jax.benchmark --resolution 1080p --scale 3 --batch 1 8 --dtype float32 bfloat16 --json b.json

The resolution is the OUTPUT frame (1080p at x3: a 640x360 LR input, one luma channel); where a side is not a
multiple of the scale the LR side is rounded up and the output cropped (720p at x3: 427x240 -> 1281x720, cropped to
1280x720; `frame_sizes`). For each (dtype, batch):
compile time, ms/frame and frames/s (median of --iters timed calls after --warmup, block_until_ready), achieved
GFLOP/s (`model.flops_per_lr_pixel`) and, where the device's peak is known, the fraction of it. In the same run:
our JAX bicubic `imresize`, and the same net with the same weights in PyTorch (channels_last, eager and
torch.compile), OpenCV dnn and onnxruntime (the file `python -m espcn_jax.export` writes) when installed, each
reported as a ratio to ours. Then the PSNR drift of reduced precision vs float32 on Set5 (Y, crop_border = scale).

Imports only jax, numpy, pillow and espcn_jax (no TensorFlow), so it runs on bare accelerator boxes.
"""

from __future__ import annotations

import json
import pathlib
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

from espcn_jax import atomic_io, cli

RESOLUTIONS = {"720p": (720, 1280), "1080p": (1080, 1920), "1440p": (1440, 2560), "4k": (2160, 3840)}
DTYPES = cli.DTYPES
PEERS = ("torch", "torch_compile", "opencv", "onnxruntime")  # each one in espcn_jax.backends (tests/test_backends.py)
# Dense peak TFLOP/s by (device kind substring, dtype): float32 convs/dots run as TF32 on these GPUs by default.
_GPU_PEAKS = {("H100", "float32"): 494.7, ("H100", "bfloat16"): 989.4, ("H100", "float16"): 989.4,
              ("H200", "float32"): 494.7, ("H200", "bfloat16"): 989.4, ("H200", "float16"): 989.4,
              ("A100", "float32"): 156.0, ("A100", "bfloat16"): 312.0, ("A100", "float16"): 312.0}


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
  p.add_argument("--psnr-set", default="set5", help="built-in dataset for the precision drift, or 'none'")
  p.add_argument("--json", default=None, help="write the results here (atomically)")
  args = p.parse_args(argv)
  if args.warmup < 0:
    p.error(f"--warmup must be >= 0, got {args.warmup}")
  if args.json and pathlib.Path(args.json).is_dir():
    p.error(f"--json {args.json}: is a folder; give a file name")
  if args.json and args.weights and atomic_io.same_file(args.json, args.weights):
    p.error(f"--json {args.json}: is the --weights file; refusing to write over it")
  return args


_CPU_TIMES: list = []  # process CPU seconds of the last time_calls, per call (all threads)


def time_calls(fn, iters: int, warmup: int) -> tuple[float, list[float]]:
  """Median wall seconds of fn() (fn must block until done) over `iters` calls after `warmup`; also all samples.

  Also records the process CPU time of each call (all threads) in _CPU_TIMES: on a shared CPU the wall time
  depends on the neighbours' load, the CPU time much less.
  """
  for _ in range(warmup):
    fn()
  ts = []
  _CPU_TIMES.clear()
  for _ in range(max(iters, 1)):
    c = time.process_time()
    t = time.perf_counter()
    fn()
    ts.append(time.perf_counter() - t)
    _CPU_TIMES.append(time.process_time() - c)
  return statistics.median(ts), ts


def cpu_peak_gflops() -> float | None:
  """Rough fp32 peak of the CPUs this process may use: cores x GHz x FLOPs/cycle (FMA: 2 x SIMD lanes x 2 units)."""
  try:
    info = pathlib.Path("/proc/cpuinfo").read_text()
  except OSError:
    return None
  mhz = [float(l.split(":")[1]) for l in info.splitlines() if l.startswith("cpu MHz")]
  flags = next((l for l in info.splitlines() if l.startswith("flags")), "")
  if not mhz or " fma" not in flags:
    return None
  lanes = 16 if " avx512f" in flags else 8
  return _cpus() * (sum(mhz) / len(mhz)) / 1e3 * lanes * 2 * 2


def _cpus() -> int:
  from espcn_jax import native  # pylint: disable=import-outside-toplevel
  return native.usable_cpus()  # os.sched_getaffinity where it exists (not on macOS: os.cpu_count, said once)


def native_isa() -> str:
  from espcn_jax import native  # pylint: disable=import-outside-toplevel
  return native.isa() or "unavailable"


def device_info():
  import jax  # pylint: disable=import-outside-toplevel
  d = jax.devices()[0]
  kind = getattr(d, "device_kind", d.platform)
  if d.platform == "cpu":
    cpu = platform.processor() or ""
    try:
      cpu = next(l.split(":", 1)[1].strip() for l in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                 if l.startswith("model name"))
    except (OSError, StopIteration):
      pass
    return f"cpu: {cpu} x{_cpus()} threads", "cpu"
  return f"{d.platform}: {kind}", kind


def peak_tflops(kind: str, dtype: str) -> float | None:
  if kind == "cpu":
    g = cpu_peak_gflops()
    return None if g is None else g / 1e3
  for (sub, dt), v in _GPU_PEAKS.items():
    if sub in kind and dt == dtype:
      return v
  return None


def load_params(weight_file, scale, variant: str = "t91"):
  """(params, spec, note) from a weight file, the shipped weights, or random ones."""
  import jax  # pylint: disable=import-outside-toplevel
  from espcn_jax import model, weights  # pylint: disable=import-outside-toplevel
  if weight_file:
    params, spec, _ = weights.load(weight_file)
    return params, spec, f"weights: {weight_file}"
  try:
    params, spec = weights.pretrained(scale, variant)
    return params, spec, f"weights: shipped x{scale} {variant}"
  except weights.WeightsError:
    spec = model.Spec(scale=scale)
    return model.init(jax.random.PRNGKey(0), spec), spec, "weights: RANDOM (no shipped x%d; speed only)" % scale


def ours(params, spec, lr_h, lr_w, dtype: str, batch: int, method: str, iters: int, warmup: int):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from espcn_jax import inference  # pylint: disable=import-outside-toplevel
  dt = None if dtype == "float32" else getattr(jnp, dtype)
  p = jax.device_put(jax.tree_util.tree_map(jnp.asarray, params))
  x = jax.device_put(jnp.asarray(np.random.default_rng(0).random((batch, lr_h, lr_w, spec.channels), np.float32)))
  fn = jax.jit(lambda p, x: inference.forward(p, x, spec, dtype=dt, method=method))
  t = time.perf_counter()
  compiled = fn.lower(p, x).compile()
  compile_s = time.perf_counter() - t
  med, _ = time_calls(lambda: compiled(p, x).block_until_ready(), iters, warmup)
  return med, compile_s, np.asarray(compiled(p, x)[0])


def bicubic(spec, lr_h, lr_w, batch: int, iters: int, warmup: int):
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from espcn_jax import image_ops  # pylint: disable=import-outside-toplevel
  x = jax.device_put(jnp.asarray(np.random.default_rng(0).random((batch, lr_h, lr_w, spec.channels), np.float32)))
  fn = jax.jit(lambda x: image_ops.imresize(x, scale=spec.scale))
  t = time.perf_counter()
  compiled = fn.lower(x).compile()
  compile_s = time.perf_counter() - t
  med, _ = time_calls(lambda: compiled(x).block_until_ready(), iters, warmup)
  return med, compile_s


def torch_net(params, spec):
  """The same net in PyTorch: the one in espcn_jax.backends (the list of every forward pass of the net)."""
  from espcn_jax import backends  # pylint: disable=import-outside-toplevel
  return backends.torch_net(params, spec)


def torch_peer(net, x_nhwc, dtype: str, compiled: bool, iters: int, warmup: int):
  """Returns (median s, compile s, first output NHWC) of the torch net, channels_last, on CUDA when available."""
  import torch  # pylint: disable=import-outside-toplevel
  dev = "cuda" if torch.cuda.is_available() else "cpu"
  tdt = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
  torch.backends.cudnn.benchmark = True
  torch.set_num_threads(_cpus())
  m = net.to(dev).to(tdt).to(memory_format=torch.channels_last)
  x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))).to(dev).to(tdt)
  x = x.contiguous(memory_format=torch.channels_last)
  sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
  if compiled:
    torch._dynamo.reset()  # pylint: disable=protected-access  # a fresh compile per (dtype, batch), static shapes
    fn = torch.compile(m, dynamic=False)
  else:
    fn = m

  def call():
    with torch.inference_mode():
      y = fn(x)
    sync()
    return y

  t = time.perf_counter()
  y = call()
  compile_s = time.perf_counter() - t
  med, _ = time_calls(call, iters, warmup)
  return med, compile_s, y[0].float().cpu().numpy().transpose(1, 2, 0)


def export_onnx(params, spec, path):
  """The project's own ONNX export (`python -m espcn_jax.export`: DepthToSpace DCR, dynamic sizes), as deployed."""
  import onnx  # pylint: disable=import-outside-toplevel
  from espcn_jax import export_formats  # pylint: disable=import-outside-toplevel  (imports no TensorFlow)
  onnx.save(export_formats.onnx_model(params, spec), str(path))


def onnxruntime_peer(path, x_nhwc, iters: int, warmup: int):
  import onnxruntime as ort  # pylint: disable=import-outside-toplevel
  opts = ort.SessionOptions()
  opts.intra_op_num_threads = _cpus()
  providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
  t = time.perf_counter()
  sess = ort.InferenceSession(str(path), opts, providers=providers)
  x = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
  y = sess.run(None, {"lr": x})[0]
  compile_s = time.perf_counter() - t
  med, _ = time_calls(lambda: sess.run(None, {"lr": x}), iters, warmup)
  return med, compile_s, y[0].transpose(1, 2, 0), sess.get_providers()[0]


def opencv_peer(path, x_nhwc, iters: int, warmup: int):
  import cv2  # pylint: disable=import-outside-toplevel
  cv2.setNumThreads(_cpus())
  t = time.perf_counter()
  net = cv2.dnn.readNetFromONNX(str(path))
  x = np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))

  def call():
    net.setInput(x)
    return net.forward()

  y = call()
  compile_s = time.perf_counter() - t
  med, _ = time_calls(call, iters, warmup)
  return med, compile_s, np.asarray(y)[0].transpose(1, 2, 0)


def psnr_drift(params, spec, dtypes, dataset: str, method: str):
  """Mean Y PSNR (dB) on a built-in set for each dtype, x scale, crop_border = scale: {dtype: psnr}."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from espcn_jax import backends, image_files, image_ops, inference, metrics  # pylint: disable=import-outside-toplevel
  r = spec.scale
  def upscaler(d):
    dt = None if d == "float32" else getattr(jnp, d)
    try:
      m = backends.choose(method, dt).method
    except ValueError:  # e.g. native (float32 only) for bfloat16: what "auto" gives that dtype
      m = backends.choose("auto", dt).method
    return inference.Upscaler(params, spec, dtype=dt, method=m)

  ups = {d: upscaler(d) for d in dtypes}
  scores = {d: [] for d in dtypes}
  for path in image_files.list_images(image_files.builtin_dataset_dir(dataset)):
    hr = image_files.load_image(path).astype(np.float32) / 255.0
    hr = np.asarray(image_ops.modcrop(hr, r))
    y_hr = np.asarray(image_ops.luma(hr))
    y_hr = y_hr[..., 0] if y_hr.ndim == 3 else y_hr
    lr = np.asarray(image_ops.imresize(y_hr, scale=1.0 / r))
    ref = metrics.quantize(y_hr)  # HR Y on uint8 levels, as MATLAB's rgb2ycbcr on uint8
    for d, up in ups.items():
      scores[d].append(metrics.psnr(metrics.quantize(up.network(lr)), ref, crop_border=r))
  return {d: float(np.mean(v)) for d, v in scores.items()}


def _write_json(path, obj):
  atomic_io.write_text(path, json.dumps(obj, indent=1))


@cli.exits_130_on_interrupt
def main(argv) -> int:
  args = _parse(argv)
  import jax  # pylint: disable=import-outside-toplevel
  from espcn_jax import backends, inference, native  # pylint: disable=import-outside-toplevel
  from espcn_jax import weights  # pylint: disable=import-outside-toplevel
  try:
    params, spec, wnote = load_params(args.weights, args.scale, args.variant)
  except weights.WeightsError as e:  # an unusable weight file: an input that failed
    print(f"error: {e}", file=sys.stderr)
    return cli.FAILED
  sizes = frame_sizes(args.resolution, spec.scale)
  lr_h, lr_w = sizes["lr"]
  flops = inference.network_flops(spec, lr_h, lr_w)
  dev, kind = device_info()
  method = backends.choose(args.method[0]).method
  if method == "native":
    method = f"native-{native_isa()}"
  print(f"{dev} | jax {jax.__version__} | {args.resolution} x{spec.scale}: {describe_sizes(sizes)} | "
        f"{flops / 1e9:.2f} GFLOP/frame | ours: {method} | {wnote}", flush=True)
  results, notes = [], [wnote]
  if method.startswith("native") and native.has_winograd():
    notes.append("GFLOP/s and % of peak count direct-convolution FLOPs; the native kernel's Winograd F(4x4, 3x3) "
                 "does 1/4 of the 3x3 layers' multiplies, so its effective rate can exceed the hardware's")
    print("  note: " + notes[-1], flush=True)

  def report(name, dtype, batch, sec_per_call, compile_s, **extra):
    ms = 1e3 * sec_per_call / batch
    row = {"method": name, "dtype": dtype, "batch": batch, "ms_per_frame": round(ms, 3),
           "fps": round(1e3 / ms, 2), "compile_s": round(compile_s, 2),
           "gflops_per_s": round(flops / (ms * 1e-3) / 1e9, 1)}
    if kind == "cpu" and _CPU_TIMES:
      row["cpu_ms_per_frame"] = round(1e3 * statistics.median(_CPU_TIMES) / batch, 3)
    row.update(extra)
    results.append(row)
    ratio = f" | ours/this speed {row['vs_ours']:.2f}x" if "vs_ours" in row else ""
    peak = f" | {100 * row['frac_peak']:.1f}% of peak" if row.get("frac_peak") is not None else ""
    cpu = f" ({row['cpu_ms_per_frame']:.0f} CPU-ms)" if "cpu_ms_per_frame" in row else ""
    print(f"{name:>22} {dtype:>8} b{batch:<3} {ms:9.2f} ms/frame{cpu} {row['fps']:9.1f} fps  compile {compile_s:6.2f} s "
          f"{row['gflops_per_s']:8.1f} GFLOP/s{peak}{ratio}", flush=True)
    return row

  ours_ms = {}
  x_by_batch = {}
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
        med, comp, y0 = ours(params, spec, lr_h, lr_w, dtype, batch, m, args.iters, args.warmup)
        pk = peak_tflops(kind, dtype)
        frac = None if pk is None else round((flops * batch / med) / (pk * 1e12), 4)
        if i == 0:
          report(f"espcn-jax[{m}]", dtype, batch, med, comp, frac_peak=frac)
          ours_ms[(dtype, batch)] = med
          if dtype == "float32":
            x_by_batch[batch] = y0
        elif (dtype, batch) in ours_ms:
          report(f"espcn-jax[{m}]", dtype, batch, med, comp, frac_peak=frac,
                 vs_ours=round(med / ours_ms[(dtype, batch)], 3))
  base_dt = "float32" if "float32" in args.dtype else args.dtype[0]

  if not args.no_bicubic:
    for batch in args.batch:
      med, comp = bicubic(spec, lr_h, lr_w, batch, args.iters, args.warmup)
      report("bicubic (jax imresize)", "float32", batch, med, comp, vs_ours=round(med / ours_ms[(base_dt, batch)], 3))

  peers = [] if args.peers == "none" else [p.strip() for p in args.peers.split(",") if p.strip()]
  rng = np.random.default_rng(0)
  net = None
  if any(p.startswith("torch") for p in peers):
    try:
      net = torch_net(params, spec)
    except ImportError:
      notes.append("torch not installed: PyTorch peers skipped")
      print("  (skipped) " + notes[-1], flush=True)
  onnx_path = None
  with tempfile.TemporaryDirectory() as tmpdir:
    for batch in args.batch:
      x = rng.random((batch, lr_h, lr_w, spec.channels), np.float32)
      ref = np.asarray(inference.forward(params, x[:1], spec, method="conv"))[0] if peers else None
      for peer in peers:
        if peer.startswith("torch") and net is None:
          continue
        try:
          if peer in ("torch", "torch_compile"):
            for dtype in args.dtype:
              if dtype == "float16" and kind == "cpu":
                continue
              med, comp, y = torch_peer(net, x, dtype, peer == "torch_compile", args.iters, args.warmup)
              report(f"pytorch {'compile' if peer == 'torch_compile' else 'eager'} (NHWC)", dtype, batch, med, comp,
                     vs_ours=round(med / ours_ms.get((dtype, batch), ours_ms[(base_dt, batch)]), 3),
                     max_abs_diff=float(np.abs(y - ref).max()))
          elif peer in ("onnxruntime", "opencv"):
            if onnx_path is None:
              onnx_path = pathlib.Path(tmpdir) / "espcn.onnx"
              export_onnx(params, spec, onnx_path)
            if peer == "onnxruntime":
              med, comp, y, prov = onnxruntime_peer(onnx_path, x, args.iters, args.warmup)
              name = f"onnxruntime ({prov.replace('ExecutionProvider', '')})"
            else:
              med, comp, y = opencv_peer(onnx_path, x, args.iters, args.warmup)
              name = "opencv dnn"
            report(name, "float32", batch, med, comp, vs_ours=round(med / ours_ms[(base_dt, batch)], 3),
                   max_abs_diff=float(np.abs(y - ref).max()))
          else:
            notes.append(f"unknown peer {peer!r}")
        except ImportError as e:
          notes.append(f"{peer}: not installed ({e.name}), skipped")
          print(f"  (skipped) {notes[-1]}", flush=True)
        except Exception as e:  # pylint: disable=broad-except
          msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
          notes.append(f"{peer} b{batch}: failed ({type(e).__name__}: {msg})")
          print(f"  (skipped) {notes[-1]}", flush=True)

  drift = None
  reduced = [d for d in args.dtype if d != "float32"]
  if reduced and args.psnr_set != "none":
    try:
      scores = psnr_drift(params, spec, ["float32"] + reduced, args.psnr_set, args.method[0])
      drift = {d: round(scores[d] - scores["float32"], 4) for d in reduced}
      print(f"PSNR on {args.psnr_set} (Y, x{spec.scale}): " + ", ".join(f"{d} {v:.3f} dB" for d, v in scores.items())
            + " | drift vs float32: " + ", ".join(f"{d} {v:+.4f} dB" for d, v in drift.items()), flush=True)
    except (ValueError, OSError) as e:
      notes.append(f"PSNR drift skipped: {e}")
      print("  (skipped) " + notes[-1], flush=True)

  if args.json:
    _write_json(args.json, {"device": dev, "resolution": args.resolution, "scale": spec.scale,
                            "lr_size": [lr_h, lr_w], "net_output_size": list(sizes["net_out"]),
                            "frame_size": list(sizes["frame"]), "gflop_per_frame": round(flops / 1e9, 3),
                            "jax": jax.__version__, "method": method, "results": results,
                            "psnr_drift_db": drift, "notes": notes})
  return cli.OK


def run():
  sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
  run()
