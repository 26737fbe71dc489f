"""The authors' LaPerm run beside ours (:mod:`laperm.crosscheck`).

The authors' code is loaded from ``$LAPERM_AUTHORS_CODE`` or
``../shared/reference/authors-code``; without it, or without tf-keras, the
tests that need it skip with the one-sentence reason.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from laperm import crosscheck as cc

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("LAPERM_SHARED_DIR")
    return Path(env) if env else REPO.parent / "shared"


def _authors_dir():
    return os.environ.get(cc.ENV_VAR) or (_shared_dir() / "reference" / "authors-code")


@pytest.fixture(scope="module")
def code():
    try:
        return cc.load_authors_code(_authors_dir())
    except cc.CrossCheckUnavailable as exc:
        pytest.skip(str(exc))


# ----------------------------------------------------------------- loading and shims


def test_every_shim_is_documented():
    assert len(cc.SHIMS) == 3
    for shim in cc.SHIMS:
        assert f"``{shim.name}``" in cc.__doc__, shim.name


def test_shims_live_only_in_the_authors_namespace(code):
    import keras
    import tensorflow as tf

    assert code.LaPerm.tf.keras is code.keras
    assert code.keras.__name__.startswith("tf_keras")
    assert code.LaPerm.tf.metrics is code.keras.metrics
    assert code.LaPerm.tf.argsort is tf.argsort  # everything else is TensorFlow's own
    assert keras.__version__.startswith("3.")
    assert sys.modules["tensorflow"] is tf and not isinstance(tf, cc.authors._TensorFlowView)
    # the process keeps Keras 3 (unless it asked TensorFlow for the legacy Keras itself)
    legacy = os.environ.get("TF_USE_LEGACY_KERAS") in ("1", "true", "True")
    assert (tf.keras.layers.Dense is keras.layers.Dense) is not legacy
    cast = code.weight_utils.np.cast["int32"](np.array([0.4, 1.0, 2.7]))
    assert cast.dtype == np.int32 and cast.tolist() == [0, 1, 2]
    # the real numpy is untouched: numpy 2 has no np.cast, numpy 1 keeps its own
    assert code.weight_utils.np is not np
    assert getattr(np, "cast", None) is not code.weight_utils.np.cast
    assert hasattr(np, "cast") is (int(np.__version__.split(".")[0]) < 2)
    assert code.LaPerm.pbar is cc.authors._trange
    assert set(code.sha256) == set(cc.AUTHORS_FILES)


def _one_sentence(message: str) -> bool:
    body = message.replace("e.g.", "eg")
    return body.endswith(".") and body.count(". ") == 0 and "Traceback" not in body


def test_missing_directory_says_where_to_get_the_code(tmp_path):
    with pytest.raises(cc.CrossCheckUnavailable) as exc:
        cc.find_authors_code(tmp_path / "absent")
    message = str(exc.value)
    assert "git clone https://github.com/ihsuy/Train-by-Reconnect" in message
    assert "$LAPERM_AUTHORS_CODE" in message and str(tmp_path / "absent") in message
    assert _one_sentence(message)


def test_missing_file_is_named(tmp_path):
    (tmp_path / "train_by_reconnect").mkdir()
    (tmp_path / "train_by_reconnect" / "LaPerm.py").write_text("")
    with pytest.raises(cc.CrossCheckUnavailable) as exc:
        cc.find_authors_code(tmp_path)
    assert "train_by_reconnect/weight_utils.py" in str(exc.value)
    assert _one_sentence(str(exc.value))


def test_environment_variable_names_the_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(cc.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(cc.CrossCheckUnavailable, match=r"\$LAPERM_AUTHORS_CODE"):
        cc.find_authors_code()


def test_environment_variable_may_name_the_package_folder(monkeypatch, code):
    real = cc.find_authors_code(_authors_dir())
    monkeypatch.setenv(cc.ENV_VAR, str(real))  # the package folder itself works too
    assert cc.find_authors_code() == real
    assert real == code.directory


def test_missing_tf_keras_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tf_keras", None)  # makes `import tf_keras` fail
    with pytest.raises(cc.CrossCheckUnavailable) as exc:
        cc.load_authors_code(_authors_dir())
    message = str(exc.value)
    assert "pip install 'laperm[crosscheck]'" in message and "tf-keras" in message
    assert _one_sentence(message)


def test_cli_reports_unavailable_code_in_one_line(tmp_path, capsys):
    assert cc.main(["--authors-code", str(tmp_path / "absent"), "--out", str(tmp_path),
                    "sync"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "git clone" in err


def test_crosscheck_extra_is_declared():
    from laperm.project import project_root

    root = project_root(required=False)
    if root is None or not (root / "pyproject.toml").is_file():
        pytest.skip("no project checkout")
    text = (root / "pyproject.toml").read_text()
    assert 'crosscheck = ["tf-keras' in text
    assert "crosscheck]" in (root / "scripts" / "setup.sh").read_text()


# ----------------------------------------------------------------- the same sync


def test_sync_is_bit_identical_to_the_authors(code):
    table = cc.compare_sync(code=code)
    assert table["identical"].all(), table[~table["identical"]]
    ranks = {len(shape) for shape in table["shape"]}
    assert ranks == {1, 2, 4}  # 1-D variables, Dense and Conv kernels
    cases = " ".join(table["case"])
    for kind in ("ties", "zeros", "signed zeros", "shared value"):
        assert kind in cases


def test_sync_on_a_single_ranked_example(code):
    theta0 = [np.array([[3.0, 1.0], [0.0, 2.0], [0.0, 5.0]], np.float32)]
    current = [np.array([[0.2, -1.0], [0.2, 7.0], [-4.0, 7.0]], np.float32)]
    # column 0: sorted theta_0 (0, 0, 3) by the ranks of (0.2, 0.2, -4) -> ties by position
    expected = np.array([[0.0, 1.0], [3.0, 2.0], [0.0, 5.0]], np.float32)
    for out in (cc.authors_sync(current, theta0, code), cc.our_sync(current, theta0)):
        np.testing.assert_array_equal(out[0], expected)


def test_where_the_two_syncs_differ_and_why(code):
    table = cc.sync_differences(code).set_index("case")
    nan = table.loc["NaN in a Dense kernel"]
    assert nan["ours"] == "raises NonFiniteWeightsError"
    assert nan["authors"].startswith("synchronised")
    rank3 = table.loc["rank-3 kernel (Conv1D, (3, 4, 5))"]
    assert "NotImplementedError" in rank3["authors"]
    assert rank3["ours"] == "synchronised (a permutation of theta_0)"
    assert all(len(reason) > 20 for reason in table["reason"])


def test_cli_sync_writes_the_record(code, tmp_path):
    assert cc.main(["--authors-code", str(code.directory), "--out", str(tmp_path), "sync"]) == 0
    record = json.loads((tmp_path / "sync.json").read_text())
    assert record["all_identical"] is True
    assert record["authors_code"]["sha256"] == code.sha256
    assert (tmp_path / "sync.csv").is_file() and "versions" in record


# ----------------------------------------------------------------- the same training


def test_matching_loss_has_the_authors_scale():
    import keras

    from laperm import models

    keras.utils.set_random_seed(0)
    model = models.f2()
    rng = np.random.default_rng(0)
    x = rng.random((16, 28, 28)).astype("float32")
    y = rng.integers(0, 10, 16).astype("int32")
    p = model(x)
    penalty = float(sum(keras.ops.convert_to_numpy(v) for v in model.losses))
    ce = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(y, p))
    ours = float(keras.ops.convert_to_numpy(cc.matching_loss(model)(y, p))) + penalty
    np.testing.assert_allclose(ours, ce.sum() + 16 * penalty, rtol=1e-5)


@pytest.fixture(scope="module")
def mnist_dir():
    path = _shared_dir() / "data"
    if not (path / "mnist.npz").is_file():
        pytest.skip(f"offline MNIST not found in {path}")
    return path


def test_f1_training_is_identical_with_the_matching_loss(code, mnist_dir):
    result = cc.compare_training("f1", syncs=3, sync_period=10, matching=True,
                                 train_fraction=0.02, data_dir=mnist_dir, code=code)
    table = result.table
    assert result.same_batches
    assert result.settings["steps_per_epoch"] < 30  # the learning rate changes on the way
    assert list(table["sync"].dropna()) == [1, 2, 3]
    assert (table["agree"] == table["positions"]).all(), table
    assert (table["max_abs_diff"] == 0).all()
    synced = table[table["sync"].notna()]
    assert synced["ours_permutation"].all() and synced["authors_permutation"].all()


def test_f1_training_with_the_keras_loss_parts_between_syncs(code, mnist_dir):
    result = cc.compare_training("f1", syncs=2, sync_period=10, matching=False,
                                 train_fraction=0.02, data_dir=mnist_dir, code=code)
    table = result.table.set_index("step")
    # Adam with a B times smaller loss: epsilon weighs B times more, the steps differ
    assert table.loc[1, "max_abs_diff"] > 1e-5
    synced = table[table["sync"].notna()]
    assert synced["ours_permutation"].all() and synced["authors_permutation"].all()
    assert (synced["agree_fraction"] >= synced["chance_fraction"]).all()


@pytest.mark.slow  # trains Conv7 in both implementations (~12 s)
def test_conv7_training_is_identical_without_dropout(code, mnist_dir):
    result = cc.compare_training("conv7", syncs=2, sync_period=5, matching=True, dropout=False,
                                 train_fraction=0.005, data_dir=mnist_dir, code=code)
    assert result.same_batches and result.settings["permuted_variables"] == 16  # biases too
    assert (result.table["agree"] == result.table["positions"]).all(), result.table


@pytest.mark.slow
def test_conv7_dropout_masks_part_the_two_runs(code, mnist_dir):
    result = cc.compare_training("conv7", syncs=2, sync_period=5, matching=True, dropout=True,
                                 train_fraction=0.005, data_dir=mnist_dir, code=code)
    synced = result.table[result.table["sync"].notna()]
    assert (synced["agree_fraction"] < 0.5).all()  # each side draws its own masks
    assert synced["ours_permutation"].all() and synced["authors_permutation"].all()


# ----------------------------------------------------------------- the same distribution


@pytest.mark.slow
def test_distribution_record_and_table(code, mnist_dir, tmp_path):
    record = cc.distribution([0, 1], ["f1"], data_dir=mnist_dir, out_dir=tmp_path, epochs=1,
                             train_size=6000, code=code)
    assert {r["side"] for r in record["runs"]} == {"authors", "ours", "ours_keep"}
    authors = [r for r in record["runs"] if r["side"] == "authors"]
    assert all(abs(r["initial_nonzero_overall"] - 4 / 7) < 0.02 for r in authors)
    table = cc.distribution_table(record)
    assert {"mean", "sd", "seed 0", "seed 1"} <= set(table.columns)
    saved = json.loads((tmp_path / "distribution.json").read_text())
    assert saved["scale"].startswith("reduced") and "versions" in saved
    assert (tmp_path / "distribution.csv").is_file()


def test_committed_distribution_record_is_at_notebook_scale():
    record = json.loads((REPO / "results" / "crosscheck" / "distribution.json").read_text())
    assert record["scale"] == "notebook scale"
    assert len(record["seeds"]) >= 3
    sides = {(r["model"], r["side"]) for r in record["runs"]}
    assert {("f1", "authors"), ("f1", "ours"), ("f2", "authors"), ("f2", "ours")} <= sides
    importlib.import_module("pandas").DataFrame(record["summary"])  # pandas-friendly


def test_reason_and_setup_hint_make_one_sentence_without_local_paths(tmp_path, monkeypatch):
    """What the book page prints when the code is missing: one sentence, no local path."""
    (tmp_path / "train_by_reconnect").mkdir()
    reasons = []
    for attempt in (lambda: cc.find_authors_code(tmp_path / "absent"),
                    lambda: cc.find_authors_code(tmp_path)):
        with pytest.raises(cc.CrossCheckUnavailable) as exc:
            attempt()
        reasons.append(exc.value.reason)
    monkeypatch.setitem(sys.modules, "tf_keras", None)
    with pytest.raises(cc.CrossCheckUnavailable) as exc:
        cc.load_authors_code(_authors_dir())
    reasons.append(exc.value.reason)
    assert reasons[2] == "tf-keras is not installed"
    for reason in reasons:
        sentence = f"Not executed in this build: {reason}; {cc.SETUP_HINT}."
        assert _one_sentence(sentence) and str(tmp_path) not in sentence
        assert "pip install 'laperm[crosscheck]'" in sentence and cc.ENV_VAR in sentence
