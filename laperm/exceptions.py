"""The errors LaPerm raises in every framework (Keras, PyTorch, optax).

This module imports nothing but the standard library, so that ``laperm.torch``
and ``laperm.optax`` raise the same classes as ``laperm.LaPerm`` (one
``except laperm.NonFiniteWeightsError`` catches all three) without Keras.
"""

from __future__ import annotations


class NonFiniteWeightsError(FloatingPointError):
    """Raised when a weight vector holds NaN or inf at a sync."""


class LaPermStateError(ValueError):
    """A saved LaPerm state does not fit the model it is loaded into."""
