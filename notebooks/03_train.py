# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     provenance: []
#     toc_visible: true
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: accelerator,colab
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
# # Training ESPCN on T91
#
# Trains with the command-line module `python -m espcn_jax.train` (the same command you would run on a machine with
# accelerators), shows its progress and TensorBoard, evaluates the best weights, and resumes after a runtime restart.
#
# The parameter cell runs the **smoke** config (a few hundred steps: minutes on a CPU). For the paper's run, set
# `CONFIG = "configs/t91_x3_tanh.py"` and use a GPU runtime (*Runtime > Change runtime type*).
#
# This notebook never imports JAX itself: the training and evaluation subprocesses get the whole accelerator.
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
CONFIG = "configs/smoke.py"          # a file in espcn_jax/configs/ (the paper's x3 run: "configs/t91_x3_tanh.py")
WORKDIR = "workdirs/notebook_train"  # checkpoints, metrics.jsonl, TensorBoard events, best.safetensors
OVERRIDES = {}                       # config fields to change, e.g. {"num_epochs": 20, "optim.learning_rate": 0.003}
RESUME_EXTRA_EPOCHS = 1              # the resume demo asks for this many more epochs
FRESH = False                        # True: delete WORKDIR first; False: continue a run found there
EVAL_DATA = ["set5", "set14"]        # evaluated with the best weights at the end
TENSORBOARD = True                   # inline TensorBoard where the extension is available

# %%
import json
import shutil

def run_module(module, *args, check=True):
  """Runs `python -m <module> <args>` in ROOT, printing its output as it comes."""
  path = [str(CLONE)] if CLONE is not None else []  # a clone's package, also in the subprocess
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([*path, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
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
# A config file's `get_config()` returns an `ml_collections.ConfigDict` (every field and its default:
# `espcn_jax/configs/base.py`); any field can be overridden on the command line with `--config.FIELD=VALUE` (here:
# `OVERRIDES`), and `python -m espcn_jax.train --help` lists them all.

# %%
from espcn_jax import train  # only the config helpers: no JAX import happens here

cfg, _ = train.parse_args(["--config", CONFIG, *override_args])
print(cfg)

# %% [markdown]
# ## Train
#
# Progress is printed as it comes. Stopping the cell (or a Ctrl-C) makes the trainer save a checkpoint and exit;
# **running this cell again continues from the latest checkpoint in `WORKDIR`**, also after a runtime restart, since
# the workdir lives on disk (in Colab, put it on Google Drive to survive a new VM).

# %%
def train_run(*extra):
  return run_module("espcn_jax.train", "--config", CONFIG, "--workdir", workdir, *override_args, *extra)


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
run_module("espcn_jax.evaluate", "--weights", best, *[a for d in EVAL_DATA for a in ("--data", d)],
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
