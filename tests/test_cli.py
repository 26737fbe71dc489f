"""The ``laperm`` command and the book's execution pipeline (fast tests).

Runs against a tiny throw-away project (``_toc.yml`` + ``book/*.md``) in a
temporary folder; the only pages executed are two-cell ones that do not
import TensorFlow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from laperm.book import cache as bcache
from laperm.book import knobs, sections, site, source
from laperm.book.layout import Project
from laperm.cli import main


def _notebook(path: Path, body: str, params: str = "n = None\nlabel = None",
              meta: dict | None = None) -> None:
    """A page ``path`` (a MyST Markdown notebook) with a parameters cell and ``body``."""
    cells = [
        new_markdown_cell(f"# {path.stem}"),
        new_code_cell(f'profile = "cpu"\n{params}'),
        new_code_cell(body),
    ]
    cells[1].metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["jupytext"] = {"notebook_metadata_filter": "laperm"}
    nb.metadata.update(meta or {})
    path.write_text(jupytext.writes(nb, fmt="md:myst"))


@pytest.fixture
def project(tmp_path: Path):
    root = tmp_path / "proj"
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/00_tiny\nchapters:\n"
        "  - file: book/01_other\n  - file: book/02_broken\n  - file: book/99_missing\n"
    )
    (root / "_config.yml").write_text("title: tiny\n")
    _notebook(root / "book" / "00_tiny.md", 'print(f"n={n!r} label={label!r} profile={profile}")')
    _notebook(root / "book" / "01_other.md", "print('other', n)", params="n = None")
    _notebook(root / "book" / "02_broken.md", "raise ValueError('boom')", params="")
    (root / "book" / "notes.md").write_text("# Not a notebook\n")  # a plain page
    return Project(root=root, build=tmp_path / "build")


def _cli(project, *args):
    return main(["--root", str(project.root), "--build-dir", str(project.build), *args])


# ---------------------------------------------------------------- validation


def test_sections_in_toc_order(project):
    assert sections.section_names(project) == ["00_tiny", "01_other", "02_broken"]


@pytest.mark.parametrize("name, expected", [
    ("00_tiny", "00_tiny"), ("00", "00_tiny"), ("01", "01_other"),
    ("book/01_other.md", "01_other"),
])
def test_section_prefixes(project, name, expected):
    assert sections.resolve_section(name, sections.section_names(project)) == expected


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
    parsed = knobs.parse_value(text)
    assert parsed == value and type(parsed) is type(value)


# ---------------------------------------------------------------- cache key


def _edit_page(project, section, edit):
    path = project.page(section)
    nb = jupytext.read(str(path))
    edit(nb)
    path.write_text(jupytext.writes(nb, fmt="md:myst"))


def test_cache_key_follows_code_and_parameters_not_text(project):
    key_of = lambda section="00_tiny", profile="smoke", **kw: bcache.cache_key(
        project, sections.Plan(section, profile, kw))
    key = key_of()
    assert key_of() == key
    assert key_of(n=3) != key and key_of(n=4) != key_of(n=3)
    assert key_of(profile="cpu") != key
    # a text-only edit keeps the key; a code edit changes it
    _edit_page(project, "00_tiny", lambda nb: setattr(nb.cells[0], "source", "# New title"))
    assert key_of() == key
    _edit_page(project, "00_tiny", lambda nb: setattr(
        nb.cells[2], "source", nb.cells[2].source + "\n# changed"))
    assert key_of() != key


def test_cache_key_follows_only_declared_reads(project):
    plan = sections.Plan("00_tiny", "smoke", {})
    key = bcache.cache_key(project, plan)
    run = project.root / "results" / "conv7_laperm_s0"
    run.mkdir(parents=True)
    (run / "result.json").write_text("{}")
    assert bcache.cache_key(project, plan) == key  # the page does not read results/
    _edit_page(project, "00_tiny", lambda nb: nb.metadata.update(
        laperm={"reads": ["results/conv7_*/result.json", "{build}/status/*.json"]}))
    key = bcache.cache_key(project, plan)
    other = project.root / "results" / "f1_laperm_s0"
    other.mkdir()
    (other / "result.json").write_text("{}")
    assert bcache.cache_key(project, plan) == key  # not a pattern of the page
    (run / "checkpoint.keras").write_bytes(b"in progress")
    assert bcache.cache_key(project, plan) == key  # nor a checkpoint
    (run / "history.csv").write_text("epoch\n1\n")
    key2 = bcache.cache_key(project, plan)
    assert key2 != key  # a finished run's history counts with its result
    (run / "result.json").write_text('{"x": 1}')
    assert bcache.cache_key(project, plan) != key2
    unfinished = project.root / "results" / "conv7_adam_s0"
    unfinished.mkdir()
    key3 = bcache.cache_key(project, plan)
    (unfinished / "history.csv").write_text("epoch\n1\n")
    assert bcache.cache_key(project, plan) == key3  # a run in progress changes nothing
    (project.build / "status").mkdir(parents=True)
    (project.build / "status" / "01_other.json").write_text("{}")
    key4 = bcache.cache_key(project, plan)
    assert key4 != key3
    (project.build / "status" / "00_tiny.json").write_text("{}")  # its own record: ignored
    assert bcache.cache_key(project, plan) == key4


# ---------------------------------------------------------------- execution


def _outputs(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs)


def test_run_passes_parameters_and_caches(project, capsys):
    source_before = project.page("00_tiny").read_text()
    assert _cli(project, "run", "00", "--profile", "smoke", "-p", "n", "7",
                "-p", "label", "abc", "-q", "--no-progress") == 0
    executed = project.executed("00_tiny")
    assert "n=7 label='abc' profile=smoke" in _outputs(executed)
    assert project.page("00_tiny").read_text() == source_before  # source untouched
    assert sorted(p.name for p in project.book_dir.iterdir()) == [
        "00_tiny.md", "01_other.md", "02_broken.md", "notes.md"]  # nothing written beside it
    cache = json.loads(project.cache_path.read_text())
    assert cache["00_tiny"]["parameters"] == {"n": 7, "label": "abc"}
    # the injected-parameters cell is hidden from the book
    nb = nbformat.read(str(executed), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "remove-cell" in injected[0].metadata["tags"]
    capsys.readouterr()

    args = ["run", "00", "--profile", "smoke", "-p", "n", "7", "-p", "label", "abc", "-q",
            "--no-progress"]
    assert _cli(project, *args) == 0
    assert "cached" in capsys.readouterr().out
    # a text-only edit: still cached, the executed notebook gets the new text
    _edit_page(project, "00_tiny", lambda nb: setattr(nb.cells[0], "source", "# Retitled"))
    assert _cli(project, *args) == 0
    assert "cached" in capsys.readouterr().out
    nb = nbformat.read(str(executed), as_version=4)
    assert nb.cells[0].source == "# Retitled"
    assert "n=7 label='abc'" in _outputs(executed)  # outputs kept
    assert [c.source for c in nb.cells if c.cell_type == "code"][1].startswith("# Parameters")
    assert _cli(project, *args, "--force") == 0
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


def test_stage_uses_executed_notebooks_with_current_text(project):
    assert _cli(project, "run", "00", "01", "--profile", "smoke", "-q", "--no-progress") == 0
    _edit_page(project, "01_other", lambda nb: setattr(nb.cells[0], "source", "# Other, edited"))
    missing = site.stage(project, echo=lambda *a: None)
    staged = project.staging_dir / "book"
    assert sorted(p.name for p in staged.iterdir()) == ["00_tiny.ipynb", "01_other.ipynb",
                                                        "notes.md"]
    assert missing == ["book/02_broken", "book/99_missing"]
    nb = nbformat.read(str(staged / "01_other.ipynb"), as_version=4)
    assert nb.cells[0].source == "# Other, edited" and "other None" in _outputs(
        staged / "01_other.ipynb")


def test_sections_command_lists_parameters(project, capsys):
    assert _cli(project, "sections") == 0
    out = capsys.readouterr().out
    assert "00_tiny" in out and "parameters: n, label" in out and "02_broken" in out
    assert "notes" not in out  # a plain Markdown page is not a section


def test_notebook_command_writes_ipynb(project, tmp_path, capsys):
    out = tmp_path / "nb"
    out.mkdir()
    assert _cli(project, "notebook", "00", "01", "-o", str(out)) == 0
    nb = nbformat.read(str(out / "00_tiny.ipynb"), as_version=4)
    assert "parameters" in nb.cells[1].metadata["tags"]
    assert _cli(project, "notebook", "00", "01", "-o", str(tmp_path / "x.ipynb")) == 2


def test_page_profiles_and_parameters_are_read_without_executing(tmp_path):
    path = tmp_path / "x.md"
    _notebook(path, 'PROFILES = {"smoke": dict(n=1), "cpu": {"n": 2}, "paper": dict(n=[3, 4])}\n'
                    "from laperm import book", params="n = None\nlabel: str = None")
    page = source.read_page(path)
    assert source.page_profiles(page) == {
        "smoke": {"n": 1}, "cpu": {"n": 2}, "paper": {"n": [3, 4]}}
    assert source.page_parameters(page) == {"profile": "cpu", "n": None, "label": None}
    assert source.is_page(path) and not source.is_page(tmp_path / "missing.md")


def test_toc_is_restricted_to_built_pages():
    toc = {"format": "jb-book", "root": "book/00",
           "parts": [{"caption": "A", "chapters": [{"file": "book/01"}, {"file": "book/02"}]},
                     {"caption": "B", "chapters": [{"file": "book/03"}]}]}
    kept = site.filter_toc(toc, lambda f: f in ("book/00", "book/02"))
    assert kept == {"format": "jb-book", "root": "book/00",
                    "parts": [{"caption": "A", "chapters": [{"file": "book/02"}]}]}


def test_global_options_also_after_the_command(project, capsys):
    code = main(["sections", "--root", str(project.root), "--build-dir", str(project.build)])
    assert code == 0
    assert "00_tiny" in capsys.readouterr().out


# ---------------------------------------------------------------- where things go


def test_project_is_the_checkout_of_the_current_folder(project, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LAPERM_ROOT", raising=False)
    monkeypatch.delenv("LAPERM_BUILD_DIR", raising=False)
    (project.root / "pyproject.toml").write_text('[project]\nname = "laperm"\n')
    monkeypatch.chdir(project.book_dir)
    found = Project.find()
    assert found.root == project.root.resolve()
    assert found.build == (project.root / "_build").resolve()  # never the package's folder
    monkeypatch.chdir(tmp_path)
    assert main(["sections"]) == 2
    err = capsys.readouterr().err
    assert "no laperm project here" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["sections", "run", "book", "build"])
def test_commands_without_the_book_extra_exit_2(project, monkeypatch, capsys, command):
    monkeypatch.setitem(sys.modules, "jupytext", None)
    args = [command] + (["00"] if command == "run" else [])
    assert _cli(project, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "jupytext" in err and 'pip install "laperm[book]"' in err


def test_reproduce_and_crosscheck_are_laperm_subcommands(capsys):
    """``laperm reproduce`` and ``laperm crosscheck`` are the ``python -m`` commands under one name."""
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "no_such_experiment"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "laperm reproduce: error: unknown experiment(s) ['no_such_experiment']" in err
    with pytest.raises(SystemExit) as exit_:
        main(["crosscheck", "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: laperm crosscheck ")
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    assert "reproduce " in listing and "crosscheck " in listing
