"""Weight profiles and permutations: pure NumPy / pandas analysis.

Paper: Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020.

* Section 2: sort every weight vector of a well-trained layer and the vectors
  collapse onto nearly the same curve, the layer's **weight profile**.
  :func:`sorted_profiles`, :func:`mean_profile`, :func:`profile_similarity`
  and :func:`layer_profile_table` measure how alike the sorted vectors are.
* Section 3 / 4: training can be read as a permutation of the initial weights,
  ``theta_T = sigma(theta_0)``.  :func:`ranks`, :func:`permutation_from`,
  :func:`apply_permutation`, :func:`moved_fraction`, :func:`moved_connections`,
  :func:`from_ranks` and :func:`repermute` recover and apply such
  permutations.

Conventions (shared with :mod:`laperm.method.ops`): a **weight vector** is
everything that feeds one output unit.  For a variable of rank >= 2 the last
axis indexes output units, so the vectors are the columns of
``reshape(w, (-1, w.shape[-1]))``; a 1-D variable is one vector; a rank-0
variable is a single value.  This module works on the **row view**: an array
``(n_vectors, length)`` whose row ``j`` is the vector of output unit ``j``
(:func:`weight_vectors`).

Every function accepts NumPy arrays, Keras variables or tensors of any
backend; a "model or weights" argument may be a Keras model / layer (its
``weights``), a ``{name: array}`` mapping or a list of arrays (as returned by
``model.get_weights()``).

Reading the similarity scores honestly: sorted vectors of a *random*
initialisation already lie on one curve (they are i.i.d. draws from the same
distribution), so both scores are close to 1 at initialisation too.  A score
only means something next to the same score for theta_0 (``baseline=`` in
:func:`layer_profile_table`) and for the layer's values shuffled across
vectors (``shuffled=True``).  Note also that LaPerm keeps every vector's
multiset of values, so it cannot change any of these scores: after a sync they
equal the scores of theta_0 exactly.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "to_numpy",
    "permutation_table",
    "named_weights",
    "weight_vectors",
    "from_vectors",
    "sorted_profiles",
    "mean_profile",
    "profile_correlations",
    "profile_distances",
    "vector_profile_similarity",
    "profile_similarity",
    "shuffled_like",
    "layer_profile_table",
    "ranks",
    "is_permutation_of",
    "permutation_from",
    "apply_permutation",
    "from_ranks",
    "moved_fraction",
    "moved_connections",
    "repermute",
    "repermute_model",
]

_METHODS = ("correlation", "rms")


# ---------------------------------------------------------------------------
# Conversion and the row view
# ---------------------------------------------------------------------------


def to_numpy(x: Any) -> np.ndarray:
    """Convert a NumPy array, Keras variable or backend tensor to NumPy.

    Keras is only used when it is already imported (a Keras object implies
    it), so pure NumPy use never pays for importing a backend.
    """
    if isinstance(x, np.ndarray):
        return x
    if "keras" in sys.modules and not isinstance(x, (list, tuple, float, int)):
        try:
            import keras

            return np.asarray(keras.ops.convert_to_numpy(x))
        except Exception:  # not a tensor keras knows: fall back to NumPy
            pass
    return np.asarray(x)


def _is_model_like(obj: Any) -> bool:
    return (
        hasattr(obj, "weights")
        and not isinstance(obj, (np.ndarray, list, tuple, dict))
        and not hasattr(obj, "shape")
    )


def named_weights(model_or_weights: Any) -> list[tuple[str, np.ndarray]]:
    """``(name, array)`` pairs for a model, a mapping or a list of arrays.

    Args:
        model_or_weights: a Keras model or layer (names are variable paths,
            e.g. ``"dense/kernel"``), a ``{name: array}`` mapping, a list or
            tuple of arrays (names ``"weights[i]"``), or one array (name
            ``"w"``).

    Returns:
        A list of ``(name, numpy array)`` in the order of the input (for a
        model, the order of ``model.weights``, which is also the order of
        ``model.get_weights()``).
    """
    if _is_model_like(model_or_weights):
        out = []
        for v in model_or_weights.weights:
            name = getattr(v, "path", None) or getattr(v, "name", None) or str(len(out))
            out.append((str(name), to_numpy(v)))
        return out
    if isinstance(model_or_weights, dict):
        return [(str(k), to_numpy(v)) for k, v in model_or_weights.items()]
    if isinstance(model_or_weights, (list, tuple)):
        return [(f"weights[{i}]", to_numpy(v)) for i, v in enumerate(model_or_weights)]
    return [("w", to_numpy(model_or_weights))]


def _count_length(shape: Sequence[int]) -> tuple[int, int]:
    shape = tuple(int(d) for d in shape)
    if len(shape) >= 2:
        count = shape[-1]
        length = int(np.prod(shape[:-1]))
        return count, length
    if len(shape) == 1:
        return 1, shape[0]
    return 1, 1


def weight_vectors(w: Any) -> np.ndarray:
    """The weight vectors of a variable as rows (the row view).

    Section 4: a weight vector is everything feeding one output unit, e.g.
    a column of a Dense kernel ``(in, out)`` or the ``kh*kw*cin`` values of
    one output channel of a Conv kernel ``(kh, kw, cin, cout)``.

    Args:
        w: a variable of any rank.

    Returns:
        ``(n_vectors, length)`` array: row ``j`` is the vector of output
        unit ``j`` (rank 1: one row; rank 0: shape ``(1, 1)``).  Entries of
        a row keep the order of the flattened input axes.
    """
    arr = to_numpy(w)
    count, length = _count_length(arr.shape)
    if arr.ndim >= 2:
        return np.ascontiguousarray(arr.reshape(length, count).T)
    return arr.reshape(1, length).copy()


def from_vectors(rows: Any, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`weight_vectors`: rows back to the variable's shape."""
    rows = to_numpy(rows)
    shape = tuple(int(d) for d in shape)
    count, length = _count_length(shape)
    if rows.shape != (count, length):
        raise ValueError(
            f"rows of shape {rows.shape} do not fit a variable of shape {shape} "
            f"(expected {(count, length)})"
        )
    if len(shape) >= 2:
        return np.ascontiguousarray(rows.T).reshape(shape)
    return rows.reshape(shape).copy()


# ---------------------------------------------------------------------------
# Weight profiles (Section 2)
# ---------------------------------------------------------------------------


def sorted_profiles(w: Any) -> np.ndarray:
    """Each weight vector sorted ascending, as rows (Section 2 figures).

    Args:
        w: a variable of any rank.

    Returns:
        ``(n_vectors, length)`` array; row ``j`` is vector ``j`` sorted.  With
        LaPerm this is ``sorted0`` of Section 4 when ``w`` is theta_0.
    """
    return np.sort(weight_vectors(w), axis=1)


def mean_profile(w: Any) -> np.ndarray:
    """The layer's weight profile: the mean of its sorted vectors (Section 2).

    Returns:
        ``(length,)`` float64 array, non-decreasing.
    """
    return sorted_profiles(w).mean(axis=0, dtype=np.float64)


def _chunks(n_rows: int, length: int, budget: int = 1 << 22):
    step = max(1, budget // max(1, length))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def profile_correlations(w: Any) -> np.ndarray:
    """Pearson correlation of each sorted vector with the layer's mean profile.

    Measures whether the sorted vectors have the *same shape* as the mean
    profile; it ignores scale and offset (a vector ``2 * v + 1`` scores like
    ``v``).  Sorted i.i.d. samples of one distribution score close to 1, so
    compare with the score at initialisation (see the module docstring).

    Where a correlation is undefined (a constant sorted vector or a constant
    mean profile, e.g. vectors of length 1) the score is 1.0 when both are
    constant and 0.0 otherwise.

    Args:
        w: a variable of any rank.

    Returns:
        ``(n_vectors,)`` float64 array in ``[-1, 1]`` (in practice ``[0, 1]``,
        since sorted curves are both non-decreasing).
    """
    s = sorted_profiles(w)
    n_rows, length = s.shape
    out = np.empty(n_rows, dtype=np.float64)
    if n_rows == 0:
        return out
    m = s.mean(axis=0, dtype=np.float64)
    mc = m - m.mean()
    m_norm = np.sqrt(np.sum(mc * mc))
    for sl in _chunks(n_rows, length):
        x = s[sl].astype(np.float64)
        xc = x - x.mean(axis=1, keepdims=True)
        x_norm = np.sqrt(np.sum(xc * xc, axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (xc @ mc) / (x_norm * m_norm)
        flat_x = ~(x_norm > 0)
        if not m_norm > 0:
            r = np.where(flat_x, 1.0, 0.0)
        else:
            r = np.where(flat_x, 0.0, r)
        out[sl] = np.clip(r, -1.0, 1.0)
    return out


def profile_distances(w: Any) -> np.ndarray:
    """Normalised RMS distance of each sorted vector to the mean profile.

    ``d_j = RMS(sorted_j - mean_profile) / RMS spread of the layer``, where
    the spread is the standard deviation of all the layer's values.  Unlike
    the correlation this sees scale: vectors of the same shape but different
    magnitudes are far apart.  ``mean_j d_j**2`` is the share of the layer's
    variance that the mean profile leaves unexplained, so ``mean_j d_j`` lies
    in ``[0, 1]`` (single ``d_j`` may exceed 1).  A layer whose values are all
    equal has distance 0.

    Args:
        w: a variable of any rank.

    Returns:
        ``(n_vectors,)`` float64 array, >= 0.
    """
    s = sorted_profiles(w)
    n_rows, length = s.shape
    out = np.empty(n_rows, dtype=np.float64)
    if n_rows == 0 or length == 0:
        return np.zeros(n_rows)
    m = s.mean(axis=0, dtype=np.float64)
    spread = float(np.std(s, dtype=np.float64))
    for sl in _chunks(n_rows, length):
        diff = s[sl].astype(np.float64) - m
        out[sl] = np.sqrt(np.mean(diff * diff, axis=1))
    if not spread > 0:
        return np.zeros(n_rows)
    return out / spread


def vector_profile_similarity(w: Any, method: str = "correlation") -> np.ndarray:
    """Per-vector similarity to the layer's weight profile (Section 2).

    Args:
        w: a variable of any rank.
        method: ``"correlation"``: :func:`profile_correlations` (shape only,
            1 = same shape as the mean profile); ``"rms"``: ``1 -``
            :func:`profile_distances` (shape and scale, 1 = equal to the mean
            profile; may be negative for an outlying vector).

    Returns:
        ``(n_vectors,)`` float64 array.
    """
    if method == "correlation":
        return profile_correlations(w)
    if method == "rms":
        return 1.0 - profile_distances(w)
    raise ValueError(f"method must be one of {_METHODS}, got {method!r}")


def profile_similarity(w: Any, method: str = "correlation") -> float:
    """How alike a layer's sorted weight vectors are: one number (Section 2).

    The mean over vectors of :func:`vector_profile_similarity`.

    * ``"correlation"``: mean Pearson correlation between each sorted vector
      and the mean profile.  1 when all sorted vectors are affine copies of
      one curve.  Insensitive: random initialisations already score ~1.
    * ``"rms"``: ``1 - mean_j d_j`` with ``d_j`` the RMS distance of sorted
      vector ``j`` to the mean profile divided by the layer's standard
      deviation.  In ``[0, 1]``; 1 when all sorted vectors are identical.

    Always compare with the same score at initialisation (and, if useful, for
    :func:`shuffled_like`): the claim of Section 2 is that trained profiles
    stay about as alike as random ones, not that the score is 1.

    Args:
        w: a variable of any rank.
        method: ``"correlation"`` or ``"rms"``.

    Returns:
        A float (nan for a variable without values).
    """
    scores = vector_profile_similarity(w, method)
    return float(np.mean(scores)) if scores.size else float("nan")


def shuffled_like(w: Any, seed: int | None = 0) -> np.ndarray:
    """The layer's values randomly re-assigned to positions across vectors.

    A null model for the similarity scores: the same values, but each vector
    becomes a random draw from the layer's pooled distribution.

    Args:
        w: a variable of any rank.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        An array shaped like ``w``.
    """
    arr = to_numpy(w)
    rng = np.random.default_rng(seed)
    return rng.permutation(arr.reshape(-1)).reshape(arr.shape)


def layer_profile_table(
    model_or_weights: Any,
    baseline: Any = None,
    baseline_label: str = "init",
    shuffled: bool = False,
    min_ndim: int = 2,
    seed: int | None = 0,
) -> pd.DataFrame:
    """One row of weight-profile statistics per kernel (Section 2).

    Args:
        model_or_weights: a Keras model or layer, a ``{name: array}`` mapping
            or a list of arrays.
        baseline: optional weights of the same structure (e.g. theta_0, a
            model right after initialisation) whose scores are added as
            ``correlation_<baseline_label>`` and ``rms_similarity_<label>``.
            Matched to the variables by position.
        baseline_label: suffix of the baseline columns.
        shuffled: also add ``correlation_shuffled`` and
            ``rms_similarity_shuffled``: the scores of the layer's values
            shuffled across vectors (:func:`shuffled_like`).
        min_ndim: only variables with at least this many dimensions (default
            2: kernels; biases and BatchNorm vectors have a single vector and
            no profile to compare).
        seed: seed for the shuffled null model.

    Returns:
        A DataFrame with columns ``name``, ``shape``, ``n_vectors``,
        ``vector_length``, ``std`` (spread of the layer's values),
        ``correlation`` (:func:`profile_similarity` with ``"correlation"``),
        ``rms_similarity`` (with ``"rms"``), then the optional baseline and
        shuffled columns.
    """
    items = named_weights(model_or_weights)
    base = None
    if baseline is not None:
        base = named_weights(baseline)
        if len(base) != len(items):
            raise ValueError(
                f"baseline has {len(base)} variables, the weights have {len(items)}"
            )
    rows = []
    for idx, (name, arr) in enumerate(items):
        if arr.ndim < min_ndim:
            continue
        count, length = _count_length(arr.shape)
        row = {
            "name": name,
            "shape": tuple(int(d) for d in arr.shape),
            "n_vectors": count,
            "vector_length": length,
            "std": float(np.std(arr, dtype=np.float64)) if arr.size else float("nan"),
            "correlation": profile_similarity(arr, "correlation"),
            "rms_similarity": profile_similarity(arr, "rms"),
        }
        if base is not None:
            b = base[idx][1]
            if b.shape != arr.shape:
                raise ValueError(
                    f"baseline variable {base[idx][0]!r} has shape {b.shape}, "
                    f"{name!r} has {arr.shape}"
                )
            row[f"correlation_{baseline_label}"] = profile_similarity(b, "correlation")
            row[f"rms_similarity_{baseline_label}"] = profile_similarity(b, "rms")
        if shuffled:
            sh = shuffled_like(arr, seed)
            row["correlation_shuffled"] = profile_similarity(sh, "correlation")
            row["rms_similarity_shuffled"] = profile_similarity(sh, "rms")
        rows.append(row)
    columns = ["name", "shape", "n_vectors", "vector_length", "std", "correlation",
               "rms_similarity"]
    if base is not None:
        columns += [f"correlation_{baseline_label}", f"rms_similarity_{baseline_label}"]
    if shuffled:
        columns += ["correlation_shuffled", "rms_similarity_shuffled"]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------
# Ranks and permutations (Sections 3, 4)
# ---------------------------------------------------------------------------


def ranks(w: Any) -> np.ndarray:
    """Stable ranks of every entry within its weight vector (row view).

    ``ranks(w)[j, p]`` is the rank of entry ``p`` of vector ``j``: the number
    of entries smaller than it, ties broken by position (the earlier entry
    gets the smaller rank).  Equal to
    ``argsort(argsort(v, kind="stable"), kind="stable")`` per vector; computed
    with one stable argsort and a scatter.  This is the ordering LaPerm uses
    to reconnect (Section 4).

    Returns:
        ``(n_vectors, length)`` int64 array; each row is a permutation of
        ``0 .. length-1``.
    """
    return _row_ranks(weight_vectors(w))


def _row_ranks(rows: np.ndarray) -> np.ndarray:
    order = np.argsort(rows, axis=1, kind="stable")
    out = np.empty_like(order)
    np.put_along_axis(
        out, order, np.broadcast_to(np.arange(rows.shape[1]), rows.shape), axis=1
    )
    return out


def _rows_pair(theta0: Any, theta: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_numpy(theta0), to_numpy(theta)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: theta0 has shape {a.shape}, theta has {b.shape}")
    return weight_vectors(a), weight_vectors(b)


def _permutation_mismatch(a_rows: np.ndarray, b_rows: np.ndarray):
    """Sort orders of both, and a message if the sorted vectors differ."""
    o0 = np.argsort(a_rows, axis=1, kind="stable")
    o1 = np.argsort(b_rows, axis=1, kind="stable")
    sa = np.take_along_axis(a_rows, o0, axis=1)
    sb = np.take_along_axis(b_rows, o1, axis=1)
    same = sa == sb
    if np.issubdtype(sa.dtype, np.floating) or np.issubdtype(sb.dtype, np.floating):
        same |= np.isnan(sa) & np.isnan(sb)
    bad_rows = np.flatnonzero(~np.all(same, axis=1))
    message = None
    if bad_rows.size:
        j = int(bad_rows[0])
        i = int(np.flatnonzero(~same[j])[0])
        message = (
            f"theta is not a per-vector permutation of theta0: {bad_rows.size} of "
            f"{a_rows.shape[0]} weight vectors hold a different multiset of values "
            f"(first: vector {j}, whose {i}-th smallest value is {sa[j, i]!r} in "
            f"theta0 but {sb[j, i]!r} in theta)"
        )
    return o0, o1, message


def is_permutation_of(theta0: Any, theta: Any) -> bool:
    """``True`` if every vector of ``theta`` holds exactly its theta0 values.

    The exact check of Section 4's invariant (compares sorted vectors with
    ``==``; NaNs match NaNs).  Shapes must agree, else ``False``.
    """
    a, b = to_numpy(theta0), to_numpy(theta)
    if a.shape != b.shape:
        return False
    return _permutation_mismatch(weight_vectors(a), weight_vectors(b))[2] is None


def permutation_from(theta0: Any, theta: Any) -> np.ndarray:
    """The per-vector permutation that turns theta0 into theta (Section 3).

    For LaPerm-synchronised weights ``theta`` (every vector a permutation of
    the same vector of ``theta0``), returns the index map ``perm`` with
    ``theta_rows[j, perm[j, p]] == theta0_rows[j, p]``: where the value that
    sat at position ``p`` of vector ``j`` now sits.  Equal values are matched
    in stable order (the k-th occurrence in theta0 goes to the k-th
    occurrence in theta).

    Args:
        theta0: initial weights, any rank.
        theta: weights of the same shape.

    Returns:
        ``(n_vectors, length)`` int64 array, each row a permutation.

    Raises:
        ValueError: if the shapes differ or some vector of ``theta`` is not
            exactly a permutation of the same vector of ``theta0``; the
            message names the first mismatching vector and values.
    """
    a, b = _rows_pair(theta0, theta)
    o0, o1, message = _permutation_mismatch(a, b)
    if message:
        raise ValueError(message)
    perm = np.empty_like(o0)
    np.put_along_axis(perm, o0, o1, axis=1)
    return perm


def apply_permutation(theta0: Any, perm: Any) -> np.ndarray:
    """Move theta0's values by an index map from :func:`permutation_from`.

    Args:
        theta0: initial weights, any rank.
        perm: ``(n_vectors, length)`` index map: value ``p`` of vector ``j``
            goes to position ``perm[j, p]``.

    Returns:
        An array shaped like ``theta0``; ``apply_permutation(theta0,
        permutation_from(theta0, theta))`` equals ``theta``.
    """
    a = to_numpy(theta0)
    rows = weight_vectors(a)
    perm = np.asarray(to_numpy(perm))
    _check_index_rows(perm, rows.shape, "perm")
    out = np.empty_like(rows)
    np.put_along_axis(out, perm, rows, axis=1)
    return from_vectors(out, a.shape)


def _check_index_rows(idx: np.ndarray, shape: tuple[int, int], what: str) -> None:
    if idx.shape != shape:
        raise ValueError(f"{what} has shape {idx.shape}; expected the row view {shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{what} must hold integer indices, got dtype {idx.dtype}")
    if idx.size and not np.array_equal(
        np.sort(idx, axis=1), np.broadcast_to(np.arange(shape[1]), shape)
    ):
        raise ValueError(f"every row of {what} must be a permutation of 0..{shape[1] - 1}")


def from_ranks(theta0: Any, rank_rows: Any, vectors: Sequence[int] | None = None) -> np.ndarray:
    """The weights a LaPerm sync produces for given ranks (Section 4).

    Each vector receives its sorted theta0 values re-ordered by ``rank_rows``:
    position ``p`` gets the ``rank_rows[j, p]``-th smallest initial value.
    Use it to rebuild the weights from ranks recorded after each sync (e.g.
    by ``laperm.PermutationRecorder``).

    Args:
        theta0: initial weights, any rank.
        rank_rows: ``(n, length)`` integer ranks in the row view, each row a
            permutation of ``0 .. length-1``.
        vectors: the vector indices of theta0 that the rows of ``rank_rows``
            belong to (for records of a subset of vectors).  Default: all.

    Returns:
        With ``vectors=None``: an array shaped like ``theta0``.  Otherwise the
        rebuilt rows ``(len(vectors), length)``.
    """
    a = to_numpy(theta0)
    s = np.sort(weight_vectors(a), axis=1)
    if vectors is not None:
        s = s[np.asarray(vectors, dtype=np.int64)]
    r = np.asarray(to_numpy(rank_rows))
    _check_index_rows(r, s.shape, "rank_rows")
    out = np.take_along_axis(s, r, axis=1)
    return from_vectors(out, a.shape) if vectors is None else out


def moved_fraction(
    theta0: Any, theta: Any, per_vector: bool = False, check: bool = True
) -> float | np.ndarray:
    """Share of weights whose location changed between theta0 and theta.

    Equal values are interchangeable, so a position counts as unchanged when
    it holds the same value as in theta0.  For a permutation this is the
    smallest share of moved weights consistent with ``theta`` (with distinct
    values it is exactly the share of ``p`` with ``perm[j, p] != p``).

    Args:
        theta0: initial weights, any rank.
        theta: weights of the same shape, normally a per-vector permutation.
        per_vector: return one share per vector instead of the overall share.
        check: raise ``ValueError`` if ``theta`` is not a per-vector
            permutation of ``theta0`` (see :func:`permutation_from`).

    Returns:
        A float in ``[0, 1]``, or a ``(n_vectors,)`` array if ``per_vector``.
    """
    a, b = _rows_pair(theta0, theta)
    if check:
        message = _permutation_mismatch(a, b)[2]
        if message:
            raise ValueError(message)
    moved = a != b
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(b.dtype, np.floating):
        moved &= ~(np.isnan(a) & np.isnan(b))
    if per_vector:
        return moved.mean(axis=1) if moved.shape[1] else np.zeros(moved.shape[0])
    return float(moved.mean()) if moved.size else 0.0


def moved_connections(
    theta0: Any, theta: Any, per_vector: bool = False, check: bool = True
) -> float | np.ndarray:
    """For sparse nets: share of non-zero connections that were rewired.

    Sections 5.4, 5.5: pruned or shared-value networks trained by LaPerm keep
    their number of non-zeros per vector, but may move them.  This is the
    fraction of theta0's non-zero positions that hold a zero in ``theta``
    (equivalently, of connections present in theta that were absent at
    initialisation).  Values are ignored; only the support counts.

    Args:
        theta0: initial weights, any rank.
        theta: weights of the same shape.
        per_vector: one share per vector (nan for a vector without non-zeros).
        check: raise ``ValueError`` if ``theta`` is not a per-vector
            permutation of ``theta0``.

    Returns:
        A float in ``[0, 1]`` (nan when theta0 has no non-zero), or a
        ``(n_vectors,)`` array if ``per_vector``.
    """
    a, b = _rows_pair(theta0, theta)
    if check:
        message = _permutation_mismatch(a, b)[2]
        if message:
            raise ValueError(message)
    nz0 = a != 0
    lost = nz0 & (b == 0)
    if per_vector:
        n = nz0.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, lost.sum(axis=1) / np.maximum(n, 1), np.nan)
    total = int(nz0.sum())
    return float(lost.sum() / total) if total else float("nan")


def repermute(theta0: Any, reference: Any) -> np.ndarray:
    """Re-permute theta0 by the ranks of ``reference`` (Sections 3 and 4).

    Every vector receives its own sorted initial values, ordered like the
    corresponding vector of ``reference``: the i-th smallest entry of
    ``reference`` gets the i-th smallest value of theta0 (ties by position).
    This is exactly one LaPerm sync with ``reference`` = the inner
    optimizer's weights; Section 3 applies it to a trained theta_t.

    Args:
        theta0: initial weights, any rank.
        reference: weights of the same shape (e.g. trained by Adam).

    Returns:
        An array shaped and typed like ``theta0``.
    """
    a, b = _rows_pair(theta0, reference)
    out = np.take_along_axis(np.sort(a, axis=1), _row_ranks(b), axis=1)
    return from_vectors(out, to_numpy(theta0).shape)


def repermute_model(
    model_or_weights0: Any,
    weights_t: Any,
    predicate: Callable[[np.ndarray], bool] | None = None,
) -> list[np.ndarray]:
    """:func:`repermute` for every variable of a model (Section 3).

    Args:
        model_or_weights0: initial weights: a Keras model, a mapping or a list
            of arrays (``model.get_weights()`` order).
        weights_t: the reference weights in the same order (model, mapping or
            list), e.g. the weights of the same model trained by Adam.
        predicate: ``predicate(array0) -> bool`` selects the variables to
            re-permute; default: ``ndim >= 2`` (kernels; LaPerm's default
            leaves biases and BatchNorm to the inner optimizer).  Use
            ``lambda w: True`` to re-permute 1-D variables too.

    Returns:
        A list of arrays for ``model.set_weights``: re-permuted theta0 for the
        selected variables, ``weights_t`` unchanged for the others.
    """
    w0 = [a for _, a in named_weights(model_or_weights0)]
    wt = [a for _, a in named_weights(weights_t)]
    if len(w0) != len(wt):
        raise ValueError(f"{len(w0)} initial variables but {len(wt)} reference variables")
    pred = predicate if predicate is not None else (lambda w: np.ndim(w) >= 2)
    out = []
    for i, (a, b) in enumerate(zip(w0, wt)):
        if a.shape != b.shape:
            raise ValueError(f"variable {i}: shape {a.shape} vs {b.shape}")
        out.append(repermute(a, b) if pred(a) else np.array(b, copy=True))
    return out


def permutation_table(variables: Sequence[Any], theta0: Sequence[Any],
                      theta: Sequence[Any]) -> pd.DataFrame:
    """Whether each trained variable is a permutation of its initial values (Section 4).

    Args:
        variables: the model's variables (Keras variables: ``path`` and ``shape``).
        theta0: their initial values, in the same order.
        theta: their trained values, in the same order.

    Returns:
        One row per variable: ``variable`` (its path), ``shape``, ``permutation of
        theta_0`` (:func:`is_permutation_of`) and ``weights that moved``
        (:func:`moved_fraction`, as a percentage with one decimal).
    """
    return pd.DataFrame([
        {"variable": v.path, "shape": tuple(v.shape),
         "permutation of theta_0": is_permutation_of(a, b),
         "weights that moved": f"{moved_fraction(a, b):.1%}"}
        for v, a, b in zip(variables, theta0, theta)
    ])


def permutation_check_table(theta0: Any, theta: Any) -> pd.DataFrame:
    """Per weight vector: is it still its initial values, and how many of them moved?

    After a LaPerm sync every vector is a permutation of its own initial vector
    (Section 4), so sorting both gives identical arrays.

    Args:
        theta0: initial weights, any rank.
        theta: weights of the same shape.

    Returns:
        One row per vector: ``unit``, ``max |sorted(θT) − sorted(θ0)|`` (0 for a
        permutation) and ``weights moved`` (:func:`moved_fraction`, which raises
        ``ValueError`` when ``theta`` is not a per-vector permutation of ``theta0``).
    """
    a, b = _rows_pair(theta0, theta)
    gap = np.zeros(a.shape[0])
    if a.shape[1]:
        gap = np.abs(np.sort(b, axis=1) - np.sort(a, axis=1)).max(axis=1)
    return pd.DataFrame({
        "unit": range(a.shape[0]),
        "max |sorted(θT) − sorted(θ0)|": gap,
        "weights moved": moved_fraction(theta0, theta, per_vector=True),
    })
