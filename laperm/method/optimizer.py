"""LaPerm, the lookahead permutation optimizer, as a Keras 3 optimizer wrapper.

Paper: Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020, Section 4 (Algorithm 1).

An inner optimizer (Adam in every experiment of the paper) updates the weights
every step.  Every ``sync_period`` (k) steps each permuted weight vector is
reset to its *sorted initial values* re-ordered by the ranks of its current
values, so that after a sync the network is a permutation of theta_0 within
each vector.  The inner optimizer's state is never reset (unless asked).

The wrapper has the shape of Keras's own ``LossScaleOptimizer``: it owns a few
variables of its own (``sorted0`` per permuted variable and counters) and
delegates ``iterations``/``learning_rate`` to the inner optimizer.  The sync is
part of ``apply`` and therefore of the compiled train step: it is correct under
``model.fit`` with ``steps_per_execution > 1``, with or without
``jit_compile``, in custom training loops, and under the TensorFlow, JAX and
torch backends (all maths in ``keras.ops``).
"""

from __future__ import annotations

import contextlib
from typing import Iterable

import keras
import numpy as np
from keras import ops

from laperm.method import ops as lops
from laperm.exceptions import LaPermStateError, NonFiniteWeightsError  # noqa: F401 (public here)
from laperm.method.schedules import SyncPeriodSchedule, deserialize_sync_period
from laperm.paper import laperm_preset

#: Names of normalisation parameters skipped when ``skip_bn=True``.
NORMALIZATION_VARIABLE_NAMES = ("gamma", "beta")


#: The largest sync period: k is stored in an int32 variable.
MAX_SYNC_PERIOD = 2**31 - 1


def _validate_sync_period(value, name="sync_period"):
    if isinstance(value, SyncPeriodSchedule):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"`{name}` must be a positive integer or a "
            f"laperm.SyncPeriodSchedule; received {value!r} "
            f"of type {type(value).__name__}."
        )
    if not 1 <= int(value) <= MAX_SYNC_PERIOD:
        raise ValueError(
            f"`{name}` must be between 1 and {MAX_SYNC_PERIOD} (2**31 - 1); "
            f"received {value!r}."
        )
    return int(value)


def _validate_inner_optimizer(inner):
    """Refuse inner-optimizer options that break the permutation invariant."""
    if getattr(inner, "use_ema", False):
        raise ValueError(
            "LaPerm cannot wrap an inner optimizer with use_ema=True: at the end "
            "of `fit` Keras writes the moving averages of the weights into the "
            "model, and an average of permutations of theta_0 is not a "
            "permutation of theta_0. Create the inner optimizer with "
            "use_ema=False (the default)."
        )


def find_laperm(obj, required: bool = True):
    """The :class:`LaPerm` optimizer of a model or optimizer, through wrappers.

    Keras wraps the optimizer of a model compiled under the
    ``"mixed_float16"`` policy in a ``LossScaleOptimizer``; this looks through
    such wrappers (anything with an ``inner_optimizer``).

    Args:
        obj: a compiled ``keras.Model``, or an optimizer.
        required: raise if there is no LaPerm optimizer (else return None).

    Returns:
        The :class:`LaPerm` instance, or None when ``required=False`` and
        there is none.

    Raises:
        ValueError: no LaPerm optimizer found and ``required`` is True.
    """
    optimizer = getattr(obj, "optimizer", obj) if isinstance(obj, keras.Model) else obj
    seen = optimizer
    while optimizer is not None and not isinstance(optimizer, LaPerm):
        optimizer = getattr(optimizer, "inner_optimizer", None)
    if optimizer is None and required:
        raise ValueError(
            "Expected a model compiled with a laperm.LaPerm optimizer (possibly "
            f"inside a LossScaleOptimizer); found {type(seen).__name__}."
        )
    return optimizer


@keras.saving.register_keras_serializable(package="laperm")
class LaPerm(keras.optimizers.Optimizer):
    """Lookahead Permutation: train by reconnecting the initial weights.

    Section 4 of the paper.  Usage is one line::

        model.compile(optimizer=laperm.LaPerm(keras.optimizers.Adam(1e-3),
                                              sync_period=20), ...)

    theta_0 is captured when the optimizer is *built* (``model.fit`` builds it
    before the first step; in a custom loop call
    ``optimizer.build(model.trainable_variables)``), i.e. after any pruning or
    shared-value initialisation you applied to the model.

    Args:
        inner_optimizer: the optimizer that takes every step (an instance, or
            anything ``keras.optimizers.get`` accepts, e.g. ``"adam"``).
        sync_period: k, the number of inner steps between syncs: a positive
            int or a :class:`laperm.SyncPeriodSchedule` of the step (use the
            callback :class:`laperm.method.callbacks.SyncPeriodScheduler` for a
            function of the epoch).
        skip_bias: do not permute variables named ``bias``.
        skip_bn: do not permute normalisation parameters (``gamma``, ``beta``).
        exclude: variables to leave un-permuted, as variable objects or as
            substrings of their paths (``"dense_2/"``), like
            ``exclude_from_weight_decay``.
        reset_inner_state: also zero the inner optimizer's slots (e.g. Adam
            moments, not its step count) at every sync.  Off in the paper.
        name: optimizer name.

    Inner-optimizer options: clipping (``clipnorm``, ``global_clipnorm``,
    ``clipvalue``), weight decay (AdamW), momentum and
    ``gradient_accumulation_steps`` keep the invariant (the weights are a
    permutation of theta_0 after every sync); ``use_ema=True`` is refused.

    Non-finite weights: a sync that meets NaN or inf leaves the weights as
    they are (the inner step had already written them), does not advance the
    counters, and records the variable and the step;
    :class:`NonFiniteWeightsError` is raised at once in eager code, by the
    callback :class:`laperm.NonFiniteGuard` after the batch, and at the end of
    ``fit`` otherwise (on every backend).

    Saving: ``model.save`` stores sorted theta_0 and the exact choice of
    permuted variables; ``keras.models.load_model`` restores both, or raises
    :class:`LaPermStateError` when the saved state does not fit the model.
    """

    def __init__(
        self,
        inner_optimizer="adam",
        sync_period: int | SyncPeriodSchedule = 20,
        skip_bias: bool = True,
        skip_bn: bool = True,
        exclude: Iterable | None = None,
        reset_inner_state: bool = False,
        name: str | None = None,
        **kwargs,
    ):
        permuted_mask = kwargs.pop("permuted_mask", None)  # written by get_config
        if kwargs:
            raise ValueError(
                f"LaPerm does not take argument(s) {sorted(kwargs)}; set "
                "learning rate, clipping, weight decay etc. on the inner optimizer."
            )
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = keras.optimizers.get(inner_optimizer)
        if isinstance(self.inner_optimizer, LaPerm):
            raise ValueError("LaPerm cannot wrap another LaPerm optimizer.")
        _validate_inner_optimizer(self.inner_optimizer)
        self._permuted_mask = None if permuted_mask is None else [bool(b) for b in permuted_mask]
        self._sync_period_value = _validate_sync_period(sync_period)
        self.skip_bias = bool(skip_bias)
        self.skip_bn = bool(skip_bn)
        self.reset_inner_state = bool(reset_inner_state)
        self._exclude_names: list[str] = []
        self._exclude_ids: set[int] = set()
        if exclude is not None:
            self.exclude_from_permutation(
                var_list=[e for e in exclude if not isinstance(e, str)],
                var_names=[e for e in exclude if isinstance(e, str)],
            )

    # ------------------------------------------------------------------ API
    @classmethod
    def from_paper(cls, experiment: str, inner_optimizer="adam", **overrides):
        """The paper's settings for one experiment, by name.

        Args:
            experiment: a key of :data:`laperm.paper.LAPERM_PRESETS` such as
                ``"conv7"``, ``"conv13"``, ``"resnet50"`` or ``"f1"``.
            inner_optimizer: the inner optimizer (Adam in the paper).
            **overrides: any constructor argument to change.
        """
        kwargs = dict(laperm_preset(experiment))
        kwargs.update(overrides)
        return cls(inner_optimizer, **kwargs)

    def exclude_from_permutation(self, var_list=None, var_names=None):
        """Leave some variables un-permuted (trained by the inner optimizer).

        Must be called before the optimizer is built.

        Args:
            var_list: variables to exclude.
            var_names: substrings of variable paths to exclude.
        """
        if self.built:
            raise ValueError(
                "exclude_from_permutation() must be called before the "
                "optimizer is built (theta_0 is captured at build time)."
            )
        for v in var_list or []:
            self._exclude_ids.add(id(v))
            self._exclude_names.append(v.path)
        self._exclude_names.extend(var_names or [])

    def should_permute(self, variable) -> bool:
        """Whether ``variable`` is reconnected at syncs (True) or left alone."""
        if id(variable) in self._exclude_ids:
            return False
        path = getattr(variable, "path", variable.name)
        if any(name in path for name in self._exclude_names):
            return False
        if len(variable.shape) == 0:
            return False  # a single value is its own permutation
        leaf = variable.name.split("/")[-1]
        if self.skip_bias and leaf == "bias":
            return False
        if self.skip_bn and leaf in NORMALIZATION_VARIABLE_NAMES:
            return False
        return True

    @property
    def permuted_variables(self) -> list:
        """The model variables reconnected at every sync (after build)."""
        self._require_built("permuted_variables")
        return [self._trainable_variables[i] for i in self._permuted_indices]

    @property
    def sorted_initial_values(self) -> list:
        """``sorted0`` per permuted variable: rows of sorted theta_0 vectors."""
        self._require_built("sorted_initial_values")
        return list(self._sorted0)

    @property
    def sync_period(self):
        """k: an int, or the :class:`SyncPeriodSchedule` given."""
        if isinstance(self._sync_period_value, SyncPeriodSchedule):
            return self._sync_period_value
        if self.built:
            return int(ops.convert_to_numpy(self._sync_period_var))
        return self._sync_period_value

    @sync_period.setter
    def sync_period(self, value):
        value = _validate_sync_period(value)
        if isinstance(value, SyncPeriodSchedule) or isinstance(
            self._sync_period_value, SyncPeriodSchedule
        ):
            if self.built:
                raise ValueError(
                    "Cannot switch between an int sync_period and a schedule "
                    "after the optimizer is built."
                )
        self._sync_period_value = value
        if self.built and not isinstance(value, SyncPeriodSchedule):
            self._sync_period_var.assign(value)

    @property
    def sync_count(self):
        """Number of syncs performed so far (a scalar tensor)."""
        self._require_built("sync_count")
        return self._sync_count

    @property
    def steps_since_sync(self):
        """Inner steps taken since the last sync (a scalar tensor)."""
        self._require_built("steps_since_sync")
        return self._steps_since_sync

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def variables(self):
        return self._variables[:] + self.inner_optimizer.variables

    # ---------------------------------------------------------------- build
    def build(self, var_list):
        """Build the inner optimizer and capture sorted theta_0."""
        var_list = list(var_list)
        self.inner_optimizer.build(var_list)
        # Under TensorFlow, `model.fit` builds the optimizer while tracing the
        # train function: capture theta_0 eagerly, outside that graph, or the
        # capture would become part of every step.
        with _eager_scope():
            self._create_own_variables(var_list)
        super().build(var_list)

    @keras.src.utils.tracking.no_automatic_dependency_tracking
    def _create_own_variables(self, var_list):
        period = (
            1
            if isinstance(self._sync_period_value, SyncPeriodSchedule)
            else self._sync_period_value
        )
        self._sync_period_var = self.add_variable(
            shape=(), dtype="int32", initializer=keras.initializers.Constant(period),
            name="sync_period",
        )
        self._steps_since_sync = self.add_variable(
            shape=(), dtype="int32", initializer="zeros", name="steps_since_sync"
        )
        self._sync_count = self.add_variable(
            shape=(), dtype="int32", initializer="zeros", name="sync_count"
        )
        self._nonfinite_index = self.add_variable(
            shape=(), dtype="int32", initializer=keras.initializers.Constant(-1),
            name="nonfinite_variable_index",
        )
        if self._permuted_mask is not None:
            # Restored from a saved model: the choice made when theta_0 was
            # captured, not a new match of names (variable paths can change
            # when a model is reloaded).
            if len(self._permuted_mask) != len(var_list):
                raise LaPermStateError(
                    f"This LaPerm optimizer was saved for {len(self._permuted_mask)} "
                    f"trainable variables but the model has {len(var_list)}; it "
                    "cannot be restored into this model."
                )
            self._permuted_indices = [i for i, keep in enumerate(self._permuted_mask) if keep]
        else:
            self._permuted_indices = [
                i for i, v in enumerate(var_list) if self.should_permute(v)
            ]
            self._permuted_mask = [i in set(self._permuted_indices) for i in range(len(var_list))]
        self._sorted0 = []
        for i in self._permuted_indices:
            v = var_list[i]
            rows = lops.sorted_rows(v.value)
            sorted0 = self.add_variable(
                shape=tuple(rows.shape),
                dtype=v.dtype,
                initializer="zeros",
                name=v.path.replace("/", "_") + "_sorted0",
            )
            sorted0.assign(rows)
            self._sorted0.append(sorted0)
        # Created last, so that states saved before it existed still load
        # (see `load_own_variables`).
        self._nonfinite_step = self.add_variable(
            shape=(), dtype="int64", initializer=keras.initializers.Constant(-1),
            name="nonfinite_step",
        )

    def load_own_variables(self, store):
        """Restore the saved state exactly, or raise :class:`LaPermStateError`.

        Keras's default skips a mismatched optimizer state with only a warning;
        for LaPerm that would silently re-capture theta_0 from trained weights.
        """
        variables = self.variables
        n_saved = len(store.keys())
        if n_saved == 0 and not self.built:
            return
        own = self._variables
        legacy = n_saved == len(variables) - 1 and self.built  # saved before `nonfinite_step`
        targets = [v for v in variables if v is not self._nonfinite_step] if legacy else variables
        if n_saved != len(targets):
            raise LaPermStateError(
                f"Cannot restore the LaPerm optimizer '{self.name}': the saved state "
                f"has {n_saved} variables but this optimizer has {len(variables)} "
                f"({len(own)} of LaPerm's own, including sorted theta_0 of "
                f"{len(getattr(self, '_sorted0', []))} permuted variables). The saved "
                "sorted theta_0 would be lost; load the model into the architecture "
                "it was saved from."
            )
        for i, variable in enumerate(targets):
            value = store[str(i)]
            if tuple(value.shape) != tuple(variable.shape):
                raise LaPermStateError(
                    f"Cannot restore the LaPerm optimizer '{self.name}': saved variable "
                    f"{i} has shape {tuple(value.shape)} but '{variable.path}' has "
                    f"{tuple(variable.shape)}."
                )
            variable.assign(value)

    def _require_built(self, what):
        if not self.built:
            raise ValueError(
                f"`{what}` is only available once the optimizer is built: "
                "call `optimizer.build(model.trainable_variables)` or train."
            )

    # ---------------------------------------------------------------- apply
    def apply(self, grads, trainable_variables=None):
        if not self.built:
            if trainable_variables is None:
                raise ValueError(
                    "LaPerm must be built before `apply(grads)`: call "
                    "`optimizer.build(model.trainable_variables)` first."
                )
            with keras.name_scope(self.name, caller=self):
                self.build(list(trainable_variables))
            self.built = True
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        self.inner_optimizer.apply(grads, list(trainable_variables))
        self._after_inner_step()

    # `stateless_apply` (JAX) is the base class's: it maps `self.variables`
    # (own + inner) and the model variables into a StatelessScope and calls
    # `self.apply`, whose sync returns values through `ops.cond`.

    def _current_period(self):
        if isinstance(self._sync_period_value, SyncPeriodSchedule):
            # The step that was just taken, counted from 0.
            period = self._sync_period_value(self.iterations - 1)
            return ops.maximum(ops.cast(period, "int32"), 1)
        return self._sync_period_var.value

    def _inner_slot_variables(self):
        skip = {id(self.inner_optimizer._iterations)}
        lr = getattr(self.inner_optimizer, "_learning_rate", None)
        if isinstance(lr, keras.Variable):
            skip.add(id(lr))
        return [v for v in self.inner_optimizer.variables if id(v) not in skip]

    def _synced_values(self, variables):
        """New values for ``variables`` after a sync and a non-finite flag."""
        bad_index = ops.convert_to_tensor(-1, "int32")
        for position in reversed(range(len(variables))):
            finite = lops.all_finite(variables[position].value)
            bad_index = ops.where(finite, bad_index, position)
        new_values = [
            lops.permute_to_ranks(v.value, sorted0.value)
            for v, sorted0 in zip(variables, self._sorted0)
        ]
        return new_values, bad_index

    def _after_inner_step(self):
        variables = self.permuted_variables
        slots = self._inner_slot_variables() if self.reset_inner_state else []
        steps = self._steps_since_sync.value + 1
        do_sync = ops.greater_equal(steps, self._current_period())

        def sync_branch():
            new_values, bad_index = self._synced_values(variables)
            ok = ops.equal(bad_index, -1)
            kept = [
                ops.where(ok, new, v.value) for new, v in zip(new_values, variables)
            ]
            new_slots = [
                ops.where(ok, ops.zeros_like(s.value), s.value) for s in slots
            ]
            return kept, new_slots, bad_index

        def no_sync_branch():
            return (
                [v.value for v in variables],
                [s.value for s in slots],
                ops.convert_to_tensor(-1, "int32"),
            )

        new_values, new_slots, bad_index = ops.cond(
            do_sync, sync_branch, no_sync_branch
        )
        # A sync that met NaN/inf changes nothing and is not counted.
        synced = ops.logical_and(do_sync, ops.equal(bad_index, -1))
        failed = ops.logical_and(do_sync, ops.not_equal(bad_index, -1))
        for v, value in zip(variables, new_values):
            v.assign(value)
        for s, value in zip(slots, new_slots):
            s.assign(value)
        self._steps_since_sync.assign(ops.where(synced, 0, steps))
        self._sync_count.assign_add(ops.cast(synced, "int32"))
        first_failure = ops.logical_and(failed, ops.equal(self._nonfinite_index.value, -1))
        self._nonfinite_index.assign(
            ops.where(first_failure, bad_index, self._nonfinite_index.value)
        )
        self._nonfinite_step.assign(
            ops.where(first_failure, ops.cast(self.iterations, "int64"),
                      self._nonfinite_step.value)
        )
        if _executing_eagerly(self._nonfinite_index):
            self.check_finite_sync()

    # ------------------------------------------------------- eager helpers
    def check_finite_sync(self):
        """Raise :class:`NonFiniteWeightsError` if a sync met NaN/inf weights.

        Inside compiled train steps (every backend) a sync that meets
        non-finite weights is skipped and recorded; this eager check raises
        it.  It runs after every eager ``apply``, after every batch under the
        callback :class:`laperm.NonFiniteGuard` (which
        :func:`laperm.experiment.run` uses), and at the end of ``fit``.
        """
        if not self.built:
            return
        index = int(ops.convert_to_numpy(self._nonfinite_index))
        if index >= 0:
            name = self.permuted_variables[index].path
            step = int(ops.convert_to_numpy(self._nonfinite_step))
            raise NonFiniteWeightsError(
                f"LaPerm: non-finite weights (NaN or inf) in variable '{name}' at the "
                f"sync after step {step}. The inner optimizer's step had already "
                "written them into the model, so the model's weights are not a "
                "permutation of theta_0 now; the sync was skipped and not counted. "
                "Lower the learning rate or check the data."
            )

    def synced_values(self) -> list:
        """Values the permuted variables would take if synced now (NumPy)."""
        variables = self.permuted_variables
        self._raise_if_nonfinite(variables)
        return [
            ops.convert_to_numpy(lops.permute_to_ranks(v.value, s.value))
            for v, s in zip(variables, self._sorted0)
        ]

    def _raise_if_nonfinite(self, variables):
        for v in variables:
            if not bool(ops.convert_to_numpy(lops.all_finite(v.value))):
                raise NonFiniteWeightsError(
                    f"LaPerm: non-finite weights (NaN or inf) in variable "
                    f"'{v.path}'; they cannot be synchronised."
                )

    def sync_now(self):
        """Reconnect immediately (eagerly), as if a sync period had ended."""
        values = self.synced_values()
        for v, value in zip(self.permuted_variables, values):
            v.assign(value)
        self._steps_since_sync.assign(0)
        self._sync_count.assign_add(1)

    @contextlib.contextmanager
    def synchronised(self):
        """Temporarily put synchronised weights in the model.

        For evaluating LaPerm on weights that are a permutation of theta_0
        without changing the training trajectory (the authors' CIFAR notebooks
        evaluated the unsynchronised weights instead)::

            with optimizer.synchronised():
                model.evaluate(x_val, y_val)
        """
        variables = self.permuted_variables
        saved = [ops.convert_to_numpy(v.value) for v in variables]
        values = self.synced_values()
        for v, value in zip(variables, values):
            v.assign(value)
        try:
            yield self
        finally:
            for v, value in zip(variables, saved):
                v.assign(value)

    def finalize_variable_values(self, var_list):
        """Called by Keras at the end of ``fit``: raise on a skipped sync."""
        self.check_finite_sync()
        self.inner_optimizer.finalize_variable_values(var_list)

    # --------------------------------------------------------- serialising
    def get_config(self):
        period = self._sync_period_value
        if isinstance(period, SyncPeriodSchedule):
            period = keras.saving.serialize_keras_object(period)
        config = {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(
                self.inner_optimizer
            ),
            "sync_period": period,
            "skip_bias": self.skip_bias,
            "skip_bn": self.skip_bn,
            "exclude": list(self._exclude_names),
            "reset_inner_state": self.reset_inner_state,
        }
        if self._permuted_mask is not None:
            config["permuted_mask"] = list(self._permuted_mask)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        config["sync_period"] = deserialize_sync_period(
            config["sync_period"], custom_objects
        )
        return cls(inner, **config)


def _eager_scope():
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.init_scope()
    return contextlib.nullcontext()


def _executing_eagerly(probe) -> bool:
    """True outside any compiled/traced function (so Python may raise)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    from keras.src.backend.common.stateless_scope import in_stateless_scope

    if in_stateless_scope():
        return False
    if backend == "jax":
        import jax

        return not isinstance(probe.value, jax.core.Tracer)
    return backend in ("torch", "numpy")
