#!/usr/bin/env bash
# Start (or resume: the same command continues a killed run) the long CIFAR-10
# runs at the paper's settings in the background, LaPerm and its Adam baseline
# side by side, at low priority. Logs go to runs/<experiment>_<optimizer>.log.
# Usage: bash scripts/long_runs.sh [experiment ...]   (default: conv2)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
mkdir -p runs
for exp in "${@:-conv2}"; do
    for which in laperm adam; do
        args=("$exp"); [ "$which" = adam ] && args+=(--only-baseline)
        pattern="laperm.reproduce ${args[*]}\$"
        if pgrep -f "$pattern" >/dev/null; then
            echo "[long_runs] ${exp}_${which} is running"; continue
        fi
        nohup nice -n 10 .venv/bin/python -m laperm.reproduce "${args[@]}" \
            >>"runs/${exp}_${which}.log" 2>&1 &
        echo "[long_runs] started ${exp}_${which} (pid $!, log runs/${exp}_${which}.log)"
    done
done
