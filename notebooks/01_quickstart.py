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
# # ESPCN quickstart
#
# Upscale a picture x3 with the shipped ESPCN weights (Shi et al., CVPR 2016), compare it with bicubic
# interpolation, then push a short generated video through the video path. Runs on a laptop CPU in under a minute;
# in Colab, *Runtime > Change runtime type* gives you a GPU, which JAX uses without any change here.
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
NEEDS = "video"  # the extras this notebook uses

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
SCALE = 3                        # upscaling factor of the shipped weights
VARIANT = "best"                 # espcn_x{SCALE}_best (the default weights; "t91": the paper's Table 1 files)
IMAGE = DATA / "Set5/butterfly.png"  # any picture; it is downscaled x SCALE, then upscaled back and compared
VIDEO_FRAMES = 12                # length of the generated clip
VIDEO_LR_SIZE = (96, 128)        # (height, width) of the clip's frames before upscaling
OUT_DIR = "runs/notebooks"       # outputs (relative to ROOT: the clone, else the current folder)

# %%
import jax
import matplotlib.pyplot as plt
import numpy as np

from espcn_jax import image_files, image_ops, inference, metrics, model, video, weights

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
hr_u8 = image_ops.modcrop(image_files.load_image(IMAGE), r)
lr = np.asarray(image_ops.degrade(hr_u8.astype(np.float32) / 255.0, r))  # float LR in [0, 1]
bicubic = np.clip(np.asarray(image_ops.imresize(lr, r)), 0.0, 1.0)
espcn = up.image(lr)  # float in, float out (uint8 in, uint8 out)
y_hr = image_ops.luma_uint8(hr_u8)


def psnr_y(img01):
  return metrics.psnr(metrics.quantize(np.asarray(image_ops.luma(img01)).squeeze()), y_hr.squeeze(), r)


scores = {"bicubic": psnr_y(bicubic), "ESPCN": psnr_y(espcn)}
print(f"{IMAGE}: HR {hr_u8.shape[1]}x{hr_u8.shape[0]}, LR {lr.shape[1]}x{lr.shape[0]}; PSNR on Y: "
      + ", ".join(f"{k} {v:.2f} dB" for k, v in scores.items()))
saved = image_files.save_image(out_dir / (pathlib.Path(IMAGE).stem + f"_x{r}.png"), espcn)
print("saved", saved)
if TRAINED:
  assert scores["ESPCN"] > scores["bicubic"], "the trained model should beat bicubic"

# %% [markdown]
# The comparison view of the HTML report (`python -m espcn_jax.evaluate ... --report DIR`, the same code): the crop
# where ESPCN and bicubic differ most, zoomed by whole pixels (LR by nearest neighbour), and under each method its
# error map |Y - Y of HR| on one colour scale. `report.compare(..., box=(top, left, size))` picks another crop.

# %%
from IPython.display import HTML, display

from espcn_jax import report

comp = report.compare(hr_u8, r, {"ESPCN" + ("" if TRAINED else " [RANDOM INIT]"): (params, spec)})
display(HTML(report.comparison_html(comp)))

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
source = image_files.load_image(DATA / "Set14/comic.png")
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
