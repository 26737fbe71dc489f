"""The contract every page of the book keeps (fast: nothing is executed).

A page is ``book/<section>.md``, a MyST Markdown notebook: a ``parameters``
cell (``profile = "cpu"``, every other parameter ``None``), a literal
``PROFILES`` table with a value of every parameter in every profile,
``sec = book.setup("<section>", profile, PROFILES, globals())`` (the parameters are the
table's names, read from the page's namespace)
and ``book.finish(sec)`` as the last code cell.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import pytest

from laperm.book import PROFILE_NAMES
from laperm.book.layout import Project
from laperm.book.sections import section_names, toc_files
from laperm.book.source import declared_reads, page_parameters, page_profiles, read_page

REPO = Path(__file__).resolve().parents[1]
PROJECT = Project(root=REPO, build=REPO / "_build")
SECTIONS = section_names(PROJECT)


def test_every_page_is_one_text_file():
    assert SECTIONS, "no pages in book/"
    assert not list((REPO / "book").glob("*.ipynb")), "pages are book/<section>.md only"
    for entry in toc_files(PROJECT):
        assert (REPO / f"{entry}.md").is_file(), f"_toc.yml names {entry}, which has no .md"
    assert set(SECTIONS) == {e.split("/")[-1] for e in toc_files(PROJECT)} - {"bibliography"}


def _setup_call(page):
    for cell in page.cells:
        if cell.cell_type != "code" or "book.setup(" not in cell.source:
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "setup"):
                return node
    return None


@pytest.mark.parametrize("section", SECTIONS)
def test_page_contract(section):
    page = read_page(PROJECT.page(section))
    params = page_parameters(page)
    assert list(params)[:1] == ["profile"] and params["profile"] == "cpu"
    knobs = [name for name in params if name != "profile"]
    assert all(params[name] is None for name in knobs), "every parameter but profile is None"

    call = _setup_call(page)
    assert call is not None, "no book.setup(...) call"
    assert isinstance(call.args[0], ast.Constant) and call.args[0].value == section
    assert [a.id for a in call.args[1:3]] == ["profile", "PROFILES"]
    namespace = call.args[3]
    assert isinstance(namespace, ast.Call) and namespace.func.id == "globals" and not namespace.args

    table = page_profiles(page)
    assert table is not None and sorted(table) == sorted(PROFILE_NAMES)
    for profile, values in table.items():
        assert sorted(values) == sorted(knobs), profile

    code = [c for c in page.cells if c.cell_type == "code"]
    assert re.fullmatch(r"book\.finish\(sec\);?", code[-1].source.strip())
    # the kernel's quiet start is part of book.setup, not of the page
    assert not any("TF_CPP_MIN_LOG_LEVEL" in c.source for c in code)


@pytest.mark.parametrize("section", SECTIONS)
def test_declared_reads_are_project_or_build_files(section):
    """A page reads committed records (runs, benchmarks) or this build's files."""
    for pattern in declared_reads(read_page(PROJECT.page(section))):
        assert pattern.startswith(("results/", "benchmarks/results/", "{build}/")), pattern


@pytest.mark.parametrize("section", SECTIONS)
def test_page_is_in_jupytext_canonical_form(section):
    """Saving the page from Jupyter (jupytext) leaves it as it is."""
    path = PROJECT.page(section)
    text = path.read_text()
    again = jupytext.writes(jupytext.read(str(path)), fmt="md:myst")
    strip = lambda t: re.sub(r"\n\s*jupytext_version: .*", "", t)
    assert strip(again) == strip(text)


def test_book_runs_are_named_like_results_runs_plus_the_config_hash(tmp_path, monkeypatch):
    from laperm import book
    from laperm.experiment import paper_config
    from laperm.reproduce import run_name

    cfg = paper_config("conv7", epochs=1, train_fraction=0.1, validation_size=500)
    assert book.run_folder(cfg) == f"conv7_laperm_s0_e1_f10-{cfg.hash}"
    assert book.run_folder(cfg.adam_baseline()).startswith(run_name(cfg.adam_baseline()) + "-")
    # two configs with one run name (another validation split) get two folders
    other = cfg.replace(validation_size=1000)
    assert run_name(other) == run_name(cfg) and book.run_folder(other) != book.run_folder(cfg)
    monkeypatch.setenv("LAPERM_BUILD_DIR", str(tmp_path))
    sec = book.setup("x", "smoke", {p: {} for p in book.PROFILE_NAMES}, {}, show_banner=False)
    assert sec.run_dir(cfg) == tmp_path / "runs" / "smoke" / book.run_folder(cfg)


def test_knob_choices_come_from_the_config_and_the_paper():
    """The pages' model and input choices are the paper's CIFAR-10 conv rows and the config's
    CIFAR preprocessings: adding one there adds it to the knobs, and every choice is a value
    ``ExperimentConfig`` accepts."""
    from laperm.book.knobs import KNOBS
    from laperm.paper import paper_config

    assert KNOBS["models"].choices == ("conv2", "conv4", "conv13")
    assert KNOBS["preprocessing"].choices == ("cifar_raw", "cifar_standardize")
    for model in KNOBS["models"].choices:
        for preprocessing in KNOBS["preprocessing"].choices:
            assert paper_config(model, preprocessing=preprocessing).preprocessing == preprocessing
