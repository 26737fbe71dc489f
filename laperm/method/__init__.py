"""The method (Section 4 of the paper), for Keras 3.

* :mod:`~laperm.method.ops`: the pure maths of a sync, backend-agnostic ``keras.ops``;
* :mod:`~laperm.method.optimizer`: :class:`laperm.LaPerm`, the wrapper optimizer;
* :mod:`~laperm.method.schedules`: sync periods that change during training;
* :mod:`~laperm.method.callbacks`: guards and recorders for ``model.fit``;
* :mod:`~laperm.method.batchnorm`: re-estimating BatchNorm statistics after a sync;
* :mod:`~laperm.method.fused`: TensorFlow's fused Adam, BatchNorm and small convolutions.
"""

from laperm._lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, ("batchnorm", "callbacks", "fused", "ops", "optimizer",
                                           "schedules"))
