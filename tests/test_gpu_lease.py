"""The GPU lease (``scripts/gpu/``) end to end on CPU under JAX, at a tiny scale.

A small CIFAR-shaped ``cifar10.npz`` written here is packed into two parts (as
``prepare.sh`` packs the real one), the first part is received in a "first
call" (``receive.sh``), and ``lease.py`` gets the second part carried in the
"last call", reassembles the data and trains Conv2 with LaPerm and Adam at once
(2 epochs of one step) under ``KERAS_BACKEND=jax JAX_PLATFORMS=cpu``, without installing
wheels (``--no-install``: Keras is importable here).  What lands in the output
folder is what a device call would return.  The bad inputs (a missing or
corrupt part, a missing wheel, no manifest) are one line each.  No TensorFlow
is needed: the runs use the JAX backend's ``PyDataset`` pipeline.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "scripts" / "gpu"
N_TRAIN, N_TEST = 5200, 100  # 5000 of the training images are the validation split


def _needs_jax():
    for module in ("jax", "keras"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")


def _module(name):
    sys.path.insert(0, str(GPU))
    try:
        spec = importlib.util.spec_from_file_location(f"gpu_{name}", GPU / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(GPU))


@pytest.fixture(scope="module")
def gpudata():
    return _module("gpudata")


@pytest.fixture(scope="module")
def packed(tmp_path_factory, gpudata):
    """A small cifar10.npz in two parts: ``call1/.gpu-data`` and ``call2/.gpu-data`` hold the
    manifest and one part each, as the two calls carry them."""
    base = tmp_path_factory.mktemp("lease")
    rng = np.random.default_rng(0)

    def images(n):  # smooth, CIFAR-shaped: compressible like photos, not like noise
        coarse = rng.integers(0, 256, size=(n, 8, 8, 3)).astype(np.float32)
        return np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2).astype(np.uint8)

    source = base / "cifar10.npz"
    np.savez_compressed(source, x_train=images(N_TRAIN),
                        y_train=(np.arange(N_TRAIN) % 10).astype(np.uint8)[:, None],
                        x_test=images(N_TEST), y_test=(np.arange(N_TEST) % 10).astype(np.uint8)[:, None])
    wheels = base / "wheels"
    wheels.mkdir()
    (wheels / "keras-0.0.0-py3-none-any.whl").write_bytes(b"not a real wheel")
    packdir = base / "packed"
    size = None
    for _ in range(2):  # the second time with the part size that gives two parts
        manifest = gpudata.pack(source, packdir, codec="xz", tree=0, wheels_dir=wheels, preset=1,
                                part_bytes=size, log=lambda s: None)
        size = manifest["payload"]["bytes"] // 2 + 1
    assert [p["index"] for p in manifest["parts"]] == [1, 2]
    calls = {}
    for i, part in enumerate(manifest["parts"], 1):
        carried = base / f"call{i}" / ".gpu-data"
        carried.mkdir(parents=True)
        (carried / "manifest.json").write_bytes((packdir / "manifest.json").read_bytes())
        (carried / part["name"]).write_bytes((packdir / part["name"]).read_bytes())
        calls[i] = carried
    return SimpleNamespace(base=base, source=source, manifest=manifest, calls=calls,
                           wheels=wheels, packdir=packdir)


def _env(home: Path, data: Path | None = None) -> dict:
    env = {**os.environ, "LAPERM_GPU_HOME": str(home), "PYTHON": sys.executable,
           "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("OUT", None)
    if data is not None:
        env["LAPERM_GPU_DATA"] = str(data)
    return env


def _receive(part, home, data):
    return subprocess.run(["bash", str(GPU / "receive.sh"), str(part)], check=False,
                          env=_env(home, data), capture_output=True, text=True, timeout=120)


def _lease(*args, home, data, out, wheels=None, timeout=900):
    cmd = [sys.executable, str(GPU / "lease.py"), "--data", str(data), "--home", str(home),
           "--out", str(out), *args]
    if wheels is not None:
        cmd += ["--wheels", str(wheels), "--site", str(home / "site")]
    return subprocess.run(cmd, check=False, env=_env(home), capture_output=True, text=True,
                          timeout=timeout)


def _one_error_line(proc, *fragments):
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_pack_is_lossless_and_fits(packed, gpudata, tmp_path):
    m = packed.manifest
    assert m["codec"] == "xz" and m["npz"]["bytes"] > N_TRAIN * 32 * 32 * 3  # uncompressed
    assert sum(p["bytes"] for p in m["parts"]) == m["payload"]["bytes"]
    assert m["wheels"][0]["name"] == "keras" and m["arrays"]["shapes"]["x_train"] == [N_TRAIN, 32, 32, 3]
    # every call of the plan carries the manifest, its part and the wheels; the last one runs
    calls = gpudata.call_plan(m)
    assert [c["carry"][1] for c in calls] == [f".gpu-data/{p['name']}" for p in m["parts"]]
    assert calls[0]["command"].startswith("bash scripts/gpu/receive.sh 1")
    assert calls[-1] == {"command": "bash scripts/gpu/run.sh", "timeout_s": 600,
                         "carry": [".gpu-data/manifest.json", f".gpu-data/{m['parts'][-1]['name']}",
                                   ".whl"]}
    # the real sizes: the fewest parts that fit 64 MiB with the tree and the wheels
    assert gpudata.plan_parts(100, 40) == [34, 34, 32]
    assert gpudata.plan_parts(100, 100) == [100]
    # reassembled, the arrays are the source's, bit for bit
    for i in (1, 2):
        (tmp_path / "d").mkdir(exist_ok=True)
        for f in packed.calls[i].iterdir():
            (tmp_path / "d" / f.name).write_bytes(f.read_bytes())
    npz = gpudata.assemble(tmp_path / "d", tmp_path / "home", log=lambda s: None)
    with np.load(npz) as a, np.load(packed.source) as b:
        for k in ("x_train", "y_train", "x_test", "y_test"):
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def test_bad_inputs_are_one_line(packed, tmp_path):
    home = tmp_path / "home"
    # receive: a part that was not carried
    _one_error_line(_receive(2, home, packed.calls[1]), "part 2 of 2", "missing")
    # receive: a corrupt part
    bad = tmp_path / "bad" / ".gpu-data"
    bad.mkdir(parents=True)
    for f in packed.calls[1].iterdir():
        data = bytearray(f.read_bytes())
        if f.name != "manifest.json":
            data[len(data) // 2] ^= 0xFF
        (bad / f.name).write_bytes(bytes(data))
    _one_error_line(_receive(1, home, bad), "part 1 of 2", "corrupt", "sha256")
    # the last call without part 1 from an earlier call
    out = tmp_path / "out"
    _one_error_line(_lease("--no-install", home=home, data=packed.calls[2], out=out),
                    "part 1 of 2", "missing", "given back between calls")
    # ... and with a corrupt part 1 carried
    for f in packed.calls[2].iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    _one_error_line(_lease("--no-install", home=home, data=bad, out=out), "part 1 of 2", "corrupt")
    # a wheel the manifest lists but the call did not carry (checked before the data)
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    _one_error_line(_lease(home=home, data=packed.calls[2], out=out, wheels=empty),
                    "carried wheel missing", "keras-0.0.0-py3-none-any.whl", "carry")
    # a damaged wheel
    damaged = tmp_path / "damaged-wheels"
    damaged.mkdir()
    (damaged / "keras-0.0.0-py3-none-any.whl").write_bytes(b"something else")
    _one_error_line(_lease(home=home, data=packed.calls[2], out=out, wheels=damaged),
                    "carried wheel damaged")
    # no manifest carried
    _one_error_line(_lease("--no-install", home=home, data=tmp_path / "nothing", out=out),
                    "manifest.json missing")
    assert "error: " in (out / "lease.log").read_text()


def test_lease_end_to_end_on_cpu(packed, tmp_path):
    """Two calls: receive part 1; then the lease, with part 2 carried, trains and reports."""
    _needs_jax()
    home, out = tmp_path / "home", tmp_path / "out"
    proc = _receive(1, home, packed.calls[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("received part 1 of 2") and "still to come: 2" in proc.stdout
    check = _lease("--check-only", "--no-install", home=home, data=packed.calls[1],
                   out=tmp_path / "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "check: keras" in check.stdout and "jax" in check.stdout
    assert "parts here [1] of 2" in check.stdout

    # the device engine, as the next lease runs it (the fit path ran on the H200 on 2026-12-04)
    proc = _lease("--no-install", "--experiments", "conv2", "--epochs", "2", "--train-fraction",
                  "0.25", "--budget-s", "900", "--flush-s", "5", "--engine", "device",
                  home=home, data=packed.calls[2], out=out)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "part 1 of 2 here from an earlier call" in proc.stdout
    assert "part 2 of 2 carried in this call" in proc.stdout

    # what comes back: at most 8 files, no folders, names of letters, digits, . _ -
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["progress.jsonl", "summary.json", "summary.md", "lease.log",
                            "runs.tar.gz"]), names
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) and (out / n).is_file() for n in names)

    rows = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert sorted((r["run"], r["epoch"]) for r in rows) == [
        ("conv2-adam", 1), ("conv2-adam", 2), ("conv2-laperm", 1), ("conv2-laperm", 2)]
    assert all(r["epoch_time_s"] > 0 and 0 <= r["val_accuracy"] <= 1 for r in rows)

    summary = json.loads((out / "summary.json").read_text())
    lease = summary["lease"]
    assert lease["final"] and lease["processes"] == 2 and lease["device"]["jax"]
    assert lease["date"] and lease["data"]["arrays_sha256"] == packed.manifest["arrays"]["sha256"]
    assert lease["scale"] == "epochs 2, train fraction 0.25"
    assert lease["env"]["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.450"
    for r in summary["runs"]:
        assert r["status"] == "finished" and r["epochs_done"] == 2, r
        assert r["steps_per_epoch"] == 1 and r["batch_size"] == 50  # 50 images of 200
        assert r["first_epoch_s"] > 0 and r["epoch_s_median_after_first"] > 0
        assert r["compile_s_est"] is not None and r["steps_per_s"] > 0 and r["images_per_s"] > 0
        assert r["startup_s"] is not None and r["est_paper_run_s"] > 0
        assert r["est_basis"] == "epochs of 1 step scaled to 4 (an upper bound)"
        assert r["paper_epochs"] == 125 and r["folder"] == f"conv2_{r['optimizer']}_s0_e2_f25"
    assert summary["estimate"]["paper_runs_worth_per_lease"] > 0
    md = (out / "summary.md").read_text()
    assert "| conv2-laperm | finished | 2/2 |" in md and "| conv2-adam | finished | 2/2 |" in md
    assert md.strip() in proc.stdout  # printed at the end too

    with tarfile.open(out / "runs.tar.gz") as tar:
        members = set(tar.getnames())
    for name in ("conv2_laperm_s0_e2_f25", "conv2_adam_s0_e2_f25"):
        for f in ("config.json", "history.csv", "result.json"):
            assert f"runs/{name}/{f}" in members, sorted(members)
    assert "runs/conv2-laperm.log" in members
    assert not any(m.endswith((".keras", ".h5")) for m in members)
    with tarfile.open(out / "runs.tar.gz") as tar:
        record = json.load(tar.extractfile("runs/conv2_laperm_s0_e2_f25/result.json"))
    assert record["engine"] == "device" and record["host_round_trips_per_epoch"] > 0

    # a cut run (here: its last epoch and result taken away) is recorded as a reduced run
    lease_py = _module("lease")
    args = SimpleNamespace(seeds=[0], engine="device", epochs=2, train_fraction=0.25,
                           precision="float32")
    run = lease_py.Run("conv2", "laperm", home / "runs" / "conv2-laperm", args)
    folder = run.folder()
    (folder / "result.json").unlink()
    history = (folder / "history.csv").read_text().splitlines()
    (folder / "history.csv").write_text("\n".join(history[:2]) + "\n")
    run.poll_history()
    env = {**_env(home), "LAPERM_DATA_DIR": str(home / "data"), "PYTHONPATH": str(ROOT)}
    lease_py.snapshots([run], env, time.monotonic() + 300, log=lambda s: None)
    made = json.loads((run.parent / "conv2_laperm_s0_e1_f25" / "result.json").read_text())
    assert made["scale"]["epochs_run"] == 1 and made["snapshot_of"].startswith("conv2_laperm_s0_e2_f25")
    assert made["engine"] == "device"  # the snapshot names its run's engine
    assert run.folder() == folder  # the snapshot beside it is not taken for the run


def test_deadline_stops_runs(tmp_path):
    """SIGTERM first; a process that ignores it is killed after the grace period."""
    lease_py = _module("lease")
    args = SimpleNamespace(seeds=[0], engine="fit", epochs=None, train_fraction=None,
                           precision="float32")
    polite = lease_py.Run("conv2", "laperm", tmp_path / "a", args)
    stubborn = lease_py.Run("conv2", "adam", tmp_path / "b", args)
    polite.cmd = [sys.executable, "-c", "import time; time.sleep(120)"]
    stubborn.cmd = [sys.executable, "-c", ("import signal, time; "
                    "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
                    "time.sleep(120)")]
    for run in (polite, stubborn):
        run.start(dict(os.environ))
    deadline = time.monotonic() + 30
    while "ready" not in stubborn.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = []
    t = time.monotonic()
    lease_py.stop([polite, stubborn], lines.append, grace_s=2)
    assert time.monotonic() - t < 15
    assert not polite.running() and not stubborn.running()
    assert polite.rc == -signal.SIGTERM and stubborn.rc == -signal.SIGKILL
    assert any("SIGKILL" in line for line in lines)
    manifest = {"arrays": {"shapes": {"x_train": [50000, 32, 32, 3]}}}
    # stopped before its first epoch: said so, in one line; after one: cut at the deadline
    assert lease_py.run_summary(polite, manifest, 100)["status"] == lease_py.CUT_BEFORE_FIRST_EPOCH
    polite.rows = [{"epoch": 1, "epoch_time_s": 50.0}]
    assert lease_py.run_summary(polite, manifest, 100)["status"] == "cut at the deadline"
    # the paper's Conv2: 45000 training images (5000 validation) in batches of 50
    cfg = {"validation_size": 5000, "train_fraction": 1.0, "batch_size": 50}
    assert lease_py.steps_per_epoch(cfg, manifest) == 900
