"""Where a book's sources and build outputs are.

The project is a checkout of this repository, found by
:func:`laperm.project.project_root` (``--root``, ``$LAPERM_ROOT``, or the
checkout enclosing the current folder); never the installed package's own
location.  Inside it:

* ``_toc.yml``, ``_config.yml`` and ``book/<section>.md`` (the pages, MyST
  Markdown notebooks) are the sources;
* ``results/`` holds the committed records of long runs;
* ``<build>`` (``$LAPERM_BUILD_DIR``, else ``_build`` in the project) holds
  everything an execution writes: ``runs/<profile>/`` (training runs of the
  sections), ``status/`` (one record per executed section), ``executed/``
  (executed notebooks and the cache), ``site-src/`` and ``html/``.

The pipeline (:mod:`laperm.book.execute`) sets ``$LAPERM_ROOT`` and
``$LAPERM_BUILD_DIR`` for the kernel, so a page and the command agree on both.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from laperm.book.errors import UsageError
from laperm.project import NoProjectError, project_root

#: Environment variable naming the build folder.
BUILD_ENV = "LAPERM_BUILD_DIR"


def build_dir(root=None) -> Path:
    """The build folder: ``$LAPERM_BUILD_DIR``, else ``_build`` in the project."""
    where = os.environ.get(BUILD_ENV)
    return Path(where) if where else project_root(root) / "_build"


def status_dir() -> Path:
    """Where executed sections leave their status records."""
    return build_dir() / "status"


def results_dir(root=None) -> Path:
    """The project's committed result records of long runs (``results/``)."""
    return project_root(root) / "results"


def reference_dir(explicit=None) -> Path | None:
    """The authors' published checkpoints (Keras 2 ``.h5`` weight files), if present.

    Looks at ``explicit``, then ``$LAPERM_REFERENCE_DIR``, then
    ``../shared/reference/pretrained`` beside the project; the first folder
    holding ``.h5`` files wins.  None when there is none (pages then say where
    to get the files).  A set ``$LAPERM_REFERENCE_DIR`` is a choice: the folder
    beside the project is then not looked at (so an empty folder there shows a
    page as a reader without the files sees it).
    """
    root = project_root(required=False)
    beside = root.parent / "shared" / "reference" / "pretrained" if root else None
    if os.environ.get("LAPERM_REFERENCE_DIR"):
        beside = None
    for candidate in (explicit, os.environ.get("LAPERM_REFERENCE_DIR"), beside):
        if candidate and Path(candidate).is_dir() and any(Path(candidate).glob("*.h5")):
            return Path(candidate)
    return None


@dataclasses.dataclass(frozen=True)
class Project:
    """A book's sources (``root``) and build folder (``build``)."""

    root: Path
    build: Path

    @classmethod
    def find(cls, root: str | os.PathLike | None = None,
             build: str | os.PathLike | None = None) -> "Project":
        """The project at ``root`` (see :func:`laperm.project.project_root`), its
        build folder ``build`` (default :func:`build_dir`).

        Raises:
            UsageError: no project, or one without a ``book/`` folder.
        """
        try:
            root = project_root(root)
        except NoProjectError as exc:
            raise UsageError(str(exc)) from None
        if not (root / "book").is_dir():
            raise UsageError(f"no book/ folder in {root}; run from a checkout of the "
                             "repository or pass --root")
        build = Path(build) if build else build_dir(root)
        return cls(root=root, build=build.resolve())

    @property
    def book_dir(self) -> Path:
        return self.root / "book"

    @property
    def config_path(self) -> Path:
        return self.root / "_config.yml"

    @property
    def repository_url(self) -> str | None:
        """The public repository of the book (``repository: url:`` of ``_config.yml``).

        The one setting behind the repository and issue buttons and the Colab
        install cell; empty (None) until the project is published there.
        """
        import yaml

        try:
            config = yaml.safe_load(self.config_path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            return None
        url = ((config.get("repository") or {}).get("url") or "").strip()
        return url or None

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
    def staging_dir(self) -> Path:
        """The sources handed to Jupyter Book (``<build>/site-src``)."""
        return self.build / "site-src"

    @property
    def html_dir(self) -> Path:
        return self.build / "html"

    def page(self, section: str) -> Path:
        """The page's source, ``book/<section>.md``."""
        return self.book_dir / f"{section}.md"

    def executed(self, section: str) -> Path:
        """The page's last good execution, ``<build>/executed/<section>.ipynb``."""
        return self.executed_dir / f"{section}.ipynb"
