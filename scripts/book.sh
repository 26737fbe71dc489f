#!/usr/bin/env bash
# Main job: set everything up, execute every section of the book with papermill
# (profile $PROFILE, default "cpu"; cached sections are skipped) and build the
# HTML strictly into _build/html/index.html. Extra arguments go to `laperm book`
# (e.g. --sections 05_1 07 08, --force, --no-build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
.venv/bin/laperm book --profile "${PROFILE:-cpu}" "$@"
