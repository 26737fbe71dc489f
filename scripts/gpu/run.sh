#!/usr/bin/env bash
# On the device, the last call of a lease (scripts/gpu/README.md): install the carried wheels,
# reassemble the data, run Conv2, Conv4 and Conv13 (LaPerm and Adam) at once until the deadline,
# records in $OUT as they come. Arguments go to scripts/gpu/lease.py (--help lists them).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" scripts/gpu/lease.py "$@"
