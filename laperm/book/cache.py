"""When a section must be re-executed: its cache key.

A section is re-executed only when one of the things it computes from
changed.  Its key is the sha256 of:

* the page's **code cells** (source and tags) and kernel name; Markdown cells
  are not part of it (a text edit is put beside the old outputs, see
  :func:`laperm.book.source.with_outputs`);
* the **profile and the parameters** given;
* the ``laperm`` **package** sources (not those of the command and the
  pipeline, which :data:`PIPELINE_VERSION` covers);
* the **data** files of ``$LAPERM_DATA_DIR`` (name, size, mtime);
* the **records the page declares it reads** (``laperm: reads:`` in its front
  matter; content digests).  A matched ``result.json`` brings its run's
  ``history.csv``, so a record counts once its run finished, and a run still
  in progress changes nothing.  A page's own status record is left out.
* the Keras backend.

Keys live in ``<build>/executed/cache.json``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path

from laperm.atomic import atomic_write_json
from laperm.book.layout import Project
from laperm.book.sections import Plan
from laperm.book.source import code_fingerprint, declared_reads, read_page
import laperm

#: Bump to invalidate every cached execution (changes of the pipeline itself).
PIPELINE_VERSION = 2

#: Prefix of a declared read relative to the build folder.
BUILD_PREFIX = "{build}/"

#: Modules of the command and the pipeline, which do not change what a page
#: computes (relative to the package folder).
NOT_FINGERPRINTED = {"cli.py", "book/cache.py", "book/execute.py", "book/site.py",
                     "book/sections.py", "book/errors.py"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_fingerprint() -> str:
    """sha256 of the ``laperm`` package's Python sources (not the pipeline's own)."""
    pkg = Path(laperm.__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg).as_posix()
        if rel in NOT_FINGERPRINTED:
            continue
        h.update(rel.encode())
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


def read_files(project: Project, section: str, profile: str, page=None) -> dict[str, Path]:
    """The files a section declares it reads, as they are now.

    Returns:
        ``{name: path}``, names relative to the project root, or to the
        build folder with a ``{build}/`` prefix.
    """
    page = page if page is not None else read_page(project.page(section))
    own_status = (project.build / "status" / f"{section}.json").resolve()
    found = {}
    for pattern in declared_reads(page):
        prefix = ""
        base = project.root
        if pattern.startswith(BUILD_PREFIX):
            prefix, base, pattern = BUILD_PREFIX, project.build, pattern[len(BUILD_PREFIX):]
        for name in glob.glob(str(base / pattern.format(profile=profile)), recursive=True):
            path = Path(name)
            if path.resolve() == own_status or not path.is_file():
                continue
            siblings = [path]
            if path.name == "result.json":
                siblings.append(path.with_name("history.csv"))
            for f in siblings:
                if f.is_file():
                    found[prefix + f.relative_to(base).as_posix()] = f
    return found


def cache_key(project: Project, p: Plan) -> str:
    """The key that decides whether a section must be re-executed."""
    page = read_page(project.page(p.section))
    blob = {
        "pipeline": PIPELINE_VERSION,
        "section": p.section,
        "code": code_fingerprint(page),
        "parameters": p.parameters,
        "package": package_fingerprint(),
        "data": data_fingerprint(),
        "reads": {name: _sha(path.read_bytes()) for name, path in
                  sorted(read_files(project, p.section, p.profile, page).items())},
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }
    return _sha(json.dumps(blob, sort_keys=True, default=str).encode())


def load_cache(project: Project) -> dict:
    """``{section: {key, profile, parameters, executed_at, wall_time_s}}``."""
    try:
        return json.loads(project.cache_path.read_text())
    except (OSError, ValueError):
        return {}


def save_cache(project: Project, cache: dict) -> None:
    project.executed_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(project.cache_path, cache, sort_keys=True)


def is_cached(project: Project, p: Plan, key: str | None = None) -> bool:
    """Whether the section's executed notebook is current."""
    entry = load_cache(project).get(p.section)
    key = key or cache_key(project, p)
    return bool(entry) and entry.get("key") == key and project.executed(p.section).is_file()
