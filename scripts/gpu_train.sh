#!/usr/bin/env bash
# Trains the paper's variants on one GPU, one after the other, each within a wall-clock budget (default 1.4 min of
# training each, + compile/eval: < 8 min total on one H100), and collects best.safetensors + metrics.jsonl.
#
#   scripts/gpu_train.sh OUT_DIR [MINUTES_PER_RUN]
#
# Needs jax[cuda12], flax, optax, orbax-checkpoint, safetensors, pillow, tqdm; NOT TensorFlow or ml_collections
# (the T91 / BSD200 runs use the in-memory on-device patch sampler; TensorBoard events are skipped without TF).
# Reruns resume from OUT_DIR/<run>/checkpoints. Results: OUT_DIR/<run>/{best.safetensors,metrics.jsonl,train.log}.
set -euo pipefail
OUT=${1:?usage: scripts/gpu_train.sh OUT_DIR [MINUTES_PER_RUN]}
MIN=${2:-1.4}
cd "$(dirname "$0")/.."
# GPU: several steps per dispatch and a bigger batch; 400-step epochs (~26k patches) between Set5 evaluations.
COMMON=(--config.steps_per_call=8 --config.steps_per_epoch=400 --config.batch_size=64 --config.max_minutes="$MIN"
        --config.early_stop_patience=0)
run() {
  local name=$1; shift
  echo "== $name: $*"
  python -m espcn_jax.train --workdir "$OUT/$name" "${COMMON[@]}" "$@" 2>&1 | tr '\r' '\n' \
    | grep -v "it/s\]$\|step/s" | tee "$OUT/$name.log" | grep -a "^epoch\|^best\|error" | tail -3 || true
}
mkdir -p "$OUT"
start=$(date +%s)
run espcn_x3_t91_tanh --config configs/t91_x3_tanh.py
run espcn_x3_t91_relu --config configs/t91_x3_relu.py
run espcn_x2_t91_tanh --config configs/t91_x2.py
run espcn_x4_t91_tanh --config configs/t91_x4.py
run espcn_x3_t91_bsd200 --config configs/t91_bsd200_x3.py
echo "total $(( $(date +%s) - start )) s"
for d in "$OUT"/*/; do
  [ -f "$d/best.safetensors" ] && python -c "
import json, sys
rows = [json.loads(l) for l in open('$d/metrics.jsonl')]
b = max(rows, key=lambda r: r.get('val_psnr', -1))
print(f\"$(basename "$d"): best Set5 {b['val_psnr']:.2f} dB (bicubic {b['val_bicubic_psnr']:.2f}) at step {b['step']}, \"
      f\"{rows[-1]['patches_per_s']:.0f} patches/s\")"
done
