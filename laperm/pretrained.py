"""Weights trained by this project, with their provenance (``pretrained/``).

``pretrained/manifest.json`` lists, for every file: the model, the experiment
config and its hash, k, p, seed, epochs run of planned, validation and test
accuracy (measured on synchronised weights for LaPerm), wall time, hardware,
date, commit, the file's sha256 and its stored dtype (float32 as trained, or a
float16 copy for the large CIFAR-10 models).  Its accuracies are those of the
weights as stored and loaded (see :func:`export`).
:func:`load` refuses a file whose sha256 does not match the manifest.

Where weights are read from (:func:`weights_dir`): an explicit ``directory``,
else the ``pretrained/`` folder of the checkout you work in
(:func:`laperm.project.project_root`), else the weights that come with the
package, found through ``importlib.resources`` (``laperm._pretrained``: the
wheel carries ``pretrained/`` as package data, an editable install maps it to
the checkout's ``pretrained/``).

Every file named in a manifest, and every name given to :func:`export`, is a
plain file name: a path that would lead out of the weights folder is a
:class:`ManifestError`, and no file outside the folder is read or hashed.
:func:`export` writes into a checkout's ``pretrained/`` (or an explicit
folder), never into the installed package.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from laperm.atomic import atomic_write_json
from laperm.run.evaluation import evaluate
from laperm.experiment import ExperimentConfig, build_model, prepare_data
from laperm.project import project_root
from laperm.analysis.records import run_settings

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
    """The weights that come with the package (``laperm._pretrained``), if any."""
    from importlib import resources

    try:
        folder = Path(str(resources.files("laperm._pretrained")))
    except (ModuleNotFoundError, TypeError):
        return None
    return folder if (folder / MANIFEST).is_file() else None


def _plain_name(name, what: str, path) -> str:
    """``name`` if it is a plain file name (no folder, not ``.``/``..``), else ManifestError."""
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name
            or "\0" in name or Path(name).name != name):
        raise ManifestError(f"{what} {name!r} in {path} is not a plain file name; weights "
                            "are only read from and written to the weights folder itself.")
    return name


def _inside(folder: Path, name: str, what: str) -> Path:
    """``folder / name``, refused (ManifestError) unless it resolves inside ``folder``."""
    path = folder / _plain_name(name, what, folder)
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ManifestError(f"{what} {name!r} in {folder} leads out of the weights folder "
                            f"(to {path.resolve()}); refusing it.")
    return path


def weights_dir(directory=None) -> Path:
    """The folder weights are read from (see the module docstring)."""
    if directory is not None:
        return Path(directory)

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
        _plain_name(meta["file"], f"the file of entry {name!r}", path)
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
    entries = manifest(directory)
    if name not in entries:
        raise ValueError(
            f"No pretrained weights named {name!r}; available: {', '.join(sorted(entries)) or 'none'}."
        )
    meta = entries[name]
    path = _inside(_directory(directory), meta["file"], f"the file of entry {name!r}")
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


#: How :func:`export` can store weights: as trained, or rounded to half precision.
EXPORT_DTYPES = ("float32", "float16")


def _to_float16(source: Path, target: Path) -> None:
    """Copy a Keras ``.weights.h5`` with every float32 array stored as float16.

    Keras reads such a file into float32 variables (it casts on assignment),
    so the copy loads like the original, with every value rounded to the
    nearest float16: half the bytes.
    """
    import h5py
    import numpy as np

    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        dst.attrs.update(src.attrs)

        def copy(name, item):
            if isinstance(item, h5py.Group):
                dst.require_group(name).attrs.update(item.attrs)
                return
            data = item[()]
            if getattr(data, "dtype", None) == np.float32:
                data = data.astype(np.float16)
            dst.create_dataset(name, data=data).attrs.update(item.attrs)

        src.visititems(copy)


def score(model, config, data_dir=None) -> tuple[float, float]:
    """Validation and test accuracy of a model on its config's splits.

    The splits and preprocessing of :func:`laperm.experiment.prepare_data`
    (the ones the run was judged on); no BatchNorm re-estimation: the stored
    statistics are used as they are.
    """
    pipes = prepare_data(config, data_dir)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return evaluate(model, pipes["val"])[1], evaluate(model, pipes["test"])[1]


def export(run_dir, name: str, directory=None, *, dtype: str = "float32",
           data_dir=None) -> dict:
    """Add a finished run's best (synchronised) weights to ``pretrained/``.

    Args:
        run_dir: a folder written by :func:`laperm.experiment.run` holding
            ``result.json`` and ``best.weights.h5``.
        name: the name to store it under.
        directory: target folder (default: the checkout's ``pretrained/``).
        dtype: ``"float32"`` stores the weights as trained.  ``"float16"``
            stores a copy with every value rounded to half precision, half
            the size (for the large CIFAR-10 models); a LaPerm copy is then a
            permutation of the rounded theta_0.  The manifest's
            ``val_accuracy`` / ``test_accuracy`` are always those of the stored
            weights as :func:`load` gives them (float32 arithmetic): a float16
            copy, or the weights of a run trained under another precision
            policy (``mixed_bfloat16``), is scored again on the run's
            validation and test splits, and the run's own numbers are kept as
            ``val_accuracy_in_run`` / ``test_accuracy_in_run``.
        data_dir: the data folder for that scoring (default: as
            :func:`laperm.data.load`).

    Returns:
        The manifest entry.

    Raises:
        ValueError: ``dtype`` is not one of :data:`EXPORT_DTYPES`.
        FileNotFoundError: the run folder has no ``result.json`` or
            ``best.weights.h5`` (the run is not finished).
        ManifestError: ``name`` is not a plain file name (it would be written
            outside the weights folder).
        laperm.project.NoProjectError: no ``directory`` and no checkout here.
    """
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(EXPORT_DTYPES)}; received {dtype!r}.")
    target_dir = _export_dir(directory)
    _inside(target_dir, f"{_plain_name(name, 'the name', target_dir)}.weights.h5", "the name")
    run_dir = Path(run_dir)
    for needed in ("result.json", "best.weights.h5"):
        if not (run_dir / needed).is_file():
            raise FileNotFoundError(
                f"{run_dir} has no {needed}: only a finished run can be exported.")
    result = json.loads((run_dir / "result.json").read_text())
    target_dir.mkdir(parents=True, exist_ok=True)
    file = f"{name}.weights.h5"
    # Keep the model's weights only: a run's best.weights.h5 also holds the
    # optimizer state (sorted theta_0, Adam moments), several times larger.

    cfg = result["config"]
    config = ExperimentConfig.from_dict(cfg)
    model, _ = build_model(config)
    model.load_weights(run_dir / "best.weights.h5")
    tmp = target_dir / f"{name}.tmp.weights.h5"
    model.save_weights(tmp)
    scores = {"val_accuracy": result["best_val_accuracy"],
              "test_accuracy": result["test_accuracy_at_best_val"]}
    if dtype == "float16":
        half = target_dir / f"{name}.tmp16.weights.h5"
        _to_float16(tmp, half)
        os.replace(half, tmp)
    if dtype != "float32" or config.precision != "float32":
        stored, _ = build_model(config)  # as load() builds it: float32 arithmetic
        stored.load_weights(tmp)
        val, test = score(stored, config, data_dir)
        scores = {"val_accuracy": val, "test_accuracy": test,
                  "val_accuracy_in_run": scores["val_accuracy"],
                  "test_accuracy_in_run": scores["test_accuracy"]}
    os.replace(tmp, target_dir / file)

    settings = run_settings(result)
    entry = {
        "file": file,
        "stored_dtype": dtype,
        "model": cfg["model"],
        "experiment": result["name"],
        "optimizer": result["optimizer"],
        "config": cfg,
        "config_hash": result["config_hash"],
        **{key: settings[key] for key in ("k", "p", "seed", "epochs_run", "scale")},
        "epochs_planned": settings["paper_epochs"],
        "best_epoch": result["best_epoch"],
        **scores,
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
    atomic_write_json(target_dir / MANIFEST, entries, sort_keys=True)
    return entry
