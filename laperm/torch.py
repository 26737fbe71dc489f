"""LaPerm for PyTorch: a ``torch.optim.Optimizer`` that wraps any torch optimizer.

Paper: Qiu & Suda, *Train-by-Reconnect*, NeurIPS 2020, Section 4 (Algorithm 1).
The same method as :class:`laperm.LaPerm` (Keras), for ``nn.Module`` users::

    import torch, laperm.torch
    opt = laperm.torch.LaPerm(torch.optim.Adam(model.parameters(), 1e-3), sync_period=20)
    for x, y in loader:
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    with opt.synchronised():          # evaluate on a permutation of theta_0
        evaluate(model)

This module needs only torch (``pip install "laperm[pytorch]"``): no Keras, no
TensorFlow.

**Weight vectors.**  A weight vector is everything feeding one output unit:
row ``j`` of a ``Linear`` weight ``(out, in)``, output channel ``j`` of a
``ConvNd`` weight ``(out, in/groups, *kernel)``, i.e. the first axis indexes the
vectors (for a ``ConvTranspose`` weight ``(in, out/groups, *kernel)`` that is
the input channel, as the last axis is for ``laperm.LaPerm`` on a Keras
``Conv2DTranspose`` kernel).  A 1-D parameter is one vector.  Within a vector
the positions are taken in the order of the Keras kernel (kernel positions
first, then input channel), so that ties between equal weights are broken
exactly as :class:`laperm.LaPerm` breaks them on the same weights: both give the
same values after every sync.

**The sync.**  Every ``sync_period`` (k) inner steps, each permuted vector ``w``
is replaced by its sorted initial values re-ordered by the ranks of ``w``: with
``order = argsort(w)`` (stable), ``w[order[i]] = sorted0[i]``, one argsort and
one scatter per vector.  Afterwards every vector holds exactly its own initial
multiset of values.  The inner optimizer's state is never reset.

**Sharing.**  ``param_groups``, ``state`` and ``defaults`` are the inner
optimizer's own objects, so ``torch.optim.lr_scheduler``, ``GradScaler`` and
code that reads or edits the learning rate see one optimizer.
"""

from __future__ import annotations

import contextlib
import numbers
from typing import Iterable

import torch
from torch import nn

from laperm.exceptions import LaPermStateError, NonFiniteWeightsError

__all__ = ["LaPerm", "LaPermStateError", "NonFiniteWeightsError", "permute_to_ranks",
           "recalibrate_batchnorm", "recalibrated_batchnorm", "sorted_rows", "to_rows",
           "from_rows", "is_norm_layer"]

#: Version of the ``"laperm"`` entry of :meth:`LaPerm.state_dict`.
STATE_VERSION = 1

#: Modules whose parameters ``skip_norm`` leaves alone (BatchNorm, InstanceNorm,
#: SyncBatchNorm, LayerNorm, GroupNorm, RMSNorm).
NORM_LAYERS = tuple(
    t for t in (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
                getattr(nn, "RMSNorm", None)) if t is not None
)


def is_norm_layer(module: nn.Module) -> bool:
    """True for a normalisation layer (its weight and bias are skipped by ``skip_norm``)."""
    return isinstance(module, NORM_LAYERS)


# ---------------------------------------------------------------- the maths
def to_rows(w: torch.Tensor) -> torch.Tensor:
    """The row view ``(n_vectors, length)`` of a parameter: row ``j`` feeds output unit ``j``.

    ``Linear`` ``(out, in)`` is its own row view; a conv weight ``(out, in, *k)``
    is read as ``(out, *k, in)``, the order of a Keras kernel's vector.  A 1-D
    parameter is one row, a scalar a row of one.
    """
    if w.ndim == 0:
        return w.reshape(1, 1)
    if w.ndim == 1:
        return w.reshape(1, -1)
    if w.ndim == 2:
        return w
    return w.movedim(1, -1).reshape(w.shape[0], -1)


def from_rows(rows: torch.Tensor, shape) -> torch.Tensor:
    """Inverse of :func:`to_rows`: back to the parameter's own ``shape``."""
    shape = tuple(shape)
    if len(shape) <= 2:
        return rows.reshape(shape)
    return rows.reshape(shape[0], *shape[2:], shape[1]).movedim(-1, 1)


def sorted_rows(w: torch.Tensor) -> torch.Tensor:
    """Each weight vector of ``w`` sorted ascending, as rows (``sorted0``), on ``w``'s device."""
    return torch.sort(to_rows(w.detach()), dim=-1).values.contiguous()


def permute_to_ranks(w: torch.Tensor, sorted0: torch.Tensor) -> torch.Tensor:
    """Reconnect: each vector of ``w`` receives its sorted initial values by rank.

    If ``order`` lists the positions of a vector from its smallest entry to its
    largest (a stable sort: equal entries keep their order of position), the
    value that belongs at ``order[i]`` is ``sorted0[i]``: one argsort, one scatter.

    Args:
        w: current weights (any shape).
        sorted0: ``(n_vectors, length)`` rows sorted ascending (:func:`sorted_rows`
            of the initial weights).

    Returns:
        A new tensor shaped like ``w``.
    """
    rows = to_rows(w)
    order = torch.argsort(rows, dim=-1, stable=True)
    new_rows = torch.empty_like(rows).scatter_(-1, order, sorted0.to(rows.dtype))
    return from_rows(new_rows, w.shape)


# --------------------------------------------------------------- validation
def _validate_sync_period(value) -> int:
    """k: a positive integer (``True``, floats and strings are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`sync_period` must be a positive integer; received {value!r} "
                         f"of type {type(value).__name__}.")
    if int(value) < 1:
        raise ValueError(f"`sync_period` must be a positive integer; received {value!r}.")
    return int(value)


def _param_names_and_owners(model, groups):
    """``{id(param): name}`` and ``{id(param): owning module}`` where they can be known."""
    names, owners = {}, {}
    for group in groups:
        for name, p in zip(group.get("param_names", ()), group["params"]):
            names[id(p)] = name
    if model is not None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module; received {type(model).__name__}.")
        for module_name, module in model.named_modules(remove_duplicate=False):
            for leaf, p in module.named_parameters(recurse=False, remove_duplicate=False):
                names.setdefault(id(p), f"{module_name}.{leaf}" if module_name else leaf)
                owners.setdefault(id(p), (module, leaf))
    return names, owners


class LaPerm(torch.optim.Optimizer):
    """Lookahead Permutation for PyTorch: train by reconnecting the initial weights.

    Args:
        inner: the torch optimizer that takes every step (``torch.optim.Adam(...)``).
            Its parameters' current values are theta_0: create the wrapper after
            any pruning or shared-value initialisation.
        sync_period: k, the number of inner steps between syncs (a positive int).
        skip_bias: do not permute biases.
        skip_norm: do not permute the weight and bias of normalisation layers
            (BatchNorm, InstanceNorm, LayerNorm, GroupNorm, RMSNorm).
        exclude: parameters to leave un-permuted: tensors, modules (all their
            parameters) or substrings of parameter names (``"fc2."``).
        model: the ``nn.Module`` the parameters belong to.  Needed only to tell
            a bias from a normalisation parameter when ``skip_bias`` and
            ``skip_norm`` differ, and for names (``exclude`` by name, messages)
            when the inner optimizer was not built from ``model.named_parameters()``.

    Which parameters are permuted: scalars never; parameters of 2 or more
    dimensions always (unless excluded); 1-D parameters are biases or
    normalisation parameters, skipped by default.  Without ``model`` a 1-D
    parameter is permuted when both ``skip_bias`` and ``skip_norm`` are False.

    Non-finite weights: a sync that meets NaN or inf raises
    :class:`laperm.NonFiniteWeightsError` naming the parameter and step; the
    weights stay as the inner step wrote them and the sync is not counted (as
    :class:`laperm.LaPerm` does).  Checking costs one read of a device flag per
    sync, none between syncs.

    Saving: :meth:`state_dict` is the inner optimizer's plus a ``"laperm"`` entry
    (sorted theta_0, the counters, which parameters are permuted);
    :meth:`load_state_dict` restores it or raises :class:`laperm.LaPermStateError`
    when it does not fit the parameters.
    """

    def __init__(self, inner: torch.optim.Optimizer, sync_period: int = 20, *,
                 skip_bias: bool = True, skip_norm: bool = True,
                 exclude: Iterable | None = None, model: nn.Module | None = None):
        if not isinstance(inner, torch.optim.Optimizer):
            raise TypeError("laperm.torch.LaPerm wraps a torch.optim.Optimizer (e.g. "
                            "torch.optim.Adam(model.parameters(), 1e-3)); received "
                            f"{type(inner).__name__}.")
        if isinstance(inner, LaPerm):
            raise TypeError("laperm.torch.LaPerm cannot wrap another LaPerm optimizer.")
        self._sync_period = _validate_sync_period(sync_period)
        # torch's own initialisation (hooks, step profiling) on copies of the inner
        # optimizer's groups; then the groups, state and defaults become the inner's
        # own objects, so that schedulers and GradScaler see one optimizer.
        super().__init__([dict(g) for g in inner.param_groups], inner.defaults)
        self.inner_optimizer = inner
        self.param_groups = inner.param_groups
        self.state = inner.state
        self.defaults = inner.defaults
        self.skip_bias, self.skip_norm = bool(skip_bias), bool(skip_norm)
        self._model = model
        self._exclude = list(exclude) if exclude is not None else []
        self._steps_since_sync = 0
        self._sync_count = 0
        self._step_count = 0
        self._permuted: list[torch.Tensor] = []
        self._sorted0: list[torch.Tensor] = []
        self._names: dict[int, str] = {}
        self._capture([p for g in inner.param_groups for p in g["params"]])

    # ------------------------------------------------------------ choosing
    def _capture(self, params):
        """Choose the permuted parameters among ``params``; keep their sorted values."""
        names, owners = _param_names_and_owners(self._model, self.param_groups)
        self._names.update(names)
        excluded_ids, excluded_names = set(), []
        for item in self._exclude:
            if isinstance(item, str):
                excluded_names.append(item)
            elif isinstance(item, nn.Module):
                excluded_ids.update(id(p) for p in item.parameters())
            elif isinstance(item, torch.Tensor):
                excluded_ids.add(id(item))
            else:
                raise TypeError("`exclude` takes parameters, modules or name substrings; "
                                f"received {type(item).__name__}.")
        if excluded_names and not names:
            raise ValueError(
                f"`exclude` names parameters ({excluded_names}) but their names are unknown: "
                "pass model=..., or build the inner optimizer from model.named_parameters().")
        with torch.no_grad():
            for p in params:
                if self._should_permute(p, names.get(id(p)), owners.get(id(p)),
                                        excluded_ids, excluded_names):
                    self._permuted.append(p)
                    self._sorted0.append(sorted_rows(p))

    def _should_permute(self, p, name, owner, excluded_ids, excluded_names) -> bool:
        if id(p) in excluded_ids or (name and any(s in name for s in excluded_names)):
            return False
        if p.ndim == 0:
            return False  # a single value is its own permutation
        if owner is not None:
            module, leaf = owner
            if is_norm_layer(module):
                return not self.skip_norm
            if leaf == "bias":
                return not self.skip_bias
            return True
        if p.ndim >= 2:
            return True
        if self.skip_bias == self.skip_norm:
            return not self.skip_bias
        raise ValueError(
            f"LaPerm cannot tell whether the 1-D parameter {name or tuple(p.shape)} is a bias or "
            "a normalisation parameter (skip_bias and skip_norm differ): pass model=... "
            "(the nn.Module it belongs to).")

    # ------------------------------------------------------------------ API
    @property
    def sync_period(self) -> int:
        """k, the number of inner steps between syncs (settable)."""
        return self._sync_period

    @sync_period.setter
    def sync_period(self, value):
        self._sync_period = _validate_sync_period(value)

    @property
    def sync_count(self) -> int:
        """Number of syncs performed so far."""
        return self._sync_count

    @property
    def steps_since_sync(self) -> int:
        """Inner steps taken since the last sync."""
        return self._steps_since_sync

    @property
    def permuted_params(self) -> list:
        """The parameters reconnected at every sync."""
        return list(self._permuted)

    @property
    def sorted_initial_values(self) -> list:
        """``sorted0`` per permuted parameter: rows of sorted theta_0 vectors."""
        return list(self._sorted0)

    def param_name(self, p) -> str:
        """A parameter's name where known, else its position and shape."""
        if id(p) in self._names:
            return self._names[id(p)]
        for i, q in enumerate(q for g in self.param_groups for q in g["params"]):
            if q is p:
                return f"parameter {i} of shape {tuple(p.shape)}"
        return f"parameter of shape {tuple(p.shape)}"

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner_optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group to the inner optimizer; its current values are their theta_0."""
        if "inner_optimizer" not in self.__dict__:  # torch's __init__ on the copies
            return super().add_param_group(param_group)
        self.inner_optimizer.add_param_group(param_group)
        self._capture(self.inner_optimizer.param_groups[-1]["params"])

    def step(self, closure=None):
        """One inner step; a sync after every ``sync_period``-th.

        Returns:
            The closure's loss, as the inner optimizer returns it.
        """
        loss = self.inner_optimizer.step(closure)
        self._step_count += 1
        self._steps_since_sync += 1
        if self._steps_since_sync >= self._sync_period:
            self._sync()
        return loss

    @torch.no_grad()
    def _check_finite(self, when: str):
        if not self._permuted:
            return
        finite = torch.stack([torch.isfinite(p).all().to(self._permuted[0].device)
                              for p in self._permuted])
        if bool(finite.all()):  # the one host read of a sync
            return
        bad = self._permuted[int((~finite).nonzero()[0, 0])]
        raise NonFiniteWeightsError(
            f"LaPerm: non-finite weights (NaN or inf) in '{self.param_name(bad)}' {when}. "
            "The inner optimizer's step had already written them into the model, so the "
            "model's weights are not a permutation of theta_0 now; the sync was skipped and "
            "not counted. Lower the learning rate or check the data.")

    @torch.no_grad()
    def _sync(self):
        self._check_finite(f"at the sync after step {self._step_count}")
        for p, s in zip(self._permuted, self._sorted0):
            p.copy_(permute_to_ranks(p, s))
        self._steps_since_sync = 0
        self._sync_count += 1

    def sync_now(self) -> None:
        """Reconnect now, as if a sync period had ended (counted as a sync)."""
        self._sync()

    @torch.no_grad()
    def synced_values(self) -> list:
        """The values the permuted parameters would take if synced now (new tensors)."""
        self._check_finite("(asked for synced values)")
        return [permute_to_ranks(p, s) for p, s in zip(self._permuted, self._sorted0)]

    @contextlib.contextmanager
    def synchronised(self):
        """Put the synchronised weights in the model for the block; the current ones come back.

        Evaluate LaPerm on a permutation of theta_0 without changing the
        training trajectory::

            with opt.synchronised():
                accuracy = evaluate(model)
        """
        with torch.no_grad():
            values = self.synced_values()
            saved = [p.detach().clone() for p in self._permuted]
            for p, v in zip(self._permuted, values):
                p.copy_(v)
        try:
            yield self
        finally:
            with torch.no_grad():
                for p, v in zip(self._permuted, saved):
                    p.copy_(v)

    # ------------------------------------------------------------ saving
    def _flat_params(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict:
        """The inner optimizer's state dict plus ``"laperm"``: sorted theta_0 and counters.

        Parameters are referred to by their position in the param groups, as
        torch does; ``torch.save`` / ``torch.load`` (``weights_only=True``) keep it.
        """
        state = self.inner_optimizer.state_dict()
        flat = self._flat_params()
        position = {id(p): i for i, p in enumerate(flat)}
        state["laperm"] = {
            "version": STATE_VERSION,
            "sync_period": self._sync_period,
            "steps_since_sync": self._steps_since_sync,
            "sync_count": self._sync_count,
            "step": self._step_count,
            "shapes": [list(p.shape) for p in flat],
            "permuted": [position[id(p)] for p in self._permuted],
            "sorted0": [s.clone() for s in self._sorted0],
        }
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict`, or raise :class:`laperm.LaPermStateError`.

        Refused: a state without the ``"laperm"`` entry (a bare inner state would
        lose theta_0), one saved for other parameter shapes, another choice of
        permuted parameters, or sorted values of another shape.
        """
        if not isinstance(state_dict, dict) or "laperm" not in state_dict:
            raise LaPermStateError(
                "This state dict has no 'laperm' entry (sorted theta_0 and the counters): it "
                "was not saved by laperm.torch.LaPerm.state_dict(), and loading it would lose "
                "theta_0.")
        saved = state_dict["laperm"]
        flat = self._flat_params()
        shapes = [list(p.shape) for p in flat]
        if saved.get("shapes") != shapes:
            raise LaPermStateError(
                f"Cannot restore LaPerm: the state was saved for {len(saved.get('shapes', []))} "
                f"parameters of shapes {saved.get('shapes')}, but this optimizer has "
                f"{len(shapes)} of shapes {shapes}; load it into the model it was saved from.")
        position = {id(p): i for i, p in enumerate(flat)}
        ours = [position[id(p)] for p in self._permuted]
        if list(saved["permuted"]) != ours:
            raise LaPermStateError(
                f"Cannot restore LaPerm: the state permutes parameters {list(saved['permuted'])} "
                f"but this optimizer permutes {ours} (skip_bias, skip_norm or exclude differ).")
        sorted0 = []
        for p, s in zip(self._permuted, saved["sorted0"]):
            expected = tuple(to_rows(p).shape)
            if tuple(s.shape) != expected:
                raise LaPermStateError(
                    f"Cannot restore LaPerm: sorted theta_0 of '{self.param_name(p)}' has shape "
                    f"{tuple(s.shape)}, expected {expected}.")
            sorted0.append(s.detach().to(device=p.device, dtype=p.dtype).clone())
        inner_state = {k: v for k, v in state_dict.items() if k != "laperm"}
        self.inner_optimizer.load_state_dict(inner_state)
        # torch's load_state_dict builds new group dicts: share them again.
        self.param_groups = self.inner_optimizer.param_groups
        self.state = self.inner_optimizer.state
        self._sorted0 = sorted0
        self._sync_period = _validate_sync_period(saved["sync_period"])
        self._steps_since_sync = int(saved["steps_since_sync"])
        self._sync_count = int(saved["sync_count"])
        self._step_count = int(saved["step"])

    def __repr__(self) -> str:
        return (f"LaPerm(sync_period={self._sync_period}, permuted={len(self._permuted)} of "
                f"{len(self._flat_params())} parameters, inner={self.inner_optimizer!r})")


# ------------------------------------------------------------- BatchNorm
def _batchnorms(model: nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader, batches: int = 200, device=None,
                          seed: int | None = 0) -> int:
    """Re-estimate every BatchNorm's running mean and variance for the current weights.

    After a sync the weights are a new permutation of theta_0 and the running
    statistics describe the weights before it.  The estimate is the exact
    average of the per-batch statistics over the first ``batches`` batches of
    ``loader``, in training mode, as :func:`torch.optim.swa_utils.update_bn`
    computes it over a whole loader (and as ``laperm.recalibrate_batchnorm``
    does for Keras).  Only the running statistics change.

    Args:
        model: the network.
        loader: an iterable of batches: tensors, or tuples/lists whose first
            item is the input (a ``DataLoader`` of ``(x, y)``).
        batches: at most this many batches are used (default 200).
        device: where to move each input (default: the device of the model's
            first parameter).
        seed: seeds torch's generator for the pass (dropout draws), whose state
            comes back afterwards; None leaves the generator alone.

    Returns:
        The number of batches used (0 for a model without BatchNorm).

    Raises:
        ValueError: ``batches`` not a positive integer, or an empty loader.
    """
    if isinstance(batches, bool) or not isinstance(batches, numbers.Integral) or batches < 1:
        raise ValueError(f"`batches` must be a positive integer; received {batches!r}.")
    layers = _batchnorms(model)
    if not layers:
        return 0
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else None
    momenta = [m.momentum for m in layers]
    was_training = model.training
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # torch's cumulative average: the exact mean of the batches
    model.train()
    used = 0
    fork = (torch.random.fork_rng(devices=[device] if device is not None and
                                  torch.device(device).type == "cuda" else [])
            if seed is not None else contextlib.nullcontext())
    try:
        with fork:
            if seed is not None:
                torch.manual_seed(int(seed))
            for batch in loader:
                x = batch[0] if isinstance(batch, (list, tuple)) else batch
                model(x.to(device) if device is not None else x)
                used += 1
                if used == batches:
                    break
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.train(was_training)
    if used == 0:
        raise ValueError("recalibrate_batchnorm: the loader gave no batch.")
    return used


@contextlib.contextmanager
def recalibrated_batchnorm(model: nn.Module, loader, batches: int = 200, device=None,
                           seed: int | None = 0):
    """:func:`recalibrate_batchnorm` inside a context; the old statistics come back on exit.

    ::

        with opt.synchronised(), laperm.torch.recalibrated_batchnorm(model, train_loader):
            evaluate(model)
    """
    layers = _batchnorms(model)
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in layers]
    try:
        yield recalibrate_batchnorm(model, loader, batches, device, seed)
    finally:
        for m, values in zip(layers, saved):
            m.load_state_dict(values)
