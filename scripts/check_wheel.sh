#!/usr/bin/env bash
# The wheel as a user gets it: a fresh virtual environment, `pip install` of the wheel, then every command run from a
# folder outside the repository, with no C++ compiler on PATH. CI runs this on the wheel it builds (.ci/run).
#
#     python -m build && bash scripts/check_wheel.sh dist/espcn_jax-*.whl [WORK_DIR]
#
# Checks: evaluate prints the default (best) x3 model's Set5 PSNR (32.68 dB); train starts and finishes a few steps with the
# default config; benchmark runs the prebuilt native kernel (no compile step, no compiler); upscale writes an image
# readable by others (0644 under umask 022); an ONNX export verifies. Prints the installed size of the core and of the
# ONNX extra.
set -euo pipefail
WHEEL="$(realpath "$1")"
WORK="$(realpath -m "${2:-$(mktemp -d)}")"
mkdir -p "$WORK"
PY="${PYTHON:-python3}"
fail() { echo "check_wheel: FAILED: $*" >&2; exit 1; }

"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
"$WORK/venv/bin/python" -m pip install -q "$WHEEL"
site="$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
core_mb=$(du -sm "$site" | cut -f1)
"$WORK/venv/bin/python" -m pip install -q "$WHEEL[onnx]"
onnx_mb=$(( $(du -sm "$site" | cut -f1) - core_mb ))
echo "check_wheel: installed size: core ${core_mb} MB, + onnx extra ${onnx_mb} MB"

# No compiler: PATH holds the venv's bin only (the kernels must come prebuilt in the wheel).
mkdir -p "$WORK/run"
cd "$WORK/run"
run() { env -u CXX -u PYTHONPATH PATH="$WORK/venv/bin" JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=2 \
          ESPCN_JAX_CACHE="$WORK/cache" "$WORK/venv/bin/python" "$@"; }
if env PATH="$WORK/venv/bin" /bin/bash -c 'command -v g++ || command -v c++ || command -v cc' >/dev/null; then
  fail "a compiler is on the restricted PATH"
fi

run -c 'import espcn_jax, sys; assert "site-packages" in espcn_jax.__file__, espcn_jax.__file__' \
  || fail "espcn_jax is not imported from the installed wheel"
out=$(run -m espcn_jax.evaluate --data set5 --scale 3 2>&1) || fail "evaluate: $out"
echo "$out" | tail -2
echo "$out" | grep -Eq "Set5 +x3 +5 +30\.39[0-9] [0-9.]+ +32\.67[0-9]" || fail "evaluate did not print 32.67x (espcn_x3_best) for Set5 x3"

out=$(run -m espcn_jax.train --workdir "$WORK/run/train" --config.num_epochs=2 --config.steps_per_epoch=8 2>&1) \
  || fail "train: $(echo "$out" | tail -3)"
[ -f "$WORK/run/train/best.safetensors" ] || fail "train wrote no best.safetensors"
echo "$out" | grep -E "^(recipe|forward)" || true
echo "check_wheel: train (the default recipe, 2 epochs of 8 steps) ok"

out=$(run -m espcn_jax.benchmark --resolution 720p --iters 3 2>&1) || fail "benchmark: $out"
echo "$out" | grep -E "native|ms/frame" | head -3
echo "$out" | grep -q "espcn-jax\[native\]" || fail "benchmark did not run the native kernel"
run -c 'from espcn_jax import native; assert native.available(), native.unavailable_reason();
print("check_wheel: native kernel", native.library_path().name, "isa", native.isa())'
[ ! -e "$WORK/cache/native" ] || fail "a kernel was compiled at run time ($WORK/cache/native)"

run -c 'import numpy as np; from PIL import Image
Image.fromarray((np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8)).save("in.png")'
(umask 022; run -m espcn_jax.upscale in.png -o out.png 2>&1 | tail -1) || fail "upscale"
run -c 'from PIL import Image; assert Image.open("out.png").size == (180, 120)' || fail "upscale output size"
[ "$(stat -c %a out.png)" = 644 ] || fail "upscale wrote out.png with mode $(stat -c %a out.png), not 644 (umask 022)"
echo "check_wheel: upscale ok, out.png mode 644"

out=$(run -m espcn_jax.export --format onnx -o espcn_x3.onnx 2>&1) || fail "export: $out"
echo "$out" | grep -q "^verified" || fail "ONNX export not verified: $out"
echo "check_wheel: $(echo "$out" | grep ^verified)"
echo "check_wheel: all checks passed ($WHEEL)"
