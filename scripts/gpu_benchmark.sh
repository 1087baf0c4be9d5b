#!/usr/bin/env bash
# ESPCN inference benchmark on a GPU box (H100/H200): ours (JAX, cuDNN) vs bicubic, PyTorch (cuDNN, channels_last,
# eager and torch.compile) and onnxruntime (CUDA EP) when installed, at 720p / 1080p / 4K output, x3, float32 /
# bfloat16 / float16, single-frame latency (batch 1) and batched throughput, plus the Set5 PSNR drift of reduced
# precision. Writes $OUT/bench_<res>_x3.json (schema of espcn_jax.benchmark --json) and $OUT/gpu_benchmark.log.
#
# Needs only the box's jax (with CUDA), numpy, pillow, and optionally torch / onnxruntime / opencv; no TensorFlow,
# ml_collections or dm-pix. `import espcn_jax` also needs flax and safetensors (model.py / weights.py); if they are
# missing, wheels prepared here beforehand are installed into a private folder (nothing system-wide):
#
#   scripts/gpu_benchmark.sh --fetch-wheels      # on a machine with PyPI: fills build/gpu_wheels (~10 MB)
#   scripts/gpu_benchmark.sh                     # on the GPU box (carry build/gpu_wheels along)
#
# Environment: OUT (default ./gpu_bench_out), PYTHON (default python3), RESOLUTIONS (default "720p 1080p 4k"),
# ITERS (default 50).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
WHEELS=build/gpu_wheels
PKGS="flax safetensors msgpack rich pygments markdown-it-py mdurl pyyaml typing_extensions etils absl-py treescope"

if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p "$WHEELS"
  for py in 3.10 3.11 3.12 3.13; do
    "$PYTHON" -m pip download -q --only-binary=:all: --no-deps -d "$WHEELS" --python-version "$py" \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 $PKGS || exit 1
  done
  du -sh "$WHEELS"
  exit 0
fi

OUT="${OUT:-./gpu_bench_out}"
mkdir -p "$OUT"
LOG="$OUT/gpu_benchmark.log"
: > "$LOG"
log() { echo "$@" | tee -a "$LOG"; }

# JAX and PyTorch share the GPU in one process: no 75% preallocation by JAX.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export TF_CPP_MIN_LOG_LEVEL=2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PYTHON" -c "import espcn_jax.benchmark" 2>/dev/null; then
  if [ -d "$WHEELS" ]; then
    DEPS="${TMPDIR:-/tmp}/espcn_gpu_deps"
    log "espcn_jax does not import here; installing flax/safetensors from $WHEELS into $DEPS"
    "$PYTHON" -m pip install -q --no-index --no-deps --find-links "$WHEELS" --target "$DEPS" $PKGS >> "$LOG" 2>&1
    export PYTHONPATH="$PYTHONPATH:$DEPS"
  fi
  if ! "$PYTHON" -c "import espcn_jax.benchmark" >> "$LOG" 2>&1; then
    log "error: cannot import espcn_jax.benchmark (see $LOG); run scripts/gpu_benchmark.sh --fetch-wheels first"
    exit 1
  fi
fi

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
  "$PYTHON" - <<'EOF'
import importlib, jax
print("jax", jax.__version__, jax.devices())
for m in ("torch", "onnxruntime", "cv2", "flax"):
  try:
    print(m, importlib.import_module(m).__version__)
  except Exception as e:
    print(m, "not available:", type(e).__name__)
EOF
} 2>&1 | tee -a "$LOG"

rc=0
for res in ${RESOLUTIONS:-720p 1080p 4k}; do
  case "$res" in
    4k) batches="1 8 16" ;;
    *) batches="1 16 64" ;;
  esac
  log "=== $res x3, batches $batches ==="
  "$PYTHON" -m espcn_jax.benchmark --resolution "$res" --scale 3 --batch $batches \
    --dtype float32 bfloat16 float16 --iters "${ITERS:-50}" --warmup 5 \
    --peers torch,torch_compile,onnxruntime --json "$OUT/bench_${res}_x3.json" 2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
done
log "done (rc=$rc): $(ls "$OUT")"
exit $rc
