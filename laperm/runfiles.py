"""The files of one run folder, written so that a killed run loses nothing.

A run folder (:class:`RunFiles`) holds ``config.json`` (config, hash, data
fingerprint and backend), ``history.csv``, ``checkpoint.keras`` (the one
resume point), the best weights and, once finished, ``result.json``.  Every
file is written through a temporary file and ``os.replace``; temporary files
of a killed process are removed on the next start.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd


class RunDirError(ValueError):
    """A run folder holds a run that must not be continued or reused here."""


def _tmp_name(path: Path) -> Path:
    """``name.tmp.<suffixes>`` beside ``path`` (the pattern cleaned at start)."""
    stem, dot, suffixes = path.name.partition(".")
    return path.with_name(f"{stem}.tmp.{suffixes}" if dot else f"{stem}.tmp")


def atomic_write(path: Path, write) -> None:
    """Write ``path`` through a temporary file and ``os.replace``."""
    tmp = _tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
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
        """Remove temporary files left by a killed process or a full disk."""
        removed = []
        for path in list(self.dir.glob("*.tmp")) + list(self.dir.glob("*.tmp.*")):
            if path.is_file():
                path.unlink()
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


def stored_result(files: RunFiles, config):
    """``(history, result)`` of a finished run in ``files``, or None.

    A result is only returned with the history it describes; a stale result
    (another config, or a history of another length) is removed.
    """
    if not files.result.exists():
        return None
    try:
        result = json.loads(files.result.read_text())
        history = pd.read_csv(files.history) if files.history.exists() else None
    except (ValueError, OSError):
        result, history = {}, None
    if (history is not None and result.get("config_hash") == config.hash
            and int(result.get("scale", {}).get("epochs_run", -1)) == len(history)):
        return history, result
    files.result.unlink()
    return None


def resume_point(files: RunFiles, steps_per_epoch: int):
    """Load the checkpoint; return ``(model, epochs_done, history rows)``."""
    import keras

    from laperm.optimizer import LaPermStateError

    try:
        model = keras.models.load_model(files.checkpoint)
    except LaPermStateError:
        raise
    except Exception as exc:
        raise RunDirError(
            f"{files.checkpoint} cannot be loaded ({type(exc).__name__}: {str(exc)[:300]}); "
            "delete it to start the run again from epoch 1."
        ) from exc
    from keras import ops

    steps = int(ops.convert_to_numpy(model.optimizer.iterations))
    done, partial = divmod(steps, steps_per_epoch)
    if partial:
        raise RunDirError(
            f"{files.checkpoint} was saved after {steps} steps, not a whole number of "
            f"epochs of {steps_per_epoch} steps; delete it to start again."
        )
    rows = pd.read_csv(files.history).to_dict("records") if files.history.exists() else []
    if len(rows) < done:
        raise RunDirError(
            f"{files.history} has {len(rows)} epochs but the checkpoint has {done}; "
            "the folder was changed by hand: delete it to start again."
        )
    return model, done, rows[:done]


def json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray, tuple)):
        return list(obj)
    return str(obj)
