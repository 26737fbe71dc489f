"""The cross-check's records: JSON and CSV in ``results/crosscheck``."""


from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from laperm.atomic import atomic_write_json
from laperm.crosscheck.authors import AuthorsCode, load_authors_code
from laperm.crosscheck.sync import compare_sync, sync_differences
from laperm.crosscheck.training import compare_training
from laperm.experiment import environment_info
from laperm.project import project_root

# --------------------------------------------------------------------------
# Records and command line
# --------------------------------------------------------------------------


def _write_json(path: Path, payload: dict) -> None:
    atomic_write_json(path, payload, default=_json_default)


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray, tuple, Path)):
        return list(obj) if not isinstance(obj, Path) else str(obj)
    return str(obj)


def default_out_dir() -> Path:
    """``results/crosscheck`` of the project checkout."""
    return project_root() / "results" / "crosscheck"


def sync_record(code: AuthorsCode | None = None) -> dict:
    """The sync comparison as a JSON-able record (for ``sync.json``)."""
    code = code or load_authors_code()
    table = compare_sync(code=code)
    return {"what": "their synchronisation and ours from the same weights and theta_0 "
                    "(float32 bits compared)",
            "all_identical": bool(table["identical"].all()),
            "table": json.loads(table.to_json(orient="records")),
            "differences": json.loads(sync_differences(code).to_json(orient="records")),
            "authors_code": code.describe(), **environment_info()}


#: The training comparisons of ``python -m laperm.crosscheck training``.
TRAINING_RUNS = (
    dict(model="f1", syncs=4, matching=False),
    dict(model="f1", syncs=4, matching=True),
    dict(model="f2", syncs=4, matching=False),
    dict(model="f2", syncs=4, matching=True),
    dict(model="conv7", syncs=3, matching=True, dropout=True),
    dict(model="conv7", syncs=3, matching=False, dropout=False),
    dict(model="conv7", syncs=3, matching=True, dropout=False),
)


def training_record(runs=TRAINING_RUNS, data_dir=None, code: AuthorsCode | None = None) -> dict:
    """The training comparisons as a JSON-able record (for ``training.json``)."""
    code = code or load_authors_code()
    comparisons = []
    for spec in runs:
        start = time.perf_counter()
        result = compare_training(**spec, data_dir=data_dir, code=code).to_dict()
        result["wall_time_s"] = time.perf_counter() - start
        comparisons.append(result)
    return {"what": "the authors' LaPermTrainLoop and model.fit with laperm.LaPerm from the "
                    "same theta_0 on the same batches: weights compared position by position",
            "comparisons": comparisons, "authors_code": code.describe(), **environment_info()}


def training_table(record: dict) -> pd.DataFrame:
    """One row per comparison and step of ``training.json`` (for a page)."""
    rows = []
    for c in record["comparisons"]:
        s = c["settings"]
        for r in c["table"]:
            rows.append({"model": c["model"], "k": s["sync_period"],
                         "loss": "matching" if s["matching_loss"] else "Keras mean",
                         "dropout": s["dropout"], **r})
    return pd.DataFrame(rows)
