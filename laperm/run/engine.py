"""The device engine: training in which an epoch is a few compiled programs (JAX; Section 5).

The ``fit`` engine (:func:`laperm.run.train.run`'s default) is Keras's own trainer:
every step is dispatched from Python and every batch is gathered, preprocessed
and augmented on the host.  On a GPU the host is then the bottleneck (the first
lease measured 12-15 steps/s per run on an H200 at 95% utilisation by tiny
kernels).  This engine keeps everything on the device instead:

* **Data on the device once**, as stored (uint8).  Each step gathers its batch
  by index, preprocesses it (:class:`laperm.data.Preprocessor`'s affine map) and
  augments it there, with Keras's own random image layers
  (:func:`laperm.data.augmentation_layers`) drawing from a key that is a pure
  function of ``(seed, epoch, step)``.  The epoch's order is
  :func:`laperm.data.epoch_order`, the ``fit`` path's, so without augmentation
  both engines see the same batches.
* **One home for the method and the models.**  A step is
  ``model.stateless_call`` and ``optimizer.stateless_apply`` of the same
  :mod:`laperm.models` and the same :class:`laperm.LaPerm` (or Adam); the sync,
  the schedules and the models are not written twice.  ``steps_per_call`` steps
  run inside one ``jax.lax.scan`` (one host round trip); the last partial batch
  of an epoch, if any, is one more call with its true shape (BatchNorm and
  dropout see exactly the batch the ``fit`` path sees).
* **Evaluation on the device too**, as :func:`laperm.run.evaluation.evaluate_three_ways`
  defines it: unsynchronised, synchronised with stale BatchNorm statistics, and
  synchronised with statistics re-estimated by the exact average of
  :func:`laperm.method.batchnorm.recalibrate_batchnorm` (same images, same dropout
  seeds), the primary number.

The run folder is the ``fit`` engine's (:func:`laperm.run.train.run` writes it for
both): same ``config.json`` and config hash, ``history.csv``, checkpoint at every
epoch's end (resumable by either engine), best weights and ``result.json``,
which names the engine, the steps per call and the matmul precision.

Float32 matrix products: JAX runs them in TF32 on NVIDIA GPUs unless told
otherwise; this engine asks for full float32 (``matmul_precision="highest"``)
unless the caller chooses ``"default"``, and records the choice.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import numpy as np
from laperm import data
from laperm.method import ops as lops
from laperm.run.backends import seed_generator_states
from laperm.method.batchnorm import batchnorm_layers
from laperm.data import epoch_order
from laperm.run.evaluation import laperm_of

#: The training engines of :func:`laperm.run.train.run`.
ENGINES = ("fit", "device")

#: Matmul precisions the device engine accepts (``jax.default_matmul_precision``).
MATMUL_PRECISIONS = ("highest", "default")

#: Largest evaluation batch (the ``fit`` path evaluates in batches of 500 too); a set is
#: cut into the fewest batches of at most this size, of equal size (the last padded).
EVAL_BATCH = 500


class EngineError(ValueError):
    """A request the device engine cannot serve (one line for the user)."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is XLA running out of device memory (``RESOURCE_EXHAUSTED``)."""
    return "RESOURCE_EXHAUSTED" in str(exc) or "Out of memory while trying" in str(exc)


def out_of_memory_error(name: str, epochs_done: int) -> EngineError:
    """The one line for a run that did not fit in the device's memory."""
    import jax

    device = jax.devices()[0]
    kept = (f"its {epochs_done} finished epochs are kept and the same command resumes it"
            if epochs_done else "no epoch was recorded")
    return EngineError(
        f"{name} did not fit in the memory of {device.device_kind} ({device.platform}): "
        "the device holds each run's whole training set and its programs, so run fewer "
        "runs at once on it (or give this one a larger XLA_PYTHON_CLIENT_MEM_FRACTION); "
        f"{kept}.")


def check_options(steps_per_call=None, matmul_precision: str = "highest") -> None:
    """Refuse device-engine options that are not a positive step count or a known precision."""
    spc = steps_per_call
    if spc is not None and (isinstance(spc, bool) or not isinstance(spc, (int, np.integer))
                            or spc < 1):
        raise EngineError(f"steps_per_call must be a positive integer; received {spc!r}.")
    if matmul_precision not in MATMUL_PRECISIONS:
        raise EngineError(f"unknown matmul_precision {matmul_precision!r}; valid: "
                          f"{', '.join(MATMUL_PRECISIONS)}.")


def check_engine(engine: str, precision: str = "float32", steps_per_call=None,
                 matmul_precision: str = "highest") -> None:
    """Refuse an unknown engine, or the device engine where it cannot run.

    Raises:
        EngineError: an unknown name; ``"device"`` under a Keras backend other
            than JAX, without JAX, or with ``mixed_float16`` (its loss scaling
            is not part of the engine); bad options (:func:`check_options`).
    """
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}.")
    if engine == "fit":
        return
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        raise EngineError(
            f"the device engine needs the JAX Keras backend; this process runs {backend!r} "
            "(start it with KERAS_BACKEND=jax, or use --engine fit).")
    try:
        import jax  # noqa: F401
    except ImportError as exc:  # pragma: no cover - keras[jax] brings jax
        raise EngineError("the device engine needs JAX (pip install jax).") from exc
    if precision == "mixed_float16":
        raise EngineError("the device engine does not run mixed_float16 (no loss scaling); "
                          "use float32 or mixed_bfloat16, or --engine fit.")
    check_options(steps_per_call, matmul_precision)


def default_steps_per_call(steps: int) -> int:
    """All of an epoch's full batches in one call on an accelerator, one step per call on a CPU.

    On a CPU, XLA runs convolutions much slower inside ``lax.scan`` than in a
    step called on its own (Conv7 on a 2-core AMD EPYC, JAX 0.10.2: 0.4 against
    6.8 steps/s; ``benchmarks/results/engine_cpu.md``); ``benchmarks/bench_engine.py``
    measures it on any device.
    """
    import jax

    return max(int(steps), 1) if jax.default_backend() != "cpu" else 1


@dataclasses.dataclass
class _Layout:
    """Where the engine's values sit in Keras's variable lists."""

    seed_states: list        # positions in non_trainable_variables
    batchnorm: list          # the BatchNormalization layers
    learning_rate: int       # position in optimizer.variables
    permuted: list           # positions in trainable_variables (LaPerm only)
    sorted0: list            # positions in optimizer.variables, same order
    nonfinite_index: int | None


def _layout(model, optimizer, laperm) -> _Layout:
    def positions(haystack, needles):
        ids = {id(v): i for i, v in enumerate(haystack)}
        return [ids[id(v)] for v in needles]

    opt_vars = optimizer.variables
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = positions(opt_vars, [inner._learning_rate])[0]
    permuted, sorted0, nonfinite = [], [], None
    if laperm is not None:
        permuted = list(laperm._permuted_indices)
        sorted0 = positions(opt_vars, laperm.sorted_initial_values)
        nonfinite = positions(opt_vars, [laperm._nonfinite_index])[0]
    return _Layout(positions(model.non_trainable_variables, seed_generator_states(model)),
                   batchnorm_layers(model), lr, permuted, sorted0, nonfinite)


class DeviceTrainer:
    """One run's state and compiled programs on the device.

    Args:
        config: the run's :class:`~laperm.config.ExperimentConfig`.
        model: the built (compiled) Keras model; its optimizer is built here
            if it is not yet (LaPerm captures theta_0 then).
        splits: :func:`laperm.run.train.load_splits` of the config.
        steps_per_call: training steps per compiled call (None:
            :func:`default_steps_per_call`).
        bn_index: ``(batches, batch size)`` indices into the training split of
            the BatchNorm re-estimation (:func:`laperm.run.train.bn_batch_indices`),
            or None (no re-estimation).
        epoch_seed_states: ``f(seed, epoch, count)`` -> the dropout seed states
            of an epoch (:func:`laperm.run.train.epoch_seed_states`).
        matmul_precision: ``"highest"`` (full float32) or ``"default"`` (TF32
            on NVIDIA GPUs).
        devices: split every batch over this many devices (JAX's sharding of
            the same program: the state and the data replicated, each batch's
            images sharded; BatchNorm's statistics stay those of the whole
            batch).  None or 1: the default device.
    """

    def __init__(self, config, model, splits, *, bn_index=None, epoch_seed_states=None,
                 steps_per_call=None, matmul_precision="highest", devices=None):
        import jax.numpy as jnp

        check_options(steps_per_call, matmul_precision)
        self.mesh = device_mesh(devices, config.batch_size)
        self.config, self.model = config, model
        self.matmul_precision = matmul_precision
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self.optimizer, self.laperm = optimizer, laperm_of(optimizer)
        self.layout = _layout(model, optimizer, self.laperm)

        (x_tr, y_tr), (x_val, y_val), (x_test, y_test) = (
            splits["train"], splits["val"], splits["test"])
        pre = data.make_preprocessor(config.preprocessing, x_tr)
        self.gray = np.asarray(x_tr).ndim == 3

        def put(x):  # as stored (uint8), with a channel axis for grayscale
            x = np.asarray(x)
            return jnp.asarray(x[..., None] if self.gray else x)

        def labels(y):
            return jnp.asarray(np.asarray(y).reshape(-1).astype(np.int32))

        self.train_data = (put(x_tr), labels(y_tr))
        self.n_train = int(len(x_tr))
        self.eval_sets = {"val": self._eval_batches(put(x_val), labels(y_val)),
                          "test": self._eval_batches(put(x_test), labels(y_test))}
        self.center = jnp.asarray(pre.center, jnp.float32)
        self.scale = jnp.asarray(pre.scale, jnp.float32)
        self.aug_layers = list(data.augmentation_layers(config.augmentation).layers)
        batch = config.batch_size
        self.full_steps, self.remainder = divmod(self.n_train, batch)
        self.steps_per_epoch = self.full_steps + (1 if self.remainder else 0)
        spc = default_steps_per_call(self.full_steps) if steps_per_call is None else steps_per_call
        self.steps_per_call = int(min(spc, max(self.full_steps, 1)))
        self.bn_index = (jnp.asarray(bn_index, jnp.int32)
                         if self.layout.batchnorm and bn_index is not None else None)
        self._epoch_seed_states = epoch_seed_states
        self.state = self._state_from_model()
        if self.mesh is not None:  # replicated on every device; batches are sharded in the step
            import jax

            replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
            self.state = jax.device_put(self.state, replicated)
            self.train_data = jax.device_put(self.train_data, replicated)
            self.eval_sets = {k: jax.device_put(v[:3], replicated) + (v[3],)
                              for k, v in self.eval_sets.items()}
        self.round_trips = 0
        self._jit = {}
        self._evaluated = None  # (state, evaluate_three_ways of it): not evaluated twice

    # ------------------------------------------------------------ state
    def _state_from_model(self):
        import jax.numpy as jnp

        # Copies: the compiled steps donate their inputs, which must not be the buffers
        # the Keras variables hold.
        m, o = self.model, self.optimizer
        return ([jnp.array(v.value, copy=True) for v in m.trainable_variables],
                [jnp.array(v.value, copy=True) for v in m.non_trainable_variables],
                [jnp.array(v.value, copy=True) for v in o.variables])

    def write_back(self, state=None) -> None:
        """Put a state's values into the Keras model and optimizer (for saving)."""
        tv, ntv, ov = state or self.state
        m, o = self.model, self.optimizer
        for var_list, values in ((m.trainable_variables, tv), (m.non_trainable_variables, ntv),
                                 (o.variables, ov)):
            for v, value in zip(var_list, values):
                v.assign(np.asarray(value))

    def set_learning_rate(self, value: float) -> None:
        import jax.numpy as jnp

        tv, ntv, ov = self.state
        ov = list(ov)
        i = self.layout.learning_rate
        ov[i] = jnp.asarray(value, ov[i].dtype)
        self.state = (tv, ntv, ov)

    def _with_seed_states(self, ntv, values):
        import jax.numpy as jnp

        ntv = list(ntv)
        for pos, value in zip(self.layout.seed_states, values):
            ntv[pos] = jnp.asarray(value, ntv[pos].dtype)
        return ntv

    def seed_epoch(self, epoch: int) -> None:
        """Dropout draws of epoch ``epoch`` as in the ``fit`` path.

        The seed states come from ``epoch_seed_states`` (:func:`laperm.run.train.epoch_seed_states`).
        """
        if not self.layout.seed_states:
            return
        tv, ntv, ov = self.state
        values = self._epoch_seed_states(self.config.seed, epoch, len(self.layout.seed_states))
        self.state = (tv, self._with_seed_states(ntv, values), ov)

    # --------------------------------------------------------- the maths
    def _eval_batches(self, x, y):
        import jax.numpy as jnp

        n = int(x.shape[0])
        # the fewest batches of at most EVAL_BATCH, of equal size: a set of 200 is one batch
        # of 200 (not 500 with 300 padded), 1200 is three of 400; 5000 and 10000: of 500
        batches = max(math.ceil(n / EVAL_BATCH), 1)
        size = max(math.ceil(n / batches), 1)
        pad = batches * size - n
        mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
        if pad:
            x = jnp.concatenate([x, jnp.zeros((pad,) + tuple(x.shape[1:]), x.dtype)])
            y = jnp.concatenate([y, jnp.zeros((pad,), y.dtype)])
        shape = (batches, size)
        return (x.reshape(shape + tuple(x.shape[1:])), y.reshape(shape),
                jnp.asarray(mask.reshape(shape)), n)

    def _preprocess(self, images):
        import jax.numpy as jnp

        return (images.astype(jnp.float32) - self.center) / self.scale

    def _augment(self, images, key):
        import jax

        for i, layer in enumerate(self.aug_layers):
            seeds = _FoldInSeeds(jax.random.fold_in(key, i))
            transform = layer.get_random_transformation(images, training=True, seed=seeds)
            images = layer.transform_images(images, transform, training=True)
        return images

    def _losses(self, tv, ntv, x, y, training):
        """Per-sample cross-entropy, correctness, the new non-trainable values and the
        model's own losses (regularisers), as Keras's trainer computes them."""
        import jax.numpy as jnp
        import keras

        probs, ntv, losses = self.model.stateless_call(tv, ntv, x, training=training,
                                                       return_losses=True)
        probs = probs.astype(jnp.float32)
        per_sample = keras.losses.sparse_categorical_crossentropy(y, probs)
        correct = (jnp.argmax(probs, axis=-1) == y).astype(jnp.float32)
        extra = sum((jnp.sum(loss.astype(jnp.float32)) for loss in losses), jnp.float32(0.0))
        return per_sample, correct, ntv, extra

    def _train_step(self, state, data, epoch_key, order, step, batch_len: int):
        """One step on the batch ``order[step * B : step * B + batch_len]`` (traced)."""
        import jax
        import jax.numpy as jnp

        tv, ntv, ov, sums = state
        x_all, y_all = data
        idx = jax.lax.dynamic_slice_in_dim(order, step * self.config.batch_size, batch_len)
        x = self._preprocess(x_all[idx])
        if self.aug_layers:
            x = self._augment(x, jax.random.fold_in(epoch_key, step))
        y = y_all[idx]
        x, y = self._shard_batch(x), self._shard_batch(y)

        def loss_fn(tv):
            per_sample, correct, new_ntv, extra = self._losses(tv, ntv, x, y, training=True)
            loss = jnp.mean(per_sample) + extra  # Keras: the batch mean plus the regularisers
            return loss, (new_ntv, jnp.sum(correct))

        (loss, (ntv, correct)), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv)
        tv, ov = self.optimizer.stateless_apply(ov, grads, tv)
        # fit logs the mean of the batch losses weighted by the batch sizes
        return (tv, ntv, ov, sums + jnp.stack([loss * batch_len, correct])), None

    def _shard_batch(self, x):
        """``x`` split over the devices along its first axis (when it divides; traced)."""
        if self.mesh is None or x.shape[0] % self.mesh.size:
            return x
        import jax

        spec = jax.sharding.PartitionSpec("batch", *([None] * (x.ndim - 1)))
        return jax.lax.with_sharding_constraint(x, jax.sharding.NamedSharding(self.mesh, spec))

    def _compiled_steps(self, n_steps: int, batch_len: int):
        """A jitted function running ``n_steps`` steps of ``batch_len`` images from step ``first``.

        The data are arguments, not constants of the program (a constant would
        be copied into every compiled program).
        """
        key = ("train", n_steps, batch_len)
        if key not in self._jit:
            import jax

            def run_steps(tv, ntv, ov, sums, data, epoch_key, order, first):
                def body(state, i):
                    return self._train_step(state, data, epoch_key, order, first + i, batch_len)

                if n_steps == 1:
                    state, _ = body((tv, ntv, ov, sums), 0)
                else:
                    state, _ = jax.lax.scan(body, (tv, ntv, ov, sums),
                                            jax.numpy.arange(n_steps))
                return state

            self._jit[key] = jax.jit(run_steps, donate_argnums=(0, 1, 2, 3))
        return self._jit[key]

    def _precision(self):
        import jax

        return jax.default_matmul_precision(
            "highest" if self.matmul_precision == "highest" else None)

    # ------------------------------------------------------------ an epoch
    def train_epoch(self, epoch: int, on_steps=None) -> dict:
        """Train epoch ``epoch`` (from 0); returns its mean loss and accuracy, as ``fit`` logs them.

        Args:
            epoch: the epoch, counted from 0.
            on_steps: called with the number of steps after every call (a progress bar).
        """
        sums = self.run_steps(epoch, 0, self.steps_per_epoch, on_steps=on_steps)
        loss_sum, correct = (float(v) for v in np.asarray(sums))
        return {"loss": loss_sum / self.n_train, "accuracy": correct / self.n_train}

    def run_steps(self, epoch: int, first: int, count: int, on_steps=None):
        """Steps ``first .. first + count - 1`` of epoch ``epoch``, ``steps_per_call`` per call.

        Returns:
            The device array ``[sum of batch losses x batch sizes, correct predictions]``.
        """
        import jax
        import jax.numpy as jnp

        batch = self.config.batch_size
        order = jnp.asarray(epoch_order(self.n_train, self.config.seed, epoch).astype(np.int32))
        epoch_key = jax.random.fold_in(jax.random.PRNGKey(self.config.seed), epoch)
        tv, ntv, ov = self.state
        self._evaluated = None  # its judged values are not kept on the device while training
        sums = jnp.zeros(2, jnp.float32)
        step, end = int(first), int(first) + int(count)
        with self._precision():
            while step < end:
                if step < self.full_steps:
                    n, size = min(self.steps_per_call, self.full_steps - step, end - step), batch
                else:  # the last, partial batch: its own shape
                    n, size = 1, self.remainder
                tv, ntv, ov, sums = self._compiled_steps(n, size)(
                    tv, ntv, ov, sums, self.train_data, epoch_key, order, jnp.int32(step))
                step += n
                self.round_trips += 1
                if on_steps is not None:
                    on_steps(n)
        self.state = (tv, ntv, ov)
        return sums

    def step_flops(self) -> float | None:
        """XLA's count of floating-point operations in one training step (None if unknown)."""
        import jax
        import jax.numpy as jnp

        fn = self._compiled_steps(1, self.config.batch_size)
        tv, ntv, ov = self.state
        order = jnp.zeros(max(self.n_train, self.config.batch_size), jnp.int32)
        try:
            cost = fn.lower(tv, ntv, ov, jnp.zeros(2, jnp.float32), self.train_data,
                            jax.random.PRNGKey(0), order, jnp.int32(0)).compile().cost_analysis()
        except Exception:  # noqa: BLE001 - a count is a bonus, never a failure
            return None
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        flops = (cost or {}).get("flops")
        return float(flops) if flops else None

    # ---------------------------------------------------------- evaluation
    @property
    def _loop_on_host(self) -> bool:
        """One step per call: evaluation and re-estimation batches are host loops too.

        (XLA on a CPU runs convolutions much slower inside a scan.)
        """
        return self.steps_per_call == 1

    def _evaluate_fn(self):
        if "eval" not in self._jit:
            import jax
            import jax.numpy as jnp

            def one(tv, ntv, xb, yb, mb):
                xb, yb, mb = self._shard_batch(xb), self._shard_batch(yb), self._shard_batch(mb)
                per_sample, correct, _, extra = self._losses(
                    tv, ntv, self._preprocess(xb), yb, training=False)
                n_b = jnp.sum(mb)  # evaluate: batch means plus regularisers, by batch size
                return jnp.stack([jnp.sum(per_sample * mb) + extra * n_b, jnp.sum(correct * mb)])

            def evaluate(tv, ntv, x, y, mask):
                def body(carry, batch):
                    return carry + one(tv, ntv, *batch), None

                sums, _ = jax.lax.scan(body, jnp.zeros(2, jnp.float32), (x, y, mask))
                return sums

            self._jit["eval"] = jax.jit(evaluate)
            self._jit["eval_batch"] = jax.jit(one)
        return self._jit["eval"]

    def evaluate(self, tv, ntv, split: str) -> tuple[float, float]:
        """``(loss, accuracy)`` on ``"val"`` or ``"test"``, as ``model.evaluate`` gives them."""
        x, y, mask, n = self.eval_sets[split]
        with self._precision():
            scan = self._evaluate_fn()
            if self._loop_on_host:
                one = self._jit["eval_batch"]
                sums = sum(np.asarray(one(tv, ntv, x[i], y[i], mask[i]), np.float64)
                           for i in range(x.shape[0]))
                self.round_trips += int(x.shape[0])
            else:
                sums = np.asarray(scan(tv, ntv, x, y, mask))
                self.round_trips += 1
        return float(sums[0]) / n, float(sums[1]) / n

    def synchronised(self, tv, ov):
        """The trainable values with every permuted vector synced (no state changes)."""
        if "sync" not in self._jit:
            import jax

            lay = self.layout

            def sync(tv, ov):
                tv = list(tv)
                for i, j in zip(lay.permuted, lay.sorted0):
                    tv[i] = lops.permute_to_ranks(tv[i], ov[j])
                return tv

            self._jit["sync"] = jax.jit(sync)
        return self._jit["sync"](tv, ov)

    def recalibrated(self, tv, ntv):
        """BatchNorm statistics re-estimated for ``tv``, as :func:`laperm.method.batchnorm.recalibrate_batchnorm`.

        The same batches of the same training images, the same dropout seeds
        and the same exact average (momentum ``i / (i + 1)`` at batch ``i``);
        the seed states come back as they were.
        """
        if "bn" not in self._jit:
            import jax
            import jax.numpy as jnp

            seed = int(self.config.seed)
            n_states = len(self.layout.seed_states)
            states = [np.array([seed * 7919 + i, 1]) for i in range(n_states)]

            def one(ntv, momentum, idx, tv, x_all):
                kept = [layer.momentum for layer in self.layout.batchnorm]
                for layer in self.layout.batchnorm:
                    object.__setattr__(layer, "momentum", momentum)
                try:
                    _, ntv = self.model.stateless_call(
                        tv, ntv, self._shard_batch(self._preprocess(x_all[idx])), training=True)
                finally:
                    for layer, m in zip(self.layout.batchnorm, kept):
                        object.__setattr__(layer, "momentum", m)
                return ntv

            def recalibrate(tv, ntv, x_all, bn_index):
                count = bn_index.shape[0]
                ntv, _ = jax.lax.scan(
                    lambda ntv, inputs: (one(ntv, *inputs, tv, x_all), None), ntv,
                    (jnp.asarray(_momenta(count)), bn_index))
                return ntv

            self._jit["bn"] = jax.jit(recalibrate)
            self._jit["bn_batch"] = jax.jit(one)
            self._bn_seed_states = states
        saved = [ntv[p] for p in self.layout.seed_states]
        ntv = self._with_seed_states(ntv, self._bn_seed_states)
        with self._precision():
            if self._loop_on_host:
                x_all = self.train_data[0]
                for i, momentum in enumerate(_momenta(int(self.bn_index.shape[0]))):
                    ntv = self._jit["bn_batch"](ntv, momentum, self.bn_index[i], tv, x_all)
                self.round_trips += int(self.bn_index.shape[0])
            else:
                ntv = self._jit["bn"](tv, ntv, self.train_data[0], self.bn_index)
                self.round_trips += 1
        return self._with_seed_states(ntv, saved)

    def evaluate_three_ways(self) -> tuple[dict, tuple]:
        """One epoch's evaluations, as :func:`laperm.run.evaluation.evaluate_three_ways` makes them.

        Returns:
            ``(scores, judged)``: the scores (``val``/``test`` as ``(loss,
            accuracy)``, ``test_unsynced``, ``val_stale_bn``, ``test_stale_bn``,
            ``bn_seconds``) and the ``(trainable, non-trainable)`` values that
            were judged (for the best weights).  A state evaluated already (the
            final evaluation after the last epoch's) is not evaluated again.
        """
        import jax

        if self._evaluated is not None and self._evaluated[0] is self.state:
            scores, judged = self._evaluated[1]
            return dict(scores), judged
        evaluated = self.state
        nan = float("nan")
        out = {"test_unsynced": nan, "val_stale_bn": nan, "test_stale_bn": nan,
               "bn_seconds": nan}
        tv, ntv, ov = self.state
        if self.laperm is not None:
            self.check_finite()
            out["test_unsynced"] = self.evaluate(tv, ntv, "test")[1]
            tv = self.synchronised(tv, ov)
            if self.bn_index is not None:
                out["val_stale_bn"] = self.evaluate(tv, ntv, "val")[1]
                out["test_stale_bn"] = self.evaluate(tv, ntv, "test")[1]
                t0 = time.perf_counter()
                ntv = jax.block_until_ready(self.recalibrated(tv, ntv))
                out["bn_seconds"] = time.perf_counter() - t0
        out["val"] = self.evaluate(tv, ntv, "val")
        out["test"] = self.evaluate(tv, ntv, "test")
        self._evaluated = (evaluated, (dict(out), (tv, ntv)))
        return out, (tv, ntv)

    def adam_recalibrated_test(self):
        """Test accuracy of an Adam run with re-estimated BatchNorm statistics (None without BN)."""
        if self.laperm is not None or self.bn_index is None:
            return None
        tv, ntv, _ = self.state
        return self.evaluate(tv, self.recalibrated(tv, ntv), "test")[1]

    def check_finite(self) -> None:
        """Raise LaPerm's :class:`~laperm.method.optimizer.NonFiniteWeightsError` if a sync met NaN/inf."""
        if self.laperm is None:
            return
        index = int(np.asarray(self.state[2][self.layout.nonfinite_index]))
        if index >= 0:
            self.write_back()
            self.laperm.check_finite_sync()

    def sync_count(self) -> int:
        if self.laperm is None:
            return 0
        ov = self.state[2]
        pos = [i for i, v in enumerate(self.optimizer.variables) if v is self.laperm._sync_count]
        return int(np.asarray(ov[pos[0]]))

    def learning_rate(self) -> float:
        return float(np.asarray(self.state[2][self.layout.learning_rate]))

    def description(self) -> dict:
        """What a record says of the engine."""
        import jax

        device = jax.devices()[0]
        return {"engine": "device", "steps_per_call": self.steps_per_call,
                "engine_devices": 1 if self.mesh is None else int(self.mesh.size),
                "matmul_precision": ("highest (full float32)" if self.matmul_precision == "highest"
                                     else "default (TF32 on NVIDIA GPUs)"),
                "jax_device": f"{device.platform}:{getattr(device, 'device_kind', '')}"}


def _momenta(count: int) -> np.ndarray:
    """``i / (i + 1)`` for batch ``i``, rounded to float32 as the ``fit`` path's variable holds it.

    With this momentum, Keras's ``moving = moving * m + batch * (1 - m)`` makes the
    moving statistics the exact mean of the batch statistics seen so far.
    """
    return np.array([i / (i + 1) for i in range(count)], np.float32)


def device_mesh(devices, batch_size: int):
    """A one-axis mesh (``"batch"``) over the first ``devices`` devices, or None for one."""
    if devices is None or devices == 1:
        return None
    import jax

    there = jax.devices()
    if isinstance(devices, bool) or not isinstance(devices, (int, np.integer)) or devices < 1:
        raise EngineError(f"devices must be a positive integer; received {devices!r}.")
    if devices > len(there):
        raise EngineError(f"{devices} devices asked for, {len(there)} present "
                          f"({there[0].platform}).")
    if batch_size % devices:
        raise EngineError(f"the batch of {batch_size} images does not split over {devices} "
                          "devices; choose a number of devices that divides it.")
    return jax.sharding.Mesh(np.array(there[:devices]), ("batch",))


class _FoldInSeeds:
    """A stand-in for a layer's ``SeedGenerator``: draw ``i`` gets ``fold_in(key, i)``.

    Keras's random image layers draw several numbers from one seed argument
    (RandomTranslation: height, then width); a fixed key would make those draws
    equal.  Like the ``fit`` path's stateless seeds (:mod:`laperm.data`), each
    draw gets its own key, a pure function of the key given.
    """

    def __new__(cls, key):
        from keras.src.random.seed_generator import SeedGenerator

        stand_in = _stand_in_class(SeedGenerator)
        obj = SeedGenerator.__new__(stand_in)
        obj._key, obj._count = key, 0
        return obj


@functools.cache
def _stand_in_class(seed_generator):
    def next_key(self, ordered=True):
        import jax

        del ordered
        self._count += 1
        return jax.random.fold_in(self._key, self._count)

    return type("FoldInSeedGenerator", (seed_generator,), {"__init__": lambda self: None,
                                                            "next": next_key})
