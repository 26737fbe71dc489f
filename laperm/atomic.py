"""Writing a file so that a reader never sees half of it: the one home of it.

Every file the project writes for later (run records, checkpoints, the book's
executed pages and cache, the pretrained manifest, cross-check records) goes
through :func:`atomic_write`: the content is written to a temporary file beside
the target, named with the writer's process id (``name.tmp-<pid>.<suffixes>``,
so that two processes never share one and a dead writer's leftovers can be
recognised), then moved over the target with ``os.replace``.  A kill at any
moment leaves the old file or the new one, never a mix; a failed write leaves
no temporary file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "tmp_name"]


def tmp_name(path: Path) -> Path:
    """``name.tmp-<pid>.<suffixes>`` beside ``path``: the writer's process id in the name."""
    path = Path(path)
    stem, dot, suffixes = path.name.partition(".")
    tag = f"{stem}.tmp-{os.getpid()}"
    return path.with_name(f"{tag}.{suffixes}" if dot else tag)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` by calling ``write(temporary_path)``, then ``os.replace``.

    Args:
        path: the file to write.
        write: writes the whole content to the path it is given (e.g.
            ``model.save``, ``nbformat.write``, ``Path.write_text``).

    Raises:
        Whatever ``write`` raises; the temporary file is removed first.
    """
    path = Path(path)
    tmp = tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: Path, payload, **dumps_kwargs) -> None:
    """Write ``json.dumps(payload, **dumps_kwargs)`` to ``path`` atomically (indent 1 unless given)."""
    dumps_kwargs.setdefault("indent", 1)
    atomic_write_text(path, json.dumps(payload, **dumps_kwargs))
