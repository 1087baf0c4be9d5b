#!/usr/bin/env bash
# The equal-speed LR-vs-HR experiment (REPRODUCTION.md, "Equal speed"): trains the LR and HR nets of
# espcn_jax/baselines.py at each scale and seed, one after the other, and copies each run's test results and curve
# into docs/runs/ as equal_speed_{lr,hr}_x{R}_seed{S}.*. A finished run (test_results.json present) is skipped, so
# rerunning resumes; each run's command, wall time, host and commit go to OUT/runs.log.
#
#   nice -n 19 scripts/run_equal_speed.sh OUT "2 3" "0 1"     # OUT, scales, seeds
set -euo pipefail
out=${1:?usage: run_equal_speed.sh OUT [SCALES] [SEEDS]}
scales=${2:-2 3}
seeds=${3:-0 1}
py=${PYTHON:-python}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
for r in $scales; do
  for s in $seeds; do
    for net in lr hr; do
      name=equal_speed_${net}_x${r}_seed${s}
      wd=$out/$name
      if [ -f "$wd/test_results.json" ]; then echo "done: $name"; continue; fi
      cmd="$py -m espcn_jax.train --config configs/equal_speed_${net}_x${r}.py --workdir $wd --config.seed=$s"
      t0=$(date +%s)
      (cd "$root" && $cmd)
      t1=$(date +%s)
      echo "$name | $cmd | $((t1 - t0)) s | $(hostname) $(nproc) cores | $(git -C "$root" rev-parse --short HEAD) | $(date -u +%FT%TZ)" >> "$out/runs.log"
      cp "$wd/test_results.json" "$root/docs/runs/$name.test_results.json"
      cp "$wd/metrics.jsonl" "$root/docs/runs/$name.metrics.jsonl"
    done
  done
done
