"""Execute the book's notebooks with papermill, cache them, and build the HTML.

The pipeline (used by the ``laperm`` command, :mod:`laperm.cli`):

1. **Sections.**  A section is a notebook ``book/<name>.ipynb`` listed in
   ``_toc.yml`` (in toc order; other notebooks of ``book/`` follow).  Names may
   be abbreviated to a unique prefix (``05_1`` for ``05_1_conv7_mnist``).
2. **Validation** before anything runs: the section, the profile and every
   ``-p NAME VALUE`` override are checked against the notebook's papermill
   ``parameters`` cell, and each value against its declared type and range
   (:data:`laperm.book.KNOBS`: ``-p epochs three`` or ``-p adam_baseline maybe``
   is refused, ``-p adam_baseline no`` is False, ``-p sync_periods 20`` is
   ``[20]``); a mistake is a :class:`UsageError` (exit code 2).
3. **Execution.**  ``book/<s>.ipynb`` is executed by papermill (kernel
   ``python3``, working directory ``book/``) into
   ``<build>/executed/<s>.ipynb``; the source notebook is never modified.  A
   failed execution is kept as ``<build>/executed/<s>.failed.ipynb`` and the
   previous good output of that section, and every other section's output,
   are left in place.
4. **Cache.**  A section is not re-executed when its *key* did not change:
   sha256 of the notebook without outputs, the profile and parameters, the
   ``laperm`` package sources, the data files (name, size, mtime), the
   committed records under ``results/`` (every ``result.json`` with its
   ``history.csv``) and the build records the notebook
   declares it reads (``metadata.laperm.reads``, glob patterns relative to
   the build folder, ``{profile}`` substituted; e.g. the results page reads
   ``runs/{profile}/**/result.json``).  Keys live in
   ``<build>/executed/cache.json``; ``force=True`` re-executes.  Finished
   training runs are reused from ``<build>/runs/<profile>/`` in any case:
   delete that folder to retrain.
5. **Build.**  The book's sources are staged into ``<build>/site-src/``
   (``_config.yml``, a ``_toc.yml`` restricted to the pages that exist,
   ``book/`` Markdown, bibliography and static files, and the *executed*
   notebooks in place of the sources), then ``jupyter-book build`` runs
   strictly (warnings are errors, ``--keep-going`` to report them all) with
   execution off.  The HTML ends in ``<build>/html/index.html``.

``<build>`` is ``$LAPERM_BUILD_DIR`` or ``_build`` at the repository root
(:func:`laperm.book.build_dir`).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from laperm.book import KNOBS, PROFILE_NAMES, REPO_ROOT, build_dir, check_parameter

#: Bump to invalidate every cached execution (changes of the pipeline itself).
PIPELINE_VERSION = 1
KERNEL_NAME = "python3"


class UsageError(Exception):
    """A mistake in the command line (unknown section, profile or parameter)."""


class SectionFailed(Exception):
    """A section's notebook raised while executing."""


# --------------------------------------------------------------------------
# Project layout
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Project:
    """Where the book's sources and build outputs are."""

    root: Path
    build: Path

    @classmethod
    def find(cls, root: str | os.PathLike | None = None,
             build: str | os.PathLike | None = None) -> "Project":
        """The project at ``root`` (default: ``$LAPERM_ROOT``, else the current
        folder when it holds ``_toc.yml`` and ``book/``, else the repository of
        this package)."""
        root = root or os.environ.get("LAPERM_ROOT") or None
        if root is None:
            cwd = Path.cwd()
            root = cwd if (cwd / "_toc.yml").is_file() and (cwd / "book").is_dir() else REPO_ROOT
        root = Path(root).resolve()
        if not (root / "book").is_dir():
            raise UsageError(f"no book/ folder in {root}; run from the repository root or pass --root")
        return cls(root=root, build=Path(build).resolve() if build else build_dir().resolve())

    @property
    def book_dir(self) -> Path:
        return self.root / "book"

    @property
    def toc_path(self) -> Path:
        return self.root / "_toc.yml"

    @property
    def executed_dir(self) -> Path:
        return self.build / "executed"

    @property
    def cache_path(self) -> Path:
        return self.executed_dir / "cache.json"

    @property
    def site_src(self) -> Path:
        return self.build / "site-src"

    @property
    def html_dir(self) -> Path:
        return self.build / "html"

    def notebook(self, section: str) -> Path:
        return self.book_dir / f"{section}.ipynb"

    def executed(self, section: str) -> Path:
        return self.executed_dir / f"{section}.ipynb"


def _load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text()) if path.is_file() else None


def toc_entries(toc_path: str | os.PathLike) -> list[str]:
    """The ``file``/``root`` entries of a ``_toc.yml`` in reading order (no suffix)."""
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    out.append(re.sub(r"\.(ipynb|md)$", "", node[key]))
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(_load_yaml(Path(toc_path)) or {})
    return out


def toc_files(project: Project) -> list[str]:
    """The entries of the project's ``_toc.yml`` in reading order (no suffix)."""
    return toc_entries(project.toc_path)


def sections(project: Project) -> list[str]:
    """Section names: the toc's notebooks that exist, then other ``book/*.ipynb``."""
    names = []
    for entry in toc_files(project):
        path = project.root / f"{entry}.ipynb"
        if path.parent == project.book_dir and path.is_file() and path.stem not in names:
            names.append(path.stem)
    for path in sorted(project.book_dir.glob("*.ipynb")):
        if path.stem not in names:
            names.append(path.stem)
    return names


def resolve_section(name: str, valid: list[str]) -> str:
    """An exact section name, a unique prefix, or a path ``book/<name>.ipynb``.

    Raises:
        UsageError: unknown or ambiguous name (the message lists the valid ones).
    """
    key = Path(name).name
    key = key[:-6] if key.endswith(".ipynb") else key
    if key in valid:
        return key
    matches = [s for s in valid if s.startswith(key)] if key else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"section {name!r} is ambiguous: {', '.join(matches)}")
    raise UsageError(
        f"unknown section {name!r}; valid sections: {', '.join(valid) or '(none found in book/)'}"
    )


def resolve_sections(project: Project, names: Iterable[str] | None) -> list[str]:
    """Resolve names (None or empty: every section), keeping toc order for all."""
    valid = sections(project)
    if not names:
        return valid
    chosen = []
    for name in names:
        section = resolve_section(name, valid)
        if section not in chosen:
            chosen.append(section)
    return chosen


# --------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A command-line parameter value, typed like papermill ``-p`` / ``-y``.

    ``None``/``null`` -> None, ``True``/``False`` (any case) -> bool, integers,
    floats (``1e-3`` too), ``[..]``/``{..}`` -> YAML list/dict, anything else
    stays a string (quote it, e.g. ``"'5'"``, to force a string).
    """
    if not isinstance(text, str):
        return text
    s = text.strip()
    low = s.lower()
    if low in ("none", "null", "~"):
        return None
    if low == "true":
        return True
    if low == "false":
        return False
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        pass
    if s[:1] in "[{\"'":
        import yaml

        try:
            return yaml.safe_load(s)
        except yaml.YAMLError as exc:
            raise UsageError(f"cannot parse parameter value {text!r}: {exc}".splitlines()[0]) from None
    return text


def notebook_parameters(path: Path) -> dict[str, dict]:
    """The names (and defaults) of the notebook's papermill ``parameters`` cell."""
    import papermill

    return dict(papermill.inspect_notebook(str(path)))


def notebook_profiles(path: Path) -> dict[str, dict] | None:
    """The notebook's ``PROFILES = {...}`` table, read without executing it.

    Handles ``{"smoke": dict(a=1), "cpu": {"a": 2}}`` with literal values;
    returns None when the table is absent or not literal.
    """
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
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


def _strip_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


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


@dataclasses.dataclass
class Plan:
    """One validated execution: a section, its profile and its parameters."""

    section: str
    profile: str
    overrides: dict

    @property
    def parameters(self) -> dict:
        return {"profile": self.profile, **self.overrides}


def typed_overrides(overrides: dict, section: str | None = None) -> dict:
    """Parameter values checked and converted to their types.

    A parameter declared in :data:`laperm.book.KNOBS` gets its declared type
    and range (strings as typed on the command line are converted strictly);
    any other is typed by :func:`parse_value`.

    Raises:
        UsageError: a value of the wrong type or range (one line: the
            parameter, what it accepts, what was given).
    """
    out = {}
    for name, value in overrides.items():
        if name not in KNOBS:
            out[name] = parse_value(value)
            continue
        try:
            out[name] = check_parameter(name, value, section)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return out


def plan(project: Project, names: Iterable[str] | None, profile: str,
         overrides: dict | None = None) -> list[Plan]:
    """Validate sections, profile and parameter overrides (before executing).

    ``overrides`` may hold strings as typed on the command line; each is
    converted by :func:`typed_overrides`.

    Raises:
        UsageError: with a one-line message listing the valid choices.
    """
    if profile not in PROFILE_NAMES:
        raise UsageError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILE_NAMES)}")
    overrides = dict(overrides or {})
    if "profile" in overrides:
        raise UsageError("set the profile with --profile, not -p profile")
    chosen = resolve_sections(project, names)
    if not chosen:
        raise UsageError(f"no notebooks found in {project.book_dir}")
    plans = []
    for section in chosen:
        path = project.notebook(section)
        params = notebook_parameters(path)
        if "profile" not in params:
            raise UsageError(
                f"section {section!r} has no papermill parameters cell with `profile` "
                f"({path}); tag its parameters cell `parameters`"
            )
        unknown = sorted(set(overrides) - set(params))
        if unknown:
            valid = [p for p in params if p != "profile"]
            raise UsageError(
                f"unknown parameter(s) {', '.join(unknown)} for section {section!r}; "
                f"its parameters: {', '.join(valid) or '(none besides profile)'}"
            )
        table = notebook_profiles(path)
        if table is not None and profile not in table:
            raise UsageError(
                f"section {section!r} defines no profile {profile!r}; its profiles: "
                f"{', '.join(table)}"
            )
        plans.append(Plan(section=section, profile=profile,
                          overrides=typed_overrides(overrides, section)))
    return plans


# --------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def notebook_fingerprint(path: Path) -> str:
    """sha256 of the notebook's cells without outputs and execution counts."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    cells = [
        {"type": c.cell_type, "source": c.source, "tags": list(c.get("metadata", {}).get("tags", []))}
        for c in nb.cells
    ]
    meta = {"kernel": nb.metadata.get("kernelspec", {}).get("name"),
            "laperm": nb.metadata.get("laperm", {})}
    return _sha(json.dumps({"cells": cells, "meta": meta}, sort_keys=True).encode())


#: Modules of the command itself, which do not change what a notebook computes
#: (:data:`PIPELINE_VERSION` covers changes of the pipeline).
_NOT_FINGERPRINTED = {"cli.py", "bookbuild.py"}


def package_fingerprint() -> str:
    """sha256 of the ``laperm`` package's Python sources (not the command's own)."""
    import laperm

    pkg = Path(laperm.__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(pkg.rglob("*.py")):
        if path.name in _NOT_FINGERPRINTED:
            continue
        h.update(path.relative_to(pkg).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def data_fingerprint() -> dict:
    """Name, size and mtime of the data files in ``$LAPERM_DATA_DIR``."""
    where = os.environ.get("LAPERM_DATA_DIR")
    if not where or not Path(where).is_dir():
        return {"data_dir": None}
    files = {}
    for path in sorted(Path(where).iterdir()):
        if path.is_file():
            st = path.stat()
            files[path.name] = [st.st_size, st.st_mtime_ns]
    return {"data_dir": str(Path(where).resolve()), "files": files}


def _files_digest(paths: Iterable[Path], base: Path) -> dict:
    return {p.relative_to(base).as_posix(): _sha(p.read_bytes()) for p in sorted(set(paths))
            if p.is_file()}


def declared_reads(path: Path) -> list[str]:
    """Glob patterns (relative to the build folder) from ``metadata.laperm.reads``."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    reads = nb.metadata.get("laperm", {}).get("reads", [])
    return [reads] if isinstance(reads, str) else list(reads)


def read_inputs(project: Project, section: str, profile: str) -> dict:
    """Content digests of the records a section reads (results/ and declared build files)."""
    results = project.root / "results"
    records = []
    if results.is_dir():
        # Finished runs only: result.json (written last) and its history.csv;
        # checkpoints of a run still in progress do not count.
        for record in results.rglob("result.json"):
            records += [record, record.with_name("history.csv")]
    out = {"results": _files_digest(records, results)}
    own_status = (project.build / "status" / f"{section}.json").resolve()
    build_files = []
    for pattern in declared_reads(project.notebook(section)):
        pattern = pattern.format(profile=profile)
        for name in glob.glob(str(project.build / pattern), recursive=True):
            p = Path(name).resolve()
            if p != own_status:
                build_files.append(p)
    out["build"] = _files_digest(build_files, project.build.resolve())
    return out


def cache_key(project: Project, p: Plan) -> str:
    """The key that decides whether a section must be re-executed."""
    blob = {
        "pipeline": PIPELINE_VERSION,
        "section": p.section,
        "notebook": notebook_fingerprint(project.notebook(p.section)),
        "parameters": p.parameters,
        "package": package_fingerprint(),
        "data": data_fingerprint(),
        "reads": read_inputs(project, p.section, p.profile),
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }
    return _sha(json.dumps(blob, sort_keys=True, default=str).encode())


def load_cache(project: Project) -> dict:
    try:
        return json.loads(project.cache_path.read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(project: Project, cache: dict) -> None:
    project.executed_dir.mkdir(parents=True, exist_ok=True)
    tmp = project.cache_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
    os.replace(tmp, project.cache_path)


def is_cached(project: Project, p: Plan, key: str | None = None) -> bool:
    entry = load_cache(project).get(p.section)
    key = key or cache_key(project, p)
    return bool(entry) and entry.get("key") == key and project.executed(p.section).is_file()


# --------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------


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


def _hide_injected_parameters(path: Path) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell`` for the book.

    The page's scale banner already states the profile and every overridden
    parameter; the raw cell would repeat it in code form.
    """
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    changed = False
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
            changed = True
    if changed:
        nbformat.write(nb, str(path))


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


def execute(project: Project, p: Plan, *, force: bool = False, log_output: bool = True,
            progress_bar: bool = True, echo=print) -> Outcome:
    """Execute one planned section unless its cached output is current.

    Never raises for a failing notebook: the outcome says ``FAILED`` and
    carries :func:`describe_failure`'s text.
    """
    import papermill

    key = cache_key(project, p)
    if not force and is_cached(project, p, key):
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
        with _environ(LAPERM_BUILD_DIR=str(project.build), LAPERM_ROOT=str(project.root)):
            papermill.execute_notebook(
                str(project.notebook(p.section)), str(tmp), parameters=p.parameters,
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
            _save_cache(project, cache)
        return Outcome(p.section, "FAILED", wall, failed if failed.exists() else None,
                       describe_failure(exc, p.section))
    wall = time.perf_counter() - t0
    _hide_injected_parameters(tmp)
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
    _save_cache(project, cache)
    return Outcome(p.section, "executed", wall, project.executed(p.section))


# --------------------------------------------------------------------------
# Book build
# --------------------------------------------------------------------------

_STAGE_SKIP = {".ipynb_checkpoints", "__pycache__", "_src"}


def _filter_toc(node, keep):
    """The toc with entries whose file is not staged removed (empty groups dropped)."""
    if isinstance(node, list):
        items = [_filter_toc(n, keep) for n in node]
        return [n for n in items if n is not None]
    if isinstance(node, dict):
        if "file" in node and not keep(node["file"]):
            return None
        out = {}
        for key, value in node.items():
            if isinstance(value, list):
                value = _filter_toc(value, keep)
                if not value:
                    continue
            out[key] = value
        if "file" not in out and "root" not in out and "format" not in out and not any(
            isinstance(v, list) for v in out.values()
        ):
            return None
        return out
    return node


def stage(project: Project, echo=print) -> list[str]:
    """Copy the book's sources, with executed notebooks, to ``<build>/site-src``.

    Returns:
        The toc entries left out (a notebook never executed, a missing file).
    """
    import yaml

    src = project.site_src
    if src.exists():
        shutil.rmtree(src)
    (src / "book").mkdir(parents=True)
    shutil.copy2(project.root / "_config.yml", src / "_config.yml")
    for path in project.book_dir.rglob("*"):
        rel = path.relative_to(project.book_dir)
        if path.is_dir() or path.suffix == ".ipynb" or _STAGE_SKIP & set(rel.parts):
            continue
        (src / "book" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, src / "book" / rel)
    for section in sections(project):
        done = project.executed(section)
        if done.is_file():
            shutil.copy2(done, src / "book" / done.name)

    def keep(entry: str) -> bool:
        entry = re.sub(r"\.(ipynb|md)$", "", entry)
        return any((src / f"{entry}{ext}").is_file() for ext in (".ipynb", ".md"))

    toc = _load_yaml(project.toc_path)
    missing = [e for e in toc_files(project) if not keep(e)]
    if toc.get("root") and not keep(toc["root"]):
        raise UsageError(f"the book's root page {toc['root']!r} was not executed; run its section first")
    (src / "_toc.yml").write_text(yaml.safe_dump(_filter_toc(toc, keep), sort_keys=False))
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
           str(project.site_src), "--path-output", str(out), "--all"]
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
