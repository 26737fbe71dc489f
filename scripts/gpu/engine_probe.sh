#!/usr/bin/env bash
# On the device, one call (scripts/gpu/README.md): the device engine's first contact with a GPU.
#   1. benchmarks/bench_engine.py on random CIFAR-10-shaped images (no data to carry):
#      steps/s of Conv2 at 1 step per call and a whole epoch per call, Conv13 a whole epoch;
#   2. MNIST runs with --engine device until the deadline, all at once: $RUNS (default
#      "conv7:1,2": Conv7 seeds 1 and 2), LaPerm and Adam each; a finished run keeps its
#      record, a run cut at the deadline is recorded as the reduced run of the epochs it did.
# Carry: .whl (the wheels) and .gpu-data/mnist (mnist.npz). Everything comes back in $OUT.
# Arguments: BENCH_S (default 90) and RUNS_S (default 120): each stage's seconds.
# EXTRA: more arguments for every reproduce (e.g. "--epochs 1 --train-fraction 0.01").
# Name the commit in the command (the lent machine's copy of .git can be stale):
#   LAPERM_COMMIT=$(git rev-parse HEAD) bash scripts/gpu/engine_probe.sh 70 85
set -u
cd "$(dirname "$0")/../.."
BENCH_S="${1:-90}"; RUNS_S="${2:-120}"
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
if [ -z "${NO_INSTALL:-}" ]; then  # NO_INSTALL=1: use the Keras importable (a CPU rehearsal)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH=/tmp/site
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
export LAPERM_DATA_DIR="${LAPERM_DATA_DIR:-$PWD/.gpu-data/mnist}" XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" \
    2>/dev/null || echo "no GPU (nvidia-smi failed)" >"$OUT/gpu.txt"
export LAPERM_COMMIT="${LAPERM_COMMIT:-unknown (not named in the command)}"
echo "[probe] $(cat "$OUT/gpu.txt"); commit $LAPERM_COMMIT"
timeout "$BENCH_S" python3 benchmarks/bench_engine.py --synthetic --no-fit \
    --experiments conv2 --steps-per-call 1 epoch --steps 200 --peak-tflops 67 \
    --json "$OUT/bench_conv2.json" 2>&1 | grep -v Warning | tee "$OUT/bench.log"
timeout 60 python3 benchmarks/bench_engine.py --synthetic --no-fit \
    --experiments conv13 --steps-per-call epoch --steps 900 --peak-tflops 67 \
    --json "$OUT/bench_conv13.json" 2>&1 | grep -v Warning | tee -a "$OUT/bench.log"
mkdir -p /tmp/runs
# RUNS: experiments and their seeds, e.g. "conv7:1,2 f1:0,1,2 f2:0,1,2" (LaPerm and Adam each)
for spec in ${RUNS:-conv7:1,2}; do
    exp="${spec%%:*}"
    for s in $(echo "${spec#*:}" | tr ',' ' '); do
        timeout "$RUNS_S" python3 -m laperm.reproduce "$exp" --seeds "$s" --engine device \
            ${EXTRA:-} --out /tmp/runs >"/tmp/runs/${exp}_laperm_s$s.log" 2>&1 &
        timeout "$RUNS_S" python3 -m laperm.reproduce "$exp" --seeds "$s" --only-baseline \
            --engine device ${EXTRA:-} --out /tmp/runs >"/tmp/runs/${exp}_adam_s$s.log" 2>&1 &
    done
done
wait
for spec in ${RUNS:-conv7:1,2}; do
    python3 -m laperm.reproduce "${spec%%:*}" --seeds $(echo "${spec#*:}" | tr ',' ' ') \
        --baseline --snapshot ${EXTRA:-} --out /tmp/runs 2>&1 | grep "^==" | tee -a "$OUT/snapshot.log"
done
(cd /tmp && tar --exclude='*.keras' --exclude='*.h5' -czf "$OUT/runs.tar.gz" runs)
tail -n 3 /tmp/runs/*.log
