"""User mistakes give one clear line and exit code 2, never a traceback or a
silent wrong result; user-facing text cites nothing the user does not have.

Fast tests: nothing here trains a network or starts a Jupyter kernel (one test
starts ``python -m laperm.reproduce`` to see the real process's output).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from laperm import book, data, experiment, pretrained, reproduce
from laperm.book import execute as book_execute
from laperm.book import sections as book_sections
from laperm.book import source as book_source
from laperm.book.errors import UsageError
from laperm.book.layout import Project
from laperm.cli import main as laperm_main

REPO = Path(__file__).resolve().parents[1]


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# ---------------------------------------------------------------- python -m laperm.reproduce


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if reproduce gets as far as training."""
    def refuse(*args, **kwargs):
        raise AssertionError("run() was called: the mistake was not caught first")

    monkeypatch.setattr(reproduce, "run", refuse)


@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--epochs", "-1"), ("--epochs", "three"), ("--epochs", "2.5"),
    ("--train-fraction", "0"), ("--train-fraction", "2"), ("--train-fraction", "-0.5"),
    ("--train-fraction", "nan"), ("--train-fraction", "half"),
    ("--seeds", "-1"), ("--seeds", "x"),
    ("--steps-per-execution", "0"), ("--steps-per-execution", "2.5"),
])
def test_reproduce_refuses_bad_numbers_before_training(option, value, no_training, tmp_path,
                                                       capsys):
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["f1", option, value, "--out", str(tmp_path)])
    assert exc.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert option in line and "error" in line
    assert not any(tmp_path.iterdir())


def _fake_result():
    return {"best_epoch": 1, "best_val_accuracy": 0.5, "test_accuracy_at_best_val": 0.5,
            "final_test_accuracy": 0.5, "wall_time_s": 1.0}


def test_reproduce_passes_reduced_values_and_backend_flag(monkeypatch, tmp_path):
    calls = []

    def fake_run(cfg, out_dir, **kwargs):
        calls.append((cfg, kwargs))
        return None, _fake_result()

    monkeypatch.setattr(reproduce, "run", fake_run)
    assert reproduce.main(["f1", "--epochs", "1", "--train-fraction", "0.5", "--seeds", "0", "3",
                           "--out", str(tmp_path)]) == 0
    assert [(c.epochs, c.train_fraction, c.seed) for c, _ in calls] == [(1, 0.5, 0), (1, 0.5, 3)]
    assert all(kwargs == {} for _, kwargs in calls)  # the keyword only when asked for
    calls.clear()
    assert reproduce.main(["f1", "--epochs", "1", "--allow-other-backend",
                           "--out", str(tmp_path)]) == 0
    assert calls[0][1] == {"allow_other_backend": True}
    calls.clear()
    assert reproduce.main(["f1", "--epochs", "1", "--steps-per-execution", "20",
                           "--out", str(tmp_path)]) == 0
    assert calls[0][1] == {"steps_per_execution": 20}


def test_reproduce_tells_a_steps_per_execution_that_does_not_divide_an_epoch(tmp_path, capsys):
    """F1 has 430 steps an epoch (batch 128): 7 does not divide them; the line lists divisors."""
    code = reproduce.main(["f1", "--epochs", "1", "--steps-per-execution", "7",
                           "--out", str(tmp_path)])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert "does not divide the 430 steps" in line and "2, 5, 10, 43, 86" in line
    assert not any(tmp_path.iterdir())


RUN_DIR_ERROR = getattr(experiment, "RunDirError", ValueError)


@pytest.mark.parametrize("error", [
    RUN_DIR_ERROR("results/f1_laperm_s0_e1 holds a run of a different config; choose another"),
    data.DataNotFoundError("mnist.npz not found in /nowhere; set LAPERM_DATA_DIR"),
    data.DataFormatError("/x/mnist.npz lacks the array 'x_test'"),
], ids=["run-dir", "data-not-found", "data-format"])
def test_reproduce_user_errors_are_one_line_exit_2(error, monkeypatch, tmp_path, capsys):
    def failing_run(cfg, out_dir, **kwargs):
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "config.json").write_text("{}")  # as an old run() left it
        raise error

    monkeypatch.setattr(reproduce, "run", failing_run)
    assert reproduce.main(["f1", "--epochs", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert _one_line(err) == f"error: {error}"
    assert not any(tmp_path.iterdir()), "a stray run folder with only config.json was left"


def test_reproduce_keeps_a_folder_it_did_not_create(monkeypatch, tmp_path, capsys):
    out = tmp_path / "f1_laperm_s0_e1"
    out.mkdir()
    (out / "config.json").write_text('{"hash": "other"}')

    def failing_run(cfg, out_dir, **kwargs):
        raise RUN_DIR_ERROR(f"{out_dir} holds a run of a different config")

    monkeypatch.setattr(reproduce, "run", failing_run)
    assert reproduce.main(["f1", "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert (out / "config.json").read_text() == '{"hash": "other"}'
    capsys.readouterr()


def test_reproduce_epochs_zero_in_a_real_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "laperm.reproduce", "f1", "--epochs", "0", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert proc.returncode == 2
    # (TensorFlow's start-up log lines may come first)
    ours = [line for line in proc.stderr.splitlines() if "laperm" in line]
    assert ours == ["python -m laperm.reproduce: error: argument --epochs: the number of epochs must be >= 1, "
                    "got 0 (see --help)"]
    assert "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- laperm run -p NAME VALUE


def _notebook(path: Path, params: str) -> None:
    cells = [new_markdown_cell(f"# {path.stem}"), new_code_cell(f'profile = "cpu"\n{params}'),
             new_code_cell("print('ran')")]
    cells[1].metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path.write_text(jupytext.writes(nb, fmt="md:myst"))


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/00_knobs\n")
    (root / "_config.yml").write_text("title: knobs\n")
    _notebook(root / "book" / "00_knobs.md",
              "epochs = None\nadam_baseline = None\nsync_periods = None\ntrain_fraction = None\n"
              "models = None\nseed = None")
    return Project(root=root, build=tmp_path / "build")


@pytest.fixture
def no_kernel(monkeypatch):
    """Fail the test if a notebook would be executed."""
    def refuse(*args, **kwargs):
        raise AssertionError("execute() was called: the parameter was not checked first")

    monkeypatch.setattr(book_execute, "execute", refuse)


@pytest.mark.parametrize("name, value, expected", [
    ("epochs", "three", "expected a whole number >= 1, got 'three'"),
    ("epochs", "0", "expected a whole number >= 1, got '0'"),
    ("epochs", "2.5", "got '2.5'"),
    ("adam_baseline", "maybe", "expected true or false"),
    ("adam_baseline", "2", "expected true or false"),
    ("train_fraction", "0", "expected a number in (0, 1], got '0'"),
    ("train_fraction", "1.5", "expected a number in (0, 1]"),
    ("sync_periods", "[20, x]", "got 'x' as element 2 of 2"),
    ("sync_periods", "0", "got '0' as element 1 of 1"),
    ("sync_periods", "[]", "got an empty list"),
    ("models", "conv99", "one of conv2, conv4, conv13"),
    ("seed", "-1", "expected a whole number >= 0"),
])
def test_bad_parameter_values_exit_2_before_any_kernel(project, no_kernel, capsys, name, value,
                                                       expected):
    code = laperm_main(["--root", str(project.root), "--build-dir", str(project.build), "run",
                        "00", "--profile", "smoke", "-p", name, value])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"laperm: error: parameter {name} of section '00_knobs': ")
    assert expected in line
    assert not project.build.exists()


@pytest.mark.parametrize("text, value", [
    ("true", True), ("True", True), ("YES", True), ("1", True),
    ("false", False), ("No", False), ("0", False), ("FALSE", False),
])
def test_booleans_are_parsed_strictly(project, text, value):
    (p,) = book_sections.plan(project, ["00"], "smoke", {"adam_baseline": text})
    assert p.overrides == {"adam_baseline": value}


def test_parameter_values_get_their_declared_types(project):
    (p,) = book_sections.plan(project, ["00"], "smoke", {
        "adam_baseline": "no", "sync_periods": "20", "epochs": "3", "train_fraction": "1",
        "models": "conv2", "seed": "none"})
    assert p.overrides == {"adam_baseline": False, "sync_periods": [20], "epochs": 3,
                           "train_fraction": 1.0, "models": ["conv2"], "seed": None}
    assert type(p.overrides["train_fraction"]) is float
    (p,) = book_sections.plan(project, ["00"], "smoke", {"sync_periods": "[20, 1200]",
                                                     "models": "conv2,conv4"})
    assert p.overrides == {"sync_periods": [20, 1200], "models": ["conv2", "conv4"]}
    # typed values (a Python caller) are checked the same way
    (p,) = book_sections.plan(project, ["00"], "smoke", {"sync_periods": 20, "epochs": np.int64(2)})
    assert p.overrides == {"sync_periods": [20], "epochs": 2}
    with pytest.raises(UsageError, match="adam_baseline"):
        book_sections.plan(project, ["00"], "smoke", {"adam_baseline": "maybe"})


def test_real_section_is_checked_before_its_kernel(no_kernel, tmp_path, capsys):
    args = ["--root", str(REPO), "--build-dir", str(tmp_path / "build"), "run", "05_1",
            "--profile", "smoke"]
    assert laperm_main(args + ["-p", "epochs", "three"]) == 2
    assert "parameter epochs of section '05_1_conv7_mnist'" in _one_line(capsys.readouterr().err)
    assert laperm_main(args + ["-p", "nope", "1"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "unknown parameter(s) nope" in line and "adam_baseline" in line
    project = Project.find(REPO, tmp_path / "build")
    (p,) = book_sections.plan(project, ["05_1"], "smoke", {"adam_baseline": "no",
                                                       "sync_periods": "20"})
    assert p.overrides == {"adam_baseline": False, "sync_periods": [20]}


def _book_pages():
    return sorted(p for p in (REPO / "book").glob("*.md") if book_source.is_page(p))


@pytest.mark.parametrize("path", _book_pages(), ids=lambda p: p.stem)
def test_every_section_parameter_is_declared_and_its_profiles_pass(path):
    page = book_source.read_page(path)
    params = [p for p in book_source.page_parameters(page) if p != "profile"]
    undeclared = [p for p in params if p not in book.KNOBS]
    assert not undeclared, f"declare {undeclared} in laperm.book.KNOBS"
    table = book_source.page_profiles(page)
    assert table is not None
    for profile, values in table.items():
        for name, value in values.items():
            checked = book.check_parameter(name, value)
            assert checked == value and type(checked) is type(value), (profile, name, value)


def test_setup_refuses_a_bad_override():
    profiles = {p: dict(epochs=1, adam_baseline=True) for p in book.PROFILE_NAMES}
    with pytest.raises(ValueError, match="parameter epochs of section 'x': expected a whole"):
        book.setup("x", "smoke", profiles, {"epochs": "three"}, show_banner=False)
    sec = book.setup("x", "smoke", profiles, {"adam_baseline": "no"}, show_banner=False)
    assert sec.adam_baseline is False


def test_setup_reads_the_pages_parameters_from_its_namespace():
    """``book.setup(..., globals())``: the profile table names the parameters; other names
    of the page are not parameters."""
    profiles = {p: dict(epochs=1, adam_baseline=True) for p in book.PROFILE_NAMES}
    page_globals = {"__name__": "__main__", "profile": "smoke", "epochs": 3,
                    "adam_baseline": None, "PROFILES": profiles, "np": object()}
    sec = book.setup("x", "smoke", profiles, page_globals, show_banner=False)
    assert (sec.epochs, sec.adam_baseline, sec.overridden) == (3, True, ["epochs"])
    with pytest.raises(ValueError, match="parameter epochs of section 'x': expected a whole"):
        book.setup("x", "smoke", profiles, dict(page_globals, epochs="three"), show_banner=False)


# ---------------------------------------------------------------- SyncPeriodScheduler


@pytest.fixture(scope="module")
def laperm_model():
    import keras

    from laperm import LaPerm

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=LaPerm(keras.optimizers.Adam(1e-3), sync_period=5), loss="mse")
    return model


@pytest.mark.parametrize("bad", [2.5, 10.0, "10", True, np.bool_(True), 0, -3, 2**31, None,
                                 np.float32(4)])
def test_sync_period_scheduler_refuses_bad_values(laperm_model, bad):
    from laperm.method.callbacks import SyncPeriodScheduler

    callback = SyncPeriodScheduler(lambda epoch: bad)
    callback.set_model(laperm_model)
    with pytest.raises(ValueError, match=r"schedule\(3\) returned " + re.escape(repr(bad))):
        callback.on_epoch_begin(3)


@pytest.mark.parametrize("good", [1, 7, np.int64(9), np.int32(2**31 - 1)])
def test_sync_period_scheduler_takes_integers(laperm_model, good):
    from laperm.method.callbacks import SyncPeriodScheduler

    callback = SyncPeriodScheduler(lambda epoch: good)
    callback.set_model(laperm_model)
    callback.on_epoch_begin(0)
    assert laperm_model.optimizer.sync_period == int(good)


# ---------------------------------------------------------------- pretrained/manifest.json


def test_missing_manifest_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "manifest.json"))) as exc:
        pretrained.load("conv7_laperm_s0", directory=tmp_path)
    assert "export" in str(exc.value)
    with pytest.raises(pretrained.ManifestNotFoundError):
        pretrained.available(tmp_path)


def test_missing_project_manifest_says_how_to_restore(tmp_path, monkeypatch):
    monkeypatch.setenv("LAPERM_ROOT", str(tmp_path))  # a checkout without pretrained/
    monkeypatch.setattr(pretrained, "packaged_dir", lambda: None)
    with pytest.raises(FileNotFoundError, match="re-clone"):
        pretrained.load("conv7_laperm_s0")


@pytest.mark.parametrize("content, problem", [
    ('{"conv7_laperm_s0": {"file": "conv7', "damaged or truncated"),
    ("", "damaged or truncated"),
    ("[1, 2]", "not a manifest"),
    ('{"conv7_laperm_s0": {"file": "x.weights.h5"}}', "entry 'conv7_laperm_s0' lacks sha256"),
], ids=["truncated", "empty", "a-list", "entry-without-sha256"])
def test_damaged_manifest_says_which_file_and_what(tmp_path, content, problem):
    path = tmp_path / "manifest.json"
    path.write_text(content)
    with pytest.raises(pretrained.ManifestError) as exc:
        pretrained.load("conv7_laperm_s0", directory=tmp_path)
    message = str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert str(path) in message and problem in message and "re-export" in message


def test_committed_manifest_is_valid():
    assert pretrained.available()  # the project's own manifest passes the checks


# ---------------------------------------------------------------- no citations of absent files


_CITATION = re.compile(r"\bSPEC\b|\bhazard \d")


def test_no_user_facing_text_cites_the_spec_file():
    """Docstrings, messages and book pages state facts instead of citing a spec
    file (or its numbered hazards) that users do not have."""
    offenders = []
    for folder in ("laperm", "book"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix not in (".py", ".ipynb", ".md") or ".ipynb_checkpoints" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if _CITATION.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)


def test_reproduce_names_the_option_it_refuses(no_training, tmp_path, capsys):
    for option, what in [("--devices", "the number of devices"),
                         ("--steps-per-execution", "a number of steps"),
                         ("--steps-per-call", "a number of steps")]:
        with pytest.raises(SystemExit) as exc:
            reproduce.main(["f1", option, "0", "--out", str(tmp_path)])
        assert exc.value.code == 2
        assert _one_line(capsys.readouterr().err) == (
            f"python -m laperm.reproduce: error: argument {option}: {what} must be >= 1, "
            "got 0 (see --help)")


def test_reproduce_refuses_an_out_that_is_a_file(no_training, tmp_path, capsys):
    out = tmp_path / "results"
    out.write_text("not a folder")
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["f1", "--epochs", "1", "--out", str(out)])
    assert exc.value.code == 2
    assert _one_line(capsys.readouterr().err) == (
        f"python -m laperm.reproduce: error: argument --out: {out} is a file; name a folder "
        "(of the run folders) (see --help)")
    assert out.read_text() == "not a folder"


def test_reproduce_a_train_fraction_that_keeps_no_image(tmp_path, capsys, data_dir,
                                                         monkeypatch):
    monkeypatch.setenv("LAPERM_DATA_DIR", str(data_dir))
    assert reproduce.main(["f1", "--epochs", "1", "--train-fraction", "1e-9",
                           "--out", str(tmp_path)]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "error: train_fraction=1e-09 keeps none of the 55000 training images of mnist; "
        "use at least 1.8e-05 (one image).")
    assert not any(tmp_path.iterdir())


def test_a_parameter_papermill_injects_that_the_section_lacks_is_refused():
    """Papermill only warns about an undeclared ``-p``; the section's setup refuses it."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from laperm.book.knobs import PROFILE_NAMES

    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    profiles = {p: {"epochs": 1} for p in PROFILE_NAMES}
    try:
        book.setup("x", "cpu", profiles, {"epochs": None}, show_banner=False)  # nothing injected
        shell.run_cell("# Parameters\nepochs = 2\nnope = 1\n", store_history=True)
        with pytest.raises(ValueError) as exc:
            book.setup("x", "cpu", profiles, {"epochs": 2}, show_banner=False)
        assert str(exc.value) == "Section 'x' has no parameter(s) nope; its parameters: profile, epochs."
    finally:
        InteractiveShell.clear_instance()
