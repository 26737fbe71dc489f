"""Shared pytest fixtures.

The offline data and the authors' checkpoints live in ``../shared`` beside the
repository (or wherever ``$LAPERM_SHARED_DIR`` points).  Tests that need them
are skipped with a clear reason when they are absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("LAPERM_SHARED_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared``; skips the test when it is absent."""
    path = _shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path} (set LAPERM_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def data_dir(shared_dir: Path) -> Path:
    """The offline datasets folder (``mnist.npz``, ``cifar10.npz``)."""
    path = shared_dir / "data"
    if not (path / "mnist.npz").is_file():
        pytest.skip(f"offline datasets not found in {path}")
    return path


#: Images of each dataset in :func:`small_data_dir`: (training, test).
SMALL_DATA = {"mnist": (1000, 500), "cifar10": (450, 200)}


@pytest.fixture(scope="session")
def small_data_dir(data_dir: Path, tmp_path_factory) -> Path:
    """The first few hundred images of each offline dataset, for tests of what a
    run does rather than what it reaches: ``mnist.npz`` with 1000 training and
    500 test images, ``cifar10.npz`` with 450 and 200 (with ``validation_size=200``
    that is 250 training images: 5 steps of the paper's batch of 50)."""
    import numpy as np

    folder = tmp_path_factory.mktemp("small-data")
    for name, (n_train, n_test) in SMALL_DATA.items():
        with np.load(data_dir / f"{name}.npz") as d:
            np.savez(folder / f"{name}.npz", x_train=d["x_train"][:n_train],
                     y_train=d["y_train"][:n_train], x_test=d["x_test"][:n_test],
                     y_test=d["y_test"][:n_test])
    return folder


@pytest.fixture(scope="session")
def reference_checkpoints(shared_dir: Path) -> Path:
    """The authors' published weight files (``Conv7.h5`` ...)."""
    path = shared_dir / "reference" / "pretrained"
    if not (path / "Conv7.h5").is_file():
        pytest.skip(f"authors' checkpoints not found in {path}")
    return path


@pytest.fixture
def interrupt_run(monkeypatch):
    """``interrupt_run(config, out_dir, after_epoch, **run_kwargs)``: a run of
    :func:`laperm.experiment.run` stopped by ``KeyboardInterrupt`` right after
    epoch ``after_epoch`` (counted from 0) was recorded, as if killed there."""
    from laperm.run import train
    from laperm.experiment import run

    def interrupt(config, out_dir, after_epoch, **run_kwargs):
        original = train._EpochEnd.epoch_end

        def stop(self, epoch, logs):
            original(self, epoch, logs)
            if epoch == after_epoch:
                raise KeyboardInterrupt

        monkeypatch.setattr(train._EpochEnd, "epoch_end", stop)
        try:
            with pytest.raises(KeyboardInterrupt):
                run(config, out_dir, **run_kwargs)
        finally:
            monkeypatch.setattr(train._EpochEnd, "epoch_end", original)

    return interrupt


def pytest_collection_modifyitems(config, items):
    """Slow tests first, each group in its file order: the longest work starts first and
    the short tests fill the workers' ends, so under ``-n 2`` both workers finish together
    (xdist hands the work out in collection order; ``test_book.py``, the largest scope,
    still goes first)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


#: Test files whose tests share one expensive module or session fixture (page executions):
#: under ``-n N`` each file's tests run on one worker, so the fixture is made once.
ONE_WORKER_FILES = ("test_book.py", "test_missing_inputs_pages.py")


@pytest.hookimpl(optionalhook=True)  # an environment without pytest-xdist (the torch tier)
def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n N`` (scripts/test.sh): tests go to the workers one by one,
    except those of each file in :data:`ONE_WORKER_FILES`: ``test_book.py``'s share the
    smoke build of the book (a session fixture, so once per worker), and
    ``test_missing_inputs_pages.py``'s three page executions; each file runs on one worker.

    ``xdist_group`` marks with ``--dist loadgroup`` would say the same, but pytest 9.2
    ignores them (pytest-xdist#1386); ``--dist loadfile`` keeps whole files together and
    starts the files with the fewest tests, the slowest here, last.
    """
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerFilesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::")[0]
            return path if path.endswith(ONE_WORKER_FILES) else nodeid

    return OneWorkerFilesTogether(config, log)
