"""Weights trained by this project, with their provenance (``pretrained/``).

``pretrained/manifest.json`` lists, for every file: the model, the experiment
config and its hash, k, p, seed, epochs run of planned, validation and test
accuracy (measured on synchronised weights for LaPerm), wall time, hardware,
date, commit and the file's sha256.  :func:`load` refuses a file whose sha256
does not match the manifest.

Where weights are read from (:func:`weights_dir`): an explicit ``directory``,
else the ``pretrained/`` folder of the checkout you work in
(:func:`laperm.project.project_root`), else the copy shipped inside the
installed package (the wheel carries ``pretrained/`` as package data).
:func:`export` writes into a checkout's ``pretrained/`` (or an explicit
folder), never into the installed package.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MANIFEST = "manifest.json"


class ChecksumError(ValueError):
    """A weight file does not match the sha256 in the manifest."""


class ManifestError(ValueError):
    """``manifest.json`` is truncated, not valid JSON, or not a manifest."""


class ManifestNotFoundError(FileNotFoundError):
    """There is no ``manifest.json`` in the weights folder."""


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def packaged_dir() -> Path | None:
    """The weights shipped inside the installed package, if any."""
    folder = Path(__file__).resolve().parent / "_pretrained"
    return folder if (folder / MANIFEST).is_file() else None


def weights_dir(directory=None) -> Path:
    """The folder weights are read from (see the module docstring)."""
    if directory is not None:
        return Path(directory)
    from laperm.project import project_root

    root = project_root(required=False)
    if root is not None and (root / "pretrained" / MANIFEST).is_file():
        return root / "pretrained"
    packaged = packaged_dir()
    if packaged is not None:
        return packaged
    return (root or Path.cwd()) / "pretrained"


def _export_dir(directory=None) -> Path:
    if directory is not None:
        return Path(directory)
    from laperm.project import project_root

    return project_root() / "pretrained"


_directory = weights_dir


#: The keys every manifest entry needs to be loaded.
_REQUIRED_KEYS = ("file", "sha256", "config")


def _how_to_fix(directory) -> str:
    if directory is None:
        return ("pretrained/manifest.json is part of the repository: restore it with "
                "`git checkout -- pretrained/manifest.json` or re-clone the repository, or "
                "re-export the runs with `python -m laperm.reproduce <experiment> --export`")
    return ("re-export the weights into that folder with "
            "`laperm.pretrained.export(run_dir, name, directory=...)`")


def manifest(directory=None, *, missing_ok: bool = False) -> dict:
    """The manifest: ``{name: metadata}``.

    Args:
        directory: folder with ``manifest.json`` (default: ``pretrained/``).
        missing_ok: return ``{}`` when there is no manifest (a new folder).

    Raises:
        ManifestNotFoundError: no ``manifest.json`` (unless ``missing_ok``).
        ManifestError: the file is truncated, not JSON, or not a manifest
            (the message names the file and how to restore it).
    """
    path = _directory(directory) / MANIFEST
    if not path.is_file():
        if missing_ok:
            return {}
        raise ManifestNotFoundError(
            f"No weights manifest at {path}: {_how_to_fix(directory)}."
        )
    try:
        entries = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(
            f"The weights manifest {path} is damaged or truncated (not valid JSON: {exc}); "
            f"{_how_to_fix(directory)}."
        ) from None
    if not isinstance(entries, dict):
        raise ManifestError(
            f"The weights manifest {path} is not a manifest (a JSON object of entries is "
            f"expected, found {type(entries).__name__}); {_how_to_fix(directory)}."
        )
    for name, meta in entries.items():
        missing = [k for k in _REQUIRED_KEYS if not isinstance(meta, dict) or k not in meta]
        if missing:
            raise ManifestError(
                f"The weights manifest {path} is damaged: entry {name!r} lacks "
                f"{', '.join(missing)}; {_how_to_fix(directory)}."
            )
    return entries


def available(directory=None) -> list[str]:
    """Names of the stored weights (raises like :func:`manifest`)."""
    return sorted(manifest(directory))


def load(name: str, directory=None):
    """Build the model of a stored run and load its weights.

    Args:
        name: a name from :func:`available` (e.g. ``"conv7_laperm_s0"``).
        directory: folder with ``manifest.json`` (default: ``pretrained/``).

    Returns:
        ``(model, metadata)``: an uncompiled Keras model and its manifest entry.

    Raises:
        ValueError: unknown name (the message lists the available ones).
        ManifestNotFoundError: the folder has no ``manifest.json``.
        ManifestError: ``manifest.json`` is damaged or truncated.
        ChecksumError: the file's sha256 differs from the manifest's.
    """
    from laperm.experiment import ExperimentConfig, build_model

    entries = manifest(directory)
    if name not in entries:
        raise ValueError(
            f"No pretrained weights named {name!r}; available: {', '.join(sorted(entries)) or 'none'}."
        )
    meta = entries[name]
    path = _directory(directory) / meta["file"]
    if not path.exists():
        raise FileNotFoundError(f"Pretrained file {path} listed in the manifest is missing.")
    actual = sha256(path)
    if actual != meta["sha256"]:
        raise ChecksumError(
            f"{path} has sha256 {actual}, but the manifest says {meta['sha256']}: "
            "the file is damaged or was replaced; refusing to load it."
        )
    model, _ = build_model(ExperimentConfig.from_dict(meta["config"]))
    model.load_weights(path)
    return model, meta


def export(run_dir, name: str, directory=None) -> dict:
    """Add a finished run's best (synchronised) weights to ``pretrained/``.

    Args:
        run_dir: a folder written by :func:`laperm.experiment.run` holding
            ``result.json`` and ``best.weights.h5``.
        name: the name to store it under.
        directory: target folder (default: the checkout's ``pretrained/``).

    Returns:
        The manifest entry.

    Raises:
        laperm.project.NoProjectError: no ``directory`` and no checkout here.
    """
    run_dir = Path(run_dir)
    result = json.loads((run_dir / "result.json").read_text())
    target_dir = _export_dir(directory)
    target_dir.mkdir(parents=True, exist_ok=True)
    file = f"{name}.weights.h5"
    # Keep the model's weights only: a run's best.weights.h5 also holds the
    # optimizer state (sorted theta_0, Adam moments), several times larger.
    from laperm.experiment import ExperimentConfig, build_model

    cfg = result["config"]
    model, _ = build_model(ExperimentConfig.from_dict(cfg))
    model.load_weights(run_dir / "best.weights.h5")
    tmp = target_dir / f"{name}.tmp.weights.h5"
    model.save_weights(tmp)
    os.replace(tmp, target_dir / file)
    from laperm.records import run_settings

    settings = run_settings(result)
    entry = {
        "file": file,
        "model": cfg["model"],
        "experiment": result["name"],
        "optimizer": result["optimizer"],
        "config": cfg,
        "config_hash": result["config_hash"],
        **{key: settings[key] for key in ("k", "p", "seed", "epochs_run", "scale")},
        "epochs_planned": settings["paper_epochs"],
        "best_epoch": result["best_epoch"],
        "val_accuracy": result["best_val_accuracy"],
        "test_accuracy": result["test_accuracy_at_best_val"],
        "test_set": result["test_set"],
        "synchronised": result["evaluated_on_synchronised_weights"],
        "wall_time_s": result["wall_time_s"],
        "hardware": result["hardware"],
        "date": result["date"],
        "commit": result["commit"],
        "sha256": sha256(target_dir / file),
    }
    entries = manifest(target_dir, missing_ok=True)
    entries[name] = entry
    tmp = target_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
    os.replace(tmp, target_dir / MANIFEST)
    return entry
