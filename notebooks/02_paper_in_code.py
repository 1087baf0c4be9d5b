# ---
# jupyter:
#   colab:
#     provenance: []
#     toc_visible: true
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: colab
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # ESPCN, the paper in code
#
# Shi et al., *Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural
# Network*, CVPR 2016 ([arXiv:1609.05158](https://arxiv.org/abs/1609.05158)), read next to `espcn_jax`:
#
# 1. the periodic shuffle **PS** (eq. 4), stepped through on a tiny tensor and checked against `tf.nn.depth_to_space`
#    and PyTorch's `PixelShuffle`;
# 2. the sub-pixel convolution **is** a stride-r transposed convolution with an (r k) x (r k) kernel, numerically;
# 3. the learned filters of the shipped model, drawn like the paper's Fig. 3 and Fig. 4;
# 4. a speed / accuracy plot like Fig. 2, from our own numbers;
# 5. the cost of working in LR space instead of HR space (as SRCNN does), in FLOPs per output pixel.
#
# Everything runs on a laptop CPU in about a minute.
# %%
# Setup: where espcn-jax comes from, in this order:
#   1. this notebook runs inside a clone of the repository: the clone (for a clone's native kernels, run
#      `pip install -e .` in it once; without them the XLA path runs and says so);
#   2. espcn-jax is installed already: that installation;
#   3. else it is installed from ESPCN_SOURCE below (a Colab form field: a git URL or a wheel URL), or, left empty,
#      from the package index (`pip install espcn-jax`).
# Only espcn-jax and what this notebook needs are installed; packages already there (Colab's jax, TensorFlow,
# matplotlib) are kept as they are.
import importlib.util, os, pathlib, subprocess, sys

ESPCN_SOURCE = ""  # @param {type:"string"}
NEEDS = ""  # the extras this notebook uses

IN_COLAB = "google.colab" in sys.modules
here = pathlib.Path.cwd().resolve()
CLONE = next((p for p in (here, *here.parents)
              if (p / "espcn_jax" / "model.py").is_file() and (p / "pyproject.toml").is_file()), None)


def pip_target(source, extras):
  source = source.strip()
  name = f"espcn-jax[{extras}]" if extras else "espcn-jax"
  if not source:
    return name  # the package index
  if source.startswith("git+") or source.endswith(".git") or "://github.com/" in source:
    return f"{name} @ git+{source.removeprefix('git+')}"
  return f"{name} @ {source}" if "://" in source else source  # a wheel URL, or a local wheel / folder


if CLONE is not None:
  if str(CLONE) not in sys.path:
    sys.path.insert(0, str(CLONE))
  print("espcn-jax from the clone at", CLONE)
elif importlib.util.find_spec("espcn_jax") is None:
  target = pip_target(ESPCN_SOURCE, NEEDS)
  print("installing", target)
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", target], check=True)
  importlib.invalidate_caches()
ROOT = CLONE or here  # relative paths (outputs, runs) are taken from here
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from espcn_jax import image_files as _image_files
DATA = _image_files.data_root()  # the built-in Set5, Set14, T91, BSD200 (installed with the package)
print("espcn-jax:", pathlib.Path(_image_files.__file__).parent, "| data:", DATA)

# %% tags=["parameters"]
SCALE = 3              # upscaling factor r of the shipped weights to inspect
VARIANT = "t91"        # shipped weights: espcn_jax/pretrained/espcn_x{SCALE}_{VARIANT}.safetensors
BENCH_JSON = "runs/benchmark.json"  # from `python -m espcn_jax.benchmark --json ...` (relative to the repo root)
EVAL_JSON = "runs/evaluate.json"    # from `python -m espcn_jax.evaluate --json ...`
LIVE_DATASET = "Set5"  # measured live when the JSON files are absent
LIVE_IMAGES = 5        # how many images of LIVE_DATASET to measure
LIVE_REPEATS = 3       # timing repeats per image (the median is kept)

# %%
import json
import time
import warnings

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from espcn_jax import model, ps, weights

np.set_printoptions(linewidth=140)
HIGHEST = jax.lax.Precision.HIGHEST
print("jax", jax.__version__, "on", jax.devices())

# %% [markdown]
# ## 1. The periodic shuffle PS
#
# The last layer of ESPCN outputs, for every LR pixel, $C r^2$ channels. The periodic shuffle (eq. 4)
#
# $$\mathcal{PS}(T)_{x,y,c} = T_{\lfloor x/r \rfloor,\ \lfloor y/r \rfloor,\ C\,r\,\mathrm{mod}(y,r) + C\,\mathrm{mod}(x,r) + c}$$
#
# rearranges them into an $r \times r$ block of HR pixels ($x$: column, $y$: row). Take $r = 3$, $C = 1$ and a
# 2 x 2 LR tensor whose value `hwk` names its LR row `h`, column `w` and channel `k`:

# %%
r, C, H, W = 3, 1, 2, 2
T = np.array([[[100 * h + 10 * w + k for k in range(C * r * r)] for w in range(W)] for h in range(H)])
print("T:", T.shape, "(H, W, C*r*r)")
for k in range(C * r * r):
  print(f"channel {k}:", T[..., k].tolist())
out = np.asarray(ps.depth_to_space(T, r))
print("\nPS(T):", out.shape, "(r*H, r*W, C)")
print(out[..., 0])

# %% [markdown]
# Each LR pixel became a 3 x 3 block, its 9 channels laid out row by row: channel $k$ lands at row offset
# $k \,//\, r$ and column offset $k \bmod r$. The same, written as the paper's formula, element by element:

# %%
def ps_by_formula(T, r):
  """Eq. 4 of the paper, one output element at a time (x: column, y: row)."""
  h, w, crr = T.shape
  C = crr // (r * r)
  out = np.zeros((r * h, r * w, C), T.dtype)
  for y in range(r * h):
    for x in range(r * w):
      for c in range(C):
        out[y, x, c] = T[y // r, x // r, C * r * (y % r) + C * (x % r) + c]
  return out


np.testing.assert_array_equal(out, ps_by_formula(T, r))
np.testing.assert_array_equal(out[:3, :3, 0], T[0, 0].reshape(3, 3))  # LR pixel (0, 0) -> the top-left block
print("depth_to_space == eq. 4, and LR pixel (0, 0) fills HR block [0:3, 0:3] row by row")

# %% [markdown]
# With colour ($C = 3$) the order of the $C r^2$ channels matters. Ours (and TensorFlow's `depth_to_space`) puts the
# sub-pixel position first and the colour last: channel $(i r + j) C + c$ for row offset $i$, column offset $j$,
# colour $c$. PyTorch's `nn.PixelShuffle` puts the colour first: channel $c r^2 + i r + j$. Same layer, different
# weight order: `ps.torch_to_ours_perm` converts between them.

# %%
r, C = 2, 3
print("HR offset (i, j), colour c -> input channel:   ours (= TF)   PyTorch")
for i in range(r):
  for j in range(r):
    for c in range(C):
      print(f"   ({i}, {j}) {'RGB'[c]}{'':35s}{(i * r + j) * C + c:4d}{c * r * r + i * r + j:10d}")

rng = np.random.default_rng(0)
T = rng.normal(size=(1, 4, 5, C * r * r)).astype(np.float32)
ours = np.asarray(ps.depth_to_space(T, r))
np.testing.assert_array_equal(ps_by_formula(T[0], r), ours[0])
try:
  import tensorflow as tf
  np.testing.assert_array_equal(tf.nn.depth_to_space(T, r).numpy(), ours)
  print("\ntf.nn.depth_to_space gives the same array")
except ImportError:
  print("\n(TensorFlow not installed: skipped the tf.nn.depth_to_space check)")
try:
  import torch
  T_nchw = T[..., ps.ours_to_torch_perm(C, r)].transpose(0, 3, 1, 2)  # our channels in PyTorch's order
  got = torch.nn.PixelShuffle(r)(torch.from_numpy(np.ascontiguousarray(T_nchw))).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_array_equal(got, ours)
  naive = torch.nn.PixelShuffle(r)(torch.from_numpy(np.ascontiguousarray(T.transpose(0, 3, 1, 2)))).numpy()
  print("torch.nn.PixelShuffle gives the same array after ours_to_torch_perm; without it, max |diff| =",
        float(np.abs(naive.transpose(0, 2, 3, 1) - ours).max()))
except ImportError:
  print("(PyTorch not installed: skipped the PixelShuffle check)")

# %% [markdown]
# ## 2. Sub-pixel convolution = transposed convolution
#
# The paper notes that a convolution with stride $1/r$ (a transposed convolution) and a kernel of size $r k$ only
# ever touches every $r$-th weight for a given output phase, so it equals $r^2$ separate $k \times k$ convolutions in
# LR space followed by PS. `model.subpixel_to_deconv` rewrites the last layer (kernel $k \times k \times I \times
# C r^2$) as the $r k \times r k \times I \times C$ kernel of that transposed convolution; `model.deconv_apply` runs it.
# First the whole network by hand (conv, tanh, conv, tanh, conv, PS), to get the LR feature maps feeding the last layer:

# %%
def conv(x, kernel, bias):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision=HIGHEST) + bias


def lr_features(params, lr_BxHxWxC, spec):
  """The first L-1 layers: the LR feature maps the sub-pixel layer upscales."""
  act = model.ACTIVATIONS[spec.activation]
  x = lr_BxHxWxC
  for i in range(1, spec.num_layers):
    x = act(conv(x, params[f"conv{i}"]["kernel"], params[f"conv{i}"]["bias"]))
  return x


try:
  params, spec = weights.pretrained(scale=SCALE, variant=VARIANT)
  TRAINED = True
  print(f"shipped weights x{SCALE} ({VARIANT}):", spec)
except weights.WeightsError as e:
  TRAINED = False
  spec = model.Spec(scale=SCALE)
  params = model.init(jax.random.PRNGKey(0), spec)
  warnings.warn(f"NO SHIPPED WEIGHTS ({e}). Using RANDOM weights: the filters below are noise, not learned.")
  print("!" * 100 + "\n!!! RANDOM INIT: no shipped weights found; filters and PSNR below are NOT the trained model\n"
        + "!" * 100)

last = params[f"conv{spec.num_layers}"]
lr = jax.random.uniform(jax.random.PRNGKey(1), (1, 12, 14, spec.channels))
feat = lr_features(params, lr, spec)
by_hand = ps.depth_to_space(conv(feat, last["kernel"], last["bias"]), spec.scale)
np.testing.assert_allclose(by_hand, model.apply(params, lr, spec), atol=1e-5)

D, b = model.subpixel_to_deconv(last["kernel"], last["bias"], spec.scale)
deconv_out = model.deconv_apply(feat, D, b, spec.scale)
print("last-layer kernel", last["kernel"].shape, "-> deconvolution kernel", D.shape, "(r k, r k, I, C), bias", b.shape)
print("max |(conv + PS) - transposed conv| =", float(jnp.abs(deconv_out - by_hand).max()))
np.testing.assert_allclose(deconv_out, by_hand, atol=1e-4)

# %% [markdown]
# Why it works: the deconvolution kernel, sampled every $r$ pixels starting at phase $(a, b)$, is (flipped) exactly
# the $k \times k$ filter that produces the HR pixels at offset $(a, b)$ of every block. The $r^2$ sub-pixel filters
# are interleaved into one big kernel:

# %%
r, k = spec.scale, spec.kernel_sizes[-1]
K = np.asarray(last["kernel"])
for a in range(r):
  for bb in range(r):
    phase = np.asarray(D)[a::r, bb::r][::-1, ::-1]  # (k, k, I, C)
    np.testing.assert_array_equal(phase, K[..., (a * r + bb) * spec.channels:(a * r + bb + 1) * spec.channels])
print(f"all {r * r} phases of the {r * k}x{r * k} kernel are the {k}x{k} sub-pixel filters")

try:
  import torch
  I, Cout = K.shape[2], spec.channels
  deconv = torch.nn.ConvTranspose2d(I, Cout, k * r, stride=r, padding=r * (k // 2), bias=False)
  with torch.no_grad():
    deconv.weight.copy_(torch.from_numpy(np.asarray(D).transpose(2, 3, 0, 1).copy()))
    got = deconv(torch.from_numpy(np.asarray(feat).transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
  got = got + np.tile(np.asarray(b), (feat.shape[1], feat.shape[2], 1))[None]  # the bias is periodic (one per phase)
  print("PyTorch ConvTranspose2d(stride=r, padding=r*(k//2)): max |diff| =", float(np.abs(got - by_hand).max()))
  np.testing.assert_allclose(got, by_hand, atol=1e-4)
except ImportError:
  print("(PyTorch not installed: skipped the ConvTranspose2d check)")

# %% [markdown]
# Same output, but not the same cost: the transposed convolution multiplies an $r k \times r k$ kernel with an input
# that is mostly inserted zeros, while the sub-pixel layer runs $k \times k$ convolutions at LR resolution only.
#
# ## 3. The learned filters (paper Fig. 3 and Fig. 4)
#
# Fig. 3 of the paper shows the first-layer 5 x 5 filters, Fig. 4 the last-layer filters, before (b) and after (c) PS.
# Here: the first layer; the last layer's $k \times k$ filters (one row per sub-pixel phase, one column per feature map);
# and the same weights after PS, i.e. the $r k \times r k$ deconvolution kernels.

# %%
def show_grid(tiles, ncols, title, zoom=0.12):
  """Draws (N, h, w) filters in a grid, each scaled to its own max |weight| (grey = 0), as one image."""
  tiles = np.asarray(tiles, np.float32)
  n, h, w = tiles.shape
  nrows = -(-n // ncols)
  mosaic = np.full((nrows * (h + 1) + 1, ncols * (w + 1) + 1), np.nan, np.float32)
  for t, tile in enumerate(tiles):
    y, x = divmod(t, ncols)
    mosaic[1 + y * (h + 1):(y + 1) * (h + 1), 1 + x * (w + 1):(x + 1) * (w + 1)] = tile / (np.abs(tile).max() or 1.0)
  cmap = plt.get_cmap("gray").copy()
  cmap.set_bad("white")
  fig, ax = plt.subplots(figsize=(max(mosaic.shape[1] * zoom, 4), max(mosaic.shape[0] * zoom, 1) + 0.5))
  ax.imshow(mosaic, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
  ax.axis("off")
  ax.set_title(title + ("" if TRAINED else "  [RANDOM INIT, not trained]"))
  plt.show()


first = np.asarray(params["conv1"]["kernel"])  # (5, 5, C, 64)
show_grid(first[:, :, 0].transpose(2, 0, 1), 16, f"first layer: {first.shape[-1]} filters of "
          f"{first.shape[0]}x{first.shape[1]} (cf. Fig. 3)")
n_in = K.shape[2]
show_grid(K[:, :, :, 0::spec.channels].transpose(3, 2, 0, 1).reshape(-1, k, k), n_in,
          f"last layer: {k}x{k} filters, rows: {r * r} sub-pixel phases, columns: {n_in} feature maps (cf. Fig. 4b)")
show_grid(np.asarray(D)[:, :, :, 0].transpose(2, 0, 1), 16,
          f"last layer after PS: {n_in} deconvolution kernels of {r * k}x{r * k} (cf. Fig. 4c)", zoom=0.08)

# %% [markdown]
# ## 4. Speed and accuracy (paper Fig. 2)
#
# Fig. 2 of the paper plots PSNR against run time per image. We plot our own numbers: read from the JSON files written
# by `python -m espcn_jax.evaluate --json` and `python -m espcn_jax.benchmark --json` when both are present, else
# measured here on `LIVE_DATASET` with the evaluation protocol of `espcn_jax.evaluate` (MATLAB bicubic degradation,
# PSNR on Y with an r-pixel border shaved). Measured live, ESPCN is also timed against the same network run in HR
# space on a bicubic-upscaled input, as SRCNN does (untrained: its time only). From the JSON files, the points are
# our net per compute dtype and the peers of the benchmark (PyTorch, onnxruntime, ...) running the same weights.

# %%
from espcn_jax import evaluate, image_files, image_ops


def median_time(fn, *args, repeats=LIVE_REPEATS):
  jax.block_until_ready(fn(*args))  # compile
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def hr_space_net(p, x):
  """The same layers run at HR resolution on a bicubic-upscaled image, ending in C outputs (SRCNN's way)."""
  for i in range(1, spec.num_layers):
    x = jnp.tanh(conv(x, p[f"conv{i}"]["kernel"], p[f"conv{i}"]["bias"]))
  return conv(x, p["last"]["kernel"], p["last"]["bias"])


def measure_live(dataset):
  """Per image: PSNR of bicubic and ESPCN (evaluate's protocol), and times of bicubic, ESPCN, the HR-space net."""
  hr_params = {f"conv{i}": params[f"conv{i}"] for i in range(1, spec.num_layers)}
  hr_params["last"] = {"kernel": K[..., :spec.channels], "bias": np.asarray(last["bias"])[:spec.channels]}
  espcn_fn = jax.jit(lambda p, x: model.apply(p, x, spec))
  bicubic_fn = jax.jit(lambda x: image_ops.imresize(x, r))
  hr_fn = jax.jit(hr_space_net)
  rows = []
  for path in image_files.list_images(image_files.builtin_dataset_dir(dataset))[:LIVE_IMAGES]:
    hr_u8 = image_files.load_image(path)
    scores = evaluate.evaluate_image(hr_u8, r, params=params, spec=spec)
    y = image_ops.luma_uint8(image_ops.modcrop(hr_u8, r)).astype(np.float32) / 255.0
    lr = image_ops.degrade(y, r)
    lr4 = lr[None, ..., None]
    rows.append(dict(image=path.name, psnr_bicubic=scores["bicubic"][0], psnr_espcn=scores["espcn"][0],
                     t_bicubic=median_time(bicubic_fn, lr), t_espcn=median_time(espcn_fn, params, lr4),
                     t_hr_space=median_time(hr_fn, hr_params, bicubic_fn(lr)[None, ..., None])))
    row = rows[-1]
    print(f"{path.name:16s} {y.shape[0]:4d}x{y.shape[1]:<4d} bicubic {row['psnr_bicubic']:6.2f} dB, ESPCN "
          f"{row['psnr_espcn']:6.2f} dB | ESPCN {row['t_espcn'] * 1e3:7.1f} ms, same net in HR space "
          f"{row['t_hr_space'] * 1e3:7.1f} ms")
  return {key: float(np.mean([row[key] for row in rows])) for key in rows[0] if key != "image"}


def read_json(rel):
  path = ROOT / rel
  if not path.is_file():
    return None
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e})") from None


def points_from_json(bench, ev):
  """(label, ms, psnr, marker, filled) from benchmark.py's and evaluate.py's JSON: speed at the benchmark's
  resolution, accuracy on the evaluated set (Set14 preferred, as the paper's Fig. 2); reduced precision shifted by
  the benchmark's measured PSNR drift; the peers run the same weights (max |diff| reported), so the same PSNR."""
  acc = {(row["dataset"], row["method"]): row["psnr"] for row in ev["results"] if row["scale"] == bench["scale"]}
  sets = sorted({d for d, _ in acc}, key=lambda d: (d != "Set14", d))
  if not sets:
    raise ValueError(f"{EVAL_JSON} has no x{bench['scale']} results to pair with {BENCH_JSON}")
  dataset = sets[0]
  drift = bench.get("psnr_drift_db") or {}
  best = {}
  for row in bench["results"]:  # the fastest batch size of each (method, dtype)
    key = (row["method"], row["dtype"])
    if key not in best or row["ms_per_frame"] < best[key]["ms_per_frame"]:
      best[key] = row
  points = []
  for (method, dtype), row in best.items():
    if method.startswith("bicubic"):
      psnr, marker, label = acc.get((dataset, "bicubic")), "s", f"{method}"
    else:
      psnr = acc.get((dataset, "espcn"))
      psnr = None if psnr is None else psnr + drift.get(dtype, 0.0)
      marker, label = ("o" if method.startswith("espcn-jax") else "^"), f"{method} {dtype} b{row['batch']}"
    if psnr is not None:
      points.append((label, row["ms_per_frame"], psnr, marker, True))
  where = f"{bench['device']}, {bench['resolution']} output (ms per frame)"
  return points, dataset, where


bench, ev = read_json(BENCH_JSON), read_json(EVAL_JSON)
r = spec.scale
if bench is not None and ev is not None:
  points, dataset, where = points_from_json(bench, ev)
  print(f"from {BENCH_JSON} and {EVAL_JSON}: {len(points)} points, PSNR on {dataset}")
  for label, ms, p, *_ in points:
    print(f"  {label:45s} {ms:9.2f} ms/frame  {p:6.2f} dB")
else:
  print(f"{BENCH_JSON} / {EVAL_JSON} not found: measuring live on {LIVE_DATASET}")
  live = measure_live(LIVE_DATASET)
  print(f"\nmean over {LIVE_DATASET}[:{LIVE_IMAGES}] on {jax.devices()[0].platform}: "
        f"HR-space / LR-space time = {live['t_hr_space'] / live['t_espcn']:.1f}x")
  assert live["t_hr_space"] > live["t_espcn"], "the same net on r^2 times more pixels cannot be faster"
  if TRAINED:
    assert live["psnr_espcn"] > live["psnr_bicubic"], "the trained model should beat bicubic"
  points = [("bicubic", live["t_bicubic"] * 1e3, live["psnr_bicubic"], "s", True),
            ("ESPCN (LR space)", live["t_espcn"] * 1e3, live["psnr_espcn"], "o", True),
            ("same net in HR space (time only)", live["t_hr_space"] * 1e3, live["psnr_espcn"], "o", False)]
  dataset, where = LIVE_DATASET, f"{jax.devices()[0].platform}, mean per image (ms)"

# %%
fig, ax = plt.subplots(figsize=(8, 4.8))
for i, (label, ms, p, marker, filled) in enumerate(points):
  color = f"C{i}"
  ax.scatter(ms, p, s=80, marker=marker, label=label, color=color if filled else "none", edgecolors=color)
if bench is None or ev is None:
  ax.annotate(f"{live['t_hr_space'] / live['t_espcn']:.1f}x the time of ESPCN", (live["t_hr_space"] * 1e3,
              live["psnr_espcn"]), xytext=(0, -16), textcoords="offset points", ha="center", fontsize=8)
ax.set_xscale("log")
ax.set_xlabel(f"time ({where}, log scale)")
ax.set_ylabel(f"mean PSNR on Y (dB), {dataset} x{r}")
ax.set_title("speed vs accuracy (cf. paper Fig. 2)" + ("" if TRAINED else "  [RANDOM INIT]"))
ax.grid(True, which="both", alpha=0.3)
ax.legend(loc="best", fontsize=8)
plt.show()

# %% [markdown]
# ## 5. LR space vs HR space: the cost per output pixel
#
# A convolution layer with a $k \times k$ kernel from $n_{in}$ to $n_{out}$ channels costs $2 k^2 n_{in} n_{out}$
# FLOPs per pixel it runs on. ESPCN runs every layer on the LR grid, so per *output* pixel it pays
# `model.flops_per_lr_pixel(spec)` / $r^2$. Run the same layers on a bicubic-upscaled input (as SRCNN does) and every
# layer runs on the HR grid: about $r^2$ times more, for the same network.

# %%
def layer_flops(kernel_sizes, widths):
  return sum(2 * k * k * cin * cout for k, cin, cout in zip(kernel_sizes, widths[:-1], widths[1:]))


def hr_space_flops(s):
  """Per HR pixel: the same layers at HR resolution, the last one with C outputs (no PS)."""
  return layer_flops(s.kernel_sizes, (s.channels,) + s.features + (s.channels,))


SRCNN_915 = layer_flops((9, 1, 5), (1, 64, 32, 1))  # Dong et al. 2014, per HR pixel
print(f"{'r':>2} {'ESPCN / out px':>15} {'same net in HR space':>21} {'ratio':>6} {'SRCNN 9-1-5':>12} "
      f"{'LR-space width x at equal cost':>31}")
table = []
for scale in (2, 3, 4):
  s = model.Spec(scale=scale, channels=spec.channels, features=spec.features, kernel_sizes=spec.kernel_sizes,
                 activation=spec.activation)
  assert model.flops_per_lr_pixel(s) == layer_flops(s.kernel_sizes, (s.channels,) + s.features + (s.channels * scale ** 2,))
  lr_cost = model.flops_per_lr_pixel(s) / scale ** 2
  hr_cost = hr_space_flops(s)
  # the widest LR-space network (all hidden widths times m) that costs what the HR-space one does per output pixel
  m = 1.0
  while model.flops_per_lr_pixel(model.Spec(scale=scale, channels=s.channels, features=tuple(
      round(f * (m + 0.01)) for f in s.features), kernel_sizes=s.kernel_sizes)) / scale ** 2 <= hr_cost:
    m += 0.01
  table.append((scale, lr_cost, hr_cost, m))
  print(f"{scale:>2} {lr_cost:>15,.0f} {hr_cost:>21,} {hr_cost / lr_cost:>6.2f} {SRCNN_915:>12,} {m:>31.2f}")
assert all(hr / lr > 0.8 * sc ** 2 for sc, lr, hr, _ in table), "HR space should cost about r^2 times more"

fig, ax = plt.subplots(figsize=(7, 3.5))
x = np.arange(len(table))
ax.bar(x - 0.2, [t[1] / 1e3 for t in table], 0.4, label="ESPCN (LR space)")
ax.bar(x + 0.2, [t[2] / 1e3 for t in table], 0.4, label="same net in HR space (SRCNN-style)")
ax.set_xticks(x, [f"x{t[0]}" for t in table])
ax.set_ylabel("kFLOPs per output pixel")
ax.set_title(f"cost per output pixel, {spec.features} hidden widths")
ax.legend()
plt.show()

# %% [markdown]
# At equal cost, the LR-space network can be much wider (last column above: every hidden width multiplied by that
# factor), or, at equal width, it is about $r^2$ times faster. The measured time ratio of section 4 is smaller than
# the FLOP ratio on a CPU, where small convolutions are limited by memory traffic rather than arithmetic; see
# `python -m espcn_jax.benchmark` for accelerator numbers.
