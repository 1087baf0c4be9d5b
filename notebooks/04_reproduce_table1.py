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

from espcn_jax import evaluate, image_files, model, paper, weights

# Table 1 of Shi et al. 2016 (mean PSNR in dB on Y, x3) and the bicubic baselines the SR literature publishes,
# transcribed once in espcn_jax/paper.py (the HTML report uses the same numbers).
PAPER_TABLE1_X3 = paper.TABLE1_X3
PUBLISHED_BICUBIC_X3 = paper.PUBLISHED_BICUBIC[3]

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
folders = {name: image_files.builtin_dataset_dir(name) for name in DATASETS}
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
# `python -m espcn_jax.evaluate --weights <weights> --data set5 --data set14 --data data/external/BSD300_test
# --data data/external/BSD500_test --json table1.json`.
