"""Run folders under misuse: one owner at a time, damaged files refused.

A real process holds a run folder's lock (and is killed with SIGKILL) in the
lock tests; the damage tests train two tiny F1 runs once and damage copies of
their folders.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from laperm import reproduce
from laperm.run import files as runfiles
from laperm.experiment import RunDirError, paper_config, run
from laperm.run.files import RunFiles

TINY = dict(epochs=2, train_fraction=0.05)


def tiny(**changes):
    return paper_config("f1", **{**TINY, **changes})


@pytest.fixture
def holder(tmp_path):
    """``holder(folder)``: a real process that owns ``folder`` until killed."""
    procs = []

    def start(folder: Path) -> subprocess.Popen:
        script = textwrap.dedent(f"""
            import sys
            from laperm.run.files import RunFiles, owned
            with owned(RunFiles({str(folder)!r})):
                print("owned", flush=True)
                sys.stdin.readline()
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "owned"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_second_process_is_refused_in_one_line_naming_the_first(tmp_path, data_dir, holder,
                                                                  capsys, monkeypatch):
    out = tmp_path / "runs"
    folder = out / reproduce.run_name(tiny(epochs=1))
    first = holder(folder)
    with pytest.raises(RunDirError) as exc:
        run(tiny(epochs=1), folder, data_dir=data_dir, progress=False)
    assert str(exc.value) == (
        f"{folder} is in use by process {first.pid} (it holds run.lock); wait for it to "
        "finish or stop it, then run the same command again.")
    monkeypatch.setenv("LAPERM_DATA_DIR", str(data_dir))
    assert reproduce.main(["f1", "--epochs", "1", "--train-fraction", "0.05",
                           "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {exc.value}"]
    assert sorted(p.name for p in folder.iterdir()) == ["run.lock"]  # nothing touched


def test_the_lock_of_a_killed_process_is_released(tmp_path, data_dir, holder):
    folder = tmp_path / "run"
    first = holder(folder)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (folder / "run.lock").exists()  # left by the killed process, but not held
    history, result = run(tiny(epochs=1), folder, data_dir=data_dir, progress=False)
    assert len(history) == 1 and result["resumed_at_epochs"] == []
    assert not (folder / "run.lock").exists()


def test_temporary_files_carry_their_process_id(tmp_path):
    names = []
    runfiles.atomic_write_text(tmp_path / "history.csv", "x\n")
    runfiles.atomic_write(tmp_path / "checkpoint.keras",
                          lambda tmp: (names.append(tmp.name), tmp.write_text("x")))
    assert names == [f"checkpoint.tmp-{os.getpid()}.keras"]


def test_clean_up_never_touches_a_live_process_temporary_file(tmp_path, holder):
    other = holder(tmp_path / "elsewhere")  # a live process that is not this one
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    names = {"live": f"checkpoint.tmp-{other.pid}.keras",
             "dead": f"checkpoint.tmp-{dead_pid}.keras",
             "ours": f"history.tmp-{os.getpid()}.csv",
             "older version": "best-e0002.tmp.weights.h5",
             "not temporary": "history.csv"}
    for name in names.values():
        (tmp_path / name).write_text("x")
    removed = {p.name for p in RunFiles(tmp_path).clean_temporary()}
    assert removed == {names["dead"], names["ours"], names["older version"]}
    assert (tmp_path / names["live"]).exists() and (tmp_path / names["not temporary"]).exists()


# ---------------------------------------------------------------- damaged files


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    """Two finished tiny runs (seeds 0 and 1): ``{seed: folder}``."""
    root = tmp_path_factory.mktemp("finished")
    folders = {}
    for seed in (0, 1):
        folders[seed] = root / f"s{seed}"
        run(tiny(seed=seed), folders[seed], data_dir=data_dir, progress=False)
    return folders


@pytest.fixture
def in_progress(finished, tmp_path):
    """A copy of the seed-0 run as a run in progress at its last epoch (no result)."""
    folder = tmp_path / "run"
    shutil.copytree(finished[0], folder)
    (folder / "result.json").unlink()
    return folder


def _cut_mid_row(folder):
    text = (folder / "history.csv").read_text()
    (folder / "history.csv").write_text(text[:len(text) - len(text.splitlines()[-1]) // 2 - 1])


DAMAGES = {
    "history cut mid-row": (_cut_mid_row, "history.csv is damaged (its last row is cut short)"),
    "history of random bytes": (
        lambda f: (f / "history.csv").write_bytes(bytes(range(256)) * 4 + b"\n"),
        "history.csv is damaged (not text)"),
    "history without a value": (
        lambda f: (f / "history.csv").write_text(
            pd.read_csv(f / "history.csv").assign(val_accuracy=[0.5, None]).to_csv(index=False)),
        "history.csv is damaged (missing values in val_accuracy)"),
    "truncated config.json": (
        lambda f: (f / "config.json").write_text((f / "config.json").read_text()[:40]),
        "config.json is damaged (not valid JSON"),
    "truncated init_tables.json": (
        lambda f: (f / "init_tables.json").write_text(
            (f / "init_tables.json").read_text()[:30]),
        "init_tables.json is damaged (not valid JSON"),
    "truncated resumes.json": (
        lambda f: (f / "resumes.json").write_text("[1, "), "resumes.json is damaged (not valid JSON"),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_file_is_refused_naming_it(in_progress, data_dir, damage):
    make, message = DAMAGES[damage]
    make(in_progress)
    before = {p.name: p.read_bytes() for p in in_progress.iterdir()}
    with pytest.raises(RunDirError) as exc:
        run(tiny(), in_progress, data_dir=data_dir, progress=False)
    assert f"{in_progress}/{message}" in str(exc.value)
    assert "; " in str(exc.value)  # and how to recover
    after = {p.name: p.read_bytes() for p in in_progress.iterdir()}
    assert after == before  # nothing lost, nothing written


def test_a_damaged_best_weights_file_is_never_promoted(in_progress, finished, data_dir):
    best = json.loads((finished[0] / "result.json").read_text())["best_epoch"]
    candidate = in_progress / f"best-e{best:04d}.weights.h5"
    os.replace(in_progress / "best.weights.h5", candidate)
    candidate.write_bytes(b"\x89H")
    with pytest.raises(RunDirError) as exc:
        run(tiny(), in_progress, data_dir=data_dir, progress=False)
    assert str(exc.value).startswith(f"{candidate} is damaged (not a weights file")
    assert str(exc.value).endswith(f"the best weights of epoch {best} are lost: delete this file "
                                   "to go on without them, or move the folder aside to start "
                                   "the run again.")
    assert not (in_progress / "best.weights.h5").exists()
    assert candidate.read_bytes() == b"\x89H"


def test_another_runs_checkpoint_is_never_continued(in_progress, finished, data_dir):
    shutil.copy(finished[1] / "checkpoint.keras", in_progress / "checkpoint.keras")
    with pytest.raises(RunDirError) as exc:
        run(tiny(), in_progress, data_dir=data_dir, progress=False)
    assert str(exc.value) == (
        f"{in_progress}/checkpoint.keras belongs to another run (seed 1, config hash "
        f"{tiny(seed=1).hash}), not to this folder's (seed 0, hash {tiny().hash}); delete it "
        "to start this run again from epoch 1.")


def test_an_undamaged_copy_resumes(in_progress, finished, data_dir):
    """The control of the damage tests: the same copy, undamaged, is accepted."""
    history, result = run(tiny(), in_progress, data_dir=data_dir, progress=False)
    pd.testing.assert_frame_equal(history, pd.read_csv(finished[0] / "history.csv"))
    assert result["best_epoch"] == json.loads(
        (finished[0] / "result.json").read_text())["best_epoch"]


def test_a_full_disk_is_one_line_and_the_same_command_goes_on(tmp_path, data_dir, monkeypatch,
                                                              capsys):
    import errno

    monkeypatch.setenv("LAPERM_DATA_DIR", str(data_dir))
    args = ["f1", "--epochs", "2", "--train-fraction", "0.05", "--out", str(tmp_path)]
    folder = tmp_path / reproduce.run_name(tiny())
    real = runfiles.atomic_write

    def full_at_epoch_2(path, write):
        if path.name == "checkpoint.keras" and len(pd.read_csv(folder / "history.csv")) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, write)

    monkeypatch.setattr(runfiles, "atomic_write", full_at_epoch_2)
    assert reproduce.main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    err = [line for line in err.replace("\r", "\n").splitlines()
           if line.strip() and not line.startswith("f1 [laperm]")]  # not the progress bar
    assert err == [f"error: the disk is full writing {folder}/checkpoint.keras; everything "
                   "written before is kept: free space or fix the permissions, then run the "
                   "same command again to continue."]
    assert len(pd.read_csv(folder / "history.csv")) == 2 and (folder / "checkpoint.keras").exists()
    monkeypatch.setattr(runfiles, "atomic_write", real)
    assert reproduce.main(args) == 0
    result = json.loads((folder / "result.json").read_text())
    assert result["scale"]["epochs_run"] == 2 and result["resumed_at_epochs"] == [1]
