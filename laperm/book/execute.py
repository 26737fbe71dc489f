"""Execute a section's page with papermill, unless its cached output is current.

The page ``book/<s>.md`` is read with jupytext and handed to papermill as an
in-memory notebook (kernel ``python3``, working directory ``book/``); the
executed notebook goes to ``<build>/executed/<s>.ipynb``, the page is never
modified.  A failed execution is kept as ``<build>/executed/<s>.failed.ipynb``;
the previous good output of that section, and every other section's output,
are left in place.  A section whose key (:func:`laperm.book.cache.cache_key`)
did not change is not executed again; when only its text changed, its
executed notebook gets the page's current Markdown.  Finished training runs
are reused from ``<build>/runs/<profile>/`` in any case: delete that folder to
retrain.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from pathlib import Path

from laperm.atomic import atomic_write
from laperm.book.cache import cache_key, is_cached, load_cache, save_cache
from laperm.book.layout import BUILD_ENV, Project
from laperm.book.sections import Plan
from laperm.book.source import read_page, with_colab_install, with_outputs
from laperm.project import ROOT_ENV

KERNEL_NAME = "python3"


@dataclasses.dataclass
class Outcome:
    """What happened to one section."""

    section: str
    status: str  # "executed" | "cached" | "FAILED"
    wall_time_s: float
    output: Path | None = None
    error: str | None = None


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def describe_failure(exc: BaseException, section: str, tail: int = 20) -> str:
    """A readable account of a failed execution: the cell, the error, the traceback tail."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        source = exc.source.strip().splitlines()
        shown = source[:25] + (["    ..."] if len(source) > 25 else [])
        tb = _ANSI.sub("", "\n".join(exc.traceback or [])).splitlines()
        tb = [line for line in tb if line.strip()][-tail:]
        return "\n".join(
            [f"section {section}: cell {exc.cell_index} (execution count {exc.exec_count}) raised "
             f"{exc.ename}: {exc.evalue}", "--- cell source ---", *shown,
             "--- traceback (tail) ---", *tb]
        )
    return f"section {section}: {type(exc).__name__}: {exc}"


def _hide_injected_parameters(nb) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell`` for the book.

    The page's scale banner already states the profile and every overridden
    parameter; the raw cell would repeat it in code form.
    """
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")


@contextlib.contextmanager
def _environ(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def refresh_text(project: Project, section: str) -> bool:
    """Give the executed notebook the page's current Markdown; True if it changed."""
    import nbformat

    path = project.executed(section)
    executed = nbformat.read(str(path), as_version=4)
    merged = with_outputs(read_page(project.page(section)), executed)
    if merged is None or merged == executed:
        return False
    atomic_write(path, lambda tmp: nbformat.write(merged, str(tmp)))
    return True


def execute(project: Project, p: Plan, *, force: bool = False, log_output: bool = True,
            progress_bar: bool = True, echo=print) -> Outcome:
    """Execute one planned section unless its cached output is current.

    Never raises for a failing page: the outcome says ``FAILED`` and carries
    :func:`describe_failure`'s text.
    """
    import nbformat
    import papermill

    key = cache_key(project, p)
    if not force and is_cached(project, p, key):
        refresh_text(project, p.section)
        return Outcome(p.section, "cached", 0.0, project.executed(p.section))
    project.executed_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = project.executed_dir / ".running"
    tmp_dir.mkdir(exist_ok=True)
    tmp = tmp_dir / f"{p.section}.ipynb"
    failed = project.executed_dir / f"{p.section}.failed.ipynb"
    echo(f"[laperm] executing {p.section} (profile {p.profile}"
         + "".join(f", {k}={v!r}" for k, v in p.overrides.items()) + ")")
    t0 = time.perf_counter()
    try:
        # The kernel sees this project and build folder (it inherits the environment).
        with _environ(**{BUILD_ENV: str(project.build), ROOT_ENV: str(project.root),
                         "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}):
            nb = papermill.execute_notebook(
                read_page(project.page(p.section)), str(tmp), parameters=p.parameters,
                kernel_name=KERNEL_NAME, cwd=str(project.book_dir), log_output=log_output,
                progress_bar=progress_bar, request_save_on_cell_execute=True,
            )
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal
        wall = time.perf_counter() - t0
        if tmp.exists():
            os.replace(tmp, failed)
        cache = load_cache(project)
        if p.section in cache:
            cache[p.section]["key"] = None  # the stored output is no longer current
            save_cache(project, cache)
        return Outcome(p.section, "FAILED", wall, failed if failed.exists() else None,
                       describe_failure(exc, p.section))
    wall = time.perf_counter() - t0
    _hide_injected_parameters(nb)
    nbformat.write(nb, str(tmp))
    os.replace(tmp, project.executed(p.section))
    if failed.exists():
        failed.unlink()
    cache = load_cache(project)
    cache[p.section] = {
        # the inputs as they were when the execution started
        "key": key,
        "profile": p.profile,
        "parameters": p.overrides,
        "executed_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "wall_time_s": round(wall, 1),
    }
    save_cache(project, cache)
    return Outcome(p.section, "executed", wall, project.executed(p.section))


def write_notebook(project: Project, section: str, out: Path) -> Path:
    """Write the page as a ``.ipynb`` (no outputs), e.g. for ``papermill`` itself."""
    import nbformat

    out = Path(out)
    if out.is_dir():
        out = out / f"{section}.ipynb"
    nb = with_colab_install(read_page(project.page(section)), project.repository_url)
    nbformat.write(nb, str(out))
    return out


def summary_table(outcomes: list[Outcome]) -> str:
    """The text table printed at the end of ``laperm book``/``laperm run``."""
    width = max([len(o.section) for o in outcomes] + [7])
    lines = [f"{'section':<{width}}  {'status':<8}  {'wall time':>9}",
             f"{'-' * width}  {'-' * 8}  {'-' * 9}"]
    for o in outcomes:
        wall = f"{o.wall_time_s:8.1f}s" if o.status != "cached" else "        -"
        lines.append(f"{o.section:<{width}}  {o.status:<8}  {wall:>9}")
    total = sum(o.wall_time_s for o in outcomes)
    lines.append(f"{'total':<{width}}  {'':<8}  {total:8.1f}s")
    return "\n".join(lines)
