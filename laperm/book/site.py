"""Build the book's HTML from the executed pages (Jupyter Book 1).

The sources are staged into ``<build>/site-src/``: ``_config.yml``, a
``_toc.yml`` restricted to the pages that exist, the Markdown, bibliography
and static files of ``book/``, and, in place of each section's page, its
*executed* notebook ``<section>.ipynb`` with the page's current text.  Then
``jupyter-book build`` runs strictly (warnings are errors, ``--keep-going``
to report them all) with execution off.  The HTML ends in
``<build>/html/index.html``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from laperm.book.errors import SectionFailed, UsageError
from laperm.book.layout import Project
from laperm.book.sections import load_yaml, section_names, toc_files
from laperm.book.source import read_page, with_colab_install, with_outputs

_STAGE_SKIP = {".ipynb_checkpoints", "__pycache__"}


def filter_toc(node, keep):
    """The toc with entries whose file is not staged removed (empty groups dropped)."""
    if isinstance(node, list):
        items = [filter_toc(n, keep) for n in node]
        return [n for n in items if n is not None]
    if isinstance(node, dict):
        if "file" in node and not keep(node["file"]):
            return None
        out = {}
        for key, value in node.items():
            if isinstance(value, list):
                value = filter_toc(value, keep)
                if not value:
                    continue
            out[key] = value
        if "file" not in out and "root" not in out and "format" not in out and not any(
            isinstance(v, list) for v in out.values()
        ):
            return None
        return out
    return node


def _stage_executed(project: Project, section: str, target: Path,
                    repository_url: str | None) -> None:
    """The executed notebook, with the page's current text where its code is unchanged."""
    import nbformat

    executed = nbformat.read(str(project.executed(section)), as_version=4)
    merged = with_outputs(read_page(project.page(section)), executed)
    nb = with_colab_install(merged if merged is not None else executed, repository_url)
    nbformat.write(nb, str(target))


def site_config(config: dict, repository_url: str | None) -> dict:
    """The Jupyter Book config of the staged site.

    Launch buttons are always off: they open ``<page>.ipynb`` in the
    repository, and the repository holds each page as ``.md`` (the download
    button gives the executed ``.ipynb``, whose first cell installs the package
    on Colab).  The repository and issue buttons are on only when
    ``repository: url:`` is set, so no button points at a repository that
    does not exist.
    """
    config = dict(config)
    config.pop("launch_buttons", None)
    html = dict(config.get("html") or {})
    html["use_repository_button"] = html["use_issues_button"] = bool(repository_url)
    config["html"] = html
    if not repository_url:
        config.pop("repository", None)
    return config


def stage(project: Project, echo=print) -> list[str]:
    """Copy the book's sources, with executed notebooks, to ``<build>/site-src``.

    Returns:
        The toc entries left out (a page never executed, a missing file).
    """
    import yaml

    src = project.staging_dir
    if src.exists():
        shutil.rmtree(src)
    (src / "book").mkdir(parents=True)
    config = load_yaml(project.config_path) or {}
    repository_url = project.repository_url
    (src / "_config.yml").write_text(
        yaml.safe_dump(site_config(config, repository_url), sort_keys=False))
    sections = section_names(project)
    pages = {project.page(s).resolve() for s in sections}
    for path in project.book_dir.rglob("*"):
        rel = path.relative_to(project.book_dir)
        if (path.is_dir() or path.suffix == ".ipynb" or path.resolve() in pages
                or _STAGE_SKIP & set(rel.parts)):
            continue
        (src / "book" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, src / "book" / rel)
    for section in sections:
        if project.executed(section).is_file():
            _stage_executed(project, section, src / "book" / f"{section}.ipynb", repository_url)

    def keep(entry: str) -> bool:
        entry = re.sub(r"\.(ipynb|md)$", "", entry)
        return any((src / f"{entry}{ext}").is_file() for ext in (".ipynb", ".md"))

    toc = load_yaml(project.toc_path)
    missing = [e for e in toc_files(project) if not keep(e)]
    if toc.get("root") and not keep(toc["root"]):
        raise UsageError(f"the book's root page {toc['root']!r} was not executed; run its section first")
    (src / "_toc.yml").write_text(yaml.safe_dump(filter_toc(toc, keep), sort_keys=False))
    for entry in missing:
        echo(f"[laperm] left out of the book (not executed or missing): {entry}")
    return missing


def build_html(project: Project, *, strict: bool = True, echo=print) -> Path:
    """Stage and build the HTML; returns ``<build>/html/index.html``.

    Raises:
        SectionFailed: jupyter-book failed (warnings count as errors when strict).
    """
    stage(project, echo=echo)
    out = project.build / "jb"
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
           str(project.staging_dir), "--path-output", str(out), "--all"]
    if strict:
        cmd += ["--warningiserror", "--nitpick", "--keep-going"]
    echo("[laperm] building the book: jupyter-book build " + " ".join(cmd[4:]))
    t0 = time.perf_counter()
    # Sphinx's warnings go to stderr (shown as they come); its progress log
    # to stdout, shown only when the build fails.
    proc = subprocess.run(cmd, cwd=str(project.root), stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        echo("\n".join(proc.stdout.splitlines()[-40:]))
        raise SectionFailed(f"jupyter-book build failed (exit code {proc.returncode}); "
                            "see the warnings above")
    built = out / "_build" / "html"
    if project.html_dir.exists():
        shutil.rmtree(project.html_dir)
    shutil.move(str(built), str(project.html_dir))
    echo(f"[laperm] book built in {time.perf_counter() - t0:.0f} s")
    return project.html_dir / "index.html"
