"""Random pruning and shared-value initialisation of a model's kernels.

Paper: Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020.

* **Random pruning (Section 5.4).**  Before training, every kernel (every
  weight variable with ``ndim > 1``: Dense, Conv, ... kernels) keeps each of
  its entries with probability ``keep = 1 - p`` and the rest are set to
  exactly 0; the first layer keeps at least 80 %; 1-D variables (biases,
  BatchNorm parameters) are never pruned.  LaPerm then only permutes, so the
  zeros stay zeros in number (they move around within each weight vector).
* **Shared value (Section 5.5).**  Every kernel entry is set to one value
  ``v``; a random mask then keeps a fraction of them and zeros the rest.
  After LaPerm training the kernels still hold exactly ``{0, v}``.

Both operate in place on any Keras 3 model, are seeded by a numpy
``Generator`` (deterministic for a seed) and return a :class:`pandas.DataFrame`
with one row per kernel.

Measured on the authors' released checkpoints (``F1.h5``, ``F2.h5``, via
:func:`h5_kernel_stats`): F1's kernel ``(784, 10)`` holds ``{0, 0.08}`` with
59.78 % non-zero; F2's kernels ``(784, 128)``, ``(128, 64)``, ``(64, 10)``
hold ``{0, 0.03}`` with 6.60 %, 13.95 %, 33.13 % non-zero (7.31 % overall),
i.e. keep = 1/15, 1/7, 1/3 in that layer order (:data:`PAPER_SHARED_VALUE`).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from laperm import paper
from laperm.config import SHARED_MASKS


__all__ = [
    "PAPER_CHECKPOINT_NONZERO",
    "PAPER_PRUNE_KEEP",
    "PAPER_SHARED_VALUE",
    "SHARED_MASKS",
    "h5_kernel_stats",
    "h5_kernels",
    "kernel_stats",
    "kernel_variables",
    "keep_for_pruned_percent",
    "overall_kept_fraction",
    "random_prune",
    "shared_value",
    "unit_connection_counts",
]

#: The paper's pruning and shared-value settings (their home is :mod:`laperm.paper`).
PAPER_PRUNE_KEEP = paper.PRUNE_KEEP
PAPER_SHARED_VALUE = {key: dict(value=s["value"],
                                keep=list(s["keep"]) if isinstance(s["keep"], tuple) else s["keep"])
                      for key, s in paper.SHARED_VALUE.items()}
PAPER_CHECKPOINT_NONZERO = paper.CHECKPOINT_NONZERO

COLUMNS = [
    "layer",
    "variable",
    "shape",
    "size",
    "keep_asked",
    "keep_applied",
    "nonzero",
    "kept_fraction",
]


def keep_for_pruned_percent(p: float) -> float:
    """Keep probability for a pruning percentage ``p`` (Section 5.4).

    Args:
        p: percentage of weights set to zero, in ``[0, 100)``.

    Returns:
        ``1 - p / 100``.

    Raises:
        ValueError: ``p`` outside ``[0, 100)``.
    """
    p = float(p)
    if not math.isfinite(p) or not 0.0 <= p < 100.0:
        raise ValueError(f"pruning percentage must be in [0, 100), got {p}")
    return 1.0 - p / 100.0


def _children(layer):
    try:  # Keras 3: tracked sub-layers (covers custom layers with sublayers)
        return list(layer._flatten_layers(include_self=False, recursive=False))
    except Exception:  # pragma: no cover - other Keras versions
        return list(getattr(layer, "layers", []) or [])


def _owner_names(model) -> dict[int, str]:
    """Map id(variable) -> name of the innermost layer owning it."""
    owners: dict[int, str] = {}

    def walk(layer, depth=0):
        for v in layer.weights:
            owners[id(v)] = layer.name  # deeper layers overwrite their parents
        if depth < 50:
            for child in _children(layer):
                walk(child, depth + 1)

    walk(model)
    return owners


def kernel_variables(model) -> list[tuple[str, object]]:
    """The kernels (variables with ``ndim > 1``) of a model, in ``model.weights`` order.

    Args:
        model: a built Keras 3 model (or layer).

    Returns:
        A list of ``(layer name, variable)``; the layer is the innermost one
        that owns the variable.

    Raises:
        ValueError: the model has no weights yet (not built).
    """
    weights = list(model.weights)
    if not weights:
        raise ValueError(
            f"model {getattr(model, 'name', model)!r} has no weights; build it first "
            "(call it on data or give it an Input)"
        )
    owners = _owner_names(model)
    out, seen = [], set()
    for v in weights:
        if id(v) in seen or len(v.shape) <= 1:
            continue
        seen.add(id(v))
        path = getattr(v, "path", v.name)
        layer = owners.get(id(v))
        if layer is None:
            parts = str(path).split("/")
            layer = parts[-2] if len(parts) >= 2 else parts[0]
        out.append((layer, v))
    return out


def _check_prob(value, what: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"{what} must be a number in (0, 1], got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise ValueError(f"{what} must be in (0, 1], got {value}")
    return value


def _resolve_keep(keep, kernels) -> list[float]:
    """Per-kernel keep probabilities from a float, a list, or a dict by layer/path."""
    n = len(kernels)
    if isinstance(keep, Mapping):
        layer_names = {layer for layer, _ in kernels}
        paths = {str(getattr(v, "path", v.name)) for _, v in kernels}
        unknown = [k for k in keep if k not in layer_names and k not in paths]
        if unknown:
            raise ValueError(
                f"keep names unknown layer(s) {unknown}; layers with kernels: "
                f"{sorted(layer_names)}"
            )
        out = []
        for layer, v in kernels:
            path = str(getattr(v, "path", v.name))
            if path in keep:
                out.append(_check_prob(keep[path], f"keep[{path!r}]"))
            elif layer in keep:
                out.append(_check_prob(keep[layer], f"keep[{layer!r}]"))
            else:
                out.append(1.0)  # layers not named are left dense
        return out
    if isinstance(keep, (str, bytes)):
        raise ValueError(f"keep must be a float, a list or a dict, got {keep!r}")
    if isinstance(keep, (Sequence, np.ndarray)):
        keep = np.asarray(keep).reshape(-1).tolist() if isinstance(keep, np.ndarray) else list(keep)
        if len(keep) != n:
            raise ValueError(
                f"keep has {len(keep)} entries but the model has {n} kernels "
                f"({', '.join(layer for layer, _ in kernels)})"
            )
        return [_check_prob(k, f"keep[{i}]") for i, k in enumerate(keep)]
    return [_check_prob(keep, "keep")] * n


def _to_numpy(v) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(v.value if hasattr(v, "value") else v))


def _assign(v, array: np.ndarray) -> None:
    import keras

    v.assign(keras.ops.cast(keras.ops.convert_to_tensor(array), v.dtype))


def _row(layer, v, asked, applied, array) -> dict:
    nz = int(np.count_nonzero(array))
    return {
        "layer": layer,
        "variable": str(getattr(v, "path", v.name)),
        "shape": tuple(int(d) for d in v.shape),
        "size": int(array.size),
        "keep_asked": float(asked),
        "keep_applied": float(applied),
        "nonzero": nz,
        "kept_fraction": nz / array.size if array.size else float("nan"),
    }


def random_prune(model, keep, first_layer_keep: float | None = 0.8, seed: int = 0) -> pd.DataFrame:
    """Randomly zero kernel entries in place (Section 5.4).

    Every kernel (``ndim > 1``) keeps each entry independently with
    probability ``keep``; the first kernel in ``model.weights`` order keeps
    with probability ``max(keep, first_layer_keep)``.  Pruned entries become
    exactly 0.  1-D variables (biases, BatchNorm) are never touched.

    Args:
        model: a built Keras 3 model.
        keep: ``1 - p``: a float in ``(0, 1]`` for every kernel; a list with
            one value per kernel (model order); or a dict mapping layer names
            (or variable paths) to keep, kernels of layers not named staying
            dense (keep 1).
        first_layer_keep: minimum keep of the first kernel (the paper's 80 %);
            None disables the rule.
        seed: seed of the numpy Generator drawing the masks.

    Returns:
        A DataFrame, one row per kernel, columns ``layer, variable, shape,
        size, keep_asked, keep_applied, nonzero, kept_fraction`` (measured
        non-zeros / size after pruning).

    Raises:
        ValueError: ``keep`` outside ``(0, 1]``, a list of the wrong length,
            unknown layer names, a bad ``first_layer_keep`` or an unbuilt model.
    """
    kernels = kernel_variables(model)
    asked = _resolve_keep(keep, kernels)
    if first_layer_keep is not None:
        first_layer_keep = _check_prob(first_layer_keep, "first_layer_keep")
    rng = np.random.default_rng(seed)
    rows = []
    for i, ((layer, v), k) in enumerate(zip(kernels, asked)):
        applied = max(k, first_layer_keep) if (i == 0 and first_layer_keep is not None) else k
        w = _to_numpy(v)
        mask = rng.random(w.shape) < applied
        if not mask.all():
            w = np.where(mask, w, np.zeros((), w.dtype))
            _assign(v, w)
        rows.append(_row(layer, v, k, applied, w))
    return pd.DataFrame(rows, columns=COLUMNS)



def _per_unit_mask(shape: tuple, keep: float, rng: np.random.Generator) -> np.ndarray:
    """A mask keeping exactly ``round(keep * fan_in)`` entries of every unit's vector.

    A unit's vector is what LaPerm permutes: the kernel's entries with one
    index on the last axis (:func:`laperm.method.ops.to_rows`).
    """
    length = int(np.prod(shape[:-1]))
    n_keep = max(1, int(round(keep * length)))
    ranks = rng.random((length, shape[-1])).argsort(axis=0).argsort(axis=0)
    return (ranks < n_keep).reshape(shape)


def shared_value(model, value: float, keep, seed: int = 0,
                 mask: str = "bernoulli") -> pd.DataFrame:
    """Shared-value initialisation in place (Section 5.5).

    Every kernel (``ndim > 1``) is set to ``value`` where a random mask keeps
    it, and to 0 elsewhere.  There is no first-layer minimum (F1's only layer
    keeps about 60 %).  1-D variables are not touched.

    LaPerm never changes how many non-zeros a unit's vector holds, so the
    mask fixes each unit's number of connections for good.  ``mask`` chooses
    how it is drawn:

    * ``"bernoulli"`` (the paper): each entry is kept with probability
      ``keep``, so the counts vary from unit to unit (Binomial);
    * ``"per_unit"`` (this project's control): every unit keeps exactly
      ``round(keep * fan_in)`` entries.

    Args:
        model: a built Keras 3 model.
        value: the shared value v (paper: F1 0.08, F2 0.03).
        keep: as in :func:`random_prune` (float, list in kernel order, or dict
            by layer name); see :data:`PAPER_SHARED_VALUE`.
        seed: seed of the numpy Generator drawing the masks.
        mask: ``"bernoulli"`` or ``"per_unit"`` (see above).

    Returns:
        The same DataFrame as :func:`random_prune` plus a ``value`` column.

    Raises:
        ValueError: a non-finite or zero ``value``, a bad ``keep`` or an
            unknown ``mask``.
    """
    if mask not in SHARED_MASKS:
        raise ValueError(f"Unknown mask {mask!r}; valid: {', '.join(SHARED_MASKS)}.")
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ) or not math.isfinite(float(value)) or float(value) == 0.0:
        raise ValueError(f"value must be a finite non-zero number, got {value!r}")
    kernels = kernel_variables(model)
    asked = _resolve_keep(keep, kernels)
    rng = np.random.default_rng(seed)
    rows = []
    for (layer, v), k in zip(kernels, asked):
        shape = tuple(int(d) for d in v.shape)
        kept = _per_unit_mask(shape, k, rng) if mask == "per_unit" else rng.random(shape) < k
        w = np.where(kept, np.float32(value), np.float32(0.0))
        _assign(v, w)
        w = _to_numpy(v)
        row = _row(layer, v, k, k, w)
        row["value"] = float(w[w != 0][0]) if row["nonzero"] else float(value)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS + ["value"])


def kernel_stats(model) -> pd.DataFrame:
    """Measure each kernel without changing it.

    Returns:
        A DataFrame, one row per kernel: ``layer, variable, shape, size,
        nonzero, kept_fraction, n_distinct`` (number of distinct values, 2 for
        a shared-value kernel).
    """
    rows = []
    for layer, v in kernel_variables(model):
        w = _to_numpy(v)
        nz = int(np.count_nonzero(w))
        rows.append({
            "layer": layer,
            "variable": str(getattr(v, "path", v.name)),
            "shape": tuple(w.shape),
            "size": int(w.size),
            "nonzero": nz,
            "kept_fraction": nz / w.size,
            "n_distinct": int(np.unique(w).size),
        })
    return pd.DataFrame(rows)


def h5_kernels(path) -> list[tuple[str, str, np.ndarray]]:
    """The kernels (``ndim > 1`` datasets) of a Keras ``.h5`` weight file.

    Reads the file with h5py (no model needed), in the file's layer order
    (``layer_names`` attribute) when present.

    Returns:
        ``[(layer, variable, array), ...]``.
    """
    import h5py

    out = []
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in root.attrs.get("layer_names", list(root.keys()))]
        for layer in names:
            group = root[layer]
            weight_names = group.attrs.get("weight_names", [])
            datasets = []
            if len(weight_names):
                datasets = [(w.decode() if isinstance(w, bytes) else str(w)) for w in weight_names]
            else:
                group.visit(lambda n: datasets.append(n) if isinstance(group[n], h5py.Dataset) else None)
            for dname in datasets:
                a = group[dname][()]
                if a.ndim > 1:
                    out.append((layer, dname, a))
    return out


def h5_kernel_stats(path) -> pd.DataFrame:
    """Measure the kernels (``ndim > 1`` datasets) of a Keras ``.h5`` weight file.

    Returns:
        A DataFrame, one row per kernel (:func:`h5_kernels`): ``layer, variable,
        shape, size, nonzero, kept_fraction, values`` (the distinct values when
        there are at most 4, else None).
    """
    rows = []
    for layer, dname, a in h5_kernels(path):
        nz = int(np.count_nonzero(a))
        distinct = np.unique(a)
        rows.append({
            "layer": layer,
            "variable": dname,
            "shape": tuple(a.shape),
            "size": int(a.size),
            "nonzero": nz,
            "kept_fraction": nz / a.size,
            "values": tuple(float(x) for x in distinct) if distinct.size <= 4 else None,
        })
    return pd.DataFrame(rows)


def unit_connection_counts(kernel) -> np.ndarray:
    """The number of non-zeros in every unit's weight vector (Section 5.5).

    A unit's vector is what LaPerm permutes (the entries with one index on
    the kernel's last axis), so these counts never change during LaPerm
    training: the initial mask fixes how many inputs each unit listens to.

    Returns:
        One count per unit (length ``kernel.shape[-1]``).
    """
    a = np.asarray(kernel)
    if a.ndim < 2:
        raise ValueError(f"expected a kernel with ndim > 1, got shape {a.shape}")
    return np.count_nonzero(a.reshape(-1, a.shape[-1]), axis=0)


def overall_kept_fraction(df: pd.DataFrame) -> float:
    """Size-weighted non-zero fraction over all kernels of a report DataFrame."""
    return float(df["nonzero"].sum() / df["size"].sum())
