#!/usr/bin/env bash
# ESPCN inference benchmark on the CPU: ours (native fused kernel and XLA) vs bicubic, PyTorch (channels_last,
# eager and torch.compile), OpenCV dnn and onnxruntime (on our own ONNX export), all in one process per resolution,
# x3, batch 1, float32 and bfloat16, with the shipped weights and the Set5 PSNR drift of bfloat16.
# Writes $OUT/cpu_<res>_x3.json (schema of espcn_jax.benchmark --json) and $OUT/cpu_benchmark.log.
#
#   pip install -e ".[peers]"          # torch (CPU build), opencv-python-headless, onnxruntime, onnx
#   scripts/cpu_benchmark.sh           # ~3 min on 2 cores; run it on an otherwise idle machine
#
# Environment: OUT (default ./cpu_bench_out), PYTHON (default python3), RESOLUTIONS (default "720p 1080p 4k"),
# ITERS (default 7).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-./cpu_bench_out}"
mkdir -p "$OUT"
LOG="$OUT/cpu_benchmark.log"
: > "$LOG"
export JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=2
rc=0
for res in ${RESOLUTIONS:-720p 1080p 4k}; do
  { echo "=== $res x3 | $(date -u) | load: $(cut -d' ' -f1-3 /proc/loadavg) | $(nproc) CPUs ==="; } | tee -a "$LOG"
  "$PYTHON" -m espcn_jax.benchmark --resolution "$res" --scale 3 --batch 1 --dtype float32 bfloat16 \
    --method native conv --iters "${ITERS:-7}" --warmup 2 --peers torch,torch_compile,opencv,onnxruntime \
    --json "$OUT/cpu_${res}_x3.json" 2>&1 | tee -a "$LOG"
  [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
done
echo "done (rc=$rc): $(ls "$OUT")" | tee -a "$LOG"
exit $rc
