"""Deployment export on the command line: ONNX, TF SavedModel, TFLite, OpenCV dnn_superres .pb.

    python -m espcn_jax.export --scale 3 --format onnx -o espcn_x3.onnx
    python -m espcn_jax.export --weights my.safetensors --format tflite -o espcn_x3.tflite
    python -m espcn_jax.export --format onnx -o espcn_x3.onnx --benchmark 640x360   # CPU ms/frame vs espcn-jax
    python -m espcn_jax.export --format pb -o ESPCN_x3.pb     # OpenCV contrib dnn_superres.DnnSuperResImpl

Every export is run once against `model.apply` after it is written (--no-verify skips it). The formats, layouts and
pre/post-processing: espcn_jax/export_formats.py and docs/DEPLOY.md.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

import numpy as np

from espcn_jax import atomic_io, cli, export_formats, inference, model, weights
from espcn_jax.export_formats import DEFAULT_OPSET, FORMATS, PIXEL_SHUFFLES, TF_BUILDERS, ExportError

# ------------------------------------------------------------------------------------------------------ benchmark


def benchmark(params, spec: model.Spec, onnx_path, lr_h: int, lr_w: int, *, reps: int = 20, warmup: int = 3):
  """Median ms/frame on this machine, runtimes interleaved in one process: {name: ms} (missing runtimes left out)."""
  import jax
  lr = np.random.default_rng(0).random((1, lr_h, lr_w, spec.channels), dtype=np.float32)
  lr_nchw = np.ascontiguousarray(lr.transpose(0, 3, 1, 2))
  method = inference.resolve_method("auto")
  fwd = jax.jit(lambda p, x: inference.forward(p, x, spec, method=method))
  dev_params = jax.device_put(params)
  runners = {f"espcn-jax ({method}) {jax.default_backend()}": lambda: fwd(dev_params, lr).block_until_ready()}
  try:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    runners[f"onnxruntime {ort.__version__}"] = lambda: export_formats.run_onnxruntime(None, lr_nchw, sess)
  except ImportError:
    pass
  try:
    import cv2
    net = cv2.dnn.readNet(str(onnx_path))
    runners[f"OpenCV dnn {cv2.__version__}"] = lambda: export_formats.run_opencv(None, lr_nchw, net)
  except ImportError:
    pass
  except cv2.error as e:  # e.g. OpenCV <= 4.10 with DepthToSpace: export with pixel_shuffle="conv_transpose"
    print(f"OpenCV dnn {cv2.__version__} cannot read {onnx_path}: {str(e).strip().splitlines()[-1]}", file=sys.stderr)
  try:
    content = export_formats.tflite_bytes(params, spec, tf_builder="tfnn")
    interpreter = export_formats.tflite_interpreter(content=content)
    runners["TFLite (tfnn graph)"] = lambda: export_formats.run_tflite(None, lr, interpreter)
  except ImportError:
    pass
  times = {k: [] for k in runners}
  for i in range(warmup + reps):
    for name, fn in runners.items():
      t0 = time.perf_counter()
      fn()
      if i >= warmup:
        times[name].append((time.perf_counter() - t0) * 1e3)
  return {k: float(np.median(v)) for k, v in times.items()}


# ----------------------------------------------------------------------------------------------------------- CLI


def _parse_size(s: str) -> tuple[int, int]:
  try:
    w, h = (int(v) for v in s.lower().split("x"))
    assert w > 0 and h > 0
  except (ValueError, AssertionError) as e:
    raise ExportError(f"--benchmark: expected WIDTHxHEIGHT of the LR frame (e.g. 640x360), got {s!r}") from e
  return h, w


def _refuse_own_input(out: pathlib.Path, weight_file) -> None:
  """No export writes over (or, for a SavedModel folder, replaces a folder holding) its --weights file."""
  if not weight_file:
    return
  try:
    atomic_io.refuse_inputs(out, [weight_file], "the --weights file")
  except ValueError as e:
    raise ExportError(str(e)) from None
  if pathlib.Path(weight_file).resolve().is_relative_to(out.resolve()):
    raise ExportError(f"{out}: holds the --weights file {weight_file}; refusing to replace it")


def _load(args):
  if args.weights:
    params, spec, meta = weights.load(args.weights)
    if args.scale is not None and args.scale != spec.scale:
      raise cli.UsageError(f"{args.weights}: holds an x{spec.scale} model, but --scale {args.scale} was asked")
    return params, spec, dict(meta, source=str(args.weights))
  variant = weights.resolve_variant(args.scale or 3, args.variant)
  params, spec = weights.pretrained(args.scale or 3, variant)
  return params, spec, {"source": f"pretrained x{spec.scale} {variant}"}


def _parse(argv):
  p = cli.parser("python -m espcn_jax.export", __doc__.split("\n\n")[0])
  p.add_argument("--scale", type=int, default=None, help="upscaling factor (None: the weights', else 3)")
  cli.add_weights(p)
  p.add_argument("--format", help=f"one of {', '.join(FORMATS)} (None: from the -o suffix, a folder = savedmodel)")
  p.add_argument("-o", "--output", required=True, help="output file (.onnx, .tflite, .pb) or folder (SavedModel)")
  p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset")
  p.add_argument("--pixel-shuffle", default="depth_to_space", choices=PIXEL_SHUFFLES,
                 help="ONNX op for PS: DepthToSpace (DCR), or conv_transpose for OpenCV <= 4.10")
  p.add_argument("--tf-builder", default="jax2tf", choices=TF_BUILDERS,
                 help="SavedModel/TFLite graph: jax2tf of model.apply, or tfnn (tf.nn ops, for TFLite delegates)")
  p.add_argument("--no-verify", dest="verify", action="store_false",
                 help="skip running the export once against model.apply")
  p.add_argument("--benchmark", metavar="WxH",
                 help="ONNX only: time onnxruntime / OpenCV dnn / TFLite / jax.jit on one WxH LR frame")
  return p.parse_args(argv)


def _plan(args, out: pathlib.Path) -> tuple[str, tuple | None]:
  """(format, LR frame to time or None) for these flags; ExportError on a usage error."""
  fmt = args.format or export_formats.SUFFIXES.get(out.suffix.lower(), "savedmodel")
  if fmt not in FORMATS:
    raise ExportError(f"{out}: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
  bench = _parse_size(args.benchmark) if args.benchmark else None
  if bench and fmt != "onnx":
    raise ExportError(f"{out}: --benchmark times ONNX runtimes; use it with --format onnx")
  _refuse_own_input(out, args.weights)
  export_formats.check_output(out, fmt)
  return fmt, bench


@cli.exits_130_on_interrupt
def main(argv) -> int:
  args = _parse(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  out = pathlib.Path(args.output)
  try:
    fmt, bench = _plan(args, out)
  except ExportError as e:
    print(f"error: {e}", file=sys.stderr)
    return cli.USAGE
  try:
    params, spec, meta = _load(args)
    if spec.kind != "espcn":
      raise ExportError(f"{meta['source']}: holds a {spec.kind} net (espcn_jax/baselines.py); the exporters write "
                        f"ESPCN only")
    export_formats.export(params, spec, fmt, out, opset=args.opset, pixel_shuffle=args.pixel_shuffle,
                          tf_builder=args.tf_builder, meta=meta)
    print(f"wrote {out} ({fmt}, x{spec.scale}, {spec.channels} channel(s), from {meta['source']})")
    if args.verify:
      lr = np.random.default_rng(0).random((2, 23, 31, spec.channels), dtype=np.float32)
      try:
        err = export_formats.max_error(params, spec, fmt, out, lr)
      except ImportError as e:
        print(f"not verified: {e.name} is not installed")
      else:
        print(f"verified: max |{fmt} - model.apply| = {err:.2e} on a random 2x23x31 batch")
        if not err <= 1e-4:  # NaN fails too
          raise ExportError(f"{out}: export differs from model.apply by {err:.2e} (file kept for inspection)")
    if bench:
      print(f"CPU ms/frame, median, LR {bench[1]}x{bench[0]} -> {bench[1] * spec.scale}x{bench[0] * spec.scale}:")
      for name, ms in benchmark(params, spec, out, *bench).items():
        print(f"  {name:32s} {ms:8.2f}")
  except cli.UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    return cli.USAGE
  except (ExportError, weights.WeightsError) as e:  # a weight file, a missing extra, an export that differs
    print(f"error: {e}", file=sys.stderr)
    return cli.FAILED
  except OSError as e:
    print(f"error: {e.filename or out}: {e.strerror or e}", file=sys.stderr)
    return cli.FAILED
  return cli.OK


def run():
  sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
  run()
