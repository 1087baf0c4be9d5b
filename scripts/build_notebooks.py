"""Generates the Colab notebooks in notebooks/ from the cell sources kept in this script (outputs stripped).

The notebooks are code: review and edit them here, then regenerate.

    python scripts/build_notebooks.py            # (re)writes notebooks/0*.ipynb
    python scripts/build_notebooks.py --check    # exit status 1 if a notebook differs from its source here

Cell sources use the "percent" format: a line `# %%` starts a code cell, `# %% [markdown]` a markdown cell (its lines
start with "# "), and `# %% tags=["parameters"]` a code cell with tags. The parameter cell of each notebook holds small
settings, so every notebook runs top to bottom on a laptop CPU; `tests/test_notebooks.py` executes them.
"""

from __future__ import annotations

import argparse
import ast
import os
import pathlib
import sys
import tempfile

import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
REPO_URL = "https://github.com/REPLACE-WITH-OWNER/espcn-jax"  # placeholder until the public repository exists

# The first code cell of every notebook: installs in Colab, finds the checkout locally.
SETUP = r'''# %%
# Setup. In Colab: clone the repository (its data/ folder holds the images) and install espcn-jax from it.
# Locally: run from a checkout of the repository; the notebook finds the repository root above its folder.
import os, pathlib, subprocess, sys

REPO_URL = "@REPO_URL@"  # placeholder: set it to the project's repository
IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
  ROOT = pathlib.Path("/content/espcn-jax")
  if not ROOT.exists():
    subprocess.run(["git", "clone", "--depth", "1", REPO_URL, str(ROOT)], check=True)
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"espcn-jax[notebooks,video] @ git+{REPO_URL}"],
                 check=True)
else:
  here = pathlib.Path.cwd().resolve()
  ROOT = next((p for p in (here, *here.parents) if (p / "espcn_jax" / "model.py").is_file()), None)
  if ROOT is None:
    raise RuntimeError(f"run this notebook inside a checkout of espcn-jax (current folder: {here})")
  if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # use the checkout even when espcn-jax is not pip-installed
os.environ.setdefault("ESPCN_DATA_DIR", str(ROOT / "data"))  # Set5, Set14, T91, BSD200 of the checkout
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
print("repository root:", ROOT)
'''

# A helper several notebooks share: run a command-line module of the package, streaming its output live.
RUN_MODULE = r'''
def run_module(module, *args, check=True):
  """Runs `python -m <module> <args>` from the repository root, printing its output as it comes."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
  cmd = [sys.executable, "-m", module, *map(str, args)]
  print("$ python", " ".join(cmd[1:]), flush=True)
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  lines = []
  try:
    for line in proc.stdout:
      lines.append(line)
      print(line, end="", flush=True)
  except KeyboardInterrupt:  # stopping the cell: pass Ctrl-C on (the trainer checkpoints), wait for it to exit
    import signal
    proc.send_signal(signal.SIGINT)
    print(proc.communicate()[0], end="", flush=True)
    raise
  if proc.wait() and check:
    raise RuntimeError(f"{module} exited with status {proc.returncode}: {''.join(lines[-3:]).strip()}")
  return "".join(lines)
'''

# ------------------------------------------------------------------------------------------------------------------
NB01 = r'''# %% [markdown]
# # ESPCN quickstart
#
# Upscale a picture x3 with the shipped ESPCN weights (Shi et al., CVPR 2016), compare it with bicubic
# interpolation, then push a short generated video through the video path. Runs on a laptop CPU in under a minute;
# in Colab, *Runtime > Change runtime type* gives you a GPU, which JAX uses without any change here.
''' + SETUP + r'''
# %% tags=["parameters"]
SCALE = 3                        # upscaling factor of the shipped weights
VARIANT = "t91"                  # espcn_jax/pretrained/espcn_x{SCALE}_{VARIANT}.safetensors
IMAGE = "data/Set5/butterfly.png"  # any picture; it is downscaled x SCALE, then upscaled back and compared
VIDEO_FRAMES = 12                # length of the generated clip
VIDEO_LR_SIZE = (96, 128)        # (height, width) of the clip's frames before upscaling
OUT_DIR = "runs/notebooks"       # outputs (relative to the repository root)

# %%
import jax
import matplotlib.pyplot as plt
import numpy as np

from espcn_jax import image_ops, images, inference, metrics, model, video, weights

print("jax", jax.__version__, "devices:", jax.devices())
try:
  params, spec = weights.pretrained(scale=SCALE, variant=VARIANT)
  TRAINED = True
  print(f"shipped weights x{SCALE} ({VARIANT}):", spec)
except weights.WeightsError as e:
  TRAINED = False
  spec = model.Spec(scale=SCALE)
  params = model.init(jax.random.PRNGKey(0), spec)
  print("!" * 100 + f"\n!!! NO SHIPPED WEIGHTS: {e}\n!!! Using RANDOM weights: the 'ESPCN' pictures below are NOT "
        "super-resolved\n" + "!" * 100)
up = inference.Upscaler(params, spec)  # jitted once per canvas shape; tiles big pictures, keeps colour via YCbCr
out_dir = ROOT / OUT_DIR
out_dir.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## One picture
#
# The high-resolution (HR) picture is downscaled with MATLAB's bicubic `imresize` (the standard degradation of the
# SR literature). ESPCN upscales the luma Y; the colour (Cb, Cr) is upscaled by bicubic, as in the paper. PSNR is
# measured on Y with a `SCALE`-pixel border shaved, as `python -m espcn_jax.evaluate` does.

# %%
r = spec.scale
hr_u8 = image_ops.modcrop(images.load_image(ROOT / IMAGE), r)
lr = np.asarray(image_ops.degrade(hr_u8.astype(np.float32) / 255.0, r))  # float LR in [0, 1]
bicubic = np.clip(np.asarray(image_ops.imresize(lr, r)), 0.0, 1.0)
espcn = up.image(lr)  # float in, float out (uint8 in, uint8 out)
y_hr = image_ops.luma_uint8(hr_u8)


def psnr_y(img01):
  return metrics.psnr(metrics.quantize(np.asarray(image_ops.luma(img01)).squeeze()), y_hr.squeeze(), r)


scores = {"bicubic": psnr_y(bicubic), "ESPCN": psnr_y(espcn)}
print(f"{IMAGE}: HR {hr_u8.shape[1]}x{hr_u8.shape[0]}, LR {lr.shape[1]}x{lr.shape[0]}; PSNR on Y: "
      + ", ".join(f"{k} {v:.2f} dB" for k, v in scores.items()))
saved = images.save_image(out_dir / (pathlib.Path(IMAGE).stem + f"_x{r}.png"), espcn)
print("saved", saved)
if TRAINED:
  assert scores["ESPCN"] > scores["bicubic"], "the trained model should beat bicubic"

# %%
h, w = hr_u8.shape[:2]
box = (h // 3, w // 3, h // 3, w // 3)  # zoom: the central third (y, x, height, width)
panels = [("LR (input)", lr, None), ("bicubic", bicubic, scores["bicubic"]),
          ("ESPCN" + ("" if TRAINED else " [RANDOM INIT]"), espcn, scores["ESPCN"]), ("HR (ground truth)", hr_u8, None)]
fig, axes = plt.subplots(2, 4, figsize=(16, 8.4))
for col, (title, img, score) in enumerate(panels):
  img = np.asarray(img)
  img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else np.clip(img, 0, 1)
  f = 1 if img.shape[0] == h else 1 / r  # the LR picture is drawn at HR size (nearest neighbour)
  y0, x0, bh, bw = (int(round(v * f)) for v in box)
  kw = dict(cmap="gray" if img.ndim == 2 else None, interpolation="nearest", extent=(0, w, h, 0))
  axes[0, col].imshow(img, **kw)
  axes[0, col].add_patch(plt.Rectangle((box[1], box[0]), box[3], box[2], fill=False, color="yellow"))
  axes[0, col].set_title(title + (f"\nPSNR (Y) {score:.2f} dB" if score is not None else f"\n{img.shape[1]}x{img.shape[0]}"))
  axes[1, col].imshow(img[y0:y0 + bh, x0:x0 + bw], cmap=kw["cmap"], interpolation="nearest")
  for ax in axes[:, col]:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# The same from the command line (folders, videos, big pictures with tiling):
#
# ```
# python -m espcn_jax.upscale data/Set5/butterfly.png -o runs/butterfly_x3.png
# python -m espcn_jax.upscale clip.mp4 -o clip_x3.mp4
# ```
#
# ## A short video
#
# We generate a clip (a camera panning across a Set14 picture), write it with ffmpeg, and upscale it with
# `espcn_jax.video.upscale_video`, which streams the frames in fixed-size batches through one jitted program.

# %%
import warnings

import imageio_ffmpeg

vh, vw = VIDEO_LR_SIZE
source = images.load_image(ROOT / "data/Set14/comic.png")
source = source if source.ndim == 3 else np.repeat(source[..., None], 3, -1)
source = np.asarray(image_ops.imresize(source.astype(np.float32) / 255.0, output_shape=(
    max(vh + VIDEO_FRAMES * 2, source.shape[0] // 2), max(vw + VIDEO_FRAMES * 3, source.shape[1] // 2))))
frames = [np.round(np.clip(source[2 * t:2 * t + vh, 3 * t:3 * t + vw], 0, 1) * 255).astype(np.uint8)
          for t in range(VIDEO_FRAMES)]  # pan 2 px down, 3 px right per frame
clip = out_dir / "clip_lr.mp4"
writer = imageio_ffmpeg.write_frames(str(clip), (vw, vh), fps=12, codec="libx264", quality=9, macro_block_size=1,
                                     ffmpeg_log_level="error")
with warnings.catch_warnings():  # JAX warns that forking a multithreaded process may deadlock; ffmpeg only execs
  warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
  writer.send(None)
for f in frames:
  writer.send(np.ascontiguousarray(f))
writer.close()

clip_x = out_dir / f"clip_x{r}.mp4"
n = video.upscale_video(clip, clip_x, up.frames, frames_per_call=up.frames_per_call, progress=True)
meta, decoded = video.open_video(clip_x)
print(f"{clip.name} -> {clip_x.name}: {n} frames, {meta['size'][0]}x{meta['size'][1]} at {float(meta['fps']):.2f} fps")
assert n == VIDEO_FRAMES and meta["size"] == (vw * r, vh * r)

# %%
mid = VIDEO_FRAMES // 2
out_frames = list(decoded)
lr_meta, lr_decoded = video.open_video(clip)
lr_frame = list(lr_decoded)[mid]
bic_frame = np.clip(np.asarray(image_ops.imresize(lr_frame.astype(np.float32) / 255.0, r)), 0, 1)
fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
for ax, (title, img) in zip(axes, [(f"LR frame {mid} ({vw}x{vh})", lr_frame), ("bicubic", bic_frame),
                                   ("ESPCN, decoded from " + clip_x.name, out_frames[mid])]):
  ax.imshow(img, interpolation="nearest", extent=(0, vw * r, vh * r, 0))
  ax.set_title(title)
  ax.axis("off")
plt.tight_layout()
plt.show()
'''

# ------------------------------------------------------------------------------------------------------------------
NB02 = r'''# %% [markdown]
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
''' + SETUP + r'''
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
from espcn_jax import evaluate, image_ops, images


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
  for path in images.list_images(images.builtin_dataset_dir(dataset))[:LIVE_IMAGES]:
    hr_u8 = images.load_image(path)
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
'''


# ------------------------------------------------------------------------------------------------------------------
NB03 = r'''# %% [markdown]
# # Training ESPCN on T91
#
# Trains with the command-line module `python -m espcn_jax.train` (the same command you would run on a machine with
# accelerators), shows its progress and TensorBoard, evaluates the best weights, and resumes after a runtime restart.
#
# The parameter cell runs the **smoke** config (a few hundred steps: minutes on a CPU). For the paper's run, set
# `CONFIG = "configs/t91_x3_tanh.py"` and use a GPU runtime (*Runtime > Change runtime type*).
#
# This notebook never imports JAX itself: the training and evaluation subprocesses get the whole accelerator.
''' + SETUP + r'''
# %% tags=["parameters"]
CONFIG = "configs/smoke.py"          # a file in configs/ (the paper's x3 run: "configs/t91_x3_tanh.py")
WORKDIR = "workdirs/notebook_train"  # checkpoints, metrics.jsonl, TensorBoard events, best.safetensors
OVERRIDES = {}                       # config fields to change, e.g. {"num_epochs": 20, "optim.learning_rate": 0.003}
RESUME_EXTRA_EPOCHS = 1              # the resume demo asks for this many more epochs
FRESH = False                        # True: delete WORKDIR first; False: continue a run found there
EVAL_DATA = ["set5", "set14"]        # evaluated with the best weights at the end
TENSORBOARD = True                   # inline TensorBoard where the extension is available

# %%
import json
import shutil

@RUN_MODULE@


workdir = (ROOT / WORKDIR).resolve()
if FRESH and workdir.exists():
  shutil.rmtree(workdir)
override_args = [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
if TENSORBOARD:
  import importlib.util
  if importlib.util.find_spec("tensorboard") and importlib.util.find_spec("tensorflow"):
    override_args.append("--config.tensorboard=True")  # event files in WORKDIR/tensorboard
  else:
    TENSORBOARD = False
    print("(no TensorBoard: `pip install tensorboard` for it; metrics.jsonl is plotted below anyway)")
# Which accelerator will the subprocesses see? (asked in a subprocess: the kernel stays off the device)
probe = subprocess.run([sys.executable, "-c", "import jax; d = jax.devices(); print(d[0].platform, len(d), d[0].device_kind)"],
                       capture_output=True, text=True, check=True)
platform, n_devices, kind = probe.stdout.split(maxsplit=2)
print(f"accelerator: {platform} x {n_devices} ({kind.strip()})")
if platform == "cpu":
  print("No GPU / TPU: the smoke config still runs in minutes; for the paper's run pick a GPU runtime"
        + (" (Runtime > Change runtime type)." if IN_COLAB else "."))

# %% [markdown]
# ## The config
#
# A config file returns a nested dict (`get_config()`); any field can be overridden on the command line with
# `--config.FIELD=VALUE` (here: `OVERRIDES`).

# %%
from espcn_jax import train  # only the config helpers: no JAX import happens here

cfg, _ = train.parse_args(["--config", str(ROOT / CONFIG), *override_args])
print(json.dumps(cfg, indent=1, default=str))

# %% [markdown]
# ## Train
#
# Progress is printed as it comes. Stopping the cell (or a Ctrl-C) makes the trainer save a checkpoint and exit;
# **running this cell again continues from the latest checkpoint in `WORKDIR`**, also after a runtime restart, since
# the workdir lives on disk (in Colab, put it on Google Drive to survive a new VM).

# %%
def train_run(*extra):
  return run_module("espcn_jax.train", "--config", ROOT / CONFIG, "--workdir", workdir, *override_args, *extra)


log = train_run()

# %% [markdown]
# ## Progress
#
# `metrics.jsonl` holds one JSON line per logged epoch; TensorBoard reads the event files in the workdir.

# %%
def read_metrics():
  path = workdir / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def plot_metrics(rows):
  import matplotlib.pyplot as plt
  xkey = "step" if any("step" in r for r in rows) else "epoch"
  keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k not in ("step", "epoch")})
  losses = [k for k in keys if "loss" in k]
  psnrs = [k for k in keys if "psnr" in k]
  fig, ax = plt.subplots(figsize=(8, 4))
  for k in losses:
    pts = [(r[xkey], r[k]) for r in rows if k in r and xkey in r]
    ax.plot(*zip(*pts), label=k)
  ax.set_yscale("log")
  ax.set_xlabel(xkey)
  ax.set_ylabel("loss (MSE)")
  if psnrs:
    ax2 = ax.twinx()
    for i, k in enumerate(psnrs):
      pts = [(r[xkey], r[k]) for r in rows if k in r and xkey in r]
      ax2.plot(*zip(*pts), "o--", color=f"C{len(losses) + i}", label=k)
    ax2.set_ylabel("PSNR (dB)")
    ax2.legend(loc="upper right")
  ax.legend(loc="upper left")
  ax.set_title(f"training: {workdir.name}")
  plt.show()


rows = read_metrics()
print(f"{len(rows)} lines in metrics.jsonl; last: {rows[-1] if rows else None}")
assert rows, f"{workdir / 'metrics.jsonl'} is empty: did training run?"
plot_metrics(rows)

if TENSORBOARD and (workdir / "tensorboard").is_dir():
  try:
    ip = get_ipython()
    ip.run_line_magic("load_ext", "tensorboard")
    ip.run_line_magic("tensorboard", f"--logdir {workdir / 'tensorboard'}")
  except Exception as e:  # no IPython, no tensorboard package, or no notebook front-end
    print(f"(TensorBoard not shown: {type(e).__name__}: {e})")

# %% [markdown]
# ## Evaluate the best weights
#
# `best.safetensors` holds the weights with the best validation PSNR; `espcn_jax.evaluate` scores them with the
# paper's protocol (PSNR / SSIM on Y, border = scale) next to bicubic.

# %%
best = workdir / "best.safetensors"
assert best.is_file(), f"{best} missing: training exports it"
run_module("espcn_jax.evaluate", "--checkpoint", best, *[a for d in EVAL_DATA for a in ("--data", d)],
           "--json", workdir / "eval.json")
results = json.loads((workdir / "eval.json").read_text())["results"]
by = {(r["dataset"], r["method"]): r["psnr"] for r in results}
for ds in sorted({d for d, _ in by}):
  print(f"{ds}: ESPCN {by[(ds, 'espcn')]:.2f} dB vs bicubic {by[(ds, 'bicubic')]:.2f} dB "
        f"({by[(ds, 'espcn')] - by[(ds, 'bicubic')]:+.2f})")

# %% [markdown]
# ## Resume after a runtime restart
#
# Restarting the runtime forgets everything in Python, not the workdir. Re-running the training cell with the same
# settings continues from the latest checkpoint (the optimizer state and the patch sampler's position included, so
# the result is the same as one uninterrupted run). Here we simulate it: a fresh process asks for
# `RESUME_EXTRA_EPOCHS` more epochs and picks up where the first one stopped.

# %%
done_epochs = max((r.get("epoch", 0) for r in rows), default=0)
log2 = train_run(f"--config.num_epochs={done_epochs + RESUME_EXTRA_EPOCHS}")
rows2 = read_metrics()
new_epochs = sorted({r["epoch"] for r in rows2 if r.get("epoch", 0) > done_epochs})
print(f"\nbefore: {done_epochs} epochs; after the resumed run: {max(r.get('epoch', 0) for r in rows2)} "
      f"(new: {new_epochs})")
assert "resuming from" in log2, "the second run should resume from the checkpoint"
assert new_epochs and new_epochs[0] == done_epochs + 1, "the resumed run should continue at the next epoch"
plot_metrics(rows2)
'''

# ------------------------------------------------------------------------------------------------------------------
NB04 = r'''# %% [markdown]
# # Reproducing Table 1 of the paper (x3)
#
# Table 1 of Shi et al. (CVPR 2016) gives the mean PSNR on Y of SRCNN and ESPCN trained on the 91 images (T91) or on
# ImageNet, with tanh or relu, for upscaling factor 3. This notebook computes our numbers **live** from the shipped
# weights on Set5 and Set14 (in the repository), and on BSD300 / BSD500 (their test images) when you downloaded them:
#
# ```
# python scripts/download_test_sets.py --out data/external     # once; needs the network
# ```
#
# Protocol (`espcn_jax.evaluate`, the SRCNN / VDSR MATLAB scripts'): HR = modcrop(image, 3); Y as MATLAB's `rgb2ycbcr`
# on uint8; LR = MATLAB `imresize(Y, 1/3, 'bicubic')`; outputs clipped and quantised to uint8 levels; PSNR on Y with
# 3 pixels shaved off each border. Its bicubic numbers must match the published bicubic baselines: checked below.
''' + SETUP + r'''
# %% tags=["parameters"]
SCALE = 3                   # Table 1 is x3
VARIANT = "t91"             # shipped weights: espcn_jax/pretrained/espcn_x{SCALE}_{VARIANT}.safetensors
DATASETS = ["Set5", "Set14"]  # built-in test sets (data/)
EXTERNAL_DIR = "data/external"  # BSD300_test/ and BSD500_test/ from scripts/download_test_sets.py, used if present
JSON_OUT = None             # e.g. "runs/table1_x3.json" to keep the numbers (written atomically)

# %%
import jax
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from espcn_jax import evaluate, images, model, weights

# Table 1 of Shi et al. 2016: mean PSNR (dB) on Y, upscaling factor 3. Transcribed from the paper.
PAPER_TABLE1_X3 = {
    "SRCNN (91)":            {"Set5": 32.39, "Set14": 29.00, "BSD300": 28.21, "BSD500": 28.28},
    "ESPCN (91 relu)":       {"Set5": 32.39, "Set14": 28.97, "BSD300": 28.20, "BSD500": 28.27},
    "ESPCN (91)":            {"Set5": 32.55, "Set14": 29.08, "BSD300": 28.26, "BSD500": 28.34},
    "SRCNN (ImageNet)":      {"Set5": 32.52, "Set14": 29.14, "BSD300": 28.29, "BSD500": 28.37},
    "ESPCN (ImageNet relu)": {"Set5": 33.00, "Set14": 29.42, "BSD300": 28.52, "BSD500": 28.62},
    "ESPCN (ImageNet)":      {"Set5": 33.13, "Set14": 29.49, "BSD300": 28.54, "BSD500": 28.64},
}
# The bicubic baselines the SR literature publishes for x3 (SRCNN, VDSR, the ESPCN paper's Table 2).
PUBLISHED_BICUBIC_X3 = {"Set5": 30.39, "Set14": 27.54, "BSD300": 27.21, "BSD500": 27.26}

head = "| model | " + " | ".join(PAPER_TABLE1_X3["ESPCN (91)"]) + " |"
rows = [f"| {name} | " + " | ".join(f"{v:.2f}" for v in by.values()) + " |" for name, by in PAPER_TABLE1_X3.items()]
display(Markdown("**The paper's Table 1 (x3, mean PSNR in dB)**\n\n" + "\n".join(
    [head, "|---" * (len(PAPER_TABLE1_X3["ESPCN (91)"]) + 1) + "|", *rows])))

# %%
try:
  path = weights.pretrained_path(SCALE, VARIANT)
  params, spec, meta = weights.load(path)
  TRAINED = True
  print(f"shipped weights {path.name}: {spec}\n  meta: {meta}")
except weights.WeightsError as e:
  TRAINED = False
  spec, meta = model.Spec(scale=SCALE), {}
  params = model.init(jax.random.PRNGKey(0), spec)
  print("!" * 100 + f"\n!!! NO SHIPPED WEIGHTS: {e}\n!!! Using RANDOM weights: the ESPCN column below is NOT the "
        "trained model\n" + "!" * 100)

# The paper column our weights correspond to: training set (meta "dataset") and activation.
trained_on = "ImageNet" if "imagenet" in str(meta.get("dataset", VARIANT)).lower() else "91"
PAPER_COLUMN = f"ESPCN ({trained_on}{' relu' if spec.activation == 'relu' else ''})"
print("compared with the paper's column:", PAPER_COLUMN)

# %%
folders = {name: images.builtin_dataset_dir(name) for name in DATASETS}
for name in ("BSD300", "BSD500"):
  folder = ROOT / EXTERNAL_DIR / f"{name}_test"
  if folder.is_dir():
    folders[name] = folder
  else:
    print(f"{name}: not downloaded ({folder} missing); run scripts/download_test_sets.py to add it")

results = {}
for name, folder in folders.items():
  for row in evaluate.evaluate_folder(folder, SCALE, params=params, spec=spec, dataset=name, progress=True):
    results[(name, row["method"])] = row
  print(f"{name:7s} {results[(name, 'bicubic')]['images']:3d} images: bicubic "
        f"{results[(name, 'bicubic')]['psnr']:.3f} dB, ESPCN {results[(name, 'espcn')]['psnr']:.3f} dB", flush=True)

# %%
lines = [f"| dataset | images | bicubic, published | bicubic, ours | paper: {PAPER_COLUMN} | ESPCN, ours | "
         "ours - paper | SSIM, ours |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
for name in folders:
  bic, esp = results[(name, "bicubic")], results[(name, "espcn")]
  paper = PAPER_TABLE1_X3[PAPER_COLUMN].get(name)
  pub = PUBLISHED_BICUBIC_X3.get(name)
  fmt = lambda v: "-" if v is None else f"{v:.2f}"
  delta = "-" if paper is None else f"{esp['psnr'] - paper:+.2f}"
  lines.append(f"| {name} | {bic['images']} | {fmt(pub)} | {bic['psnr']:.2f} | {fmt(paper)} | {esp['psnr']:.2f} | "
               f"{delta} | {esp['ssim']:.4f} |")
note = "" if TRAINED else "\n\n**RANDOM INIT: no shipped weights, the ESPCN numbers are meaningless.**"
display(Markdown(f"**Ours, computed now from `{weights.pretrained_path(SCALE, VARIANT).name}`**\n\n" + "\n".join(lines)
                 + note))

# Our protocol must reproduce the published bicubic numbers (rounded to 0.01 dB) on the full test sets.
FULL_SIZE = {"Set5": 5, "Set14": 14, "BSD300": 100, "BSD500": 200}
for name in folders:
  if name in PUBLISHED_BICUBIC_X3 and results[(name, "bicubic")]["images"] == FULL_SIZE[name]:
    got = results[(name, "bicubic")]["psnr"]
    assert abs(got - PUBLISHED_BICUBIC_X3[name]) < 0.011, f"{name}: bicubic {got:.3f} dB, published {PUBLISHED_BICUBIC_X3[name]}"
print("bicubic baselines match the published ones: the evaluation protocol is the paper's")
behind = [n for n in folders if results[(n, "espcn")]["psnr"] <= results[(n, "bicubic")]["psnr"]]
if TRAINED and behind:
  print(f"WARNING: these weights do not beat bicubic on {', '.join(behind)}: undertrained or wrong weights?")

# %%
names = list(folders)
x = np.arange(len(names))
fig, ax = plt.subplots(figsize=(1.9 * len(names) + 3, 4))
series = [("bicubic (ours)", [results[(n, "bicubic")]["psnr"] for n in names]),
          (f"{PAPER_COLUMN}, paper", [PAPER_TABLE1_X3[PAPER_COLUMN].get(n, np.nan) for n in names]),
          ("ESPCN (ours)" + ("" if TRAINED else " RANDOM INIT"), [results[(n, "espcn")]["psnr"] for n in names])]
for i, (label, values) in enumerate(series):
  bars = ax.bar(x + (i - 1) * 0.27, values, 0.27, label=label)
  ax.bar_label(bars, fmt="%.2f", fontsize=8)
ax.set_xticks(x, names)
ax.set_ylabel("mean PSNR on Y (dB), x3")
lo = min(v for _, vals in series for v in vals if np.isfinite(v))
ax.set_ylim(max(lo - 1.0, 0), None)
ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
ax.set_title("Table 1 (x3): the paper vs ours")
plt.show()

if JSON_OUT:
  evaluate.write_json(ROOT / JSON_OUT, {"results": list(results.values()), "paper_column": PAPER_COLUMN,
                                        "paper": PAPER_TABLE1_X3[PAPER_COLUMN]})
  print("wrote", ROOT / JSON_OUT)

# %% [markdown]
# The full-size runs behind REPRODUCTION.md: train with `python -m espcn_jax.train` (see `03_train.ipynb`), then
# `python -m espcn_jax.evaluate --checkpoint <weights> --data set5 --data set14 --data data/external/BSD300_test
# --data data/external/BSD500_test --json table1.json`.
'''


# ------------------------------------------------------------------------------------------------------------------
NOTEBOOKS = {
    "01_quickstart": dict(source=NB01, accelerator=None),
    "02_paper_in_code": dict(source=NB02, accelerator=None),
    "03_train": dict(source=NB03, accelerator="GPU"),
    "04_reproduce_table1": dict(source=NB04, accelerator=None),
}


def parse_cells(source: str) -> list:
  """Splits percent-format source into nbformat cells."""
  cells = []
  for chunk in source.split("\n# %%")[0:]:
    chunk = chunk.removeprefix("# %%")
    header, _, body = chunk.partition("\n")
    header = header.strip()
    body = body.strip("\n")
    if header.startswith("[markdown]"):
      lines = [line[2:] if line.startswith("# ") else line.removeprefix("#") for line in body.splitlines()]
      cells.append(nbformat.v4.new_markdown_cell("\n".join(lines)))
      continue
    tags = []
    if header.startswith("tags="):
      tags = ast.literal_eval(header[len("tags="):])
    elif header.startswith("["):
      raise ValueError(f"unknown cell type {header!r}")
    elif header:
      raise ValueError(f"unknown cell header {header!r}")
    cell = nbformat.v4.new_code_cell(body)
    if tags:
      cell.metadata["tags"] = tags
    cells.append(cell)
  return cells


def build(name: str) -> nbformat.NotebookNode:
  spec = NOTEBOOKS[name]
  source = spec["source"].replace("@REPO_URL@", REPO_URL).replace("@RUN_MODULE@", RUN_MODULE.strip("\n"))
  nb = nbformat.v4.new_notebook()
  nb.cells = parse_cells(source)
  for i, cell in enumerate(nb.cells):
    cell["id"] = f"{name[:2]}-{i:02d}"  # stable ids: regenerating gives the same file
  nb.metadata = {
      "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
      "language_info": {"name": "python"},
      "colab": {"provenance": [], "toc_visible": True},
  }
  if spec["accelerator"]:
    nb.metadata["accelerator"] = spec["accelerator"]
  nbformat.validate(nb)
  return nb


def render(nb) -> str:
  return nbformat.writes(nb) + "\n"


def write_atomic(path: pathlib.Path, text: str) -> None:
  fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


def main(argv) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a notebook is out of date")
  parser.add_argument("--out", type=pathlib.Path, default=NOTEBOOK_DIR, help="output folder (default: notebooks/)")
  args = parser.parse_args(argv)
  stale = []
  args.out.mkdir(parents=True, exist_ok=True)
  for name in NOTEBOOKS:
    path = args.out / f"{name}.ipynb"
    text = render(build(name))
    if path.is_file() and path.read_text(encoding="utf-8") == text:
      continue
    stale.append(path)
    if not args.check:
      write_atomic(path, text)
      print(f"wrote {path}")
  if args.check and stale:
    print("out of date (run python scripts/build_notebooks.py): " + ", ".join(map(str, stale)), file=sys.stderr)
    return 1
  return 0


def run():
  sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
  run()
