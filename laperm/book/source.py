"""One page of the book: ``book/<section>.md``, a MyST Markdown notebook.

A page is read with jupytext into an in-memory notebook (nothing is written
next to it).  What the pipeline needs from a page is read without executing
it: its papermill ``parameters`` cell, its ``PROFILES`` table, the files it
declares it reads (``laperm: reads:`` in the page's front matter) and the
fingerprint of its code.

Contract of every page (tested over all of ``book/``): a code cell tagged
``parameters`` (``profile = "cpu"`` and every other parameter ``= None``), a
literal ``PROFILES = {...}`` table, ``sec = book.setup("<section>", profile,
PROFILES, globals())`` and ``book.finish(sec)`` as the last code cell.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
from pathlib import Path


def is_page(path: Path) -> bool:
    """Whether ``path`` is a notebook page (a ``.md`` with a kernel in its front matter)."""
    if path.suffix != ".md" or not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return False
    end = text.find("\n---", 4)
    return end > 0 and re.search(r"^kernelspec:", text[4:end], flags=re.MULTILINE) is not None


def read_page(path: str | os.PathLike):
    """The page as an in-memory notebook (``nbformat.NotebookNode``, version 4)."""
    import jupytext

    return jupytext.read(str(path), fmt="md:myst")


def _as_notebook(page):
    return page if hasattr(page, "cells") else read_page(page)


def _tags(cell) -> list:
    return list(cell.get("metadata", {}).get("tags", []))


def _strip_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def parameters_cell(page):
    """The code cell tagged ``parameters``, or None."""
    nb = _as_notebook(page)
    return next((c for c in nb.cells if c.cell_type == "code" and "parameters" in _tags(c)),
                None)


def page_parameters(page) -> dict:
    """``{name: default}`` of the page's ``parameters`` cell, in its order.

    Defaults are Python literals (``None`` for every parameter but ``profile``);
    a default that is not a literal is given as its source text.
    """
    cell = parameters_cell(page)
    if cell is None:
        return {}
    out = {}
    for node in ast.parse(_strip_magics(cell.source)).body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) and node.value else [])
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    out[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    out[target.id] = ast.unparse(node.value)
    return out


def _literal_profiles(node) -> dict:
    def value(n):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "dict" \
                and not n.args:
            return {k.arg: value(k.value) for k in n.keywords}
        if isinstance(n, ast.Dict):
            return {ast.literal_eval(k): value(v) for k, v in zip(n.keys, n.values)}
        return ast.literal_eval(n)

    table = value(node)
    if not isinstance(table, dict):
        raise ValueError("PROFILES is not a dict")
    return table


def page_profiles(page) -> dict[str, dict] | None:
    """The page's ``PROFILES = {...}`` table, read without executing it.

    Handles ``{"smoke": dict(a=1), "cpu": {"a": 2}}`` with literal values;
    None when the table is absent or not literal.
    """
    nb = _as_notebook(page)
    for cell in nb.cells:
        if cell.cell_type != "code" or "PROFILES" not in cell.source:
            continue
        try:
            tree = ast.parse(_strip_magics(cell.source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "PROFILES" for t in node.targets
            ):
                try:
                    return _literal_profiles(node.value)
                except (ValueError, TypeError):
                    return None
    return None


def page_title(page) -> str:
    """The first ``# `` heading of the page's Markdown."""
    nb = _as_notebook(page)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def declared_reads(page) -> list[str]:
    """The glob patterns of ``laperm: reads:`` in the page's front matter.

    Patterns are relative to the project root; ``{build}/...`` is relative to
    the build folder, and ``{profile}`` stands for the executed profile.
    """
    nb = _as_notebook(page)
    reads = nb.metadata.get("laperm", {}).get("reads", [])
    return [reads] if isinstance(reads, str) else list(reads)


def code_fingerprint(page) -> str:
    """sha256 of what the page computes: its code cells (source and tags) and kernel.

    Markdown cells are left out: a change of text does not re-execute the
    page (:func:`with_outputs` puts the current text beside the old outputs).
    """
    nb = _as_notebook(page)
    cells = [{"source": c.source, "tags": _tags(c)} for c in nb.cells if c.cell_type == "code"]
    meta = {"kernel": nb.metadata.get("kernelspec", {}).get("name")}
    blob = json.dumps({"cells": cells, "meta": meta}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def with_outputs(page, executed):
    """The page's current cells, with the outputs of an earlier execution.

    The executed notebook's code cells (and papermill's injected-parameters
    cell) are kept; its Markdown cells are replaced by the page's.  Returns
    None when the page's code differs from what was executed (then its
    outputs would not belong to it).
    """
    import copy

    page = _as_notebook(page)
    ran = [c for c in executed.cells
           if c.cell_type == "code" and "injected-parameters" not in _tags(c)]
    code = [c for c in page.cells if c.cell_type == "code"]
    if [c.source for c in ran] != [c.source for c in code]:
        return None
    injected = [c for c in executed.cells if "injected-parameters" in _tags(c)]
    out = copy.deepcopy(executed)
    cells, done = [], iter(ran)
    for cell in page.cells:
        if cell.cell_type == "code":
            cells.append(next(done))
            if "parameters" in _tags(cell):
                cells.extend(injected)
        else:
            cells.append(copy.deepcopy(cell))
    out.cells = cells
    return out


#: The tag of the cell that installs the package on Google Colab (not rendered).
COLAB_TAG = "colab-install"


def colab_install_cell(repository_url: str):
    """A code cell that installs the package when (and only when) it runs on Colab.

    Tagged ``remove-cell`` (the book does not show it) and :data:`COLAB_TAG`.
    Elsewhere it does nothing: the package is installed by ``scripts/setup.sh``.
    """
    import nbformat

    source = (
        "# On Google Colab only: install the companion package (and its book extras) first.\n"
        "import sys\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    %pip install -q \"laperm[cpu,book] @ git+{repository_url}\"\n")
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["remove-cell", COLAB_TAG]
    return cell


def with_colab_install(nb, repository_url: str | None):
    """``nb`` with :func:`colab_install_cell` first (unchanged without a repository URL)."""
    if not repository_url or any(COLAB_TAG in c.get("metadata", {}).get("tags", [])
                                 for c in nb.cells):
        return nb
    nb.cells.insert(0, colab_install_cell(repository_url))
    return nb
