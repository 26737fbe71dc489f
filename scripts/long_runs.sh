#!/usr/bin/env bash
# Start (or resume: the same command continues a killed run) the long CIFAR-10
# runs at the paper's settings in the background, LaPerm and its Adam baseline
# side by side, at low priority. Logs go to runs/<experiment>_<optimizer>.log.
# Usage: [NICE=10] bash scripts/long_runs.sh [experiment ...] [-- reproduce options ...]
#   (default: conv2; e.g. `NICE=15 bash scripts/long_runs.sh conv4 -- --kernels fused`)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
mkdir -p runs
experiments=() options=()
while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then shift; options=("$@"); break; fi
    experiments+=("$1"); shift
done
[ ${#experiments[@]} -eq 0 ] && experiments=(conv2)
suffix=""
[ ${#options[@]} -gt 0 ] && suffix="_$(echo "${options[*]}" | tr -cs 'a-zA-Z0-9' '_' | sed 's/^_*//; s/_*$//')"
for exp in "${experiments[@]}"; do
    for which in laperm adam; do
        args=("$exp"); [ "$which" = adam ] && args+=(--only-baseline)
        args+=("${options[@]}")
        pattern="laperm.reproduce ${args[*]}\$"
        if pgrep -f "$pattern" >/dev/null; then
            echo "[long_runs] ${exp}_${which}${suffix} is running"; continue
        fi
        log="runs/${exp}_${which}${suffix}.log"
        nohup nice -n "${NICE:-10}" .venv/bin/python -m laperm.reproduce "${args[@]}" \
            >>"$log" 2>&1 &
        echo "[long_runs] started ${exp}_${which}${suffix} (pid $!, log $log)"
    done
done
