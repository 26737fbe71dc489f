"""laperm.torch: LaPerm as a torch.optim.Optimizer (Section 4), without Keras.

Runs in the torch tier (scripts/test_torch.sh), whose environment has torch and
Keras on the torch backend, so the same scenario is compared with
laperm.LaPerm (Keras) there and with the NumPy reference of
tests/sync_reference.py everywhere.  Skipped where torch is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import laperm.torch as lt  # noqa: E402
from laperm.exceptions import LaPermStateError, NonFiniteWeightsError  # noqa: E402

import sync_reference as ref  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ helpers
def small_cnn(seed=0, bn=True):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(1, 4, 3), nn.ReLU()]
    if bn:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.Flatten(), nn.Linear(4 * 6 * 6, 8), nn.ReLU(), nn.Linear(8, 3)]
    return nn.Sequential(*layers)


def conv1d_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(2, 3, 5), nn.ReLU(), nn.BatchNorm1d(3), nn.Flatten(),
                         nn.Linear(3 * 8, 3))


def batches(shape, n=6, seed=0, classes=3):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, *shape, generator=g), torch.randint(0, classes, (8,), generator=g))
            for _ in range(n)]


def train(model, opt, data, on_step=None):
    loss_fn = nn.CrossEntropyLoss()
    for i, (x, y) in enumerate(data):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        if on_step is not None:
            on_step(i + 1)


def vectors_sorted(p):
    return torch.sort(lt.to_rows(p.detach()), dim=-1).values


def assert_permutation_of_theta0(opt, theta0):
    for p in opt.permuted_params:
        assert torch.equal(vectors_sorted(p), vectors_sorted(theta0[id(p)])), opt.param_name(p)


# -------------------------------------------------------- imports, layout
def test_imports_and_trains_without_keras_or_tensorflow():
    code = textwrap.dedent("""
        import sys
        for name in ("keras", "tensorflow", "jax"):
            sys.modules[name] = None  # `import keras` raises ImportError from here on
        import torch, laperm, laperm.torch
        model = torch.nn.Linear(4, 3)
        opt = laperm.torch.LaPerm(torch.optim.Adam(model.parameters(), 1e-2), sync_period=2)
        for _ in range(4):
            opt.zero_grad(); model(torch.ones(2, 4)).sum().backward(); opt.step()
        assert opt.sync_count == 2
        try:
            laperm.LaPerm
        except ImportError as exc:
            print("KERAS-NAME:", exc)
        print("OK", laperm.NonFiniteWeightsError is laperm.torch.NonFiniteWeightsError)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[-1] == "OK True"
    assert 'needs Keras, which is not installed: pip install "laperm[cpu]"' in lines[0]


@pytest.mark.parametrize("shape", [(5,), (4, 7), (3, 2, 5), (3, 2, 4, 5), (2, 3, 2, 2, 2)])
def test_rows_feed_one_output_unit_in_the_order_of_the_keras_kernel(shape):
    w = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)
    rows = lt.to_rows(w)
    assert torch.equal(lt.from_rows(rows, shape), w)
    if len(shape) >= 2:
        keras_kernel = ref.keras_layout("", w.numpy()) if len(shape) in (2, 4) else None
        assert rows.shape == (shape[0], int(np.prod(shape[1:])))
        assert torch.equal(rows[1].sort().values, w[1].flatten().sort().values)
        if keras_kernel is not None:  # row j == column j of the Keras kernel, in order
            assert np.array_equal(rows.numpy(), ref.rows(keras_kernel))


def test_sorted_theta0_is_taken_at_construction_on_the_parameter_device():
    model = small_cnn()
    before = {id(p): p.detach().clone() for p in model.parameters()}
    opt = lt.LaPerm(torch.optim.SGD(model.parameters(), 0.1), sync_period=5)
    assert [tuple(s.shape) for s in opt.sorted_initial_values] == [(4, 9), (8, 144), (3, 8)]
    for p, s in zip(opt.permuted_params, opt.sorted_initial_values):
        assert s.device == p.device and s.dtype == p.dtype
        assert torch.equal(s, vectors_sorted(before[id(p)]))


# ---------------------------------------------- the same values everywhere
def _torch_scenario_run(theta0, grads):
    params = {n: nn.Parameter(torch.tensor(ref.torch_layout(n, w))) for n, w in theta0.items()}
    opt = lt.LaPerm(torch.optim.SGD(list(params.values()), lr=ref.LEARNING_RATE),
                    sync_period=ref.SYNC_PERIOD)
    after = []
    for step in range(ref.STEPS):
        for n, p in params.items():
            p.grad = torch.tensor(ref.torch_layout(n, grads[n][step]))
        opt.step()
        if opt.steps_since_sync == 0:
            after.append({n: ref.keras_layout(n, p.detach().numpy()) for n, p in params.items()})
    return after


def test_the_scenario_meets_ties_between_different_initial_values():
    theta0, grads = ref.scenario()
    assert ref.ties_met(theta0, grads) > 10
    assert ref.is_exact([v for run in ref.reference_run(theta0, grads) for v in run.values()])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_values_as_the_numpy_reference_after_every_sync(seed):
    theta0, grads = ref.scenario(seed)
    expected = ref.reference_run(theta0, grads)
    got = _torch_scenario_run(theta0, grads)
    assert len(got) == len(expected) == ref.STEPS // ref.SYNC_PERIOD
    for g, e in zip(got, expected):
        for name in e:
            np.testing.assert_array_equal(g[name], e[name], err_msg=name)


def test_same_values_as_the_keras_laperm_after_every_sync():
    """laperm.LaPerm (Keras, here on the torch backend) and laperm.torch.LaPerm, same
    weights, same gradients: equal after every sync, ties and zeros included."""
    pytest.importorskip("keras")
    theta0, grads = ref.scenario(3)
    keras_after = ref.keras_run(theta0, grads)
    torch_after = _torch_scenario_run(theta0, grads)
    for k, t in zip(keras_after, torch_after, strict=True):
        for name in ref.SHAPES:
            np.testing.assert_array_equal(t[name], k[name], err_msg=name)


def test_step_and_sync_order_match_a_hand_written_loop_with_adam():
    """Adam's real (rounding) arithmetic: the wrapper equals Adam plus a sync by hand."""
    model_a, model_b = small_cnn(1), small_cnn(1)
    theta0 = [p.detach().clone() for p in model_b.parameters()]
    opt_a = lt.LaPerm(torch.optim.Adam(model_a.parameters(), 1e-2), sync_period=4)
    opt_b = torch.optim.Adam(model_b.parameters(), 1e-2)
    data = batches((1, 8, 8), n=10, seed=3)

    def sync_b(step):
        if step % 4 == 0:
            with torch.no_grad():
                for p, p0 in zip(model_b.parameters(), theta0):
                    if p.ndim >= 2:
                        w = ref.keras_layout("", p.numpy())
                        p.copy_(torch.tensor(ref.torch_layout(
                            "", ref.reference_sync(w, ref.keras_layout("", p0.numpy())))))

    train(model_a, opt_a, data)
    train(model_b, opt_b, data, on_step=sync_b)
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)
    assert opt_a.sync_count == 2 and opt_a.steps_since_sync == 2


# ------------------------------------------------------------ invariant
@pytest.mark.parametrize("make, shape", [(small_cnn, (1, 8, 8)), (conv1d_net, (2, 12))],
                         ids=["linear+conv2d", "conv1d"])
def test_permutation_of_theta0_after_every_sync(make, shape):
    model = make()
    theta0 = {id(p): p.detach().clone() for p in model.parameters()}
    opt = lt.LaPerm(torch.optim.Adam(model.parameters(), 5e-2), sync_period=3)
    assert {p.ndim for p in opt.permuted_params} == ({2, 4} if make is small_cnn else {2, 3})
    checked = []

    def check(step):
        if step % 3 == 0:
            assert_permutation_of_theta0(opt, theta0)
            checked.append(step)
        else:  # between syncs Adam moves the weights off theta_0's values
            assert not all(torch.equal(vectors_sorted(p), vectors_sorted(theta0[id(p)]))
                           for p in opt.permuted_params)

    train(model, opt, batches(shape, n=9), on_step=check)
    assert checked == [3, 6, 9] and opt.sync_count == 3


def test_pruned_model_keeps_its_zeros_in_every_vector():
    model = small_cnn(bn=False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.mul_((torch.rand(p.shape, generator=g) > 0.5).float())
    zeros = {id(p): (lt.to_rows(p) == 0).sum(-1) for p in model.parameters() if p.ndim >= 2}
    theta0 = {id(p): p.detach().clone() for p in model.parameters()}
    opt = lt.LaPerm(torch.optim.Adam(model.parameters(), 5e-2), sync_period=2)
    train(model, opt, batches((1, 8, 8), n=6))
    assert opt.sync_count == 3
    assert_permutation_of_theta0(opt, theta0)
    for p in opt.permuted_params:
        assert torch.equal((lt.to_rows(p) == 0).sum(-1), zeros[id(p)])


def test_shared_value_model_holds_exactly_two_values():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 16, bias=False), nn.ReLU(),
                          nn.Linear(16, 3, bias=False))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.08 * (torch.rand(p.shape) < 0.3).float())
    theta0 = {id(p): p.detach().clone() for p in model.parameters()}
    opt = lt.LaPerm(torch.optim.Adam(model.parameters(), 1e-2), sync_period=2)
    train(model, opt, batches((1, 6, 6), n=4))
    assert_permutation_of_theta0(opt, theta0)
    v = float(torch.tensor(0.08))
    for p in model.parameters():
        assert set(torch.unique(p).tolist()) == {0.0, v}


def test_biases_and_norms_are_left_to_the_inner_optimizer_by_default():
    model_a, model_b = small_cnn(2), small_cnn(2)
    opt_a = lt.LaPerm(torch.optim.Adam(model_a.parameters(), 5e-2), sync_period=3)
    opt_b = torch.optim.Adam(model_b.parameters(), 5e-2)
    data = batches((1, 8, 8), n=3)
    train(model_a, opt_a, data)
    train(model_b, opt_b, data)
    assert opt_a.sync_count == 1
    for (name, a), b in zip(model_a.named_parameters(), model_b.parameters()):
        # the first sync changed every kernel and nothing else
        assert torch.equal(a, b) == (a.ndim == 1), name


def test_skip_flags_tell_biases_from_norms_with_the_model():
    model = small_cnn()
    opt = lt.LaPerm(torch.optim.Adam(model.parameters()), skip_bias=False, model=model)
    names = [opt.param_name(p) for p in opt.permuted_params]
    assert names == ["0.weight", "0.bias", "4.weight", "4.bias", "6.weight", "6.bias"]
    opt = lt.LaPerm(torch.optim.Adam(model.parameters()), skip_norm=False, model=model)
    assert [opt.param_name(p) for p in opt.permuted_params] == [
        "0.weight", "2.weight", "2.bias", "4.weight", "6.weight"]
    opt = lt.LaPerm(torch.optim.Adam(model.parameters()), skip_bias=False, skip_norm=False)
    assert len(opt.permuted_params) == 8
    with pytest.raises(ValueError, match="bias or a normalisation parameter.*model="):
        lt.LaPerm(torch.optim.Adam(model.parameters()), skip_bias=False)


def test_exclude_by_module_parameter_or_name():
    model = small_cnn()
    named = torch.optim.Adam(model.named_parameters())
    assert [lt.LaPerm(named, exclude=["6."]).param_name(p)
            for p in lt.LaPerm(named, exclude=["6."]).permuted_params] == ["0.weight", "4.weight"]
    opt = lt.LaPerm(torch.optim.Adam(model.parameters()), exclude=[model[0], model[6].weight])
    assert [id(p) for p in opt.permuted_params] == [id(model[4].weight)]
    with pytest.raises(ValueError, match="names are unknown"):
        lt.LaPerm(torch.optim.Adam(model.parameters()), exclude=["6."])


# -------------------------------------------------- torch's machinery
def test_param_groups_and_state_are_the_inner_optimizers():
    model = small_cnn()
    inner = torch.optim.Adam(model.parameters(), 1e-2)
    opt = lt.LaPerm(inner, sync_period=2)
    assert opt.param_groups is inner.param_groups and opt.state is inner.state
    train(model, opt, batches((1, 8, 8), n=1))
    assert len(inner.state) == len(list(model.parameters()))
    opt.param_groups[0]["lr"] = 0.5
    assert inner.param_groups[0]["lr"] == 0.5


def test_an_lr_scheduler_drives_the_inner_learning_rate_without_warnings():
    model = small_cnn()
    opt = lt.LaPerm(torch.optim.Adam(model.parameters(), 1e-2), sync_period=2)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x, y in batches((1, 8, 8), n=6):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            scheduler.step()
            seen.append(opt.inner_optimizer.param_groups[0]["lr"])
    assert seen == pytest.approx([1e-2, 5e-3, 5e-3, 2.5e-3, 2.5e-3, 1.25e-3])
    assert opt.sync_count == 3


def test_autocast_training_keeps_the_invariant():
    model = small_cnn()
    theta0 = {id(p): p.detach().clone() for p in model.parameters()}
    opt = lt.LaPerm(torch.optim.Adam(model.parameters(), 5e-2), sync_period=2)
    for x, y in batches((1, 8, 8), n=4):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert opt.sync_count == 2
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert_permutation_of_theta0(opt, theta0)


def test_a_closure_is_passed_to_the_inner_step():
    model = small_cnn()
    opt = lt.LaPerm(torch.optim.LBFGS(model.parameters(), max_iter=2), sync_period=1)
    x, y = batches((1, 8, 8), n=1)[0]

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    assert torch.is_tensor(opt.step(closure)) and opt.sync_count == 1


def test_synchronised_context_evaluates_synced_weights_and_restores_the_current_ones():
    model = small_cnn()
    theta0 = {id(p): p.detach().clone() for p in model.parameters()}
    opt = lt.LaPerm(torch.optim.Adam(model.parameters(), 5e-2), sync_period=100)
    train(model, opt, batches((1, 8, 8), n=3))
    current = [p.detach().clone() for p in model.parameters()]
    expected = opt.synced_values()
    with opt.synchronised():
        assert_permutation_of_theta0(opt, theta0)
        for p, e in zip(opt.permuted_params, expected):
            assert torch.equal(p, e)
    for p, c in zip(model.parameters(), current):
        assert torch.equal(p, c)
    assert opt.sync_count == 0 and opt.steps_since_sync == 3


def test_add_param_group_takes_theta0_of_the_new_parameters():
    model = small_cnn()
    head = nn.Linear(3, 2)
    opt = lt.LaPerm(torch.optim.Adam(model.parameters(), 1e-2), sync_period=1)
    opt.add_param_group({"params": head.parameters(), "lr": 1e-3})
    assert opt.permuted_params[-1] is head.weight
    assert opt.inner_optimizer.param_groups[-1]["lr"] == 1e-3


# ---------------------------------------------------------- NaN / inf
def test_a_sync_that_meets_nan_raises_and_is_not_counted():
    model = small_cnn()
    opt = lt.LaPerm(torch.optim.SGD(model.parameters(), 0.0), sync_period=2, model=model)
    train(model, opt, batches((1, 8, 8), n=1))
    with torch.no_grad():
        model[4].weight[2, 5] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    with pytest.raises(NonFiniteWeightsError, match=r"'4.weight' at the sync after step 2"):
        opt.step()
    assert opt.sync_count == 0 and opt.steps_since_sync == 2
    for p, b in zip(model.parameters(), before):
        assert torch.equal(torch.nan_to_num(p), torch.nan_to_num(b))
    with pytest.raises(NonFiniteWeightsError):
        with opt.synchronised():
            pass


# ----------------------------------------------------------- save/resume
RESUME_SCRIPT = """
import sys, torch, laperm.torch as lt
torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.BatchNorm2d(4),
                               torch.nn.Flatten(), torch.nn.Linear(144, 3))
g = torch.Generator().manual_seed(1)
data = [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g))
        for _ in range(11)]
def run(model, opt, sched, steps):
    for x, y in steps:
        opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step(); sched.step()
mode, path = sys.argv[1], sys.argv[2]
model = build()
opt = lt.LaPerm(torch.optim.Adam(model.parameters(), 1e-2), sync_period=4)
sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)
if mode == "all":
    run(model, opt, sched, data)
elif mode == "first":
    run(model, opt, sched, data[:6])
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict()}, path + ".ckpt")
else:
    ck = torch.load(path + ".ckpt", weights_only=True)
    model.load_state_dict(ck["model"])
    opt = lt.LaPerm(torch.optim.Adam(model.parameters(), 1e-2), sync_period=4)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)
    opt.load_state_dict(ck["opt"]); sched.load_state_dict(ck["sched"])
    assert (opt.steps_since_sync, opt.sync_count) == (2, 1)
    run(model, opt, sched, data[6:])
torch.save({k: v for k, v in model.state_dict().items()}, path + "." + mode)
print(opt.sync_count)
"""


def test_a_run_resumed_mid_period_in_a_fresh_process_reaches_the_same_weights(tmp_path):
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    out = {}
    for mode in ("all", "first", "rest"):
        proc = subprocess.run([sys.executable, str(script), mode, str(tmp_path / "w")],
                              capture_output=True, text=True, cwd=REPO, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[mode] = proc.stdout.split()[-1]
    assert out == {"all": "2", "first": "1", "rest": "2"}
    whole = torch.load(tmp_path / "w.all", weights_only=True)
    resumed = torch.load(tmp_path / "w.rest", weights_only=True)
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name


def test_state_dict_round_trip_keeps_sorted_theta0_and_counters():
    model = small_cnn()
    opt = lt.LaPerm(torch.optim.Adam(model.parameters(), 1e-2), sync_period=3)
    train(model, opt, batches((1, 8, 8), n=4))
    state = opt.state_dict()
    other = lt.LaPerm(torch.optim.Adam(model.parameters(), 1e-2), sync_period=3)
    assert not all(torch.equal(a, b) for a, b in zip(other.sorted_initial_values,
                                                     opt.sorted_initial_values))
    other.load_state_dict(state)
    for a, b in zip(other.sorted_initial_values, opt.sorted_initial_values):
        assert torch.equal(a, b)
    assert (other.sync_count, other.steps_since_sync) == (1, 1)
    assert other.param_groups is other.inner_optimizer.param_groups


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad", [0, -3, 2.5, "3", True, None])
def test_a_bad_sync_period_is_one_value_error_naming_it(bad):
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="`sync_period` must be a positive integer"):
        lt.LaPerm(torch.optim.SGD(model.parameters(), 0.1), sync_period=bad)
    opt = lt.LaPerm(torch.optim.SGD(model.parameters(), 0.1), sync_period=2)
    with pytest.raises(ValueError, match="`sync_period`"):
        opt.sync_period = bad


@pytest.mark.parametrize("inner", ["adam", None, "parameters", "module"])
def test_an_inner_object_that_is_not_an_optimizer_is_one_type_error(inner):
    model = nn.Linear(3, 2)
    value = {"parameters": model.parameters(), "module": model}.get(inner, inner)
    with pytest.raises(TypeError, match="wraps a torch.optim.Optimizer"):
        lt.LaPerm(value, sync_period=2)


def test_a_state_dict_of_another_model_is_refused_with_one_error():
    opt = lt.LaPerm(torch.optim.Adam(small_cnn().parameters()), sync_period=3)
    train_state = lt.LaPerm(torch.optim.Adam(conv1d_net().parameters()), 3).state_dict()
    with pytest.raises(LaPermStateError, match="saved for 6 parameters of shapes"):
        opt.load_state_dict(train_state)
    with pytest.raises(LaPermStateError, match="no 'laperm' entry"):
        opt.load_state_dict(opt.inner_optimizer.state_dict())
    model = small_cnn()
    with pytest.raises(LaPermStateError, match="permutes parameters"):
        lt.LaPerm(torch.optim.Adam(model.parameters()), 3, exclude=[model[0]]).load_state_dict(
            opt.state_dict())
    assert issubclass(LaPermStateError, ValueError)


# ------------------------------------------------------------- BatchNorm
def _bn_net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(144, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize("n_batches", [None, 3])
def test_recalibrate_batchnorm_matches_torch_update_bn(n_batches):
    data = batches((1, 8, 8), n=5, seed=4)
    ours, theirs = _bn_net(5), _bn_net(5)
    for m in (ours, theirs):  # stale statistics, as after training
        train(m, torch.optim.SGD(m.parameters(), 0.1), data[:2])
        m.eval()
    used = lt.recalibrate_batchnorm(ours, data, batches=n_batches or 200)
    torch.optim.swa_utils.update_bn(data[:n_batches], theirs)
    assert used == (n_batches or len(data))
    assert not ours.training and ours[1].momentum == 0.1
    for (name, a), b in zip(ours.named_buffers(), theirs.buffers()):
        assert torch.equal(a, b), name


def test_recalibrated_batchnorm_puts_the_statistics_back():
    model = _bn_net(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with lt.recalibrated_batchnorm(model, batches((1, 8, 8), n=2), batches=2) as used:
        assert used == 2
        assert not torch.equal(model[1].running_mean, before["1.running_mean"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert lt.recalibrate_batchnorm(nn.Linear(2, 2), []) == 0
    with pytest.raises(ValueError, match="`batches` must be a positive integer"):
        lt.recalibrate_batchnorm(model, [], batches=0)
