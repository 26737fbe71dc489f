#!/usr/bin/env bash
# Main job: set everything up, execute every section of the book with papermill
# (profile $PROFILE, default "cpu"; cached sections are skipped) and build the
# HTML strictly into _build/html/index.html, then check every page in headless
# Chromium (layout, figures, errors) and keep a screenshot of each in
# _build/screenshots/ (skipped with a note when Chromium is not installed).
# Extra arguments go to `laperm book` (e.g. --sections 05_1 07 08, --force, --no-build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
.venv/bin/laperm book --profile "${PROFILE:-cpu}" "$@"
build="${LAPERM_BUILD_DIR:-_build}"
if [ -f "$build/html/index.html" ]; then
    status=0
    .venv/bin/python scripts/check_pages.py --build-dir "$build" --screenshots "$build/screenshots" \
        || status=$?
    if [ "$status" = 3 ]; then
        echo "[book] Chromium not found: pages not checked in a browser (apt-get install chromium)"
    elif [ "$status" != 0 ]; then
        exit "$status"
    fi
fi
