#!/usr/bin/env bash
# A notebook run the way Colab runs it: a fresh Python environment that has only what Colab brings for notebooks
# (a Jupyter kernel, matplotlib), the notebook copied outside any clone, and espcn-jax served from a local folder as the
# package index (`pip --find-links`, here through PIP_FIND_LINKS) so that the notebook's own install cell installs it.
#
#     python -m build && bash scripts/check_colab.sh dist [WORK_DIR]
#
# Passes when the install cell installs espcn-jax from that folder and the quickstart notebook runs top to bottom.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
DIST="$(realpath "$1")"
WORK="$(realpath -m "${2:-$(mktemp -d)}")"
mkdir -p "$WORK/content"
PY="${PYTHON:-python3}"
ls "$DIST"/espcn_jax-*.whl >/dev/null || { echo "check_colab: no espcn_jax wheel in $DIST" >&2; exit 1; }

"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
"$WORK/venv/bin/python" -m pip install -q ipykernel nbclient nbformat matplotlib  # Colab has these
cp "$HERE/notebooks/01_quickstart.ipynb" "$WORK/content/"
cd "$WORK/content"
env -u PYTHONPATH PIP_FIND_LINKS="$DIST" JAX_PLATFORMS=cpu PATH="$WORK/venv/bin:$PATH" "$WORK/venv/bin/python" - <<'EOF'
import nbclient, nbformat
nb = nbformat.read("01_quickstart.ipynb", as_version=4)
idx = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
nb.cells.insert(idx + 1, nbformat.v4.new_code_cell("VIDEO_FRAMES = 5\nVIDEO_LR_SIZE = (48, 64)"))
nbclient.NotebookClient(nb, timeout=900, kernel_name="python3").execute()
text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
               for c in nb.cells for o in c.get("outputs", []))
assert "installing espcn-jax[video]" in text, text[:2000]
assert "PSNR on Y: bicubic" in text, text[-2000:]
import importlib, pathlib; importlib.invalidate_caches(); import espcn_jax
print("check_colab: the install cell installed", pathlib.Path(espcn_jax.__file__).parent, "and the notebook ran")
EOF
"$WORK/venv/bin/python" -m pip show espcn-jax | grep -E "^(Name|Version|Location)"
