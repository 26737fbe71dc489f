"""Shared helpers of the benchmarks (run by hand, never in the tests)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn, repeats: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def save(name: str, payload: dict, markdown: str) -> None:
    """Write ``results/<name>.json`` and ``results/<name>.md``."""
    from laperm.experiment import environment_info

    RESULTS.mkdir(exist_ok=True)
    payload = {**payload, "environment": environment_info(), "machine": platform.node()}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=1, default=str))
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)
