"""The paper's datasets as files: where they are found, their checks, and splits.

MNIST (Sections 5.1 and 5.5: Conv7, F1, F2) and CIFAR-10 (Sections 5.2 and
5.4: Conv2/4/13, ResNet50), in the Keras ``load_data()`` layout:

* MNIST: ``x`` uint8 ``(N, 28, 28)``, ``y`` ``(N,)``;
* CIFAR-10: ``x`` uint8 ``(N, 32, 32, 3)`` (HWC, RGB), ``y`` ``(N, 1)``.

Where the data come from (:func:`load`): ``<name>.npz`` in ``data_dir``, else in
``$LAPERM_DATA_DIR``, else ``keras.datasets.<name>.load_data()`` (downloads
once into ``~/.keras/datasets``).

.. note::
   **Offline CIFAR-10 has a reduced test set.**  The offline ``cifar10.npz``
   shipped beside this project holds the exact 50000 training images but only
   the *first 1000* exact test images (the rest exist offline only as lossy
   JPEG, which costs a published checkpoint about 11 accuracy points and is
   therefore never used as the test set here).  :func:`describe` reports this
   (``is_reduced_test_set``) and :attr:`DatasetInfo.test_note` gives the
   wording for reports ("1000 exact test images").  Any test length ``N`` is
   accepted.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Name of the environment variable naming a folder with ``mnist.npz`` / ``cifar10.npz``.
DATA_DIR_ENV = "LAPERM_DATA_DIR"

#: Per-image shape (Keras layout) and label shape suffix of each dataset.
DATASETS: dict[str, dict] = {
    "mnist": {"image_shape": (28, 28), "label_ndim": 1, "num_classes": 10},
    "cifar10": {"image_shape": (32, 32, 3), "label_ndim": 2, "num_classes": 10},
}

#: Size of the official test sets.
FULL_TEST_SIZE = {"mnist": 10000, "cifar10": 10000}

_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataNotFoundError(FileNotFoundError):
    """No local copy of a dataset and the download failed (e.g. no network)."""


class DataFormatError(ValueError):
    """A dataset file exists but is not a valid Keras-layout ``.npz`` archive."""


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _check_name(name: str) -> str:
    if not isinstance(name, str) or name.lower() not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}"
        )
    return name.lower()


def _candidate_files(name: str, data_dir) -> list[Path]:
    """Where :func:`load` looks for ``<name>.npz``, in order."""
    out = []
    for folder in (data_dir, os.environ.get(DATA_DIR_ENV) or None):
        if folder is None:
            continue
        folder = Path(folder).expanduser()
        if folder.suffix == ".npz" and not folder.is_dir():
            out.append(folder)  # data_dir may name the file itself
        else:
            out.append(folder / f"{name}.npz")
    return out


def _validate(name: str, arrays: dict, source: str):
    """Check and normalise four arrays to the Keras layout; raise DataFormatError."""
    spec = DATASETS[name]
    image_shape = tuple(spec["image_shape"])
    out = {}
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.dtype != np.uint8:
            raise DataFormatError(
                f"{source}: x_{part} has dtype {x.dtype}, expected uint8 (raw 0-255 pixels)"
            )
        if (
            name == "cifar10"
            and x.ndim == 4
            and x.shape[1:] == (3, 32, 32)
        ):  # channels-first copy (keras image_data_format="channels_first")
            x = x.transpose(0, 2, 3, 1)
        if x.ndim != 1 + len(image_shape) or tuple(x.shape[1:]) != image_shape:
            raise DataFormatError(
                f"{source}: x_{part} has shape {x.shape}, expected (N, "
                f"{', '.join(map(str, image_shape))})"
            )
        if x.shape[0] == 0:
            raise DataFormatError(f"{source}: x_{part} is empty")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataFormatError(
                f"{source}: y_{part} has dtype {y.dtype}, expected an integer dtype (class ids)"
            )
        if y.ndim == 2 and y.shape[1] == 1:
            flat = y.reshape(-1)
        elif y.ndim == 1:
            flat = y
        else:
            raise DataFormatError(
                f"{source}: y_{part} has shape {y.shape}, expected (N,) or (N, 1)"
            )
        if flat.shape[0] != x.shape[0]:
            raise DataFormatError(
                f"{source}: x_{part} has {x.shape[0]} images but y_{part} has "
                f"{flat.shape[0]} labels"
            )
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi >= spec["num_classes"]:
            raise DataFormatError(
                f"{source}: y_{part} holds labels in [{lo}, {hi}], expected 0..{spec['num_classes'] - 1}"
            )
        y = flat if spec["label_ndim"] == 1 else flat.reshape(-1, 1)
        x = np.ascontiguousarray(x)
        y = np.ascontiguousarray(y)
        x.flags.writeable = False  # shared by the in-process cache
        y.flags.writeable = False
        out[f"x_{part}"], out[f"y_{part}"] = x, y
    return (out["x_train"], out["y_train"]), (out["x_test"], out["y_test"])


@functools.lru_cache(maxsize=8)
def _load_npz_cached(name: str, path: str, mtime_ns: int, size: int):
    # mtime/size are part of the key so that a replaced file is re-read.
    del mtime_ns, size
    if "jpeg" in Path(path).name.lower():
        raise DataFormatError(
            f"{path}: refusing to load a JPEG-degraded copy as {name}; the "
            "lossy test images are never the test set (use cifar10.npz)"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFormatError(
            f"{path}: cannot read it as an .npz archive ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataFormatError(
            f"{path}: not an .npz archive (it holds a single array of shape "
            f"{getattr(archive, 'shape', '?')}); expected keys {list(_KEYS)}"
        )
    try:
        with archive:
            missing = [k for k in _KEYS if k not in archive.files]
            if missing:
                raise DataFormatError(
                    f"{path}: missing key(s) {missing}; found {sorted(archive.files)}, "
                    f"expected {list(_KEYS)} (keras.datasets layout)"
                )
            arrays = {k: archive[k] for k in _KEYS}
    except DataFormatError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataFormatError(
            f"{path}: damaged .npz archive ({type(exc).__name__}: {exc})"
        ) from exc
    return _validate(name, arrays, path)


def _load_file(name: str, path: Path):
    path = path.resolve()
    st = path.stat()
    return _load_npz_cached(name, str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _download_cached(name: str):
    import keras

    module = getattr(keras.datasets, name)
    (x_tr, y_tr), (x_te, y_te) = module.load_data()
    arrays = dict(x_train=np.asarray(x_tr), y_train=np.asarray(y_tr),
                  x_test=np.asarray(x_te), y_test=np.asarray(y_te))
    return _validate(name, arrays, f"keras.datasets.{name}.load_data()")


def _resolve(name: str, data_dir):
    """Return ("file", Path) or ("keras", None)."""
    for path in _candidate_files(name, data_dir):
        if path.is_file():
            return "file", path
    return "keras", None


def load(name: str, data_dir: str | os.PathLike | None = None):
    """Load MNIST or CIFAR-10 in the ``keras.datasets`` layout.

    Looks for ``<name>.npz`` (keys ``x_train, y_train, x_test, y_test``) in
    ``data_dir`` (a folder, or the ``.npz`` file itself), then in
    ``$LAPERM_DATA_DIR``, and otherwise calls
    ``keras.datasets.<name>.load_data()``, which downloads the official set
    once.  Results are cached in-process (keyed by the resolved file path), and
    the returned arrays are read-only because they are shared: copy them before
    modifying in place.

    Args:
        name: ``"mnist"`` or ``"cifar10"``.
        data_dir: optional folder holding ``<name>.npz``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images, MNIST
        ``(N, 28, 28)`` with labels ``(N,)``, CIFAR-10 ``(N, 32, 32, 3)`` with
        labels ``(N, 1)``.  The test part may be shorter than 10000 (offline
        CIFAR-10 has 1000 exact test images; see :func:`describe`).

    Raises:
        ValueError: unknown dataset name.
        DataNotFoundError: no local file and the download failed.
        DataFormatError: the file is damaged or not in the expected layout.
    """
    name = _check_name(name)
    kind, path = _resolve(name, data_dir)
    if kind == "file":
        return _load_file(name, path)
    try:
        return _download_cached(name)
    except DataFormatError:
        raise
    except Exception as exc:  # network errors come wrapped in many types
        looked = [str(p) for p in _candidate_files(name, data_dir)] or ["(no folder given)"]
        raise DataNotFoundError(
            f"{name} dataset not found: no {name}.npz in {', '.join(looked)} and "
            f"downloading with keras.datasets.{name}.load_data() failed "
            f"({type(exc).__name__}: {str(exc)[:200]}). Put {name}.npz (keys "
            f"x_train, y_train, x_test, y_test) in ${DATA_DIR_ENV} or pass "
            f"data_dir=..., or connect to the internet."
        ) from exc


def clear_cache() -> None:
    """Forget every dataset cached in-process by :func:`load`."""
    _load_npz_cached.cache_clear()
    _download_cached.cache_clear()
    _SHA256.clear()


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`load` would return, for reports.

    Attributes:
        name: dataset name.
        source: the ``.npz`` path or ``"keras.datasets.<name>"``.
        n_train: number of training images.
        n_test: number of test images.
        full_test_size: size of the official test set (10000).
        is_reduced_test_set: True when ``n_test < full_test_size`` (offline
            CIFAR-10: the first 1000 exact test images).
        test_note: a phrase for reports, e.g. ``"1000 exact test images (the
            first 1000 of the official 10000)"``.
    """

    name: str
    source: str
    n_train: int
    n_test: int
    full_test_size: int
    is_reduced_test_set: bool
    test_note: str


def describe(name: str, data_dir: str | os.PathLike | None = None) -> DatasetInfo:
    """Load (or reuse the cached) dataset and say what its test set is.

    Args:
        name: ``"mnist"`` or ``"cifar10"``.
        data_dir: as for :func:`load`.

    Returns:
        A :class:`DatasetInfo`; check ``is_reduced_test_set`` before calling a
        number "test accuracy" without qualification.
    """
    name = _check_name(name)
    (x_tr, _), (x_te, _) = load(name, data_dir)
    kind, path = _resolve(name, data_dir)
    full = FULL_TEST_SIZE[name]
    n_test = int(x_te.shape[0])
    reduced = n_test < full
    if reduced:
        note = f"{n_test} exact test images (the first {n_test} of the official {full})"
    else:
        note = f"the full {name} test set ({n_test} images)"
    return DatasetInfo(
        name=name,
        source=str(path.resolve()) if kind == "file" else f"keras.datasets.{name}",
        n_train=int(x_tr.shape[0]),
        n_test=n_test,
        full_test_size=full,
        is_reduced_test_set=reduced,
        test_note=note,
    )


#: sha256 of the arrays per (dataset, source, file stamp), computed once per process.
_SHA256: dict = {}


def _arrays_sha256(arrays) -> str:
    (x_tr, y_tr), (x_te, y_te) = arrays
    h = hashlib.sha256()
    for a in (x_tr, y_tr, x_te, y_te):
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def fingerprint(name: str, data_dir: str | os.PathLike | None = None) -> dict:
    """A fingerprint of the data a run trains and is tested on.

    The sha256 is taken over the four arrays as :func:`load` returns them
    (dtype, shape and bytes), so it does not depend on how the ``.npz`` file
    was compressed.  Run folders record it and refuse to continue or reuse a
    run made on other data.

    Args:
        name: ``"mnist"`` or ``"cifar10"``.
        data_dir: as for :func:`load`.

    Returns:
        ``{"dataset", "sha256", "n_train", "n_test"}``.
    """
    name = _check_name(name)
    arrays = load(name, data_dir)
    kind, path = _resolve(name, data_dir)
    if kind == "file":
        st = path.resolve().stat()
        source, stamp = str(path.resolve()), (st.st_mtime_ns, st.st_size)
    else:
        source, stamp = f"keras.datasets.{name}", None
    key = (name, source, stamp)
    if key not in _SHA256:
        _SHA256[key] = _arrays_sha256(arrays)
    digest = _SHA256[key]
    return {"dataset": name, "sha256": digest, "n_train": int(len(arrays[0][0])),
            "n_test": int(len(arrays[1][0]))}


# --------------------------------------------------------------------------
# Splits and subsets
# --------------------------------------------------------------------------


def _count(size, n: int, what: str, allow_all: bool) -> int:
    """Turn an int count or float fraction into a count, validating it."""
    if isinstance(size, (bool, np.bool_)) or not isinstance(
        size, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"{what} must be an int count or a float fraction, got {size!r}")
    hi = n if allow_all else n - 1
    if isinstance(size, (int, np.integer)):
        count = int(size)
        if not 1 <= count <= hi:
            raise ValueError(f"{what}={count} must be between 1 and {hi} for {n} samples")
        return count
    frac = float(size)
    ok = (0.0 < frac <= 1.0) if allow_all else (0.0 < frac < 1.0)
    if not math.isfinite(frac) or not ok:
        interval = "(0, 1]" if allow_all else "(0, 1)"
        raise ValueError(f"{what}={frac} must be a fraction in {interval}")
    count = int(round(frac * n))
    if not 1 <= count <= hi:
        raise ValueError(
            f"{what}={frac} gives {count} of {n} samples; it must give between 1 and {hi}"
        )
    return count


def _check_xy(x, y):
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if len(x) < 1:
        raise ValueError("empty data")


def _stratified_pick(y, count: int, rng: np.random.Generator) -> np.ndarray:
    """Pick ``count`` indices with class proportions kept (largest remainder)."""
    labels = np.asarray(y).reshape(len(y))
    n = labels.shape[0]
    order = rng.permutation(n)
    classes, inverse = np.unique(labels[order], return_inverse=True)
    per_class = [order[inverse == k] for k in range(len(classes))]
    sizes = np.array([len(p) for p in per_class], dtype=np.int64)
    exact = sizes * count / n
    quota = np.floor(exact).astype(np.int64)
    rest = count - int(quota.sum())
    if rest > 0:
        remainder = exact - quota
        # largest remainders first; ties broken by a random class order
        tie = rng.permutation(len(classes))
        best = np.lexsort((tie, -remainder))[:rest]
        quota[best] += 1
    return np.concatenate([p[:q] for p, q in zip(per_class, quota)])


def train_val_split(x, y, val_size, seed: int = 0, stratify: bool = False):
    """Hold out a seeded validation split from the training set.

    The paper's authors chose the epoch on the *test* set;
    this split gives an honest alternative.  Both parts keep the original
    relative order of the samples.

    Args:
        x: images, first axis = samples.
        y: labels, same length.
        val_size: an int count (``1 <= val_size < N``) or a float fraction in
            ``(0, 1)`` of the samples to hold out.
        seed: seed of the numpy Generator; the split is a function of it.
        stratify: keep the class proportions in both parts.

    Returns:
        ``(x_tr, y_tr), (x_val, y_val)``.

    Raises:
        ValueError: a bad ``val_size`` or mismatched ``x``/``y``.
    """
    _check_xy(x, y)
    n = len(x)
    n_val = _count(val_size, n, "val_size", allow_all=False)
    rng = np.random.default_rng(seed)
    val_idx = _stratified_pick(y, n_val, rng) if stratify else rng.permutation(n)[:n_val]
    mask = np.zeros(n, dtype=bool)
    mask[val_idx] = True
    tr_idx = np.flatnonzero(~mask)
    val_idx = np.flatnonzero(mask)
    return (x[tr_idx], y[tr_idx]), (x[val_idx], y[val_idx])


def subset(x, y, fraction_or_count, seed: int = 0, stratify: bool = True):
    """A seeded subset for reduced (quick) runs.

    Args:
        x: images, first axis = samples.
        y: labels, same length.
        fraction_or_count: a float fraction in ``(0, 1]`` or an int count
            ``1 <= count <= N``.
        seed: seed of the numpy Generator.
        stratify: keep the class proportions (default) instead of a plain
            random draw.

    Returns:
        ``(x_sub, y_sub)`` in the original relative order.

    Raises:
        ValueError: a bad size or mismatched ``x``/``y``.
    """
    _check_xy(x, y)
    n = len(x)
    count = _count(fraction_or_count, n, "fraction_or_count", allow_all=True)
    rng = np.random.default_rng(seed)
    idx = _stratified_pick(y, count, rng) if stratify else rng.permutation(n)[:count]
    idx = np.sort(idx)
    return x[idx], y[idx]


