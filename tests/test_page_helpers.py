"""Functions the Introduction, Section 6 and Status pages call (moved out of the pages),
checked against hand-computed values."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from laperm import book, viz  # noqa: E402
from laperm.analysis import checkpoints, permutations, profiles  # noqa: E402
from laperm.book import status  # noqa: E402


def test_drifted_vector_is_he_uniform_plus_noise():
    theta0, w = permutations.drifted_vector(12, seed=0)
    rng = np.random.default_rng(0)
    limit = np.sqrt(6 / 12)
    expected0 = rng.uniform(-limit, limit, 12).astype("float32")
    np.testing.assert_array_equal(theta0, expected0)
    np.testing.assert_array_equal(w, expected0 + rng.normal(0, 0.5 * limit, 12).astype("float32"))
    assert theta0.dtype == np.float32 and np.all(np.abs(theta0) <= limit)
    _, still = permutations.drifted_vector(12, seed=0, drift=0.0)
    np.testing.assert_array_equal(still, theta0)


def test_plot_one_sync_colours_each_value_by_its_initial_rank():
    theta0 = np.array([0.3, -0.2, 0.1], dtype="float32")
    synced = np.array([-0.2, 0.1, 0.3], dtype="float32")
    fig = viz.plot_one_sync(theta0, theta0 + 0.01, synced)
    try:
        first, _, last = fig.axes
        bars = first.patches
        assert [round(b.get_height(), 6) for b in last.patches] == [-0.2, 0.1, 0.3]
        # the bar holding -0.2 after the sync has the colour -0.2 had at the start
        assert last.patches[0].get_facecolor() == bars[1].get_facecolor()
        assert last.patches[2].get_facecolor() == bars[0].get_facecolor()
        assert first.get_ylabel() == "weight value"
    finally:
        plt.close(fig)


class _Var:
    def __init__(self, path, shape):
        self.path, self.shape = path, shape


def test_permutation_table():
    theta0 = [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[5.0, 6.0, 7.0, 8.0]])]
    theta = [np.array([[3.0, 2.0], [1.0, 4.0]]), np.array([[5.0, 6.0, 7.0, 8.0]])]  # column 0 swapped
    t = profiles.permutation_table([_Var("a/kernel", (2, 2)), _Var("b/kernel", (1, 4))],
                                   theta0, theta)
    assert list(t["variable"]) == ["a/kernel", "b/kernel"]
    assert list(t["shape"]) == [(2, 2), (1, 4)]
    assert list(t["permutation of theta_0"]) == [True, True]
    assert list(t["weights that moved"]) == ["50.0%", "0.0%"]


def test_profiles_table():
    t = book.profiles_table()
    assert list(t.index) == ["smoke", "cpu", "paper"]
    assert t.loc["cpu", "what it is for"] == book.PROFILE_DESCRIPTIONS["cpu"]


def test_checkpoint_texts():
    c = [type("C", (), {"file": "conv7.h5"})(), type("C", (), {"file": "f1.h5"})()]
    assert checkpoints.availability_text(c, []) == (
        "the authors' checkpoints found: conv7.h5, f1.h5")
    assert checkpoints.availability_text(c[:1], ["f2.h5"]) == (
        "the authors' checkpoints found: conv7.h5\nmissing (skipped): f2.h5")
    sets = {"mnist": {"label": "MNIST, 10000 images", "y": np.zeros(10000)},
            "cifar10": {"label": "CIFAR-10, first 1000", "y": np.zeros(1000)}}
    text = checkpoints.describe_test_sets(sets)
    assert text.splitlines()[:2] == ["mnist: MNIST, 10000 images", "cifar10: CIFAR-10, first 1000"]
    # sqrt(0.92 * 0.08 / 1000) = 0.858 points
    assert text.splitlines()[2] == checkpoints.sampling_error_note(1000)
    assert "0.86 points" in text
    assert checkpoints.CHECKPOINTS_URL in checkpoints.NOT_FOUND


def test_checkpoint_styles_format_the_tables():
    results = pd.DataFrame({"model": ["Conv7"], "dataset/test set": ["MNIST (10000)"],
                            "published": [0.9972], "measured": [0.9972], "difference": [0.0],
                            "n": [10000], "std. error": [0.0005]})
    html = checkpoints.scores_style(results).to_html()
    assert "99.72%" in html and "+0.00 pt" in html
    assert "matches the published number exactly" in html
    assert "note" not in results  # the table itself is left as it was
    zeros = pd.DataFrame({"model": ["x"], "zero fraction (all kernels)": [0.3],
                          "zero fraction (other kernels)": [np.nan],
                          "difference to p (pt)": [-0.25]})
    html = checkpoints.zeros_style(zeros).to_html()
    assert "30.00%" in html and "-0.25" in html and ">-<" in html
    shared = pd.DataFrame({"model": ["F1"], "non-zero fraction": [0.6]})
    assert "60.00%" in checkpoints.shared_style(shared).to_html()


def test_status_time_note_and_build_table(monkeypatch, tmp_path):
    table = pd.DataFrame({"section": ["a"], "state": ["not executed"]})
    assert status.time_note(table, "cpu") == status.NO_RECORD
    done = pd.DataFrame({"section": ["a", "b"], "state": ["executed", "executed"],
                         "profile": ["cpu", "cpu"], "with kernel start (s)": [60.0, 120.0]})
    assert status.time_note(done, "cpu") == status.time_sentence(done, "cpu")
    assert "**3.0 min**" in status.time_note(done, "cpu")
    calls = {}
    monkeypatch.setattr(status, "load_status", lambda: [{"section": "b"}])
    monkeypatch.setattr(status, "section_names", lambda project: ["a", "b"])
    monkeypatch.setattr(status, "load_cache", lambda project: {"b": {"wall_time_s": 3}})
    monkeypatch.setattr(status, "status_table", lambda *a, **k: calls.update(a=a, k=k) or "t")
    assert status.build_status_table("08_status", "cpu", project="P") == "t"
    assert calls["a"] == ([{"section": "b"}], ["a", "b"], "08_status", "cpu")
    assert calls["k"] == {"kernel_times": {"b": {"wall_time_s": 3}}}


def test_source_of_reads_a_function_without_importing_its_module():
    """Page 4.2 shows its torch loop where torch is not installed (the main environment)."""
    import importlib.util
    import sys

    import pytest

    from laperm.book.display import source_of

    code = source_of("laperm.book.frameworks_torch", "train")
    assert code.startswith("def train(") and "opt.step()" in code and code.endswith("opt.steps_since_sync)")
    assert "laperm.book.frameworks_torch" not in sys.modules or importlib.util.find_spec("torch")
    with pytest.raises(LookupError, match="no top-level function or class 'nothing'"):
        source_of("laperm.book.frameworks_torch", "nothing")
    with pytest.raises(LookupError, match="no module"):
        source_of("laperm.book.no_such_module", "train")
