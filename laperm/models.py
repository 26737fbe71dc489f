"""The paper's architectures as Keras 3 functional models.

Every factory returns an *uncompiled* :class:`keras.Model` named after the
architecture (``"conv7"``, ``"resnet50"``, ...), built exactly as described in
the paper (Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020, Section 5) and in
the authors' published notebooks and weight files.

The layer *creation order* of every model matches the authors' Keras 2 weight
files, so their published checkpoints load with ``model.load_weights(path)``:

* ``Conv7.h5``                      -> :func:`conv7`
* ``F1.h5`` / ``F2.h5``             -> :func:`f1` / :func:`f2` with ``use_bias=True``
* ``resnet50{,_30,_50,_70}.h5``     -> :func:`resnet` (``depth=50``)

Only ``keras`` APIs are used, so the models work with any Keras backend.

Example::

    from laperm import models
    model = models.get("conv7")
    model.load_weights("../shared/reference/pretrained/Conv7.h5")
"""

from __future__ import annotations

import re
from typing import Callable

import keras
from keras import layers

__all__ = [
    "MODELS",
    "L2_WEIGHT",
    "conv2",
    "conv4",
    "conv7",
    "conv13",
    "f1",
    "f2",
    "get",
    "names",
    "resnet",
]

#: L2 factor used by the paper's CIFAR-10 models and by F2's hidden layers.
L2_WEIGHT = 1e-4

MNIST_SHAPE = (28, 28, 1)
MNIST_FLAT_SHAPE = (28, 28)
CIFAR10_SHAPE = (32, 32, 3)


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #
def _l2() -> keras.regularizers.Regularizer:
    return keras.regularizers.L2(L2_WEIGHT)


def _conv(filters, kernel_size, *, strides=1, padding="valid", activation=None,
          bias_initializer="he_uniform", kernel_regularizer=None):
    """A Conv2D with the paper's default He-uniform kernel initialiser."""
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        activation=activation,
        kernel_initializer="he_uniform",
        bias_initializer=bias_initializer,
        kernel_regularizer=kernel_regularizer,
    )


def _dense(units, *, activation=None, use_bias=True, bias_initializer="he_uniform",
           kernel_regularizer=None):
    """A Dense layer with the paper's default He-uniform kernel initialiser."""
    return layers.Dense(
        units,
        activation=activation,
        use_bias=use_bias,
        kernel_initializer="he_uniform",
        bias_initializer=bias_initializer,
        kernel_regularizer=kernel_regularizer,
    )


# --------------------------------------------------------------------------- #
# MNIST: Conv7 (Section 5.1), F1 / F2 (Section 5.5)
# --------------------------------------------------------------------------- #
def conv7(input_shape=MNIST_SHAPE, num_classes: int = 10) -> keras.Model:
    """Conv7, the 7-layer MNIST convnet of Section 5.1.

    Conv32 k3 - Conv32 k3 - Conv32 k5 stride 2 "same" - Dropout .4 -
    Conv64 k3 - Conv64 k3 - Conv64 k5 stride 2 "same" - Dropout .4 -
    Conv128 k4 - Flatten - Dropout .4 - Dense softmax.  ReLU everywhere,
    padding "valid" unless noted, He-uniform kernels *and* biases, no
    regularisation.  325,578 parameters for 28x28x1 inputs and 10 classes.

    Args:
        input_shape: Shape of one image, channels last. Default ``(28, 28, 1)``.
        num_classes: Number of output units. Default 10.

    Returns:
        An uncompiled functional ``keras.Model`` named ``"conv7"``; loads the
        authors' ``Conv7.h5``.
    """
    inputs = keras.Input(shape=tuple(input_shape))
    x = _conv(32, 3, activation="relu")(inputs)
    x = _conv(32, 3, activation="relu")(x)
    x = _conv(32, 5, strides=2, padding="same", activation="relu")(x)
    x = layers.Dropout(0.4)(x)
    x = _conv(64, 3, activation="relu")(x)
    x = _conv(64, 3, activation="relu")(x)
    x = _conv(64, 5, strides=2, padding="same", activation="relu")(x)
    x = layers.Dropout(0.4)(x)
    x = _conv(128, 4, activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.4)(x)
    outputs = _dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="conv7")


def f1(use_bias: bool = False, input_shape=MNIST_FLAT_SHAPE,
       num_classes: int = 10) -> keras.Model:
    """F1, the single-layer MNIST classifier of Section 5.5.

    Flatten - Dense softmax, He-uniform kernel, no regularisation.  In the
    paper the model has no bias (its kernel is initialised to one shared
    value and pruned by :mod:`laperm.pruning`).

    Args:
        use_bias: ``False`` (the paper's model) builds the Dense layer without a
            bias. ``True`` adds a zero-initialised bias so that the authors'
            ``F1.h5`` (which stores an all-zero bias) loads.
        input_shape: Shape of one image. Default ``(28, 28)``; any shape works
            since the first layer flattens.
        num_classes: Number of output units. Default 10.

    Returns:
        An uncompiled functional ``keras.Model`` named ``"f1"``.
    """
    inputs = keras.Input(shape=tuple(input_shape))
    x = layers.Flatten()(inputs)
    outputs = _dense(num_classes, activation="softmax", use_bias=use_bias,
                     bias_initializer="zeros")(x)
    return keras.Model(inputs, outputs, name="f1")


def f2(use_bias: bool = False, input_shape=MNIST_FLAT_SHAPE,
       num_classes: int = 10) -> keras.Model:
    """F2, the three-layer MNIST MLP of Section 5.5.

    Flatten - Dense128 ReLU - Dense64 ReLU - Dense softmax, He-uniform
    kernels, L2 1e-4 on the two hidden kernels, no biases in the paper.

    Args:
        use_bias: ``False`` (the paper's model) builds Dense layers without
            biases. ``True`` adds zero-initialised biases so that the authors'
            ``F2.h5`` (which stores an all-zero bias per layer) loads.
        input_shape: Shape of one image. Default ``(28, 28)``.
        num_classes: Number of output units. Default 10.

    Returns:
        An uncompiled functional ``keras.Model`` named ``"f2"``.
    """
    inputs = keras.Input(shape=tuple(input_shape))
    x = layers.Flatten()(inputs)
    x = _dense(128, activation="relu", use_bias=use_bias, bias_initializer="zeros",
               kernel_regularizer=_l2())(x)
    x = _dense(64, activation="relu", use_bias=use_bias, bias_initializer="zeros",
               kernel_regularizer=_l2())(x)
    outputs = _dense(num_classes, activation="softmax", use_bias=use_bias,
                     bias_initializer="zeros")(x)
    return keras.Model(inputs, outputs, name="f2")


# --------------------------------------------------------------------------- #
# CIFAR-10: Conv2 / Conv4 / Conv13 (Sections 5.2, 5.4)
# --------------------------------------------------------------------------- #
def _cifar_conv(x, filters):
    """3x3 "same" conv with L2 1e-4, then ReLU, then BatchNorm."""
    x = _conv(filters, 3, padding="same", activation="relu", kernel_regularizer=_l2())(x)
    return layers.BatchNormalization()(x)


def _small_head(x, num_classes):
    """Conv2/Conv4 head: Flatten - D256 - ReLU - Drop .5 - BN - D256 - ReLU - BN - Drop .5 - D."""
    x = layers.Flatten()(x)
    x = _dense(256, activation="relu", kernel_regularizer=_l2())(x)
    x = layers.Dropout(0.5)(x)
    x = layers.BatchNormalization()(x)
    x = _dense(256, activation="relu", kernel_regularizer=_l2())(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    return _dense(num_classes, activation="softmax")(x)


def conv2(input_shape=CIFAR10_SHAPE, num_classes: int = 10) -> keras.Model:
    """Conv2, the 2-conv CIFAR-10 network of Sections 5.2 and 5.4.

    C64 - Dropout .3 - C64 - MaxPool2 - head, where every C is a 3x3 "same"
    conv followed by ReLU then BatchNorm, and the head is Flatten - Dense256 -
    ReLU - Dropout .5 - BN - Dense256 - ReLU - BN - Dropout .5 - Dense softmax.
    He-uniform kernels and biases; L2 1e-4 on every kernel except the last.

    Args:
        input_shape: Shape of one image. Default ``(32, 32, 3)``.
        num_classes: Number of output units. Default 10.

    Returns:
        An uncompiled functional ``keras.Model`` named ``"conv2"``.
    """
    inputs = keras.Input(shape=tuple(input_shape))
    x = _cifar_conv(inputs, 64)
    x = layers.Dropout(0.3)(x)
    x = _cifar_conv(x, 64)
    x = layers.MaxPooling2D(2)(x)
    outputs = _small_head(x, num_classes)
    return keras.Model(inputs, outputs, name="conv2")


def conv4(input_shape=CIFAR10_SHAPE, num_classes: int = 10) -> keras.Model:
    """Conv4, the 4-conv CIFAR-10 network of Sections 5.2 and 5.4.

    C64 - Dropout .3 - C64 - MaxPool2 - C128 - Dropout .4 - C128 - MaxPool2 -
    head (as in :func:`conv2`).

    Args:
        input_shape: Shape of one image. Default ``(32, 32, 3)``.
        num_classes: Number of output units. Default 10.

    Returns:
        An uncompiled functional ``keras.Model`` named ``"conv4"``.
    """
    inputs = keras.Input(shape=tuple(input_shape))
    x = _cifar_conv(inputs, 64)
    x = layers.Dropout(0.3)(x)
    x = _cifar_conv(x, 64)
    x = layers.MaxPooling2D(2)(x)
    x = _cifar_conv(x, 128)
    x = layers.Dropout(0.4)(x)
    x = _cifar_conv(x, 128)
    x = layers.MaxPooling2D(2)(x)
    outputs = _small_head(x, num_classes)
    return keras.Model(inputs, outputs, name="conv4")


#: Conv13 blocks: conv widths per block, each block followed by MaxPool2.
_CONV13_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def conv13(input_shape=CIFAR10_SHAPE, num_classes: int = 10) -> keras.Model:
    """Conv13, the VGG-16-style CIFAR-10 network of Sections 5.2 and 5.4.

    Widths 64,64,P,128,128,P,256,256,256,P,512,512,512,P,512,512,512,P
    (P = MaxPool2), each conv 3x3 "same" + ReLU + BatchNorm with L2 1e-4.
    Dropout .3 after the first conv, .4 after every other conv that is not the
    last of its block, .5 after the last pool; then Flatten - Dense512 - ReLU -
    BN - Dropout .5 - Dense softmax. About 15.0 M parameters.

    Args:
        input_shape: Shape of one image. Default ``(32, 32, 3)``.
        num_classes: Number of output units. Default 10.

    Returns:
        An uncompiled functional ``keras.Model`` named ``"conv13"``.
    """
    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs
    first = True
    for block in _CONV13_BLOCKS:
        for i, width in enumerate(block):
            x = _cifar_conv(x, width)
            if first:
                x = layers.Dropout(0.3)(x)
                first = False
            elif i < len(block) - 1:
                x = layers.Dropout(0.4)(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Flatten()(x)
    x = _dense(512, activation="relu", kernel_regularizer=_l2())(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    outputs = _dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="conv13")


# --------------------------------------------------------------------------- #
# CIFAR-10: ResNet v1 (Section 5.4)
# --------------------------------------------------------------------------- #
def _res_conv(filters, kernel_size=3, strides=1):
    """ResNet conv: "same", He-uniform kernel, zero bias, L2 1e-4."""
    return _conv(filters, kernel_size, strides=strides, padding="same",
                 bias_initializer="zeros", kernel_regularizer=_l2())


def resnet(depth: int = 50, input_shape=CIFAR10_SHAPE, num_classes: int = 10) -> keras.Model:
    """CIFAR ResNet v1 of depth ``6n + 2`` (He et al. 2016), Section 5.4.

    ``depth=50`` (n = 8) is the paper's "ResNet50" (about 0.76 M parameters;
    *not* the ImageNet ResNet-50).  A unit is Conv 3x3 "same" (He-uniform
    kernel, zero bias, L2 1e-4) - BatchNorm - ReLU.  Stem: one 16-filter unit.
    Three stages of n blocks with 16/32/64 filters; a block computes
    ``y = unit(x); y = unit(y) without ReLU; x = ReLU(x + y)``.  The first block
    of stages 2 and 3 uses stride 2 and a 1x1 stride-2 projection conv (same
    initialisers and L2, no BN, no ReLU) on the shortcut.  Head:
    AveragePooling 8 - Flatten - Dense softmax (He-uniform kernel, zero bias,
    as stored in the authors' checkpoint config).

    Layer order: the authors' weight files store each 1x1 projection conv
    after the block's second 3x3 conv and *before* that conv's BatchNorm.  A
    Keras 3 functional model orders its layers by graph depth (not by creation
    order), and among equal-depth layers by the order of the inputs of the
    ``Add``; the shortcut must therefore be the *first* input of ``Add``
    (``Add()([shortcut, y])``).  With ``Add()([y, shortcut])`` the projection
    conv moves after the BatchNorm and the checkpoints no longer load.

    Args:
        depth: Total depth ``6n + 2`` (8, 14, 20, 26, 32, 38, 44, 50, 56, ...).
        input_shape: Shape of one image. Default ``(32, 32, 3)``.
        num_classes: Number of output units. Default 10.

    Returns:
        An uncompiled functional ``keras.Model`` named ``f"resnet{depth}"``;
        with ``depth=50`` it loads the authors' ``resnet50*.h5`` files.

    Raises:
        ValueError: If ``depth`` is not of the form ``6n + 2`` with n >= 1.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"ResNet depth must be of the form 6n + 2 with n >= 1 "
            f"(8, 14, 20, 26, 32, 38, 44, 50, 56, ...), got {depth!r}"
        )
    n = (depth - 2) // 6

    inputs = keras.Input(shape=tuple(input_shape))
    x = _res_conv(16)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    for stage, filters in enumerate((16, 32, 64)):
        for block in range(n):
            project = stage > 0 and block == 0
            strides = 2 if project else 1
            y = _res_conv(filters, strides=strides)(x)
            y = layers.BatchNormalization()(y)
            y = layers.Activation("relu")(y)
            y = _res_conv(filters)(y)
            y = layers.BatchNormalization()(y)
            shortcut = _res_conv(filters, kernel_size=1, strides=2)(x) if project else x
            # Shortcut FIRST: this places the projection conv before the second
            # BN in ``model.layers``, the order of the authors' checkpoints.
            x = layers.Add()([shortcut, y])
            x = layers.Activation("relu")(x)

    x = layers.AveragePooling2D(pool_size=8)(x)
    x = layers.Flatten()(x)
    outputs = _dense(num_classes, activation="softmax", bias_initializer="zeros")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #
def _resnet_of_depth(depth: int) -> Callable[..., keras.Model]:
    def factory(**kwargs) -> keras.Model:
        return resnet(depth=depth, **kwargs)

    factory.__name__ = f"resnet{depth}"
    factory.__doc__ = f"CIFAR ResNet v1 of depth {depth}; see :func:`resnet`."
    return factory


#: Registry name -> factory; every factory accepts ``input_shape=`` and
#: ``num_classes=`` (``f1``/``f2`` also ``use_bias=``).  Any other
#: ``"resnet<6n+2>"`` is accepted by :func:`get` too.
MODELS: dict[str, Callable[..., keras.Model]] = {
    "conv2": conv2,
    "conv4": conv4,
    "conv7": conv7,
    "conv13": conv13,
    "resnet20": _resnet_of_depth(20),
    "resnet32": _resnet_of_depth(32),
    "resnet44": _resnet_of_depth(44),
    "resnet50": _resnet_of_depth(50),
    "resnet56": _resnet_of_depth(56),
    "resnet110": _resnet_of_depth(110),
    "f1": f1,
    "f2": f2,
}

_RESNET_NAME = re.compile(r"resnet(\d+)")


def names() -> list[str]:
    """The registered model names, in registry order."""
    return list(MODELS)


def _canonical(name: str) -> str:
    """Lower-cased registry key for ``name``; ``ValueError`` if unknown."""
    key = str(name).strip().lower() if isinstance(name, str) else None
    if key in MODELS:
        return key
    if key is not None:
        match = _RESNET_NAME.fullmatch(key)
        if match:
            depth = int(match.group(1))
            if depth >= 8 and (depth - 2) % 6 == 0:
                return key
            raise ValueError(
                f"Unknown model {name!r}: ResNet depth must be of the form 6n + 2 "
                f"(e.g. resnet20, resnet50). Valid names: {', '.join(MODELS)}, "
                "or resnet<6n+2>."
            )
    raise ValueError(
        f"Unknown model {name!r}. Valid names: {', '.join(MODELS)} (or resnet<6n+2>)."
    )


def get(name: str, **kwargs) -> keras.Model:
    """Build a registered model by name (case-insensitive).

    Args:
        name: One of :data:`MODELS` (``"conv2"``, ``"conv4"``, ``"conv7"``,
            ``"conv13"``, ``"resnet50"``, ``"f1"``, ``"f2"``, ...) or any
            ``"resnet<depth>"`` with ``depth = 6n + 2``.
        **kwargs: Passed to the factory (``input_shape``, ``num_classes``,
            ``use_bias`` for F1/F2).

    Returns:
        A new uncompiled ``keras.Model``.

    Raises:
        ValueError: If the name is unknown; the message lists the valid names.
    """
    key = _canonical(name)
    if key in MODELS:
        return MODELS[key](**kwargs)
    return resnet(depth=int(_RESNET_NAME.fullmatch(key).group(1)), **kwargs)


#: The models with BatchNorm layers (every ResNet too): their LaPerm accuracies
#: depend on how BatchNorm's statistics are handled after a sync.
BATCHNORM_MODELS = frozenset({"conv2", "conv4", "conv13"})


def has_batchnorm(name: str) -> bool:
    """Whether the model ``name`` has BatchNorm layers (checked against the built
    models in the tests)."""
    key = _canonical(name)
    return key in BATCHNORM_MODELS or _RESNET_NAME.fullmatch(key) is not None
