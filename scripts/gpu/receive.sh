#!/usr/bin/env bash
# On the device, in each call before the last (scripts/gpu/README.md):
#   bash scripts/gpu/receive.sh PART      (PART: 1, 2, ... or the part's file name)
# Copies the carried .gpu-data/<part> into /tmp/laperm-gpu/data (or $LAPERM_GPU_HOME/data),
# which a warm machine keeps until the next call, after checking its size and sha256 against
# the carried .gpu-data/manifest.json. One line: "received part ..." (exit 0) or "error: ..."
# (exit 2). Needs python3 with nothing beyond the standard library.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ $# -ne 1 ]; then
    echo "error: usage: bash scripts/gpu/receive.sh PART (the part's number or file name)" >&2
    exit 2
fi
exec "${PYTHON:-python3}" scripts/gpu/gpudata.py receive "$1" --data "${LAPERM_GPU_DATA:-.gpu-data}"
