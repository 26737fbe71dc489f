"""Datasets, preprocessing and augmentation of the paper's experiments.

Paper: Qiu & Suda, *Train-by-Reconnect: Decoupling Locations of Weights from
Their Values*, NeurIPS 2020.  MNIST is used in Sections 5.1 (Conv7) and 5.5
(F1, F2); CIFAR-10 in Sections 5.2 and 5.4 (Conv2/4/13, ResNet50).

Everything here follows the Keras ``load_data()`` conventions:

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

Preprocessing (:func:`make_preprocessor`, registry :data:`PREPROCESSORS`) and
augmentation (:func:`augmentation_layers`, registry :data:`AUGMENTATIONS`) are
named options matching Section 5 / the authors' notebooks; :func:`make_dataset`
puts them together in a ``tf.data`` pipeline under the TensorFlow Keras
backend, and in a ``keras.utils.PyDataset`` of NumPy batches under any other
(:mod:`laperm.pipeline`; no TensorFlow needed).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "DataFormatError",
    "DataNotFoundError",
    "DatasetInfo",
    "FULL_TEST_SIZE",
    "PIPELINES",
    "PREPROCESSORS",
    "Preprocessor",
    "augmentation_layers",
    "clear_cache",
    "describe",
    "epoch_order",
    "default_pipeline",
    "fingerprint",
    "load",
    "make_dataset",
    "make_preprocessor",
    "subset",
    "train_val_split",
]

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


# --------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------


@dataclass
class Preprocessor:
    """An affine input transform ``(x - center) / scale`` fitted on training data.

    Works on numpy arrays and on TensorFlow tensors (inside ``tf.data``).  Input
    may be one image or a batch; grayscale images without a channel axis get
    one, so MNIST ``(N, 28, 28)`` becomes ``(N, 28, 28, 1)``.

    Attributes:
        name: registry name.
        center: float32 array broadcastable to one image ``(H, W, C)``.
        scale: float32 array broadcastable to one image.
        image_shape: ``(H, W, C)`` of the training images.
    """

    name: str
    center: np.ndarray
    scale: np.ndarray
    image_shape: tuple
    description: str = field(default="", repr=False)

    def _needs_channel(self, shape) -> bool:
        h, w, c = self.image_shape
        return c == 1 and len(shape) >= 2 and tuple(shape[-2:]) == (h, w)

    def __call__(self, x):
        """Apply to a numpy array or a tf tensor; returns float32."""
        if isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
            x = np.asarray(x)
            if self._needs_channel(x.shape):
                x = x[..., None]
            return ((x.astype(np.float32) - self.center) / self.scale).astype(np.float32)
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        if x.shape.rank is not None and self._needs_channel(tuple(x.shape)):
            x = x[..., None]
        x = tf.cast(x, tf.float32)
        return (x - tf.constant(self.center)) / tf.constant(self.scale)


def _image_shape(x_train) -> tuple:
    x_train = np.asarray(x_train)
    if x_train.ndim == 3:
        return tuple(x_train.shape[1:]) + (1,)
    if x_train.ndim == 4:
        return tuple(x_train.shape[1:])
    raise ValueError(
        f"x_train must be a batch of images (N, H, W) or (N, H, W, C); got shape {x_train.shape}"
    )


def _channel_moments(x, chunk: int = 2048):
    """Exact per-channel mean and population std of uint8/float images (float64)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    c = x.shape[-1]
    s = np.zeros(c, np.float64)
    s2 = np.zeros(c, np.float64)
    for i in range(0, x.shape[0], chunk):
        b = x[i : i + chunk].astype(np.float64).reshape(-1, c)
        s += b.sum(0)
        s2 += np.einsum("ij,ij->j", b, b)
    count = x.size // c
    mean = s / count
    var = np.maximum(s2 / count - mean**2, 0.0)
    return mean, np.sqrt(var)


def _fit_scale01(x_train):
    shape = _image_shape(x_train)
    return np.zeros((), np.float32), np.full((), 255.0, np.float32), shape


def _fit_raw(x_train):
    shape = _image_shape(x_train)
    return np.zeros((), np.float32), np.ones((), np.float32), shape


def _fit_standardize(x_train):
    shape = _image_shape(x_train)
    mean, std = _channel_moments(x_train)
    std = np.where(std > 0, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32), shape


def _fit_pixel_mean(x_train):
    shape = _image_shape(x_train)
    x = np.asarray(x_train)
    mean = np.mean(x, axis=0, dtype=np.float64).reshape(shape)
    # x/255 - mean(x/255) == (x - mean(x)) / 255
    return mean.astype(np.float32), np.full((), 255.0, np.float32), shape


#: Named input preprocessing of Section 5 (the authors' Conv2/4/13 notebooks fed raw
#: 0-255 pixels where standardised input was intended).
#: Each entry: ``(fit function, description)``.
PREPROCESSORS: dict[str, tuple[Callable, str]] = {
    "scale01": (_fit_scale01, "x / 255 (MNIST: Conv7, F1, F2)"),
    "cifar_raw": (
        _fit_raw,
        "raw 0-255 float input, as the authors' Conv2/4/13 notebooks actually ran",
    ),
    "cifar_standardize": (
        _fit_standardize,
        "per-channel (x - mean) / std with training-set statistics (the intended Conv2/4/13 input)",
    ),
    "pixel_mean": (
        _fit_pixel_mean,
        "x / 255 minus the per-pixel mean of the /255 training images (ResNet50)",
    ),
}


def make_preprocessor(name: str, x_train) -> Preprocessor:
    """Fit a named preprocessing on the *training* images.

    Args:
        name: one of :data:`PREPROCESSORS`: ``"scale01"``, ``"cifar_raw"``,
            ``"cifar_standardize"``, ``"pixel_mean"``.
        x_train: training images ``(N, H, W)`` or ``(N, H, W, C)``; statistics
            come from these only (apply the result to validation/test data).

    Returns:
        A :class:`Preprocessor` (callable on numpy arrays and tf tensors).

    Raises:
        ValueError: unknown name (the message lists the valid ones) or bad
            ``x_train`` shape.
    """
    if name not in PREPROCESSORS:
        raise ValueError(
            f"unknown preprocessing {name!r}; valid names: {', '.join(PREPROCESSORS)}"
        )
    fit, description = PREPROCESSORS[name]
    center, scale, shape = fit(x_train)
    return Preprocessor(name, center, scale, shape, description)


# --------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------

#: Augmentation presets of Section 5 and the authors' notebooks.  Angles in degrees,
#: shifts and zooms as fractions of the image size; all use ``fill_mode="nearest"``
#: and bilinear interpolation like Keras 2's ``ImageDataGenerator`` defaults.
AUGMENTATIONS: dict[str, dict] = {
    "mnist": {"rotation_deg": 10, "zoom": 0.1, "shift": 0.1, "hflip": False},
    "cifar_conv": {"rotation_deg": 15, "zoom": 0.0, "shift": 0.1, "hflip": True},
    "resnet": {"rotation_deg": 0, "zoom": 0.0, "shift": 0.1, "hflip": True},
}


def augmentation_layers(name: str | None, seed: int | None = None):
    """Build the named augmentation preset as Keras preprocessing layers.

    Presets (:data:`AUGMENTATIONS`): ``"mnist"`` (Conv7: rotate +-10 deg, zoom
    +-10 %, shift +-10 %), ``"cifar_conv"`` (Conv2/4/13: rotate +-15 deg, shift
    +-10 %, horizontal flip), ``"resnet"`` (shift +-10 %, horizontal flip),
    ``None`` (no augmentation; F1/F2).  Rotation factors are fractions of a full
    turn (10 deg = 10/360).  Zoom draws height and width factors independently,
    like ``ImageDataGenerator(zoom_range=0.1)``.  Out-of-image points are filled
    with the nearest pixel (``fill_mode="nearest"``, the ImageDataGenerator
    default).

    Args:
        name: preset name or None.
        seed: base seed; layer i gets ``seed + i``.

    Returns:
        A ``keras.Sequential`` of RandomRotation / RandomZoom /
        RandomTranslation / RandomFlip (empty for ``None``).  Call it with
        ``training=True``.

    Raises:
        ValueError: unknown preset name (the message lists the valid ones).
    """
    import keras

    if name is None:
        return keras.Sequential([], name="no_augmentation")
    if name not in AUGMENTATIONS:
        raise ValueError(
            f"unknown augmentation {name!r}; valid names: {', '.join(AUGMENTATIONS)}, or None"
        )
    p = AUGMENTATIONS[name]
    layers = []

    def next_seed():
        return None if seed is None else int(seed) + len(layers)

    if p["rotation_deg"]:
        f = p["rotation_deg"] / 360.0
        layers.append(keras.layers.RandomRotation(
            f, fill_mode="nearest", interpolation="bilinear", seed=next_seed()))
    if p["zoom"]:
        z = p["zoom"]
        layers.append(keras.layers.RandomZoom(
            height_factor=(-z, z), width_factor=(-z, z), fill_mode="nearest",
            interpolation="bilinear", seed=next_seed()))
    if p["shift"]:
        s = p["shift"]
        layers.append(keras.layers.RandomTranslation(
            height_factor=(-s, s), width_factor=(-s, s), fill_mode="nearest",
            interpolation="bilinear", seed=next_seed()))
    if p["hflip"]:
        layers.append(keras.layers.RandomFlip("horizontal", seed=next_seed()))
    return keras.Sequential(layers, name=f"augment_{name}")


# --------------------------------------------------------------------------
# Input pipelines: tf.data (TensorFlow backend) or a PyDataset (any backend)
# --------------------------------------------------------------------------


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n`` training samples.

    A function of ``(seed, epoch)`` only, so that a run resumed in a new
    process at epoch ``epoch`` sees exactly the batches the uninterrupted run
    would have seen.

    Args:
        n: number of samples.
        seed: the run's seed.
        epoch: the epoch, counted from 0.
        shuffle: False gives the identity order.

    Returns:
        An int64 permutation of ``range(n)``.
    """
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([int(seed), int(epoch), 0x1A9E]).permutation(n)


class _StatelessSeeds:
    """Stands in for a layer's ``SeedGenerator`` while one batch is traced.

    Every draw gets its own stateless seed folded from ``base`` (a function of
    the run seed, the epoch and the batch index), so a random augmentation
    layer draws the same transformation for the same batch in any process, and
    the map that applies it may run in parallel.
    """

    def __init__(self, base):
        self._base = base
        self._count = 0

    def next(self, ordered=True):
        import tensorflow as tf

        del ordered
        self._count += 1
        return tf.random.experimental.stateless_fold_in(self._base, self._count)


def _with_stateless_seeds(layer, base):
    """A context that makes ``layer`` draw from :class:`_StatelessSeeds`."""
    import contextlib

    from keras.src.random.seed_generator import SeedGenerator

    seeds = _StatelessSeeds(base)
    # Pass Keras's isinstance check without creating a state variable.
    fake = SeedGenerator.__new__(type("StatelessSeedGenerator", (SeedGenerator,), {
        "__init__": lambda self: None, "next": lambda self, ordered=True: seeds.next()}))

    @contextlib.contextmanager
    def scope():
        saved = {k: layer.__dict__[k] for k in ("generator", "_backend_generators")
                 if k in layer.__dict__}
        object.__setattr__(layer, "generator", fake)
        object.__setattr__(layer, "_backend_generators", {"tensorflow": fake})
        try:
            yield
        finally:
            for k in ("generator", "_backend_generators"):
                if k in saved:
                    object.__setattr__(layer, k, saved[k])
                else:
                    layer.__dict__.pop(k, None)

    return scope()


#: The input pipelines of :func:`make_dataset`.
PIPELINES = ("tf.data", "pydataset")


def default_pipeline() -> str:
    """``"tf.data"`` under the TensorFlow Keras backend, ``"pydataset"`` under any other."""
    import keras

    return "tf.data" if keras.backend.backend() == "tensorflow" else "pydataset"


def _choose_pipeline(pipeline: str | None) -> str:
    if pipeline is None:
        pipeline = default_pipeline()
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; valid: {', '.join(PIPELINES)}, or None "
                         "(tf.data under the TensorFlow backend, pydataset otherwise)")
    if pipeline == "tf.data":
        from laperm.backends import has_tensorflow

        if not has_tensorflow():
            raise ImportError("make_dataset(pipeline='tf.data') needs TensorFlow (pip install "
                              "tensorflow-cpu); pipeline='pydataset' works without it")
    return pipeline


def _array_batches(x, y, batch_size, preprocess, gray, aug_steps, shuffle, seed, drop_remainder,
                   epochs, first_epoch):
    """The ``"pydataset"`` pipeline (:class:`laperm.pipeline.ArrayBatches`) of :func:`make_dataset`."""
    from laperm.pipeline import ArrayBatches

    def prepare(images):
        if gray:
            images = images[..., None]
        if preprocess is None:
            return images.astype(np.float32)
        return np.asarray(preprocess(images), dtype=np.float32)

    return ArrayBatches(x, y, batch_size, prepare, aug_steps or None, shuffle=shuffle, seed=seed,
                        drop_remainder=drop_remainder, epochs=epochs,
                        first_epoch=int(first_epoch) if epochs is not None else 0)


def make_dataset(
    x,
    y,
    batch_size: int,
    preprocess: Preprocessor | Callable | str | None = None,
    augment=None,
    shuffle: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
    epochs: int | None = None,
    first_epoch: int = 0,
    pipeline: str | None = None,
):
    """Build a batched ``tf.data.Dataset`` (or a ``keras.utils.PyDataset``) of ``(images, labels)``.

    Pipeline: uint8 arrays in memory -> (shuffle) -> batch -> cast and
    preprocess per batch -> (augment per batch) -> prefetch.  Grayscale images
    get a channel axis, labels become int32 of shape ``(batch,)`` (sparse).
    Preprocessing runs before augmentation, like ``ImageDataGenerator.flow``
    on already-normalised arrays in the authors' notebooks.

    Two modes:

    * ``epochs=None``: one pass per iteration; with ``shuffle`` every
      iteration reshuffles (``tf.data`` seeded shuffle), and seeded Keras
      augmentation layers advance their own state.
    * ``epochs=E`` (what :func:`laperm.experiment.run` uses): the dataset
      holds the ``E`` epochs ``first_epoch, ..., first_epoch + E - 1`` one
      after the other (pass ``steps_per_epoch`` to ``fit``).  The order of
      epoch ``e`` (:func:`epoch_order`) and every random augmentation of its
      batch ``i`` are functions of ``(seed, e, i)`` only: a run resumed at
      epoch ``e`` in a new process trains on the same batches as the
      uninterrupted run, and the augmentation map runs in parallel.

    Args:
        x: images ``(N, H, W)`` or ``(N, H, W, C)`` (uint8 or float).
        y: integer labels ``(N,)`` or ``(N, 1)``.
        batch_size: batch size (50 for Conv/ResNet, 128 for F1/F2; Section 5).
        preprocess: a :class:`Preprocessor` from :func:`make_preprocessor`
            (fitted on the training set), any callable on batches, the name of
            a statistics-free preprocessing (``"scale01"``, ``"cifar_raw"``),
            or None (just cast to float32).
        augment: None, a preset name for :func:`augmentation_layers`, or a
            Keras layer / ``keras.Sequential`` of preprocessing layers,
            applied with ``training=True`` (a Sequential layer by layer, so
            it also works under the JAX or torch Keras backends).
        shuffle: reshuffle every epoch (full-size buffer).
        seed: seeds the shuffle and the augmentation.  With ``epochs=None``
            and a seed the augmentation map runs sequentially so that it is
            reproducible (Keras' seed generators are stateful); without one it
            runs in parallel (``AUTOTUNE``).  Required with ``epochs``.
        drop_remainder: drop the last incomplete batch.
        epochs: number of epochs the dataset holds (see above), or None.
        first_epoch: the first epoch it holds (counted from 0), to resume.
        pipeline: ``"tf.data"`` or ``"pydataset"`` (:class:`laperm.pipeline.ArrayBatches`,
            NumPy batches and the same Keras augmentation layers run eagerly;
            no TensorFlow needed), or None: ``"tf.data"`` under the TensorFlow
            Keras backend, ``"pydataset"`` under any other.  Both follow the
            seeding rules above; without augmentation they yield the same
            batches, with it the same transformations drawn from each
            backend's own generator (:mod:`laperm.pipeline`).

    Returns:
        A ``tf.data.Dataset`` (or an :class:`~laperm.pipeline.ArrayBatches`)
        yielding ``(float32 images (B, H, W, C), int32 labels (B,))``.

    Raises:
        ValueError: mismatched ``x``/``y``, bad ``batch_size``/``epochs``, a
            preprocessing name that needs training statistics, an unknown
            preset or pipeline.
        ImportError: ``pipeline="tf.data"`` without TensorFlow installed.
    """
    pipeline = _choose_pipeline(pipeline)
    x = np.asarray(x)
    y = np.asarray(y)
    _check_xy(x, y)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if epochs is not None:
        for what, value, low in (("epochs", epochs, 1), ("first_epoch", first_epoch, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{what} must be an int >= {low}, got {value!r}")
        if seed is None:
            raise ValueError("make_dataset(epochs=...) needs a seed: the order and "
                             "augmentation of every epoch are functions of (seed, epoch)")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,) or (N, 1); got {y.shape}")
    y = y.astype(np.int32)

    if isinstance(preprocess, str):
        if preprocess not in PREPROCESSORS:
            raise ValueError(
                f"unknown preprocessing {preprocess!r}; valid names: {', '.join(PREPROCESSORS)}"
            )
        if preprocess not in ("scale01", "cifar_raw"):
            raise ValueError(
                f"preprocessing {preprocess!r} needs training-set statistics: pass "
                f"make_preprocessor({preprocess!r}, x_train) instead of its name"
            )
        preprocess = make_preprocessor(preprocess, x[:1])
    gray = x.ndim == 3
    if isinstance(augment, str) or augment is None:
        aug_layer = augmentation_layers(augment, seed=seed) if augment is not None else None
    else:
        aug_layer = augment
    # Apply a Sequential's layers one by one: each Keras preprocessing layer
    # switches to TensorFlow ops inside tf.data whatever the Keras backend
    # (JAX, torch), but a Sequential wrapping them does not.
    aug_steps = list(getattr(aug_layer, "layers", None) or []) or (
        [aug_layer] if aug_layer is not None and not hasattr(aug_layer, "layers") else [])
    if pipeline == "pydataset":
        return _array_batches(x, y, int(batch_size), preprocess, gray, aug_steps, shuffle, seed,
                              drop_remainder, epochs, first_epoch)

    import tensorflow as tf

    def prep(images):
        if gray:
            images = images[..., None]
        if preprocess is None:
            return tf.cast(images, tf.float32)
        return tf.cast(preprocess(images), tf.float32)

    def augment_batch(images, base_seed=None):
        import keras

        for step in aug_steps:
            if not isinstance(step, keras.layers.Layer):
                images = step(images)
            elif base_seed is not None and hasattr(step, "generator"):
                with _with_stateless_seeds(step, base_seed):
                    images = step(images, training=True)
            else:
                images = step(images, training=True)
        return images

    if epochs is not None:
        return _epoch_indexed_dataset(
            x, y, int(batch_size), prep, augment_batch if aug_steps else None, shuffle,
            int(seed), int(epochs), int(first_epoch), drop_remainder)

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    ds = ds.map(lambda a, b: (prep(a), b), num_parallel_calls=tf.data.AUTOTUNE)
    if aug_steps:
        calls = None if seed is not None else tf.data.AUTOTUNE
        ds = ds.map(lambda a, b: (augment_batch(a), b), num_parallel_calls=calls)
    return ds.prefetch(tf.data.AUTOTUNE)


def _epoch_indexed_dataset(x, y, batch_size, prep, augment_batch, shuffle, seed, epochs,
                           first_epoch, drop_remainder):
    """``epochs`` epochs whose order and augmentation depend on (seed, epoch) only."""
    import tensorflow as tf

    n = len(x)
    epoch_ids = np.arange(first_epoch, first_epoch + epochs, dtype=np.int64)
    orders = np.stack([epoch_order(n, seed, int(e), shuffle) for e in epoch_ids])
    images_all = tf.constant(x)
    labels_all = tf.constant(y)

    def batches_of_epoch(epoch, order):
        batched = tf.data.Dataset.from_tensor_slices(order).batch(
            batch_size, drop_remainder=drop_remainder)
        return batched.enumerate().map(lambda i, idx: (epoch, i, idx))

    def load(epoch, i, idx):
        images = prep(tf.gather(images_all, idx))
        labels = tf.gather(labels_all, idx)
        if augment_batch is not None:
            base = tf.stack([tf.constant(seed, tf.int64) * 1_000_003 + epoch, i])
            images = augment_batch(images, base)
        return images, labels

    ds = tf.data.Dataset.from_tensor_slices((epoch_ids, orders)).flat_map(batches_of_epoch)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
