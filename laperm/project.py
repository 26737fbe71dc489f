"""Where a project's files go: the checkout you work in, never the installed package.

Results (``results/``), exported weights (``pretrained/``) and book builds
(``_build/``) belong to a *project*: a checkout of this repository.  It is
found, in order, from an explicit argument, ``$LAPERM_ROOT``, or the current
directory and its parents (the first holding a ``pyproject.toml`` of the
``laperm`` project).  The package never writes next to its own files: with no
project, :func:`project_root` raises :class:`NoProjectError` saying how to
name one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Environment variable naming the project folder.
ROOT_ENV = "LAPERM_ROOT"


class NoProjectError(FileNotFoundError):
    """No project folder could be found (see :func:`project_root`)."""


def is_project(folder: Path) -> bool:
    """Whether ``folder`` is a checkout of this project."""
    pyproject = Path(folder) / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        text = pyproject.read_text()
    except OSError:
        return False
    return re.search(r'^name\s*=\s*"laperm"', text, flags=re.MULTILINE) is not None


def project_root(root: str | os.PathLike | None = None, required: bool = True) -> Path | None:
    """The project folder.

    Args:
        root: an explicit folder (wins over everything else).
        required: raise when none is found (else return None).

    Returns:
        The resolved folder, or None when ``required`` is False and there is none.

    Raises:
        NoProjectError: ``root`` or ``$LAPERM_ROOT`` is not a folder, or no
            checkout encloses the current directory.
    """
    explicit = root or os.environ.get(ROOT_ENV) or None
    if explicit is not None:
        path = Path(explicit).expanduser().resolve()
        if not path.is_dir():
            where = "the given root" if root else f"${ROOT_ENV}"
            raise NoProjectError(f"{where} {path} is not a folder")
        return path
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if is_project(folder):
            return folder
    if required:
        raise NoProjectError(
            f"no laperm project here ({here} and its parents hold no checkout of the "
            f"laperm repository); run from a checkout, set ${ROOT_ENV}, or pass the "
            "folder explicitly (--root / --out)"
        )
    return None
