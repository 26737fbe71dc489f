"""The files of one run folder, written so that a killed run loses nothing.

A run folder (:class:`RunFiles`) holds ``config.json`` (config, hash, data
fingerprint and backend), ``history.csv``, ``checkpoint.keras`` (the one
resume point), the best weights and, once finished, ``result.json``.  Every
file is written through a temporary file named with the writer's process id
and ``os.replace``; temporary files of a process that is gone are removed on
the next start.

A run folder is owned by one process at a time (:func:`owned`: an OS lock on
``run.lock``, released when the process ends, however it ends).  Everything
read back from a folder is validated (:func:`read_history`,
:func:`read_json`, :func:`check_weights_file` and the checkpoint's stamp in
:func:`resume_point`): a damaged file is a :class:`RunDirError` naming it and
how to recover.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from laperm.atomic import atomic_write
from laperm.method.optimizer import LaPermStateError


class RunDirError(ValueError):
    """A run folder holds a run that must not be continued or reused here."""


#: ``<stem>.tmp-<pid>.<suffixes>`` (this version) or ``<stem>.tmp.<suffixes>`` (older ones).
_TMP = re.compile(r"^[^.]+\.tmp(?:-(?P<pid>\d+))?(?:\.|$)")


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (ours counts as gone: we clean our own)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`laperm.atomic.atomic_write_text` through this module's ``atomic_write``
    (tests replace it here to simulate a full disk at a chosen write)."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_save(model, path: Path, weights_only=False) -> None:
    atomic_write(path, (lambda tmp: model.save_weights(tmp)) if weights_only
            else (lambda tmp: model.save(tmp)))


class RunFiles:
    """The files of one run directory.

    The resume point is one fact: ``checkpoint.keras``, written last at the
    end of every epoch (atomically), holds the model, the optimizer state and
    (in the optimizer's step count) the number of epochs done.  Everything
    else is either written before it (the history, the best weights of that
    epoch) and cut back to it on resume, or derived from it.
    """

    def __init__(self, out_dir):
        self.dir = Path(out_dir)
        self.config = self.dir / "config.json"
        self.checkpoint = self.dir / "checkpoint.keras"
        self.best_weights = self.dir / "best.weights.h5"
        self.history = self.dir / "history.csv"
        self.result = self.dir / "result.json"
        self.state = self.dir / "state.json"  # written by older versions only
        self.init_tables = self.dir / "init_tables.json"
        self.resumes = self.dir / "resumes.json"
        self.lock = self.dir / "run.lock"

    def best_of_epoch(self, epoch: int) -> Path:
        """Best weights written at ``epoch``, before that epoch's checkpoint."""
        return self.dir / f"best-e{int(epoch):04d}.weights.h5"

    def best_candidates(self) -> dict[int, Path]:
        out = {}
        for path in self.dir.glob("best-e*.weights.h5"):
            try:
                out[int(path.name[len("best-e"):].split(".")[0])] = path
            except ValueError:
                continue
        return out

    def clean_temporary(self) -> list[Path]:
        """Remove temporary files left by a killed process or a full disk.

        A file named with the id of a process that still runs is kept: it is
        that process's, whatever it is doing.
        """
        removed = []
        for path in sorted(self.dir.iterdir()):
            match = _TMP.match(path.name)
            if match is None or not path.is_file():
                continue
            if match["pid"] is not None and _alive(int(match["pid"])):
                continue
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def remove_run(self) -> None:
        """Delete a run's records, the result first (so none outlives its history)."""
        for path in [self.result, self.checkpoint, self.history, self.best_weights,
                     self.state, self.init_tables, self.resumes,
                     *self.best_candidates().values()]:
            path.unlink(missing_ok=True)


def check_reuse(files: RunFiles, stored: dict, config, provenance: dict,
                 allow_other_backend: bool) -> None:
    """Refuse a run folder made with another config, other data or (unless asked) backend."""
    if stored.get("hash") != config.hash:
        raise RunDirError(
            f"{files.dir} holds a run of a different config (hash {stored.get('hash')} "
            f"vs {config.hash}); choose another folder or delete that one."
        )
    made_on = stored.get("provenance")
    if made_on is None:  # older records: compare what their result says about the data
        if files.result.exists():
            scale = json.loads(files.result.read_text()).get("scale", {})
            seen = (scale.get("n_train", 0) + scale.get("n_val", 0) if config.train_fraction == 1
                    else None, scale.get("n_test"))
            now = (provenance["data"]["n_train"] if config.train_fraction == 1 else None,
                   provenance["data"]["n_test"])
            if seen != now:
                raise RunDirError(
                    f"{files.dir} holds a run made on other {config.dataset} data "
                    f"({seen[1]} test images, now {now[1]}); choose another folder or "
                    "delete that one."
                )
        return
    if made_on["data"].get("sha256") != provenance["data"]["sha256"]:
        raise RunDirError(
            f"{files.dir} holds a run made on other {config.dataset} data (sha256 "
            f"{made_on['data'].get('sha256', '?')[:12]}, "
            f"{made_on['data'].get('n_train')} training and {made_on['data'].get('n_test')} "
            f"test images; the data now: {provenance['data']['sha256'][:12]}, "
            f"{provenance['data']['n_train']} and {provenance['data']['n_test']}); choose "
            "another folder or delete that one."
        )
    if made_on.get("backend") != provenance["backend"] and not allow_other_backend:
        raise RunDirError(
            f"{files.dir} holds a run made with the Keras backend {made_on.get('backend')!r}, "
            f"not {provenance['backend']!r}; pass allow_other_backend=True "
            "(reproduce: --allow-other-backend) to use it anyway."
        )


def _lock_holder(fd: int) -> str:
    """What ``run.lock`` says about its owner: ``"process <pid>"``."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return f"process {text}" if text.isdigit() else "another process"


def _acquire(files: RunFiles) -> int:
    """Lock ``run.lock`` (exclusive, not waiting); return its descriptor."""
    while True:
        fd = os.open(files.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise RunDirError(
                f"{files.dir} is in use by {holder} (it holds {files.lock.name}); wait for "
                "it to finish or stop it, then run the same command again."
            ) from None
        try:
            current = os.stat(files.lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # its last owner removed that file as we opened it: lock the new one


@contextlib.contextmanager
def owned(files: RunFiles):
    """Own a run folder while the block runs: one process at a time.

    An exclusive ``flock`` on ``run.lock``, which holds the owner's process
    id; the OS releases it when the process ends, however it ends.  The file
    is removed on a normal exit.

    Raises:
        RunDirError: another process owns the folder (the message names it).
    """
    files.dir.mkdir(parents=True, exist_ok=True)
    fd = _acquire(files)
    try:
        yield
    finally:
        files.lock.unlink(missing_ok=True)  # still locked: a newcomer locks a new file
        os.close(fd)


#: Where the run folder's recovery is told: start again from epoch 1.
_START_AGAIN = "move the folder aside (or delete it) to start the run again from epoch 1"

#: History columns a resumed or recorded run needs, without missing values.
HISTORY_REQUIRED = ("epoch", "val_accuracy", "test_accuracy", "learning_rate", "wall_time_s")


def read_json(path: Path, kind: type, recovery: str = _START_AGAIN):
    """A JSON file of a run folder, of the JSON type ``kind`` (dict or list).

    Raises:
        RunDirError: the file is not valid JSON or not a ``kind``.
    """
    try:
        value = json.loads(path.read_bytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path} is damaged (not valid JSON: {exc}); {recovery}.") from None
    if not isinstance(value, kind):
        raise RunDirError(
            f"{path} is damaged (a JSON {'object' if kind is dict else 'list'} is expected, "
            f"found {type(value).__name__}); {recovery}.")
    return value


def read_config(files: RunFiles) -> dict:
    """``config.json``: ``{"hash", "config", ...}``, validated."""
    stored = read_json(files.config, dict)
    if not isinstance(stored.get("hash"), str) or not isinstance(stored.get("config"), dict):
        raise RunDirError(f"{files.config} is damaged (no config hash or config); "
                          f"{_START_AGAIN}.")
    return stored


def read_resumes(files: RunFiles) -> list[int]:
    """``resumes.json``: the epochs a run was resumed at ([] when absent)."""
    if not files.resumes.exists():
        return []
    recovery = "delete it (the record then lists no earlier resumes) and run again"
    value = read_json(files.resumes, list, recovery)
    if not all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in value):
        raise RunDirError(f"{files.resumes} is damaged (whole epoch numbers expected); "
                          f"{recovery}.")
    return value


def read_init_tables(files: RunFiles) -> dict:
    """``init_tables.json``: the pruning / shared-value tables ({} when absent)."""
    return read_json(files.init_tables, dict) if files.init_tables.exists() else {}


def read_history(files: RunFiles) -> list[dict]:
    """``history.csv`` as rows, validated ([] when absent).

    Every row whole (the file ends with a line end), the columns of
    :data:`HISTORY_REQUIRED` present with no missing value, epochs 1..n.

    Raises:
        RunDirError: the file is damaged (the message says how).
    """
    import io


    path = files.history
    if not path.exists():
        return []

    def damaged(why):
        return RunDirError(f"{path} is damaged ({why}); {_START_AGAIN}.")

    raw = path.read_bytes()
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise damaged("not text") from None
    if text and not text.endswith("\n"):
        raise damaged("its last row is cut short")
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise damaged(f"not a CSV table: {' '.join(str(exc).split())[:200]}") from None
    missing = [c for c in HISTORY_REQUIRED if c not in frame.columns]
    if missing:
        raise damaged(f"no column {', '.join(missing)}")
    required = frame[list(HISTORY_REQUIRED)].apply(pd.to_numeric, errors="coerce")
    empty = required.isna().any()
    if empty.any():
        raise damaged(f"missing values in {', '.join(empty[empty].index)}")
    if list(required["epoch"]) != list(range(1, len(frame) + 1)):
        raise damaged("its epochs are not 1, 2, ... in order")
    return frame.to_dict("records")


def check_weights_file(path: Path, recovery: str) -> None:
    """Refuse a weights file that is not a readable HDF5 file."""
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError as exc:
        raise RunDirError(f"{path} is damaged (not a weights file: "
                          f"{' '.join(str(exc).split())[:120]}); {recovery}.") from None


def stored_result(files: RunFiles, config):
    """``(history, result)`` of a finished run in ``files``, or None.

    A result is only returned with the history it describes; a stale result
    (another config, or a history of another length) is removed.  A damaged
    history is refused (:func:`read_history`), never replaced.
    """

    if not files.result.exists():
        return None
    try:
        result = json.loads(files.result.read_text())
    except (ValueError, OSError):
        result = {}
    rows = read_history(files) if files.history.exists() else None
    if (rows is not None and isinstance(result, dict) and result.get("config_hash") == config.hash
            and int(result.get("scale", {}).get("epochs_run", -1)) == len(rows)):
        return pd.read_csv(files.history), result
    files.result.unlink()
    return None


#: The member of ``checkpoint.keras`` that says which run and how many epochs it holds.
STAMP = "laperm_run.json"


def save_checkpoint(model, path: Path, *, epochs_done: int, config) -> None:
    """Write the resume point: the model and, in :data:`STAMP`, the epochs done and the run.

    The epochs are counted here, not read from the optimizer's step count:
    under ``mixed_float16`` the loss-scale optimizer does not count the steps
    it skipped on an overflow.
    """
    stamp = {"epochs_done": int(epochs_done), "config_hash": config.hash,
             "seed": int(config.seed)}

    def write(tmp):
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(STAMP, json.dumps(stamp))

    atomic_write(path, write)


def _read_stamp(path: Path) -> dict | None:
    """The checkpoint's :data:`STAMP` (None: a checkpoint of an older version)."""
    recovery = "delete it to start the run again from epoch 1"
    try:
        with zipfile.ZipFile(path) as archive:
            if STAMP not in archive.namelist():
                return None
            stamp = json.loads(archive.read(STAMP))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise RunDirError(f"{path} is damaged ({type(exc).__name__}: {exc}); "
                          f"{recovery}.") from None
    if not (isinstance(stamp, dict) and isinstance(stamp.get("epochs_done"), int)
            and isinstance(stamp.get("config_hash"), str)):
        raise RunDirError(f"{path} is damaged (its {STAMP} is not a run stamp); {recovery}.")
    return stamp


def resume_point(files: RunFiles, steps_per_epoch: int, config):
    """Load the checkpoint; return ``(model, epochs_done, history rows)``.

    Raises:
        RunDirError: the checkpoint is damaged, belongs to another run (another
            seed or config), or holds more epochs than the history or the run.
    """
    import keras

    stamp = _read_stamp(files.checkpoint)
    if stamp is not None and stamp["config_hash"] != config.hash:
        raise RunDirError(
            f"{files.checkpoint} belongs to another run (seed {stamp.get('seed')}, config "
            f"hash {stamp['config_hash']}), not to this folder's (seed {config.seed}, hash "
            f"{config.hash}); delete it to start this run again from epoch 1.")
    try:
        model = keras.models.load_model(files.checkpoint)
    except LaPermStateError:
        raise
    except Exception as exc:
        raise RunDirError(
            f"{files.checkpoint} cannot be loaded ({type(exc).__name__}: {str(exc)[:300]}); "
            "delete it to start the run again from epoch 1."
        ) from exc
    if stamp is not None:
        done = stamp["epochs_done"]
    else:  # an older checkpoint: its float32 optimizer counted every step
        from keras import ops

        steps = int(ops.convert_to_numpy(model.optimizer.iterations))
        done, partial = divmod(steps, steps_per_epoch)
        if partial:
            raise RunDirError(
                f"{files.checkpoint} was saved after {steps} steps, not a whole number of "
                f"epochs of {steps_per_epoch} steps; delete it to start again."
            )
    if not 0 < done <= config.epochs:
        raise RunDirError(f"{files.checkpoint} holds {done} epochs of a run of "
                          f"{config.epochs}; delete it to start the run again from epoch 1.")
    rows = read_history(files)
    if len(rows) < done:
        raise RunDirError(
            f"{files.history} has {len(rows)} epochs but the checkpoint has {done}; "
            "the folder was changed by hand: delete it to start again."
        )
    return model, done, rows[:done]


def describe_os_error(exc: OSError) -> str | None:
    """One line for a full disk or a folder that cannot be written (else None)."""
    reasons = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
               errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied",
               errno.ENOTDIR: "a path on the way is a file, not a folder",
               errno.EEXIST: "a file is in the way of a folder"}
    if exc.errno not in reasons:
        return None
    where = f" writing {exc.filename}" if exc.filename else ""
    return (f"{reasons[exc.errno]}{where}; everything written before is kept: free space "
            "or fix the permissions, then run the same command again to continue.")


def json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray, tuple)):
        return list(obj)
    return str(obj)
