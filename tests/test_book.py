"""The whole book: every section at the ``smoke`` profile, a strict HTML build,
every page opened in headless Chromium, and a papermill override that reaches
the recorded results.

Marked ``book`` (minutes): ``pytest -m book`` runs only these, ``-m "not book"``
skips them.  The build goes to a fresh temporary folder, or to
``$LAPERM_BOOK_TEST_BUILD_DIR`` when set (then cached sections are reused).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from laperm.book.layout import Project
from laperm.book.sections import section_names, toc_files

# Under xdist one worker runs this whole file (conftest.py: pytest_xdist_make_scheduler),
# so the smoke build, a session fixture, is made once.
pytestmark = pytest.mark.book

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def _env(data_dir: Path, build: Path) -> dict:
    env = dict(os.environ)
    env.update(LAPERM_DATA_DIR=str(data_dir), LAPERM_BUILD_DIR=str(build),
               TF_CPP_MIN_LOG_LEVEL="2")
    return env


def _laperm(args, env, timeout):
    return subprocess.run([sys.executable, "-m", "laperm.cli", "--root", str(REPO), *args],
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def built_book(data_dir, tmp_path_factory):
    """``laperm book --profile smoke`` once per session; returns the build folder."""
    given = os.environ.get("LAPERM_BOOK_TEST_BUILD_DIR")
    build = Path(given) if given else tmp_path_factory.mktemp("book") / "build"
    proc = _laperm(["book", "--profile", "smoke", "-q", "--no-progress"],
                   _env(data_dir, build), timeout=1800)
    log = build / "laperm-book.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    if proc.returncode != 0:
        pytest.fail(f"laperm book --profile smoke failed (exit {proc.returncode}); log: {log}\n"
                    + proc.stdout[-3000:] + "\n" + proc.stderr[-3000:])
    print(proc.stdout[-2500:])  # the summary table with wall times (pytest -s shows it)
    return build


def test_every_section_executed_and_rendered(built_book):
    project = Project(root=REPO, build=built_book)
    sections = section_names(project)
    assert sections, "no pages in book/"
    cache = json.loads(project.cache_path.read_text())
    for section in sections:
        assert project.executed(section).is_file(), section
        assert cache[section]["profile"] == "smoke"
        assert (built_book / "html" / "book" / f"{section}.html").is_file(), section
    assert (built_book / "html" / "index.html").is_file()
    # every section wrote its status record (the status page reads them)
    status = {p.stem for p in (built_book / "status").glob("*.json")}
    assert set(sections) <= status


def test_every_toc_page_is_built(built_book):
    """Every entry of _toc.yml is a rendered page (test_pages.py checks that each
    has its .md), the bibliography included."""
    entries = toc_files(Project(root=REPO, build=built_book))
    assert entries[0] == "book/00_introduction" and entries[-1] == "book/bibliography"
    missing = [e for e in entries if not (built_book / "html" / f"{e}.html").is_file()]
    assert not missing, f"in _toc.yml but not rendered: {missing}"


@pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                    reason=f"{CHROMIUM} not found: install the Debian package `chromium` "
                           "to check the rendered pages in a browser")
def test_pages_in_headless_chromium(built_book):
    shots = built_book / "screenshots"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_pages.py"), "--build-dir", str(built_book),
         "--chromium", CHROMIUM, "--screenshots", str(shots)],
        capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_papermill_parameter_reaches_the_results(data_dir, tmp_path):
    """``-p`` overrides reach the notebook: its banner, status record and outputs."""
    build = tmp_path / "build"
    proc = _laperm(["run", "00_introduction", "--profile", "smoke", "-p", "n_values", "7",
                    "-q", "--no-progress"], _env(data_dir, build), timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    record = json.loads((build / "status" / "00_introduction.json").read_text())
    assert record["profile"] == "smoke"
    assert record["params"]["n_values"] == 7 and record["overridden"] == ["n_values"]
    nb = nbformat.read(str(build / "executed" / "00_introduction.ipynb"), as_version=4)
    text = json.dumps([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"])
    assert "n_values=7" in text  # the banner lists the overridden parameter
    assert "of 7" in text  # the toy vector really has 7 weights


def test_check_pages_flags_a_broken_page(built_book, tmp_path):
    """The browser check fails on a page with a traceback or a missing figure."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} not found")
    fake = tmp_path / "build"
    (fake / "site-src" / "book").mkdir(parents=True)
    shutil.copytree(built_book / "html", fake / "html")
    (fake / "site-src" / "_toc.yml").write_text("format: jb-book\nroot: book/08_status\n")
    page = fake / "html" / "book" / "08_status.html"
    html = page.read_text()
    html = html.replace('<div class="cell_output docutils container">',
                        '<div class="cell_output docutils container"><div class="output traceback '
                        'highlight-ipythontb notranslate"><pre>Traceback (most recent call last)'
                        '</pre></div>', 1)
    page.write_text(html)
    nb = nbformat.read(str(built_book / "executed" / "08_status.ipynb"), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": "iVBORw0KGgo="})] * 5))
    nbformat.write(nb, str(fake / "site-src" / "book" / "08_status.ipynb"))
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_pages.py"), "--build-dir", str(fake)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "error/stderr output" in proc.stdout
    assert "image(s) in outputs" in proc.stdout


def test_no_page_prints_a_local_path(built_book, data_dir):
    """Rendered outputs never show where this machine keeps the project or its data."""
    local = {str(REPO), str(Path(data_dir).resolve()), str(REPO.parent), str(built_book)}
    offenders = []
    for path in sorted((built_book / "executed").glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            for out in cell.get("outputs", []):
                if out.get("name") == "stderr":
                    continue  # not rendered (nb_output_stderr: remove)
                text = json.dumps(out.get("data", {})) + out.get("text", "")
                offenders += [f"{path.stem}: {p}" for p in local if p and p != "/" and p in text]
    assert not offenders, offenders
