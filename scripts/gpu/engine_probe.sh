#!/usr/bin/env bash
# On the device, one call (scripts/gpu/README.md): the device engine's first contact with a GPU.
#   1. benchmarks/bench_engine.py on random CIFAR-10-shaped images (no data to carry):
#      steps/s of Conv2 at 1 step per call and a whole epoch per call, Conv13 a whole epoch;
#   2. the MNIST rows still missing seeds, with --engine device until the deadline:
#      Conv7 seeds 1 and 2, LaPerm and Adam, all four at once; a run cut at the deadline is
#      recorded as the reduced run of the epochs it did.
# Carry: .whl (the wheels) and .gpu-data/mnist (mnist.npz). Everything comes back in $OUT.
# Arguments: BENCH_S (default 90) and RUNS_S (default 120): each stage's seconds.
# Name the commit in the command (the lent machine's copy of .git can be stale):
#   LAPERM_COMMIT=$(git rev-parse HEAD) bash scripts/gpu/engine_probe.sh 70 85
set -u
cd "$(dirname "$0")/../.."
BENCH_S="${1:-90}"; RUNS_S="${2:-120}"
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 2
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax PYTHONUNBUFFERED=1
export LAPERM_DATA_DIR="$PWD/.gpu-data/mnist" XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt"
export LAPERM_COMMIT="${LAPERM_COMMIT:-unknown (not named in the command)}"
echo "[probe] $(cat "$OUT/gpu.txt"); commit $LAPERM_COMMIT"
timeout "$BENCH_S" python3 benchmarks/bench_engine.py --synthetic --no-fit \
    --experiments conv2 --steps-per-call 1 epoch --steps 200 --peak-tflops 67 \
    --json "$OUT/bench_conv2.json" 2>&1 | grep -v Warning | tee "$OUT/bench.log"
timeout 60 python3 benchmarks/bench_engine.py --synthetic --no-fit \
    --experiments conv13 --steps-per-call epoch --steps 900 --peak-tflops 67 \
    --json "$OUT/bench_conv13.json" 2>&1 | grep -v Warning | tee -a "$OUT/bench.log"
mkdir -p /tmp/runs
for s in 1 2; do
    timeout "$RUNS_S" python3 -m laperm.reproduce conv7 --seeds $s --engine device \
        --out /tmp/runs >"/tmp/runs/conv7_laperm_s$s.log" 2>&1 &
    timeout "$RUNS_S" python3 -m laperm.reproduce conv7 --seeds $s --only-baseline \
        --engine device --out /tmp/runs >"/tmp/runs/conv7_adam_s$s.log" 2>&1 &
done
wait
python3 -m laperm.reproduce conv7 --seeds 1 2 --baseline --snapshot --out /tmp/runs 2>&1 \
    | grep "^==" | tee "$OUT/snapshot.log"
(cd /tmp && tar --exclude='*.keras' --exclude='*.h5' -czf "$OUT/runs.tar.gz" runs)
tail -n 3 /tmp/runs/*.log
