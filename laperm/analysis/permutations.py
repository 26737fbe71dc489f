"""Where weights travel from sync to sync (Section 4): positions and ranks over records.

A *record* is one snapshot of a weight variable after a sync (as
:class:`laperm.PermutationRecorder` keeps them); these functions line records up
by rank and say which values moved.  :mod:`laperm.viz` draws them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from laperm.analysis import profiles as P


def record_rows(record: Any, layout: str) -> np.ndarray:
    arr = np.asarray(P.to_numpy(record))
    if layout == "variable" or arr.ndim != 2:
        return P.weight_vectors(arr)
    if layout != "rows":
        raise ValueError(f"layout must be 'rows' or 'variable', got {layout!r}")
    return arr


def positions(records: Sequence[Any], vector: int, kind: str, layout: str) -> np.ndarray:
    """``(T, n)``: column ``i`` = position of tracked weight ``i`` at each record."""
    if len(records) == 0:
        raise ValueError("records is empty")
    out = []
    shape0 = None
    for t, rec in enumerate(records):
        rows = record_rows(rec, layout)
        if shape0 is None:
            shape0 = rows.shape
        elif rows.shape != shape0:
            raise ValueError(f"record {t} has row view {rows.shape}, record 0 has {shape0}")
        row = rows[vector]
        if kind == "ranks":
            out.append(np.argsort(row, kind="stable"))  # value of rank i sits at pos[i]
        elif kind == "positions":
            out.append(np.asarray(row))
        else:
            raise ValueError(f"kind must be 'ranks' or 'positions', got {kind!r}")
    return np.stack(out)


def settling_table(records: Sequence[Any], vector: int = 0, share: float = 0.1,
                   layout: str = "rows") -> pd.DataFrame:
    """Per sync: the share of values that moved, for the extreme and the middle values.

    Args:
        records: as in :func:`laperm.viz.plot_rank_heatmap`.
        vector: row of the records.
        share: the size of each group, as a share of the vector: the
            ``share / 2`` smallest and largest initial values ("extreme"), and
            the ``share`` of values around the median ("middle").
        layout: ``"rows"`` or ``"variable"``.

    Returns:
        One row per sync after the first record: ``sync, all, extreme, middle``,
        each the share of that group's values whose position changed since the
        previous record.
    """
    pos = positions(records, vector, "ranks", layout)  # pos[t, r]: where value rank r sits
    n = pos.shape[1]
    half = max(1, int(round(n * share / 2)))
    groups = {"all": np.arange(n),
              "extreme": np.r_[np.arange(half), np.arange(n - half, n)],
              "middle": np.arange(n // 2 - half, n // 2 + half)}
    rows = []
    for t in range(1, len(pos)):
        moved = pos[t] != pos[t - 1]
        rows.append({"sync": t, **{g: float(moved[idx].mean()) for g, idx in groups.items()}})
    return pd.DataFrame(rows)


def drifted_vector(n: int, seed: int = 0, drift: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A toy weight vector before and after an inner optimizer's k steps (one LaPerm cycle).

    The introduction's picture of one sync (Section 4): ``theta0`` is drawn He-uniform for
    fan-in ``n``, U(-l, l) with l = sqrt(6 / n); the k inner steps are stood in for by
    Gaussian noise of standard deviation ``drift * l`` added to it.

    Args:
        n: the vector's length.
        seed: the NumPy generator's seed (``theta0`` is drawn first, then the drift).
        drift: the noise's standard deviation, as a share of l.

    Returns:
        ``(theta0, w)``, float32 arrays of length ``n``.
    """
    rng = np.random.default_rng(seed)
    limit = np.sqrt(6 / n)
    theta0 = rng.uniform(-limit, limit, n).astype("float32")
    w = theta0 + rng.normal(0, drift * limit, n).astype("float32")
    return theta0, w


def frame_indices(n_records: int, max_frames: int) -> np.ndarray:
    """At most ``max_frames`` record indices, evenly spaced from the first to the last.

    Used to animate a long training in a bounded number of frames (Section 4's
    animation of the reconnection); the first and last records are always kept.

    Args:
        n_records: how many records there are.
        max_frames: the most indices to return (at least 1 when there is a record).

    Returns:
        Sorted distinct indices into the records.
    """
    n_frames = min(max_frames, n_records)
    return np.unique(np.linspace(0, n_records - 1, n_frames).round().astype(int))
