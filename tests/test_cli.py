"""The ``laperm`` command and the book's execution pipeline (fast tests).

Runs against a tiny throw-away project (``_toc.yml`` + ``book/*.ipynb``) in a
temporary folder; the only notebooks executed are two-cell ones that do not
import TensorFlow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from laperm import bookbuild
from laperm.cli import main


def _notebook(path: Path, body: str, params: str = "n = None\nlabel = None") -> None:
    cells = [
        new_markdown_cell(f"# {path.stem}"),
        new_code_cell(f'profile = "cpu"\n{params}'),
        new_code_cell(body),
    ]
    cells[1].metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))


@pytest.fixture
def project(tmp_path: Path):
    root = tmp_path / "proj"
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/00_tiny\nchapters:\n"
        "  - file: book/01_other\n  - file: book/02_broken\n  - file: book/99_missing\n"
    )
    (root / "_config.yml").write_text("title: tiny\n")
    _notebook(root / "book" / "00_tiny.ipynb", 'print(f"n={n!r} label={label!r} profile={profile}")')
    _notebook(root / "book" / "01_other.ipynb", "print('other', n)", params="n = None")
    _notebook(root / "book" / "02_broken.ipynb", "raise ValueError('boom')", params="")
    return bookbuild.Project(root=root, build=tmp_path / "build")


def _cli(project, *args):
    return main(["--root", str(project.root), "--build-dir", str(project.build), *args])


# ---------------------------------------------------------------- validation


def test_sections_in_toc_order(project):
    assert bookbuild.sections(project) == ["00_tiny", "01_other", "02_broken"]


@pytest.mark.parametrize("name, expected", [
    ("00_tiny", "00_tiny"), ("00", "00_tiny"), ("01", "01_other"),
    ("book/01_other.ipynb", "01_other"),
])
def test_section_prefixes(project, name, expected):
    assert bookbuild.resolve_section(name, bookbuild.sections(project)) == expected


def test_unknown_section_exits_2_listing_sections(project, capsys):
    assert _cli(project, "run", "nope", "--profile", "smoke") == 2
    err = capsys.readouterr().err
    assert "unknown section 'nope'" in err
    assert "00_tiny, 01_other, 02_broken" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_ambiguous_prefix_exits_2(project, capsys):
    assert _cli(project, "run", "0", "--profile", "smoke") == 2
    assert "ambiguous" in capsys.readouterr().err


def test_unknown_profile_exits_2_listing_profiles(project, capsys):
    assert _cli(project, "run", "00", "--profile", "huge") == 2
    err = capsys.readouterr().err
    assert "unknown profile 'huge'" in err and "smoke, cpu, paper" in err


def test_unknown_parameter_exits_2_listing_parameters(project, capsys):
    assert _cli(project, "run", "00", "--profile", "smoke", "-p", "epochs", "3") == 2
    err = capsys.readouterr().err
    assert "unknown parameter(s) epochs" in err
    assert "its parameters: n, label" in err


def test_profile_is_not_a_parameter(project, capsys):
    assert _cli(project, "run", "00", "-p", "profile", "smoke") == 2
    assert "--profile" in capsys.readouterr().err


def test_errors_have_no_traceback_in_a_real_process(project):
    proc = subprocess.run(
        [sys.executable, "-m", "laperm.cli", "--root", str(project.root), "--build-dir",
         str(project.build), "run", "nope"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert "laperm: error: unknown section 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("text, value", [
    ("5", 5), ("-3", -3), ("0.1", 0.1), ("1e-3", 1e-3), ("True", True), ("false", False),
    ("None", None), ("null", None), ("[1, 2]", [1, 2]), ("{a: 1}", {"a": 1}),
    ("conv7", "conv7"), ("'5'", "5"), ("path/to/x.h5", "path/to/x.h5"),
])
def test_parameter_values_are_typed(text, value):
    parsed = bookbuild.parse_value(text)
    assert parsed == value and type(parsed) is type(value)


# ---------------------------------------------------------------- cache key


def test_cache_key_follows_inputs(project):
    plan = bookbuild.Plan("00_tiny", "smoke", {})
    key = bookbuild.cache_key(project, plan)
    assert bookbuild.cache_key(project, bookbuild.Plan("00_tiny", "smoke", {})) == key
    assert bookbuild.cache_key(project, bookbuild.Plan("00_tiny", "smoke", {"n": 3})) != key
    assert bookbuild.cache_key(project, bookbuild.Plan("00_tiny", "smoke", {"n": 4})) != \
        bookbuild.cache_key(project, bookbuild.Plan("00_tiny", "smoke", {"n": 3}))
    assert bookbuild.cache_key(project, bookbuild.Plan("00_tiny", "cpu", {})) != key
    # outputs do not matter, sources do
    nb = nbformat.read(str(project.notebook("00_tiny")), as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="x")]
    nbformat.write(nb, str(project.notebook("00_tiny")))
    assert bookbuild.cache_key(project, plan) == key
    nb.cells[2].source += "\n# changed"
    nbformat.write(nb, str(project.notebook("00_tiny")))
    assert bookbuild.cache_key(project, plan) != key


def test_cache_key_follows_committed_results_and_declared_reads(project):
    plan = bookbuild.Plan("00_tiny", "smoke", {})
    key = bookbuild.cache_key(project, plan)
    run = project.root / "results" / "conv7_s0"
    run.mkdir(parents=True)
    (run / "checkpoint.keras").write_bytes(b"in progress")
    assert bookbuild.cache_key(project, plan) == key  # unfinished runs do not count
    (run / "result.json").write_text("{}")
    key2 = bookbuild.cache_key(project, plan)
    assert key2 != key
    nb = nbformat.read(str(project.notebook("00_tiny")), as_version=4)
    nb.metadata["laperm"] = {"reads": ["status/*.json"]}
    nbformat.write(nb, str(project.notebook("00_tiny")))
    key3 = bookbuild.cache_key(project, plan)
    (project.build / "status").mkdir(parents=True)
    (project.build / "status" / "01_other.json").write_text("{}")
    assert bookbuild.cache_key(project, plan) != key3
    (project.build / "status" / "00_tiny.json").write_text("{}")  # its own record: ignored
    key4 = bookbuild.cache_key(project, plan)
    (project.build / "status" / "00_tiny.json").write_text('{"x": 1}')
    assert bookbuild.cache_key(project, plan) == key4


# ---------------------------------------------------------------- execution


def _outputs(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs)


def test_run_passes_parameters_and_caches(project, capsys):
    source_before = project.notebook("00_tiny").read_text()
    assert _cli(project, "run", "00", "--profile", "smoke", "-p", "n", "7",
                "-p", "label", "abc", "-q", "--no-progress") == 0
    executed = project.executed("00_tiny")
    assert "n=7 label='abc' profile=smoke" in _outputs(executed)
    assert project.notebook("00_tiny").read_text() == source_before  # source untouched
    cache = json.loads(project.cache_path.read_text())
    assert cache["00_tiny"]["parameters"] == {"n": 7, "label": "abc"}
    # the injected-parameters cell is hidden from the book
    nb = nbformat.read(str(executed), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "remove-cell" in injected[0].metadata["tags"]
    capsys.readouterr()

    assert _cli(project, "run", "00", "--profile", "smoke", "-p", "n", "7",
                "-p", "label", "abc", "-q", "--no-progress") == 0
    out = capsys.readouterr().out
    assert "cached" in out
    assert _cli(project, "run", "00", "--profile", "smoke", "-p", "n", "7",
                "-p", "label", "abc", "-q", "--no-progress", "--force") == 0
    assert "executed" in capsys.readouterr().out


def test_failing_section_is_reported_and_others_kept(project, capsys):
    assert _cli(project, "run", "00", "--profile", "smoke", "-q", "--no-progress") == 0
    good = project.executed("00_tiny").read_text()
    capsys.readouterr()
    code = _cli(project, "book", "--profile", "smoke", "--sections", "02", "01", "-q",
                "--no-progress")
    assert code == 1
    captured = capsys.readouterr()
    assert "ValueError: boom" in captured.err
    assert "raise ValueError('boom')" in captured.err  # the failing cell's source
    assert "FAILED" in captured.out and "02_broken" in captured.out
    assert "01_other" in captured.out  # later sections still ran
    assert project.executed("01_other").is_file()
    assert project.executed("00_tiny").read_text() == good
    assert (project.executed_dir / "02_broken.failed.ipynb").is_file()
    assert not project.executed("02_broken").exists()
    assert not (project.build / "html").exists()  # no build after a failure


def test_sections_command_lists_parameters(project, capsys):
    assert _cli(project, "sections") == 0
    out = capsys.readouterr().out
    assert "00_tiny" in out and "parameters: n, label" in out and "02_broken" in out


def test_notebook_profiles_are_read_without_executing(tmp_path):
    path = tmp_path / "x.ipynb"
    _notebook(path, 'PROFILES = {"smoke": dict(n=1), "cpu": {"n": 2}, "paper": dict(n=[3, 4])}\n'
                    "from laperm import book")
    assert bookbuild.notebook_profiles(path) == {
        "smoke": {"n": 1}, "cpu": {"n": 2}, "paper": {"n": [3, 4]}}


def test_toc_is_restricted_to_built_pages():
    toc = {"format": "jb-book", "root": "book/00",
           "parts": [{"caption": "A", "chapters": [{"file": "book/01"}, {"file": "book/02"}]},
                     {"caption": "B", "chapters": [{"file": "book/03"}]}]}
    kept = bookbuild._filter_toc(toc, lambda f: f in ("book/00", "book/02"))
    assert kept == {"format": "jb-book", "root": "book/00",
                    "parts": [{"caption": "A", "chapters": [{"file": "book/02"}]}]}


def test_global_options_also_after_the_command(project, capsys):
    code = main(["sections", "--root", str(project.root), "--build-dir", str(project.build)])
    assert code == 0
    assert "00_tiny" in capsys.readouterr().out
