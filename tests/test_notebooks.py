"""The Colab notebooks: kept as jupytext "percent" .py files paired with the .ipynb (outputs stripped); each runs top to
bottom, and its first cell installs espcn-jax the way the notebooks README says.

Execution uses nbclient with a Jupyter kernel of this interpreter, in notebooks/ as the working folder (as Colab and
`pytest --nbmake` do), with small settings injected after each notebook's "parameters" cell (papermill's way).
scripts/check_colab.sh runs the install cell as Colab does: a fresh environment, the wheel from a local index.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NAMES = sorted(p.stem for p in NOTEBOOK_DIR.glob("0*.py"))
DATA = ROOT / "espcn_jax" / "data"


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


def test_four_notebooks():
  assert NAMES == ["01_quickstart", "02_paper_in_code", "03_train", "04_reproduce_table1"]


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_matches_its_paired_py(name):
  """The .py is the source; `jupytext --sync notebooks/*.py` (or --to ipynb) rewrites the .ipynb after an edit."""
  path = NOTEBOOK_DIR / f"{name}.ipynb"
  assert path.is_file(), f"{path} missing: run jupytext --to ipynb {name}.py"
  nb = nbformat.read(path, as_version=4)
  src = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
  cells = lambda n: [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in n.cells]
  assert cells(nb) == cells(src), f"{path} differs from {name}.py: run jupytext --sync notebooks/{name}.py"


@pytest.mark.parametrize("name", NAMES)
def test_outputs_stripped_one_parameter_cell_and_install_cell(name):
  nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(c.outputs == [] and c.execution_count is None for c in code)
  assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
  assert nb.metadata["kernelspec"]["name"] == "python3"
  # every notebook starts with the same install cell (only the extras it needs differ)
  first = re.sub(r'NEEDS = "[^"]*"', 'NEEDS = ""', code[0].source)
  reference = re.sub(r'NEEDS = "[^"]*"', 'NEEDS = ""', _setup_source(NAMES[0]))
  assert first == reference and 'ESPCN_SOURCE = ""  # @param {type:"string"}' in first


def test_no_placeholder_left():
  """Nothing a user must edit before running: no placeholder URL or owner in notebooks, docs or metadata."""
  files = [*NOTEBOOK_DIR.glob("*"), ROOT / "README.md", ROOT / "pyproject.toml", *ROOT.glob("*.md"),
           *(ROOT / "docs").glob("*.md")]
  pattern = re.compile(r"REPLACE[-_ ]?(WITH|ME)|<owner>|YOUR[-_]?(USER|NAME|ORG)|@REPO_URL@|github\.com/[^/\s]*OWNER",
                       re.IGNORECASE)
  hits = [f"{p.name}:{i}" for p in files if p.is_file() for i, line in enumerate(p.read_text().splitlines(), 1)
          if pattern.search(line)]
  assert not hits, f"placeholders left: {hits}"
  assert not list(ROOT.glob("scripts/build_notebooks.py"))  # the notebooks are their own source now


def _setup_source(name=None):
  nb = nbformat.read(NOTEBOOK_DIR / f"{name or NAMES[0]}.ipynb", as_version=4)
  return next(c.source for c in nb.cells if c.cell_type == "code")


def _run_setup(monkeypatch, cwd, *, installed=True, source="", name="01_quickstart"):
  """Executes the install cell in `cwd` with pip mocked; returns (namespace, the pip commands it ran)."""
  import importlib.util
  calls = []
  monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda n, *a: None if n == "espcn_jax" and not installed else real(n, *a))
  monkeypatch.setattr(sys, "path", list(sys.path))
  monkeypatch.chdir(cwd)
  code = _setup_source(name).replace('ESPCN_SOURCE = ""', f"ESPCN_SOURCE = {source!r}")
  ns = {}
  exec(code, ns)  # pylint: disable=exec-used
  return ns, [c for c, _ in calls]


def test_install_cell_inside_a_clone_uses_the_clone(monkeypatch):
  ns, calls = _run_setup(monkeypatch, NOTEBOOK_DIR, installed=False)
  assert calls == [] and ns["CLONE"] == ROOT and ns["ROOT"] == ROOT and str(ROOT) in sys.path
  assert ns["DATA"] == DATA


@pytest.mark.parametrize("source, target", [
    ("", "espcn-jax[video]"),
    ("https://github.com/someone/espcn-jax", "espcn-jax[video] @ git+https://github.com/someone/espcn-jax"),
    ("git+https://example.org/x/espcn-jax.git@v0.2", "espcn-jax[video] @ git+https://example.org/x/espcn-jax.git@v0.2"),
    ("https://example.org/dist/espcn_jax-0.2.0-py3-none-linux_x86_64.whl",
     "espcn-jax[video] @ https://example.org/dist/espcn_jax-0.2.0-py3-none-linux_x86_64.whl"),
    ("/content/espcn_jax-0.2.0-py3-none-linux_x86_64.whl", "/content/espcn_jax-0.2.0-py3-none-linux_x86_64.whl"),
])
def test_install_cell_outside_a_clone_installs_from_the_form_field_else_the_index(monkeypatch, tmp_path, source,
                                                                                   target):
  ns, calls = _run_setup(monkeypatch, tmp_path, installed=False, source=source)
  assert ns["CLONE"] is None and ns["ROOT"] == tmp_path.resolve()
  assert calls == [[sys.executable, "-m", "pip", "install", "-q", target]]  # nothing else: Colab's jax stays


def test_install_cell_keeps_an_existing_installation(monkeypatch, tmp_path):
  _, calls = _run_setup(monkeypatch, tmp_path, installed=True, source="https://example.org/other.whl")
  assert calls == []


def test_notebooks_readme_names_existing_configs():
  text = (NOTEBOOK_DIR / "README.md").read_text()
  for rel in re.findall(r"configs/[\w.]+\.py", text):
    assert (ROOT / "espcn_jax" / rel).is_file(), f"notebooks/README.md names {rel}, which does not exist"


# ---------------------------------------------------------------------------------------------------- execution


def test_01_quickstart_runs(tmp_path):
  nb = execute("01_quickstart", IMAGE=str(DATA / "Set5" / "bird.png"), VIDEO_FRAMES=5, VIDEO_LR_SIZE=(48, 64),
               OUT_DIR=str(tmp_path))
  text = text_of(nb)
  assert "PSNR on Y: bicubic" in text
  assert "clip_lr.mp4 -> clip_x3.mp4: 5 frames, 192x144" in text
  assert (tmp_path / "bird_x3.png").is_file() and (tmp_path / "clip_x3.mp4").stat().st_size > 0
  assert images_of(nb) == 1  # the video frame
  html = [o.data["text/html"] for c in nb.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
  assert len(html) == 1 and html[0].count("data:image/png;base64,") >= 5  # the report's crops: LR, bicubic, ESPCN, HR
  assert "ESPCN" in html[0] and "PSNR" in html[0]


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
    (fake / name).write_bytes((DATA / "Set5" / name).read_bytes())
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
