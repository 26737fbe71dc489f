"""Where a result came from: hardware, library versions, commit, data and backend.

Every result record carries :func:`environment_info`; every run folder records
:func:`run_provenance` (a sha256 of the data and the Keras backend) and is
never reused for other data.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from laperm import __version__, data
from laperm.run.hardware import accelerator_name, cpu_features, cpu_model
from laperm.project import is_project


def environment_info() -> dict:
    """Hardware, library versions and git commit, for result records."""
    import keras  # deferred: laperm imports without Keras (laperm.torch, laperm.optax)

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hardware": {
            "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "cpu": cpu_model(),
            "cpu_features": cpu_features(),
            "accelerator": accelerator_name(),
        },
        "versions": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "numpy": np.__version__,
            "laperm": _laperm_version(),
        },
        "commit": _git_commit(),
    }
    backend = keras.backend.backend()
    try:
        module = __import__(backend)
        info["versions"][backend] = getattr(module, "__version__", "?")
    except ImportError:  # pragma: no cover
        pass
    return info


def _laperm_version():
    return __version__


#: Names the commit where the checkout's own ``.git`` is not the source (a copy of
#: the working tree on a lent machine): the caller sets it, e.g. ``$(git rev-parse HEAD)``.
COMMIT_ENV = "LAPERM_COMMIT"


def _git_commit() -> str | None:
    """The commit of the checkout this package runs from; None for an installed package.

    ``$LAPERM_COMMIT``, when set, is taken as it is (a copy of a checkout on
    another machine may carry a stale ``.git``).
    """
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV].strip()

    root = Path(__file__).resolve().parents[2]
    if not is_project(root) or not (root / ".git").exists():
        return None  # installed: never the commit of a repository around site-packages
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not commit:
        return None
    return commit + ("+dirty" if dirty else "")


def run_provenance(config, data_dir=None) -> dict:
    """What a run was made on besides its config: the data and the backend."""
    import keras

    return {"data": data.fingerprint(config.dataset, data_dir),
            "backend": keras.backend.backend()}
