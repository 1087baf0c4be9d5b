"""What the HTML evaluation report shows: per-image comparisons, zoomed crops, error maps and training runs.

    comp = report.compare(hr_u8, 3, {"ESPCN": espcn_jax.pretrained(3)})  # outputs, PSNR / SSIM of every method
    tiles = report.crop_tiles(comp)                  # {"LR (nearest)": uint8 array, "bicubic": ..., "error: ...": ...}
    report.montage(tiles)                            # one uint8 picture of them (plt.imshow it)
    report.comparison_html(comp)                     # inline HTML with scores (IPython.display.HTML)
    report.write_report("out/report", datasets=[report.evaluate_dataset(...)], runs=[report.load_run("workdirs/a")])

Scores follow `espcn_jax.evaluate`'s protocol through the same steps (`validation.prepare`, `validation.bicubic_y`,
`validation.model_y`, `metrics.psnr` / `metrics.ssim`). The crop is the window (on the LR grid, inside the shaved
border) where the models' Y differs most from bicubic's (sum of |model - bicubic|). Crops are shown in colour: every
method's Y with the bicubic Cb / Cr (as `inference.Upscaler` does); the error maps are |Y - HR Y| on one colour scale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import re
import sys

import numpy as np

from espcn_jax import atomic_io, image_files, image_ops, metrics, paper, report_html, validation, weights

TILE = 240  # displayed crop side in pixels (crops are pre-zoomed by an integer factor to at most this)
CROP_LR = 20  # crop side in LR pixels


@dataclasses.dataclass
class Comparison:
  """One HR image upscaled by every method, with the scored Y of each and the crop box."""

  scale: int
  ref_y: np.ndarray  # float64 HxW: the HR Y in {0..255}, the reference
  lr_y: np.ndarray  # float32 hxw in [0, 1]: the LR input's Y
  outputs: dict  # method -> float64 HxW scored Y in {0..255}; "bicubic" first
  scores: dict  # method -> (psnr, ssim)
  box: tuple  # (top, left, size) in HR pixels, multiples of scale
  hr_rgb: np.ndarray | None = None  # uint8 HxWx3 (modcropped); None for a gray image
  cbcr: np.ndarray | None = None  # float32 HxWx2: bicubic-upscaled Cb / Cr of the LR image
  cbcr_lr: np.ndarray | None = None  # float32 hxwx2


def choose_box(ref_y, outputs: dict, scale: int, size: int) -> tuple[int, int, int]:
  """(top, left, size) of the size x size window where the methods differ most, on the LR grid, inside the border."""
  h, w = ref_y.shape
  models = [m for m in outputs if m != "bicubic"]
  if models:
    diff = sum(np.abs(outputs[m] - outputs["bicubic"]) for m in models)
  else:
    diff = np.abs(outputs["bicubic"] - ref_y)
  lo = scale if min(h, w) >= 3 * scale else 0  # the shaved border, when the image is large enough
  size = max(scale, min(size, (min(h, w) - 2 * lo) // scale * scale))
  s = np.zeros((h + 1, w + 1))
  s[1:, 1:] = np.cumsum(np.cumsum(diff, 0), 1)
  tops, lefts = np.arange(lo, h - lo - size + 1, scale), np.arange(lo, w - lo - size + 1, scale)
  if len(tops) == 0 or len(lefts) == 0:
    return 0, 0, min(h, w) // scale * scale
  t, l = tops[:, None], lefts[None, :]
  sums = s[t + size, l + size] - s[t, l + size] - s[t + size, l] + s[t, l]
  i, j = np.unravel_index(np.argmax(sums), sums.shape)
  return int(tops[i]), int(lefts[j]), int(size)


def compare(hr_u8, scale: int, models: dict | None = None, *, degradation: str = "bicubic", sigma: float = 1.6,
            kernel_size: int = 7, crop_lr: int = CROP_LR, box: tuple | None = None) -> Comparison:
  """Upscales one uint8 HR image (HxW or HxWx3) by bicubic and each model {label: (params, spec)}; scores each.

  `box` = (top, left, size) in HR pixels chooses the crop; by default `choose_box` with size crop_lr * scale.
  Raises ValueError for an image smaller than the scale or a model of another scale.
  """
  scale, models = int(scale), models or {}
  deg = dict(degradation=degradation, sigma=sigma, kernel_size=kernel_size)
  p = validation.prepare(hr_u8, scale, **deg)
  outputs = {"bicubic": validation.bicubic_y(p, scale)}
  for label, (params, spec) in models.items():
    if spec.scale != scale or label == "bicubic":
      raise ValueError(f"model {label!r} is x{spec.scale}, asked for x{scale}" if label != "bicubic" else
                       "'bicubic' is not a model label")
    pm = p if spec.channels == 1 else validation.prepare(hr_u8, scale, channels=spec.channels, **deg)
    outputs[label] = validation.model_y(pm, params, spec)
  ref = p.y8_HxW.astype(np.float64)
  scores = {m: (metrics.psnr(y, ref, scale), metrics.ssim(y, ref, scale)) for m, y in outputs.items()}
  if box is None:
    box = choose_box(ref, outputs, scale, crop_lr * scale)
  elif (any(int(v) % scale for v in box) or min(box) < 0 or box[2] == 0 or box[0] + box[2] > ref.shape[0]
        or box[1] + box[2] > ref.shape[1]):
    raise ValueError(f"crop box {tuple(box)}: (top, left, size) must be multiples of {scale} inside the "
                     f"{ref.shape[0]}x{ref.shape[1]} image")
  box = tuple(int(v) for v in box)
  hr = image_ops.modcrop(np.asarray(hr_u8), scale)
  comp = Comparison(scale=scale, ref_y=ref, lr_y=p.lr_y_hxw, outputs=outputs, scores=scores, box=box)
  if hr.ndim == 3 and hr.shape[-1] == 3:
    cbcr_hr = np.asarray(image_ops.rgb_to_ycbcr(hr.astype(np.float32) / 255.0))[..., 1:]
    comp.cbcr_lr = np.asarray(image_ops.degrade(cbcr_hr, scale, degradation, sigma=sigma, kernel_size=kernel_size))
    comp.cbcr = np.asarray(image_ops.imresize(comp.cbcr_lr, scale, output_shape=ref.shape))
    comp.hr_rgb = hr
  return comp


def _to_rgb_u8(y01, cbcr):
  if cbcr is None:
    return np.floor(np.clip(y01, 0, 1) * 255 + 0.5).astype(np.uint8)
  rgb = np.asarray(image_ops.ycbcr_to_rgb(np.concatenate([y01[..., None], cbcr], axis=-1).astype(np.float32)))
  return np.floor(np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def error_colours(err, vmax: float) -> np.ndarray:
  """|error| in Y levels -> uint8 RGB on a dark-to-bright scale (black 0, pale yellow >= vmax)."""
  anchors = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64)
  t = np.clip(np.asarray(err, np.float64) / vmax, 0, 1) * (len(anchors) - 1)
  xs = np.arange(len(anchors))
  return np.stack([np.interp(t, xs, anchors[:, c]) for c in range(3)], -1).round().astype(np.uint8)


def _zoom(img, k: int):
  return np.repeat(np.repeat(img, k, axis=0), k, axis=1)


def error_scale(comp: Comparison) -> float:
  """The error maps' common full-scale value (Y levels): the 99.5th percentile over the methods in the crop, >= 8."""
  t, l, n = comp.box
  errs = [np.abs(y[t:t + n, l:l + n] - comp.ref_y[t:t + n, l:l + n]) for y in comp.outputs.values()]
  return float(max(8.0, np.ceil(np.percentile(np.concatenate([e.ravel() for e in errs]), 99.5))))


def crop_tiles(comp: Comparison, tile: int = TILE) -> dict[str, np.ndarray]:
  """The comparison crops, nearest-neighbour zoomed to about `tile` pixels: {"LR (nearest)", "bicubic", each model,
  "HR", then "error: <method>" per method} -> uint8 arrays (HxWx3, or HxW for a gray image)."""
  t, l, n = comp.box
  s, k = comp.scale, max(1, tile // n)
  sl = np.s_[t:t + n, l:l + n]
  lsl = np.s_[t // s:(t + n) // s, l // s:(l + n) // s]
  out = {"LR (nearest)": _zoom(_to_rgb_u8(comp.lr_y[lsl], None if comp.cbcr_lr is None else comp.cbcr_lr[lsl]),
                               k * s)}
  for m, y in comp.outputs.items():
    out[m] = _zoom(_to_rgb_u8(y[sl] / 255.0, None if comp.cbcr is None else comp.cbcr[sl]), k)
  out["HR"] = _zoom(comp.hr_rgb[sl] if comp.hr_rgb is not None else comp.ref_y[sl].astype(np.uint8), k)
  vmax = error_scale(comp)
  for m, y in comp.outputs.items():
    out[f"error: {m}"] = _zoom(error_colours(np.abs(y[sl] - comp.ref_y[sl]), vmax), k)
  return out


def captions(comp: Comparison) -> dict[str, str]:
  """The tiles' captions: every method's PSNR / SSIM on the whole image, what LR and HR are."""
  t, l, n = comp.box
  out = {m: f"PSNR {p:.2f} dB, SSIM {s:.4f}" for m, (p, s) in comp.scores.items()}
  out["LR (nearest)"] = f"input, x{comp.scale} nearest"
  out["HR"] = f"ground truth, crop {n}x{n} at ({l}, {t})"
  return out


def comparison_html(comp: Comparison, tile: int = TILE) -> str:
  """The comparison view of one image as HTML with inlined PNGs (a notebook: IPython.display.HTML(...))."""
  return report_html.tiles_html(crop_tiles(comp, tile), captions(comp), error_scale(comp))


def montage(tiles: dict[str, np.ndarray], gap: int = 4) -> np.ndarray:
  """The tiles as one uint8 RGB picture: LR, the methods and HR in a row, each method's error map under it."""
  pics = [(k, v) for k, v in tiles.items() if not k.startswith("error: ")]
  errs = {k[len("error: "):]: v for k, v in tiles.items() if k.startswith("error: ")}
  grid = [[v for _, v in pics]] + ([[errs.get(k) for k, _ in pics]] if errs else [])
  h = max(t.shape[0] for t in tiles.values())
  w = max(t.shape[1] for t in tiles.values())
  out = np.full((len(grid) * (h + gap) - gap, len(pics) * (w + gap) - gap, 3), 255, np.uint8)
  for r, row in enumerate(grid):
    for c, t in enumerate(row):
      if t is not None:
        out[r * (h + gap):r * (h + gap) + t.shape[0], c * (w + gap):c * (w + gap) + t.shape[1]] = (
            t if t.ndim == 3 else t[..., None])
  return out


def overview(comp: Comparison, width: int = 240) -> np.ndarray:
  """The HR image (its Y for a gray one) subsampled by an integer step to at most `width` pixels across."""
  img = comp.hr_rgb if comp.hr_rgb is not None else comp.ref_y.astype(np.uint8)
  step = max(1, -(-img.shape[1] // width))
  return img[::step, ::step]


# ----------------------------------------------------------------------------------------------------------------
# Data sets and training runs.


@dataclasses.dataclass
class DatasetResult:
  """A data set scored by every method; rows: {"name", "size", "scores": {method: (psnr, ssim)}, "tiles", ...}."""

  dataset: str
  scale: int
  methods: list
  rows: list
  errors: list
  references: dict  # method -> (paper column, PSNR) or absent


def model_label(weight_file) -> str:
  """The name a weight file's model has in the report: "ESPCN (<file stem>)"."""
  return f"ESPCN ({pathlib.Path(str(weight_file)).stem})"


def evaluate_dataset(folder, scale: int, models: dict, out_dir, *, dataset: str | None = None,
                     model_meta: dict | None = None, degradation: str = "bicubic", sigma: float = 1.6,
                     kernel_size: int = 7, progress: bool = False) -> DatasetResult:
  """Scores every image of `folder` by bicubic and each model, writing its crops as PNG files under out_dir/img/.

  Bad images are listed in the result's `errors` (one line each), the others still scored. `model_meta` maps a
  model label to its weight file's meta ({"train", ...}) for the paper's reference values.
  """
  from tqdm import tqdm
  folder, out_dir, scale = pathlib.Path(folder), pathlib.Path(out_dir), int(scale)
  dataset = dataset or folder.name
  res = DatasetResult(dataset=dataset, scale=scale, methods=["bicubic", *models], rows=[], errors=[], references={})
  for label, (_, spec) in models.items():
    ref = paper.reference(dataset, scale, train=(model_meta or {}).get(label, {}).get("train"),
                          activation=spec.activation)
    if ref:
      res.references[label] = ref
  try:
    paths = image_files.list_images(folder)
  except image_files.ImageError as e:
    res.errors.append(str(e))
    return res
  # one folder per data set, scale and source folder (two folders with the same name do not share it)
  tag = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:6]
  sub = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dataset}_x{scale}_{tag}")
  for i, path in enumerate(tqdm(paths, desc=f"report {dataset} x{scale}", unit="img", leave=False, file=sys.stderr,
                                disable=None if progress else True)):
    try:
      comp = compare(image_files.load_image(path), scale, models, degradation=degradation, sigma=sigma,
                     kernel_size=kernel_size)
    except (image_files.ImageError, ValueError) as e:
      res.errors.append(str(e) if isinstance(e, image_files.ImageError) else f"{path}: {e}")
      continue
    tiles, arrays = {}, crop_tiles(comp)
    for j, (label, arr) in enumerate(arrays.items()):
      rel = f"img/{sub}/{i:04d}_{j}.png"
      image_files.save_image(out_dir / rel, arr)
      tiles[label] = rel
    rel = f"img/{sub}/{i:04d}_overview.png"
    image_files.save_image(out_dir / rel, overview(comp))
    res.rows.append({"name": path.name, "file": str(path),
                     "size": comp.ref_y.shape, "scores": comp.scores, "tiles": tiles,
                     "captions": captions(comp),
                     "overview": rel, "box": comp.box, "error_scale": error_scale(comp),
                     "tile_px": arrays["HR"].shape[1]})
  return res


@dataclasses.dataclass
class Run:
  """A training run's metrics.jsonl rows, and what its curves are compared with."""

  name: str
  source: str
  rows: list
  reference: tuple | None = None  # (paper column, PSNR on the validation set)
  val: str | None = None
  error: str | None = None


def _config_from_workdir(workdir: pathlib.Path) -> dict:
  best = workdir / "best.safetensors"
  if not best.is_file():
    return {}
  try:
    return weights.load(best)[2].get("config") or {}
  except weights.WeightsError:
    return {}


def _config_from_name(name: str) -> dict:
  """docs/runs names: x<scale>_<train>[_relu|_tanh|...]; T91 alone is "t91" followed by no other data set."""
  m = re.match(r"x(\d+)_(.*)", name)
  if not m:
    return {}
  tokens = m.group(2).split("_")
  train = "t91" if tokens[:1] == ["t91"] and "bsd200" not in tokens else "+".join(t for t in tokens if t in (
      "t91", "bsd200"))
  return {"scale": int(m.group(1)), "data": {"train": train, "val": "set5"},
          "model": {"activation": "relu" if "relu" in tokens else "tanh"}}


def load_run(path, *, name: str | None = None, config: dict | None = None) -> Run:
  """A workdir (its metrics.jsonl, and its config from best.safetensors) or a metrics.jsonl file (the config guessed
  from a docs/runs name such as x3_t91_tanh.metrics.jsonl). Never raises: problems are in `error` (one line)."""
  path = pathlib.Path(path)
  metrics_file = path / "metrics.jsonl" if path.is_dir() else path
  if path.name == "metrics.jsonl":
    default = path.resolve().parent.name
  else:
    default = path.resolve().name if path.is_dir() else path.name.split(".")[0]
  run = Run(name=name or default, source=str(path), rows=[])
  if not path.exists():
    run.error = f"{path}: no such workdir or metrics file"
    return run
  if not metrics_file.is_file():
    run.error = f"{path}: no metrics.jsonl (not a training workdir, or no epoch has finished yet)"
    return run
  try:
    text = metrics_file.read_text(errors="replace")
  except OSError as e:
    run.error = f"{metrics_file}: cannot read ({e.strerror or e})"
    return run
  bad = 0
  for line in text.splitlines():
    try:
      row = json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
      row = None
      bad += 1
    if isinstance(row, dict) and isinstance(row.get("step"), (int, float)):
      run.rows.append(row)
  if not run.rows:
    run.error = f"{metrics_file}: no metrics rows" + (f" ({bad} unreadable lines)" if bad else " yet")
  elif bad:
    run.error = f"{metrics_file}: {bad} unreadable line(s) skipped"
  cfg = config or _config_from_workdir(path if path.is_dir() else path.parent) or _config_from_name(run.name)
  run.val = (cfg.get("data") or {}).get("val") or None
  if cfg.get("scale") and run.val:
    run.reference = paper.reference(run.val, cfg["scale"], train=(cfg.get("data") or {}).get("train"),
                                    activation=(cfg.get("model") or {}).get("activation"))
  return run


def wall_minutes(rows: list) -> list:
  """Cumulative wall time (min) of each row: `elapsed_s` restarts at each resumed invocation, so it is summed."""
  out, offset, prev = [], 0.0, None
  for r in rows:
    e = r.get("elapsed_s")
    if not isinstance(e, (int, float)):
      out.append(None)
      continue
    if prev is not None and e < prev:
      offset += prev
    prev = e
    out.append((e + offset) / 60.0)
  return out


def write_report(out_dir, *, datasets=(), runs=(), errors=(), title: str = "ESPCN evaluation report",
                 notes=()) -> pathlib.Path:
  """Writes out_dir/index.html (self-contained, offline; the crops' PNG files beside it). Returns its path."""
  out_dir = pathlib.Path(out_dir)
  if out_dir.exists() and not out_dir.is_dir():
    raise image_files.ImageError(f"{out_dir}: not a folder")
  curves = [dict(name=r.name, source=r.source, rows=r.rows, wall=wall_minutes(r.rows), reference=r.reference,
                 val=r.val, error=r.error) for r in runs]
  errors = list(errors) + [e for d in datasets for e in d.errors] + [r.error for r in runs if r.error]
  html = report_html.page(title=title, notes=list(notes), errors=errors, datasets=list(datasets), runs=curves)
  target = out_dir / "index.html"
  atomic_io.write_text(target, html)
  return target
