"""Fused TensorFlow kernels for BatchNorm and Adam: the same math in fewer ops.

A profile of one Conv2 training step under TensorFlow on a CPU (the op table
of ``benchmarks/bench_cifar.py``) shows more time in element-wise ops than in
the convolutions: Keras 3 writes BatchNormalization as separate mean,
variance, subtract, multiply ... ops (each with its own gradient ops), and
Adam as about ten element-wise passes over every variable.  This module swaps
them for TensorFlow's fused kernels, which do the same arithmetic in one op
each:

* :class:`FusedBatchNormalization`: a ``keras.layers.BatchNormalization``
  whose forward pass (training and inference) is ``FusedBatchNormV3`` (its
  gradient ``FusedBatchNormGradV3``), with the Keras layer's semantics: the
  moving variance is updated with the *biased* batch variance, as Keras 3
  does (the fused op returns the Bessel-corrected one, which is undone).
* :class:`FusedAdam`: a ``keras.optimizers.Adam`` whose update is one
  ``ResourceApplyAdam`` per variable, the formula of Keras's Adam
  (``lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)``).
* :class:`PatchConv2D`: a ``keras.layers.Conv2D`` that computes a "same",
  stride-1 convolution whose output has at most :data:`PATCH_POSITIONS`
  positions (Conv13's last three layers, 2x2) as one matrix product over the
  input's patches: there oneDNN's filter gradient reaches a few percent of the
  machine's peak (the profile of Conv13), a matrix product most of it.

Both are numerically close to, not bit-identical with, the Keras layers
(floating-point operations in another order: differences of about 1e-6).
Outside TensorFlow, under a ``tf.distribute`` strategy (Adam only), with
masks, renormalisation, synchronised statistics or AMSGrad, they fall back to
the Keras implementation unchanged.  An experiment chooses them with
``ExperimentConfig(kernels="fused")`` (:func:`fuse_model`,
:func:`make_adam`); the default ``"keras"`` keeps the Keras layers, so that
every stored record still describes the computation that made it.
"""

from __future__ import annotations

import keras

from laperm.config import KERNELS

__all__ = ["KERNELS", "PATCH_POSITIONS", "FusedAdam", "FusedBatchNormalization", "PatchConv2D",
           "fuse_model", "make_adam"]

#: :class:`PatchConv2D` computes outputs of at most this many positions (height x
#: width) as a matrix product; larger ones by the backend's convolution (measured
#: on this project's CPU: 2.5x faster at 2x2, even at 4x4, slower beyond).
PATCH_POSITIONS = 4


def _tensorflow():
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf


@keras.saving.register_keras_serializable(package="laperm")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed by TensorFlow's fused kernel.

    Same weights, same config, same moving-statistics update (biased batch
    variance, ``momentum``), same output up to float rounding.  The statistics
    and the normalisation are computed in float32, also for bfloat16 and
    float16 inputs (as the Keras layer does under mixed precision, without its
    casts).  Channels must be the last axis; 2-D inputs
    (after a Dense layer) are viewed as ``(N, 1, 1, C)``.
    """

    def _fusable(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        return (_tensorflow() is not None and mask is None and not self.renorm
                and not self.synchronized and rank in (2, 4)
                and self.axis % rank == rank - 1
                and dtype in ("float32", "bfloat16", "float16"))

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        tf = _tensorflow()
        # The kernel reads bfloat16/float16 inputs as they are and computes in float32
        # (what the Keras layer does by casting them first), without the casts.
        x = inputs
        channels = x.shape[-1]
        x4 = x if len(x.shape) == 4 else tf.reshape(x, [-1, 1, 1, channels])
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x4, gamma, beta, epsilon=self.epsilon, is_training=True)
            n = tf.cast(tf.size(x4) // channels, "float32")
            variance = variance * (n - 1.0) / tf.maximum(n, 1.0)  # back to the biased variance
            # momentum may be a float or a variable (laperm.method.batchnorm's re-estimation
            # sets a float32 one); the update is float32 under every dtype policy
            momentum = tf.cast(self.momentum, "float32")
            for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
                moving.assign(tf.cast(moving, "float32") * momentum + batch * (1.0 - momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x4, gamma, beta, mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon, is_training=False)
        if len(x.shape) != 4:
            y = tf.reshape(y, tf.shape(x))
        return tf.cast(y, self.compute_dtype)


def _handle(variable):
    """The resource handle of a Keras (or plain tf.Variable) variable."""
    value = variable.value if isinstance(variable, keras.Variable) else variable
    return value.handle


@keras.saving.register_keras_serializable(package="laperm")
class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with one ``ResourceApplyAdam`` per variable.

    Same slots (``momentum``/``velocity``), same config, same update formula as
    Keras's Adam; a ``keras.optimizers.Adam`` checkpoint's variables load into
    it and back.  Falls back to Keras's update under another backend, inside a
    ``tf.distribute`` strategy, with AMSGrad, or for sparse gradients.
    """

    def update_step(self, gradient, variable, learning_rate):
        tf = _tensorflow()
        if (tf is None or self.amsgrad or tf.distribute.has_strategy()
                or isinstance(gradient, tf.IndexedSlices)):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, local_step), beta2_power=tf.pow(beta_2, local_step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


@keras.saving.register_keras_serializable(package="laperm")
class PatchConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` computed as a matrix product over patches on small outputs.

    Same weights and config as the Keras layer.  For a "same", stride-1,
    undilated, ungrouped, channels-last convolution with an odd kernel whose
    output has at most :data:`PATCH_POSITIONS` positions, the input is padded,
    its ``kh * kw`` shifted views are concatenated along the channels (the
    order of the kernel's ``(kh, kw, in)`` axes) and multiplied by the kernel
    reshaped to ``(kh * kw * in, filters)``: the same cross-correlation, whose
    gradients are matrix products too.  Any other convolution, or another
    backend, is Keras's.
    """

    def _patchable(self, inputs) -> bool:
        height, width = inputs.shape[1], inputs.shape[2]
        return (_tensorflow() is not None and self.data_format == "channels_last"
                and self.padding == "same" and tuple(self.strides) == (1, 1)
                and tuple(self.dilation_rate) == (1, 1) and self.groups == 1
                and all(k % 2 == 1 for k in self.kernel_size)
                and height is not None and width is not None
                and height * width <= PATCH_POSITIONS)

    def convolution_op(self, inputs, kernel):
        if len(inputs.shape) != 4 or not self._patchable(inputs):
            return super().convolution_op(inputs, kernel)
        tf = _tensorflow()
        (kh, kw), (height, width) = self.kernel_size, inputs.shape[1:3]
        channels = inputs.shape[-1]
        padded = tf.pad(inputs, [[0, 0], [kh // 2, kh // 2], [kw // 2, kw // 2], [0, 0]])
        patches = tf.concat([padded[:, dy:dy + height, dx:dx + width, :]
                             for dy in range(kh) for dx in range(kw)], axis=-1)
        out = tf.matmul(tf.reshape(patches, [-1, kh * kw * channels]),
                        tf.reshape(kernel, [kh * kw * channels, self.filters]))
        return tf.reshape(out, [-1, height, width, self.filters])


_FUSED_CLASSES = {keras.layers.BatchNormalization: FusedBatchNormalization,
                  keras.layers.Conv2D: PatchConv2D}


def _clone_layer(layer):
    cls = _FUSED_CLASSES.get(type(layer), layer.__class__)
    return cls.from_config(layer.get_config())


def fuse_model(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with the fused layers of this module, same weights.

    Args:
        model: a built functional or Sequential Keras model.

    Returns:
        ``model`` itself when it has no BatchNormalization or Conv2D layer;
        otherwise a clone (``keras.models.clone_model``) holding the same weight
        values, whose BatchNormalization layers are
        :class:`FusedBatchNormalization` and whose Conv2D layers are
        :class:`PatchConv2D`.
    """
    if not any(type(layer) in _FUSED_CLASSES
               for layer in model._flatten_layers(include_self=False)):
        return model
    fused = keras.models.clone_model(model, clone_function=_clone_layer)
    fused.set_weights(model.get_weights())
    return fused


def make_adam(learning_rate, kernels: str = "keras"):
    """Adam for an experiment: Keras's (``"keras"``) or :class:`FusedAdam` (``"fused"``).

    Raises:
        ValueError: ``kernels`` is not one of :data:`KERNELS`.
    """
    if kernels not in KERNELS:
        raise ValueError(f"Unknown kernels {kernels!r}; valid: {', '.join(KERNELS)}.")
    cls = FusedAdam if kernels == "fused" else keras.optimizers.Adam
    return cls(learning_rate)
