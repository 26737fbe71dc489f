"""pretrained/: export of a run, manifest, checksum-verified loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pathlib import Path

from laperm import pretrained
from laperm.experiment import paper_config, run


@pytest.fixture(scope="module")
def exported(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("pretrained")
    cfg = paper_config("f1", epochs=1, train_fraction=0.02, validation_size=500)
    run(cfg, root / "run", data_dir=data_dir, progress=False)
    entry = pretrained.export(root / "run", "f1_tiny", directory=root / "store")
    return root / "store", entry


def test_manifest_describes_the_run(exported):
    store, entry = exported
    assert pretrained.available(store) == ["f1_tiny"]
    for key in ("model", "config_hash", "k", "seed", "epochs_run", "epochs_planned",
                "val_accuracy", "test_accuracy", "wall_time_s", "hardware", "date",
                "commit", "sha256", "synchronised"):
        assert key in entry, key
    assert entry["k"] == 250 and entry["epochs_planned"] == 10 and entry["synchronised"]
    assert json.loads((store / "manifest.json").read_text())["f1_tiny"] == entry


def test_load_returns_model_and_metadata(exported):
    store, entry = exported
    model, meta = pretrained.load("f1_tiny", directory=store)
    assert meta == entry
    kernel = np.asarray(model.weights[0])
    assert set(np.unique(kernel)) <= {0.0, np.float32(0.08)}


def test_damaged_file_is_refused(exported, tmp_path):
    store, entry = exported
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    with open(copy / entry["file"], "ab") as f:
        f.write(b"tampered")
    with pytest.raises(pretrained.ChecksumError, match="sha256"):
        pretrained.load("f1_tiny", directory=copy)


def test_unknown_name_lists_available(exported):
    store, _ = exported
    with pytest.raises(ValueError, match="f1_tiny"):
        pretrained.load("nope", directory=store)


def test_project_manifest_files_match():
    """Every file committed in pretrained/ matches its manifest sha256."""
    entries = pretrained.manifest()
    for name, meta in entries.items():
        path = pretrained.weights_dir() / meta["file"]
        assert path.exists(), name
        assert pretrained.sha256(path) == meta["sha256"], name
    # Weights only, and the folder stays well under the 50 MB the project allows.
    assert pretrained.weights_dir() == Path(__file__).resolve().parents[1] / "pretrained"
    total = sum(p.stat().st_size for p in pretrained.weights_dir().iterdir())
    assert total < 25 * 2**20, f"pretrained/ holds {total / 2**20:.1f} MB"


@pytest.mark.slow  # evaluates every committed model on its test set
def test_project_weights_score_what_the_manifest_says(data_dir):
    """Each committed model re-scores its recorded test accuracy (float16 copies: as stored).

    Only the test split is evaluated (what the manifest's ``test_accuracy`` says):
    :func:`pretrained.score` computes the validation accuracy too, which doubled this
    test's time; ``score`` itself is checked in
    :func:`test_float16_copy_is_half_the_size_and_scored_as_stored`."""
    from laperm.experiment import ExperimentConfig, prepare_data
    from laperm.run.evaluation import evaluate

    entries = pretrained.manifest()
    if not entries:
        pytest.skip("no weights committed in pretrained/")
    for name, meta in sorted(entries.items()):
        model, _ = pretrained.load(name)
        cfg = ExperimentConfig.from_dict(meta["config"])
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        accuracy = evaluate(model, prepare_data(cfg, data_dir)["test"])[1]
        assert accuracy == pytest.approx(meta["test_accuracy"], abs=2e-4), name


@pytest.mark.slow  # trains and exports a Conv2 run end to end (~13 s)
def test_float16_copy_is_half_the_size_and_scored_as_stored(tmp_path, small_data_dir):
    """A BatchNorm LaPerm model: the half-precision copy loads, re-scores its manifest
    accuracy, and each kernel is a permutation of the rounded theta_0."""
    from laperm.experiment import build_model

    data_dir = small_data_dir  # 250 training, 200 validation and 200 test images
    cfg = paper_config("conv2", epochs=1, validation_size=200, sync_period=2)
    run(cfg, tmp_path / "run", data_dir=data_dir, progress=False)
    store = tmp_path / "store"
    full = pretrained.export(tmp_path / "run", "c32", directory=store)
    half = pretrained.export(tmp_path / "run", "c16", directory=store, dtype="float16",
                             data_dir=data_dir)
    assert full["stored_dtype"] == "float32" and half["stored_dtype"] == "float16"
    ratio = (store / half["file"]).stat().st_size / (store / full["file"]).stat().st_size
    assert ratio < 0.55, ratio
    assert half["test_accuracy_in_run"] == full["test_accuracy"]
    assert "test_accuracy_in_run" not in full  # float32 weights of a float32 run: the run's
    model, _ = pretrained.load("c16", directory=store)
    val, test = pretrained.score(model, cfg, data_dir)
    assert (val, test) == pytest.approx((half["val_accuracy"], half["test_accuracy"]), abs=1e-6)
    theta0, _ = build_model(cfg)
    for before, after in zip(theta0.weights, model.weights):
        if "kernel" in before.path:
            rounded = np.sort(np.asarray(before).astype(np.float16).astype(np.float32), axis=None)
            np.testing.assert_array_equal(np.sort(np.asarray(after), axis=None), rounded)


@pytest.mark.slow  # trains and exports a Conv2 run end to end (~13 s each)
@pytest.mark.parametrize("kernels, dtype", [("keras", "float32"), ("fused", "float16")])
def test_weights_of_a_bfloat16_run_are_scored_as_loaded(tmp_path, small_data_dir, kernels,
                                                        dtype):
    """Trained under mixed_bfloat16, loaded in float32: the manifest says what load() gives
    (also for the fused kernels stored as float16, the long CIFAR-10 runs' way).  On a few
    hundred images: a CPU without bfloat16 instructions emulates it, many times slower."""
    data_dir = small_data_dir
    cfg = paper_config("conv2", epochs=1, validation_size=200, sync_period=2,
                       precision="mixed_bfloat16", kernels=kernels)
    run(cfg, tmp_path / "run", data_dir=data_dir, progress=False)
    entry = pretrained.export(tmp_path / "run", "b", directory=tmp_path / "store",
                              data_dir=data_dir, dtype=dtype)
    assert entry["stored_dtype"] == dtype and "test_accuracy_in_run" in entry
    model, _ = pretrained.load("b", directory=tmp_path / "store")
    assert model.weights[0].dtype == "float32"
    assert pretrained.score(model, cfg, data_dir)[1] == pytest.approx(entry["test_accuracy"],
                                                                      abs=1e-6)


def test_export_refuses_a_bad_dtype_and_an_unfinished_run(tmp_path):
    with pytest.raises(ValueError, match="float16"):
        pretrained.export(tmp_path, "x", directory=tmp_path / "store", dtype="int8")
    with pytest.raises(FileNotFoundError, match="only a finished run"):
        pretrained.export(tmp_path, "x", directory=tmp_path / "store")


# ---------------------------------------------------------------- paths stay in the folder


def _store_with(tmp_path, exported, file, sha):
    store, entry = exported
    folder = tmp_path / "a" / "b" / "store"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"f1_tiny": {**entry, "file": file,
                                                                  "sha256": sha}}))
    return folder


def test_a_manifest_path_out_of_the_folder_is_refused(exported, tmp_path):
    store, entry = exported
    outside = tmp_path / "a" / "outside.weights.h5"
    folder = _store_with(tmp_path, exported, "../../outside.weights.h5", entry["sha256"])
    outside.write_bytes((store / entry["file"]).read_bytes())  # a valid file, right sha256
    with pytest.raises(pretrained.ManifestError) as exc:
        pretrained.load("f1_tiny", directory=folder)
    assert str(exc.value) == (
        f"the file of entry 'f1_tiny' '../../outside.weights.h5' in {folder / 'manifest.json'} "
        "is not a plain file name; weights are only read from and written to the weights "
        "folder itself.")


def test_a_file_outside_the_folder_is_never_hashed(exported, tmp_path, monkeypatch):
    folder = _store_with(tmp_path, exported, "../../../../etc/passwd", "0" * 64)
    hashed = []
    monkeypatch.setattr(pretrained, "sha256", lambda path: hashed.append(path) or "x")
    with pytest.raises(pretrained.ManifestError, match="is not a plain file name"):
        pretrained.load("f1_tiny", directory=folder)
    assert hashed == []


def test_a_link_out_of_the_folder_is_refused(exported, tmp_path):
    store, entry = exported
    folder = _store_with(tmp_path, exported, "linked.weights.h5", entry["sha256"])
    (folder / "linked.weights.h5").symlink_to(store / entry["file"])  # another folder
    with pytest.raises(pretrained.ManifestError) as exc:
        pretrained.load("f1_tiny", directory=folder)
    assert str(exc.value).startswith(
        f"the file of entry 'f1_tiny' 'linked.weights.h5' in {folder} leads out of the "
        "weights folder")


def test_export_never_writes_outside_its_folder(exported, tmp_path):
    store, _ = exported
    target = tmp_path / "x" / "y" / "store"
    with pytest.raises(pretrained.ManifestError) as exc:
        pretrained.export(store.parent / "run", "../../escaped", directory=target)
    assert str(exc.value) == (f"the name '../../escaped' in {target} is not a plain file name; "
                              "weights are only read from and written to the weights folder "
                              "itself.")
    assert list(tmp_path.rglob("*escaped*")) == [] and not target.exists()


def test_the_packaged_weights_are_found_through_the_package_outside_the_checkout(tmp_path):
    """An editable install (the README's set-up) used from another folder."""
    import subprocess
    import sys

    script = ("import laperm.pretrained as p; m, meta = p.load('f1_laperm_s0'); "
              "print(p.weights_dir()); print(meta['file'])")
    env = {k: v for k, v in __import__("os").environ.items() if k != "LAPERM_ROOT"}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    where, file = out.stdout.split()
    assert Path(where).resolve() == (Path(pretrained.__file__).parents[1] / "pretrained"
                                     if "site-packages" not in pretrained.__file__
                                     else Path(pretrained.__file__).parent / "_pretrained")
    assert file == "f1_laperm_s0.weights.h5"
