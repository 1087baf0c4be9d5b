"""`python -m espcn_jax.evaluate`: PSNR / SSIM on Y of bicubic and ESPCN upscaling, the field's protocol.

    python -m espcn_jax.evaluate --bicubic --data set5 --data set14 --scale 3
    python -m espcn_jax.evaluate --weights runs/x3/espcn_x3.safetensors --data set5 --json results.json
    python -m espcn_jax.evaluate --data set14 --scale 3          # shipped weights, if any for that scale
    python -m espcn_jax.evaluate --data set5 --data set14 --scale 3 --report out/report --runs workdirs/a
    python -m espcn_jax.evaluate --variant srcnn_t91 --data set5 --data set14 --scale 3   # the shipped SRCNN baseline

Per image (the SRCNN / VDSR MATLAB protocol, which reproduces the published bicubic baselines):
  1. HR = modcrop(image, scale); its Y as MATLAB's rgb2ycbcr on uint8 gives it (rounded; gray images: as is).
  2. LR = degrade(Y / 255, scale): MATLAB imresize(., 1/scale, 'bicubic') by default, or the Gaussian degradation;
     the LR stays float (not quantised), as in those scripts.
  3. bicubic baseline = imresize(LR, scale); ESPCN = model.apply(params, LR) (an RGB model, spec.channels == 3,
     gets the degraded RGB image and its output's Y is scored; on gray images its channel mean is scored).
  4. outputs clipped to [0, 1], quantised to uint8 levels; PSNR and SSIM on Y with crop_border = scale
     (`espcn_jax.metrics`); the dataset's score is the mean over its images.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import numpy as np
from tqdm import tqdm

from espcn_jax import atomic_io, cli, image_files, image_ops, metrics, model, validation, weights


def evaluate_image(hr_u8, scale: int, *, params=None, spec: model.Spec | None = None, degradation: str = "bicubic",
                   sigma: float = 1.6, kernel_size: int = 7) -> dict[str, tuple[float, float]]:
  """Scores one uint8 HR image (HxW or HxWx3): {"bicubic": (psnr, ssim), "espcn": (psnr, ssim) if params}."""
  channels = spec.channels if (params is not None and spec is not None) else 1
  p = validation.prepare(hr_u8, scale, channels=channels, degradation=degradation, sigma=sigma,
                         kernel_size=kernel_size)

  def score(y_HxW):
    return metrics.psnr(y_HxW, p.y8_HxW, scale), metrics.ssim(y_HxW, p.y8_HxW, scale)

  result = {"bicubic": score(validation.bicubic_y(p, scale))}
  if params is not None:
    result["espcn"] = score(validation.model_y(p, params, spec))
  return result


def evaluate_folder(folder, scale: int, *, params=None, spec: model.Spec | None = None, dataset: str | None = None,
                    degradation: str = "bicubic", sigma: float = 1.6, kernel_size: int = 7,
                    errors: list | None = None, progress: bool = False, per_image: list | None = None) -> list[dict]:
  """Mean PSNR / SSIM over the images of `folder`.

  Returns [{"dataset", "scale", "method": "bicubic", "psnr", "ssim", "images"}, and the same for "espcn" when
  `params` (with its `spec`) are given]; [] if no image could be scored. Bad images: if `errors` is a list, their
  one-line messages are appended and the other images still scored; otherwise the first raises ImageError.
  `per_image`, if a list, receives {"file", "method", "psnr", "ssim"} rows.
  """
  scale = int(scale)
  if params is not None and spec is None:
    raise ValueError("evaluate_folder: give the model's spec with its params")
  if spec is not None and params is not None and spec.scale != scale:
    raise ValueError(f"evaluate_folder: the model is x{spec.scale}, asked to evaluate x{scale}")
  folder = pathlib.Path(folder)
  dataset = dataset or folder.name
  paths = image_files.list_images(folder)
  scores: dict[str, list[tuple[float, float]]] = {}
  bar = tqdm(paths, desc=f"{dataset} x{scale}", unit="img", disable=None if progress else True, leave=False,
             file=sys.stderr)  # None: shown on a terminal only
  for path in bar:
    try:
      hr = image_files.load_image(path)
      res = evaluate_image(hr, scale, params=params, spec=spec, degradation=degradation, sigma=sigma,
                           kernel_size=kernel_size)
    except (image_files.ImageError, ValueError) as e:
      msg = str(e) if isinstance(e, image_files.ImageError) else f"{path}: {e}"
      if errors is None:
        raise image_files.ImageError(msg) from None
      errors.append(msg)
      continue
    for method, s in res.items():
      scores.setdefault(method, []).append(s)
      if per_image is not None:
        per_image.append({"file": str(path), "method": method, "psnr": s[0], "ssim": s[1]})
  return [{"dataset": dataset, "scale": scale, "method": method, "psnr": float(np.mean([s[0] for s in v])),
           "ssim": float(np.mean([s[1] for s in v])), "images": len(v)} for method, v in scores.items()]


def resolve_data(name: str) -> tuple[str, pathlib.Path]:
  """--data value -> (display name, folder): an existing folder, else a built-in dataset name."""
  p = pathlib.Path(name)
  if p.exists():
    if not p.is_dir():
      raise image_files.ImageError(f"{p}: not a folder")
    return p.resolve().name, p
  if name.lower() in image_files.BUILTIN_DATASETS:
    return image_files.BUILTIN_DATASETS[name.lower()], image_files.builtin_dataset_dir(name)
  known = ", ".join(image_files.BUILTIN_DATASETS)
  raise image_files.ImageError(f"{name}: no such folder or built-in dataset ({known})")


def format_table(results: list[dict], net: str = "ESPCN") -> str:
  """One row per (dataset, scale): images, bicubic PSNR/SSIM and the net's ("espcn" rows, headed `net`) PSNR/SSIM
  (when evaluated)."""
  rows: dict[tuple, dict] = {}
  for r in results:
    rows.setdefault((r["dataset"], r["scale"]), {})[r["method"]] = r
  has_model = any(r["method"] == "espcn" for r in results)
  head = f"{'dataset':<12} {'scale':>5} {'images':>6}  {'bicubic PSNR':>12} {'SSIM':>6}"
  if has_model:
    head += f"  {net + ' PSNR':>10} {'SSIM':>6}"
  lines = [head, "-" * len(head)]
  for (ds, sc), by in rows.items():
    n = max(r["images"] for r in by.values())
    line = f"{ds:<12} {'x' + str(sc):>5} {n:>6}"
    for method, width in (("bicubic", 12), ("espcn", 10)):
      if method == "espcn" and not has_model:
        continue
      r = by.get(method)
      line += f"  {r['psnr']:>{width}.3f} {r['ssim']:.4f}" if r else f"  {'-':>{width}} {'-':>6}"
    lines.append(line)
  return "\n".join(lines)


def write_json(path, payload: dict) -> None:
  """Atomic JSON write (espcn_jax.atomic_io)."""
  atomic_io.write_text(path, json.dumps(payload, indent=2) + "\n")


def parse_args(argv):
  p = cli.parser("python -m espcn_jax.evaluate", __doc__.splitlines()[0])
  p.add_argument("--data", action="append", required=True,
                 help="built-in dataset (set5, set14, t91, bsd200) or a folder of images; repeatable")
  p.add_argument("--scale", type=int, default=None, help="upscaling factor (None: the model's, else 3)")
  who = p.add_mutually_exclusive_group()
  who.add_argument("--bicubic", action="store_true", help="only the bicubic baseline")
  cli.add_weights(p, group=who)
  p.add_argument("--degradation", choices=image_ops.DEGRADATIONS, default="bicubic", help="HR -> LR")
  p.add_argument("--sigma", type=float, default=1.6, help="Gaussian degradation: blur sigma")
  p.add_argument("--kernel-size", type=int, default=7, help="Gaussian degradation: blur kernel size (odd)")
  p.add_argument("--json", help="write the results to this file (atomically)")
  p.add_argument("--per-image", action="store_true", help="also print every image's scores")
  p.add_argument("--report", metavar="DIR", help="also write an HTML report: DIR/index.html (offline; crops of every "
                 "image, sortable per-image scores, error maps), its PNG files in DIR/img/")
  p.add_argument("--runs", nargs="+", metavar="WORKDIR", default=[],
                 help="with --report: training workdirs (or metrics.jsonl files) whose curves the report shows")
  p.add_argument("--compare", nargs="+", metavar="WEIGHTS", default=[],
                 help="with --report: more models shown beside the first, weight files or shipped variants (t91_relu)")
  return p.parse_args(argv)


def load_compare(names, scale: int) -> list:
  """--compare: weight files or shipped variant names -> [(file, (params, spec, meta))]; WeightsError if unusable,
  cli.UsageError for a model of another scale."""
  out = []
  for name in names:
    path = pathlib.Path(name)
    if not path.exists() and weights.pretrained_path(scale, name).is_file():
      path = weights.pretrained_path(scale, name)
    params, spec, meta = weights.load(path)
    if spec.scale != scale:
      raise cli.UsageError(f"{path}: the model is x{spec.scale}, not x{scale}")
    out.append((path, (params, spec, meta)))
  return out


def report_models(params, spec, weight_file, compare=()) -> tuple[dict, dict, str | None]:
  """--report: ({label: (params, spec)}, {label: weight-file meta}, the label of the evaluated model or None)."""
  from espcn_jax import report
  models, meta, label = {}, {}, None
  if params is not None:
    label = report.model_label(weight_file)
    models[label] = (params, spec)
    meta[label] = weights.load(weight_file)[2]
  for path, (p, s, m) in compare:
    name = report.model_label(path)
    name = name if name not in models else f"{name} #{len(models) + 1}"
    models[name], meta[name] = (p, s), m
  return models, meta, label


def _methods(label: str | None) -> list[tuple[str, str]]:
  """(evaluate's method name, the report's label) of bicubic and of the evaluated model, if any."""
  return [("bicubic", "bicubic")] + ([("espcn", label)] if label is not None else [])


def summary_rows(ds, label: str | None) -> list[dict]:
  """A report's scored data set -> evaluate_folder's rows for bicubic and the model `label` (the same protocol: the
  report scores each image once, keeping its crops)."""
  if not ds.rows:
    return []
  out = []
  for method, key in _methods(label):
    s = [r["scores"][key] for r in ds.rows]
    out.append({"dataset": ds.dataset, "scale": ds.scale, "method": method, "psnr": float(np.mean([v[0] for v in s])),
                "ssim": float(np.mean([v[1] for v in s])), "images": len(s)})
  return out


def write_report(args, scale: int, datasets: list, page_errors: list[str], params, weight_file,
                 compare=()) -> list[str]:
  """--report: the HTML page of the scored data sets and of --runs. Returns the one-line messages of the --runs that
  could not be read (printed here); bad images and folders were reported by the evaluation and are listed in the
  page."""
  from espcn_jax import report
  runs = [report.load_run(r) for r in args.runs]
  for r in runs:
    if r.error:
      print(f"error: {r.error}", file=sys.stderr)
  note = (f"PSNR / SSIM on Y, crop_border = {scale}, {args.degradation} degradation; "
          + (f"model: {args.weights or 'shipped weights ' + weight_file.name}" if params is not None else
             "bicubic only") + "".join(f", {p}" for p, _ in compare))
  path = report.write_report(args.report, datasets=datasets, runs=runs, errors=page_errors, notes=[note])
  print(f"report: {path}")
  return [r.error for r in runs if r.error]


def _usage_error(args) -> str | None:
  """The one-line usage error of these flags (exit code 2), or None."""
  if (args.runs or args.compare) and not args.report:
    return f"{'--runs' if args.runs else '--compare'} needs --report DIR"
  if args.report and os.path.exists(args.report) and not os.path.isdir(args.report):
    return f"--report {args.report}: exists and is not a folder"
  if args.json and pathlib.Path(args.json).is_dir():
    return f"--json {args.json}: is a folder; give a file name"
  if args.json and args.weights and atomic_io.same_file(args.json, args.weights):
    return f"--json {args.json}: is the --weights file; refusing to write over it"
  if args.degradation == "gaussian" and (args.sigma <= 0 or args.kernel_size < 1 or args.kernel_size % 2 == 0):
    return f"--sigma must be > 0 and --kernel-size odd, got {args.sigma}, {args.kernel_size}"
  return None


def _load_model(args):
  """(params, spec, scale) for these flags: --weights, else the shipped --variant (bicubic only when there is none
  or with --bicubic). Raises WeightsError (an unusable weight file) or ValueError (a usage error)."""
  params = spec = None
  if args.weights:
    params, spec, _ = weights.load(args.weights)
  elif not args.bicubic:
    try:
      params, spec = weights.pretrained(args.scale or 3, args.variant)
    except weights.WeightsError as e:
      print(f"note: {e}; evaluating the bicubic baseline only", file=sys.stderr)
  scale = args.scale or (spec.scale if spec else 3)
  if spec is not None and spec.scale != scale:
    raise ValueError(f"{args.weights or 'the shipped model'} is x{spec.scale}, not x{scale}")
  if scale < 2:
    raise ValueError(f"--scale must be >= 2, got {scale}")
  return params, spec, scale


@cli.exits_130_on_interrupt
def main(argv) -> int:
  args = parse_args(argv)
  if (msg := _usage_error(args)) is not None:
    print(f"error: {msg}", file=sys.stderr)
    return cli.USAGE
  weight_file = args.weights or weights.pretrained_path(args.scale or 3, args.variant)
  try:
    params, spec, scale = _load_model(args)
  except weights.WeightsError as e:  # an unusable weight file: an input that failed
    print(f"error: {e}", file=sys.stderr)
    return cli.FAILED
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return cli.USAGE
  try:
    compare = load_compare(args.compare, scale)
  except ValueError as e:  # UsageError: another scale; WeightsError: an unusable file
    print(f"error: --compare {e}", file=sys.stderr)
    return cli.USAGE if isinstance(e, cli.UsageError) else cli.FAILED
  errors: list[str] = []
  results: list[dict] = []
  per_image: list[dict] | None = [] if args.per_image else None
  if args.report:  # scored once, with the crops the page shows
    from espcn_jax import report
    models, meta, label = report_models(params, spec, weight_file, compare)
  datasets, page_errors = [], []
  for name in args.data:
    try:
      ds, folder = resolve_data(name)
    except image_files.ImageError as e:
      errors.append(str(e))
      page_errors.append(str(e))
      print(f"error: {e}", file=sys.stderr)
      continue
    n_err = len(errors)
    deg = dict(degradation=args.degradation, sigma=args.sigma, kernel_size=args.kernel_size)
    if args.report:
      scored = report.evaluate_dataset(folder, scale, models, args.report, dataset=ds, model_meta=meta,
                                       progress=True, **deg)
      datasets.append(scored)
      errors += scored.errors
      results += summary_rows(scored, label)
      for r in scored.rows if per_image is not None else ():
        per_image += [{"file": r["file"], "method": m, "psnr": r["scores"][k][0], "ssim": r["scores"][k][1]}
                      for m, k in _methods(label)]
    else:
      try:
        results += evaluate_folder(folder, scale, params=params, spec=spec, dataset=ds, errors=errors, progress=True,
                                   per_image=per_image, **deg)
      except image_files.ImageError as e:
        errors.append(str(e))
    for msg in errors[n_err:]:
      print(f"error: {msg}", file=sys.stderr)
  if per_image:
    for r in per_image:
      print(f"{r['file']}  {r['method']:<8} PSNR {r['psnr']:.3f}  SSIM {r['ssim']:.4f}")
  if results:
    print(f"PSNR / SSIM on Y, crop_border = {scale}, {args.degradation} degradation")
    print(format_table(results, "ESPCN" if spec is None or spec.kind == "espcn" else spec.kind.upper()))
  if args.json:
    try:
      write_json(args.json, {"results": results})
    except OSError as e:
      print(f"error: {args.json}: cannot write the results ({e.strerror or e})", file=sys.stderr)
      return cli.FAILED
  if args.report:
    errors += write_report(args, scale, datasets, page_errors, params, weight_file, compare)
  if errors:
    print(f"{len(errors)} error(s); see above", file=sys.stderr)
    return cli.FAILED
  return cli.OK


def run():
  sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
  run()
