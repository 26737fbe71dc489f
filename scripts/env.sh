# Sourced by the scripts: quiet TensorFlow, and use ../shared/data offline when
# it exists and no data directory was chosen.
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${LAPERM_DATA_DIR:-}" ] && [ -f "$_root/../shared/data/mnist.npz" ]; then
    export LAPERM_DATA_DIR="$(cd "$_root/../shared/data" && pwd)"
fi
