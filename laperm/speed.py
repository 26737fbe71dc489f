"""The training-throughput record of ``benchmarks/bench_cifar.py``, read for the book.

The benchmark (run by hand, with the machine's long runs paused) trains each
CIFAR-10 model of Sections 5.2-5.4 with LaPerm at the paper's k, batch 50 and
the paper's augmentation in several ways side by side: the previous release's
path (``before``, the reference), today's default, ``mixed_bfloat16``, the
fused kernels of :mod:`laperm.fused`, and both.  It stores
``benchmarks/results/cifar_<backend>.json``; this module turns that record
into tables and a label saying when, where and at which commit it was made.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

__all__ = ["SPEEDUP_TARGET", "WAY_NAMES", "load_cifar_benchmark", "speed_label",
           "speed_table", "speedup_summary"]

#: The speed-up over the previous release that the CIFAR models' training was to reach.
SPEEDUP_TARGET = 2.0

#: How the book names the benchmark's ways.
WAY_NAMES = {
    "before": "previous release (float32)",
    "default": "default (float32)",
    "bfloat16": "mixed_bfloat16",
    "fused": "fused kernels (float32)",
    "fused_bfloat16": "fused kernels + mixed_bfloat16",
}


def load_cifar_benchmark(root=None, backend: str = "tensorflow") -> dict | None:
    """The stored record of ``bench_cifar.py`` (or None when there is none).

    Args:
        root: the project folder (default: the checkout this package runs from).
        backend: the Keras backend the benchmark ran under.
    """
    from laperm.project import project_root

    base = project_root(root, required=False)
    path = Path(base or ".") / "benchmarks" / "results" / f"cifar_{backend}.json"
    if not path.is_file():
        return None
    payload = json.loads(path.read_text())
    return payload if payload.get("rows") and "ratio_to_default" in payload["rows"][0] else None


def speed_table(payload: dict) -> pd.DataFrame:
    """One row per model and way: images/s, the speed-up over ``before`` and over ``default``."""
    rows = pd.DataFrame(payload["rows"])
    return pd.DataFrame({
        "model": rows["model"],
        "way": rows["way"].map(lambda w: WAY_NAMES.get(w, w)),
        "images/s": rows["images_per_s"],
        "x previous release": rows["ratio_to_before"],
        "x default": rows["ratio_to_default"],
        "GFLOP/s": rows["gflop_per_s"],
    })


def speedup_summary(payload: dict) -> pd.DataFrame:
    """Per model: the fastest way, its speed-up over ``before``, and whether it meets the target."""
    rows = pd.DataFrame(payload["rows"])
    best = rows.loc[rows.groupby("model", sort=False)["images_per_s"].idxmax()]
    return pd.DataFrame({
        "model": best["model"].to_numpy(),
        "fastest way": best["way"].map(lambda w: WAY_NAMES.get(w, w)).to_numpy(),
        "images/s": best["images_per_s"].to_numpy(),
        "x previous release": best["ratio_to_before"].to_numpy(),
        f"meets {SPEEDUP_TARGET:g}x": (best["ratio_to_before"] >= SPEEDUP_TARGET).to_numpy(),
    })


def speed_label(payload: dict) -> str:
    """When, where and at which commit the benchmark ran, for a caption."""
    from laperm.book.page import hardware_label

    env = payload.get("environment", {})
    versions = env.get("versions", {})
    commit = (env.get("commit") or "?")[:7]
    backend = versions.get("backend", "?")
    return (f"benchmarks/bench_cifar.py, {env.get('date', '?')[:10]}, "
            f"{hardware_label(env.get('hardware'))}, {backend} "
            f"{versions.get(backend, '')}".rstrip() + f", commit {commit}")
