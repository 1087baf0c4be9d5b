"""The Colab notebooks: generated from scripts/build_notebooks.py, outputs stripped, and each runs top to bottom.

Execution uses nbclient with a Jupyter kernel of this interpreter, in notebooks/ as the working folder (as Colab and
`pytest --nbmake` do), with small settings injected after each notebook's "parameters" cell (papermill's way).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import types

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"


def _builder():
  spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "scripts" / "build_notebooks.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


BUILDER = _builder()
NAMES = sorted(BUILDER.NOTEBOOKS)


def execute(name: str, timeout: int = 300, **params) -> nbformat.NotebookNode:
  """Runs notebooks/<name>.ipynb with `params` overriding its parameter cell; returns the executed notebook."""
  nbclient = pytest.importorskip("nbclient")
  nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
  idx = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
  injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items()))
  injected.metadata["tags"] = ["injected-parameters"]
  nb.cells.insert(idx + 1, injected)
  env_before = os.environ.get("JAX_PLATFORMS")
  os.environ["JAX_PLATFORMS"] = "cpu"  # the kernel inherits it; tests never take an accelerator
  try:
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()
  finally:
    if env_before is None:
      os.environ.pop("JAX_PLATFORMS", None)
    else:
      os.environ["JAX_PLATFORMS"] = env_before
  return nb


def text_of(nb) -> str:
  out = []
  for cell in nb.cells:
    for o in cell.get("outputs", []):
      if o.output_type == "stream":
        out.append(o.text)
      elif o.output_type in ("execute_result", "display_data"):
        out.append(o.data.get("text/plain", ""))
  return "".join(out)


def images_of(nb) -> int:
  return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


# ---------------------------------------------------------------------------------------------------- structure


@pytest.mark.parametrize("name", NAMES)
def test_notebook_file_is_generated_from_the_build_script(name):
  path = NOTEBOOK_DIR / f"{name}.ipynb"
  assert path.is_file(), f"{path} missing: run python scripts/build_notebooks.py"
  assert path.read_text(encoding="utf-8") == BUILDER.render(BUILDER.build(name)), (
      f"{path} differs from scripts/build_notebooks.py: edit the script, then regenerate")


@pytest.mark.parametrize("name", NAMES)
def test_outputs_stripped_one_parameter_cell_and_colab_install(name):
  nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(c.outputs == [] and c.execution_count is None for c in code)
  assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
  setup = code[0].source
  assert '"google.colab" in sys.modules' in setup
  assert "pip" in setup and "git+" in setup
  assert nb.metadata["kernelspec"]["name"] == "python3"


def _setup_source():
  nb = nbformat.read(NOTEBOOK_DIR / f"{NAMES[0]}.ipynb", as_version=4)
  return next(c.source for c in nb.cells if c.cell_type == "code")


def test_setup_cell_in_colab_clones_and_pip_installs(monkeypatch):
  calls = []
  monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
  monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
  monkeypatch.setenv("ESPCN_DATA_DIR", "unchanged")
  monkeypatch.setattr(sys, "path", list(sys.path))
  ns = {}
  exec(_setup_source(), ns)  # pylint: disable=exec-used
  url = BUILDER.REPO_URL
  assert ns["IN_COLAB"] and str(ns["ROOT"]) == "/content/espcn-jax"
  assert [c for c, _ in calls] == [["git", "clone", "--depth", "1", url, "/content/espcn-jax"],
                                   [sys.executable, "-m", "pip", "install", "-q",
                                    f"espcn-jax[notebooks,video] @ git+{url}"]]
  assert all(kw.get("check") for _, kw in calls)


def test_setup_cell_locally_finds_the_checkout(monkeypatch, tmp_path):
  monkeypatch.delitem(sys.modules, "google.colab", raising=False)
  monkeypatch.setattr(sys, "path", list(sys.path))
  monkeypatch.setenv("ESPCN_DATA_DIR", "unchanged")
  monkeypatch.chdir(NOTEBOOK_DIR)
  ns = {}
  exec(_setup_source(), ns)  # pylint: disable=exec-used
  assert not ns["IN_COLAB"] and ns["ROOT"] == ROOT and str(ROOT) in sys.path
  monkeypatch.chdir(tmp_path)  # outside any checkout: a clear error
  with pytest.raises(RuntimeError, match="inside a checkout of espcn-jax"):
    exec(_setup_source(), {})  # pylint: disable=exec-used


def test_check_mode_reports_stale_notebooks(tmp_path):
  script = ROOT / "scripts" / "build_notebooks.py"
  assert subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], capture_output=True).returncode == 0
  assert subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "--check"]).returncode == 0
  victim = tmp_path / f"{NAMES[0]}.ipynb"
  nb = json.loads(victim.read_text())
  nb["cells"][0]["source"] = "edited by hand"
  victim.write_text(json.dumps(nb))
  res = subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "--check"], capture_output=True, text=True)
  assert res.returncode == 1 and victim.name in res.stderr


def test_parse_cells_percent_format():
  cells = BUILDER.parse_cells('# %% [markdown]\n# # Title\n#\n# text\n# %% tags=["parameters"]\nA = 1\n# %%\nprint(A)\n')
  assert [c.cell_type for c in cells] == ["markdown", "code", "code"]
  assert cells[0].source == "# Title\n\ntext"
  assert cells[1].source == "A = 1" and cells[1].metadata["tags"] == ["parameters"]
  assert cells[2].source == "print(A)" and "tags" not in cells[2].metadata
  with pytest.raises(ValueError):
    BUILDER.parse_cells("# %% [raw]\nx\n")


# ---------------------------------------------------------------------------------------------------- execution


def test_01_quickstart_runs(tmp_path):
  nb = execute("01_quickstart", IMAGE="data/Set5/bird.png", VIDEO_FRAMES=5, VIDEO_LR_SIZE=(48, 64),
               OUT_DIR=str(tmp_path))
  text = text_of(nb)
  assert "PSNR on Y: bicubic" in text
  assert "clip_lr.mp4 -> clip_x3.mp4: 5 frames, 192x144" in text
  assert (tmp_path / "bird_x3.png").is_file() and (tmp_path / "clip_x3.mp4").stat().st_size > 0
  assert images_of(nb) == 2  # the side-by-side and the video frame


def test_02_paper_in_code_runs_live():
  nb = execute("02_paper_in_code", LIVE_IMAGES=2, LIVE_REPEATS=1, BENCH_JSON="runs/absent.json",
               EVAL_JSON="runs/absent.json")
  text = text_of(nb)
  assert "depth_to_space == eq. 4" in text
  assert "all 9 phases of the 9x9 kernel are the 3x3 sub-pixel filters" in text
  assert "max |(conv + PS) - transposed conv|" in text
  assert "measuring live on Set5" in text and "HR-space / LR-space time" in text
  assert images_of(nb) == 5  # 3 filter grids, the Fig. 2 plot, the cost bars


@pytest.mark.slow
def test_02_paper_in_code_reads_benchmark_and_evaluate_json(tmp_path):
  """Fig. 2 from the JSON files of `espcn_jax.benchmark --json` and `espcn_jax.evaluate --json` (their formats)."""
  ev = {"results": [{"dataset": "Set5", "scale": 3, "method": "bicubic", "psnr": 30.39, "ssim": 0.87, "images": 5},
                    {"dataset": "Set14", "scale": 3, "method": "bicubic", "psnr": 27.54, "ssim": 0.77, "images": 14},
                    {"dataset": "Set14", "scale": 3, "method": "espcn", "psnr": 29.0, "ssim": 0.81, "images": 14}]}
  row = lambda m, d, b, ms: {"method": m, "dtype": d, "batch": b, "ms_per_frame": ms, "fps": 1e3 / ms}
  bench = {"device": "NVIDIA H100", "resolution": "1080p", "scale": 3, "psnr_drift_db": {"bfloat16": -0.02},
           "results": [row("espcn-jax[conv]", "float32", 1, 2.0), row("espcn-jax[conv]", "float32", 8, 1.5),
                       row("espcn-jax[conv]", "bfloat16", 8, 1.0), row("bicubic (jax imresize)", "float32", 1, 0.5),
                       row("pytorch eager (NHWC)", "float32", 1, 3.0)]}
  (tmp_path / "e.json").write_text(json.dumps(ev))
  (tmp_path / "b.json").write_text(json.dumps(bench))
  nb = execute("02_paper_in_code", BENCH_JSON=str(tmp_path / "b.json"), EVAL_JSON=str(tmp_path / "e.json"))
  text = text_of(nb)
  assert "4 points, PSNR on Set14" in text and "measuring live" not in text
  assert "espcn-jax[conv] float32 b8" in text and "1.50 ms/frame   29.00 dB" in text  # fastest batch kept
  assert "espcn-jax[conv] bfloat16 b8" in text and "28.98 dB" in text  # drift applied
  assert "pytorch eager (NHWC) float32 b1" in text and "27.54 dB" in text


@pytest.mark.slow
def test_03_train_runs_and_resumes(tmp_path):
  """Trains the smoke config (shortened) in a subprocess, evaluates, then resumes for one more epoch."""
  workdir = tmp_path / "wd"
  nb = execute("03_train", WORKDIR=str(workdir), TENSORBOARD=False, EVAL_DATA=["set5"],
               OVERRIDES={"num_epochs": 1, "steps_per_epoch": 2})
  text = text_of(nb)
  assert "accelerator: cpu" in text
  assert "Set5: ESPCN" in text and "vs bicubic 30.39 dB" in text
  assert "before: 1 epochs; after the resumed run: 2 (new: [2])" in text
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [2, 4]
  assert (workdir / "best.safetensors").is_file() and images_of(nb) == 2


def test_04_reproduce_table1_runs(tmp_path):
  # A stand-in for a downloaded BSD300 (2 images): used when present, not checked against the published bicubic.
  fake = tmp_path / "external" / "BSD300_test"
  fake.mkdir(parents=True)
  for name in ("bird.png", "head.png"):
    (fake / name).write_bytes((ROOT / "data" / "Set5" / name).read_bytes())
  nb = execute("04_reproduce_table1", DATASETS=["Set5"], EXTERNAL_DIR=str(tmp_path / "external"),
               JSON_OUT=str(tmp_path / "t1.json"))
  text = text_of(nb)
  assert "bicubic baselines match the published ones" in text  # 30.39 dB on the full Set5
  assert "BSD500: not downloaded" in text and "BSD300    2 images" in text
  out = json.loads((tmp_path / "t1.json").read_text())
  got = {(r["dataset"], r["method"]): r for r in out["results"]}
  assert abs(got[("Set5", "bicubic")]["psnr"] - 30.39) < 0.01 and got[("BSD300", "espcn")]["images"] == 2
  assert out["paper_column"] == "ESPCN (91)" and out["paper"]["Set5"] == 32.55
  assert images_of(nb) == 1
