"""Input preprocessing and augmentation of the paper's experiments (Section 5).

Preprocessing (:func:`make_preprocessor`, registry :data:`PREPROCESSORS`, names
in :data:`laperm.config.PREPROCESSINGS`) is fitted on the training images only;
augmentation (:func:`augmentation_layers`, registry :data:`AUGMENTATIONS`) is
Keras's random image layers with the authors' notebooks' ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from laperm.config import PREPROCESSINGS

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


#: The fit of each named input preprocessing of Section 5
#: (:data:`laperm.config.PREPROCESSINGS` names and describes them).
_FITS: dict[str, Callable] = {
    "scale01": _fit_scale01,
    "cifar_raw": _fit_raw,
    "cifar_standardize": _fit_standardize,
    "pixel_mean": _fit_pixel_mean,
}
#: Each named preprocessing as ``(fit function, description)``.
PREPROCESSORS: dict[str, tuple[Callable, str]] = {
    name: (_FITS[name], description) for name, description in PREPROCESSINGS.items()
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


def augmented_images(images: Any, augmentation: str | None, draws: int = 4,
                     seed: int = 0) -> np.ndarray:
    """Images as the training pipeline augments them, ``draws`` times each.

    The same Keras layers as both training paths (:func:`augmentation_layers`,
    which the ``fit`` pipeline and the device engine call), applied with
    ``training=True`` to images scaled to [0, 1].

    Args:
        images: ``(n, height, width)`` or ``(n, height, width, channels)``, uint8
            (0-255) or floats in [0, 1].
        augmentation: a preset of :data:`laperm.data.AUGMENTATIONS`, or None.
        draws: augmented versions of each image.
        seed: seeds the layers; the same seed gives the same draws.

    Returns:
        ``(draws + 1, n, height, width, channels)`` float32: row 0 the images,
        rows 1.. the draws.
    """
    import keras

    x = np.asarray(images)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"images must be (n, height, width[, channels]); got {x.shape}")
    if augmentation is None:
        return np.stack([x] * (int(draws) + 1))
    layers = augmentation_layers(augmentation, seed=seed)
    out = [x] + [np.clip(keras.ops.convert_to_numpy(layers(x, training=True)), 0.0, 1.0)
                 for _ in range(int(draws))]
    return np.stack(out).astype(np.float32)


def describe_augmentation(augmentation: str | None) -> str:
    """The ranges of an augmentation preset in words, e.g. ``"rotation ±10°, zoom ±10 %"``."""
    if augmentation is None:
        return "no augmentation"
    p = AUGMENTATIONS[augmentation]
    parts = [f"rotation ±{p['rotation_deg']:g}°" if p["rotation_deg"] else "",
             f"zoom ±{p['zoom']:.0%}" if p["zoom"] else "",
             f"shift ±{p['shift']:.0%}" if p["shift"] else "",
             "horizontal flip" if p["hflip"] else ""]
    return ", ".join(part for part in parts if part)
