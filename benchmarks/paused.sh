#!/usr/bin/env bash
# Run a benchmark with this machine's long training runs (python -m
# laperm.reproduce ...) paused, so that they do not share the CPU with it;
# they go on where they were when the benchmark ends, fails or is interrupted.
# Usage: bash benchmarks/paused.sh python benchmarks/bench_cifar.py [args ...]
set -uo pipefail
pids=$(pgrep -f "python -m laperm.reproduce" | tr '\n' ' ')
resume() { [ -n "$pids" ] && kill -CONT $pids 2>/dev/null; }
trap resume EXIT INT TERM
if [ -n "$pids" ]; then
    echo "[paused] pausing long runs: $pids" >&2
    kill -STOP $pids
fi
"$@"
