#!/usr/bin/env bash
# Re-runs the reproduction end to end: trains every shipped variant with the committed configs, then evaluates each
# on Set5 and Set14 (and BSD300/BSD500 test images when scripts/download_test_sets.py has fetched them).
#
#   scripts/reproduce_table1.sh OUT_DIR                      # one run after the other
#   PARALLEL=5 MAX_MINUTES=6 scripts/reproduce_table1.sh OUT # all at once (one GPU holds all five: tiny models)
#   EXTRA="--config.batch_size=128" scripts/reproduce_table1.sh OUT
#
# Each run: OUT_DIR/<name>/{best.safetensors,metrics.jsonl,...}, log OUT_DIR/<name>.log, evaluation
# OUT_DIR/<name>.eval.json. Reruns resume from the checkpoints in OUT_DIR. See REPRODUCTION.md for the numbers.
set -uo pipefail
OUT=${1:?usage: scripts/reproduce_table1.sh OUT_DIR}
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
PARALLEL=${PARALLEL:-1}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
if [ "$PARALLEL" -gt 1 ]; then
  # Several JAX processes share one GPU: no preallocation of 75% of its memory each.
  export XLA_PYTHON_CLIENT_PREALLOCATE=false
fi
RUNS="x3_t91_tanh:t91_x3_tanh x3_t91_relu:t91_x3_relu x2_t91_tanh:t91_x2 x4_t91_tanh:t91_x4 x3_t91_bsd200:t91_bsd200_x3"
train() {
  local name=$1 cfg=$2
  local flags=(--config "configs/$cfg.py" --workdir "$OUT/$name")
  [ -n "${MAX_MINUTES:-}" ] && flags+=(--config.max_minutes="$MAX_MINUTES")
  # shellcheck disable=SC2086
  PYTHONUNBUFFERED=1 $PY -m espcn_jax.train "${flags[@]}" $EXTRA > "$OUT/$name.log" 2>&1
  echo "$name: train exit $? ($(grep -a '^best' "$OUT/$name.log" | tail -1))"
}
start=$(date +%s)
running=0
for run in $RUNS; do
  train "${run%%:*}" "${run##*:}" &
  running=$((running + 1))
  if [ "$running" -ge "$PARALLEL" ]; then wait -n; running=$((running - 1)); fi
done
wait
echo "training: $(( $(date +%s) - start )) s wall"
sets=(--data set5 --data set14)
for extra in data/external/BSD300_test data/external/BSD500_test; do [ -d "$extra" ] && sets+=(--data "$extra"); done
rc=0
for run in $RUNS; do
  name=${run%%:*}
  scale=${name:1:1}
  if [ -f "$OUT/$name/best.safetensors" ]; then
    $PY -m espcn_jax.evaluate --weights "$OUT/$name/best.safetensors" --scale "$scale" "${sets[@]}" \
      --json "$OUT/$name.eval.json" 2>&1 | grep -v "^\s*$" | sed "s/^/[$name] /" || rc=1
  else
    echo "$name: no best.safetensors (see $OUT/$name.log)"; rc=1
  fi
done
exit $rc
