"""Page 4's helpers (laperm.book.step_by_step) and the analysis and figure functions it calls."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from laperm import viz  # noqa: E402
from laperm.analysis import permutations, profiles  # noqa: E402
from laperm.book import step_by_step  # noqa: E402
from laperm.method import ops as lops  # noqa: E402

THETA0_TOY = np.array([0.50, -0.20, 0.10, -0.70, 0.30, 0.90], dtype="float32")
W_TOY = np.array([0.42, 0.35, -0.80, 0.05, 1.30, -0.15], dtype="float32")
# Two units of three inputs (Keras layout, vectors are columns): unit 0 swaps its first two
# values, unit 1 keeps its place.
THETA0 = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]], dtype="float32")
THETA = np.array([[2.0, 10.0], [1.0, 20.0], [3.0, 30.0]], dtype="float32")


def test_sync_report_prints_the_toy_sync_of_the_page():
    synced = lops.permute_to_ranks(W_TOY, lops.sorted_rows(THETA0_TOY))
    lines = step_by_step.sync_report(THETA0_TOY, W_TOY, synced).splitlines()
    # by hand: the ranks of w are 4 3 0 2 5 1, so w's smallest entry (position 2) gets -0.7
    assert lines[3] == "ranks(w)       [4 3 0 2 5 1]"
    assert lines[4] == "w (after sync) [ 0.5  0.3 -0.7  0.1  0.9 -0.2]"
    assert lines[1] == "sorted(θ0) [-0.7 -0.2  0.1  0.3  0.5  0.9]"
    assert lines[5] == "largest entry at position 4 before and 4 after"


def test_sync_report_fails_when_the_sync_breaks_a_promise():
    with pytest.raises(AssertionError, match="values"):
        step_by_step.sync_report(THETA0_TOY, W_TOY, W_TOY)  # not θ0's values
    with pytest.raises(AssertionError, match="order"):
        step_by_step.sync_report(THETA0_TOY, W_TOY, np.sort(THETA0_TOY))  # not w's order


def test_scale_text_counts_the_steps():
    text = step_by_step.scale_text(10, 1, 10000, 2000)
    assert "k=10" in text and "= 79 steps" in text  # ceil(10000 / 128) = 79
    assert step_by_step.scale_text(100, 5, 60000, 10000).count("60,000 MNIST training images = 2,345 steps; first 10,000 test images") == 1  # 469 x 5


def test_show_scale_notes_the_scale_in_the_section():
    sec = SimpleNamespace(sync_period=10, epochs=2, scale_notes=[])
    sec.note_scale = sec.scale_notes.append
    scale = step_by_step.show_scale(sec, 256, 100)
    assert sec.scale_notes == [scale] and "= 4 steps" in scale


def test_timed_syncs_prints_the_optimizers_sync_count(capsys):
    optimizer = SimpleNamespace(sync_count=SimpleNamespace(numpy=lambda: 7))
    with step_by_step.timed_syncs(optimizer):
        pass
    assert capsys.readouterr().out.startswith("7 syncs in 0.")


def test_permutation_check_table_and_sentence_by_hand():
    table = profiles.permutation_check_table(THETA0, THETA)
    assert list(table["unit"]) == [0, 1]
    assert list(table["max |sorted(θT) − sorted(θ0)|"]) == [0.0, 0.0]
    np.testing.assert_allclose(table["weights moved"], [2 / 3, 0.0])
    assert step_by_step.permutation_sentence(THETA0, THETA) == (
        "every vector is a permutation of its initial vector: True; "
        "33.3% of the weights changed place")
    shown = step_by_step.permutation_check_display(table)
    assert shown["max |sorted(θT) − sorted(θ0)|"].tolist() == ["0", "0"]
    assert shown["weights moved"].tolist() == ["66.7%", "0.0%"]
    with pytest.raises(ValueError):
        profiles.permutation_check_table(THETA0, THETA + 1)


def test_frame_indices_are_evenly_spaced_and_bounded():
    assert list(permutations.frame_indices(8, 12)) == list(range(8))
    # linspace(0, 99, 5) = 0, 24.75, 49.5, 74.25, 99
    assert list(permutations.frame_indices(100, 5)) == [0, 25, 50, 74, 99]
    assert list(permutations.frame_indices(1, 3)) == [0]


def _records():
    """One vector of 20 values: θ0, then a sync that swaps the two values around the median."""
    first = np.arange(20)[None, :]
    second = first.copy()
    second[0, [9, 10]] = second[0, [10, 9]]
    return [first, second]


def test_accuracy_table_and_findings_by_hand():
    acc = {"theta0": 0.1, "laperm": 0.8, "inner": 0.81, "adam": 0.9}
    table = step_by_step.accuracy_table(acc, sync_period=10, n_test=2000, epochs=1)
    assert list(table["test accuracy"]) == [0.1, 0.8, 0.81, 0.9]
    assert list(table["optimizer"]) == ["-", "LaPerm(Adam), k=10", "LaPerm(Adam), k=10", "Adam"]
    assert set(table["test images"]) == {2000} and set(table["epochs"]) == {1}
    lines = step_by_step.findings(1, 10, THETA0, THETA, acc, 2000, _records())
    assert lines[0].endswith("(33.3% of the weights changed place).")
    assert lines[1] == ("Test accuracy: θ0 10.00%; LaPerm, synchronised 80.00%; LaPerm's inner "
                        "weights 81.00%; plain Adam 90.00% (on 2,000 test images).")
    assert lines[2] == ("At the last sync, 0% of unit 0's most extreme initial values changed "
                        "place, against 100% of those nearest the median.")
    assert len(step_by_step.findings(1, 10, THETA0, THETA, acc, 2000, _records()[:1])) == 2
    assert "85.46%" in step_by_step.paper_f1_note()


def test_adam_reference_measures_theta0_on_the_test_set():
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 28, 28)).astype("float32"), rng.integers(0, 10, 64)
    theta0 = rng.uniform(-0.1, 0.1, (784, 10)).astype("float32")
    acc = step_by_step.adam_reference(theta0, (x, y), (x, y), epochs=1, learning_rate=1e-3)
    expected = np.mean((x.reshape(64, 784) @ theta0).argmax(1) == y)  # softmax keeps argmax
    assert acc["theta0"] == pytest.approx(expected)
    assert 0.0 <= acc["adam"] <= 1.0


def test_reconnection_html_has_one_frame_per_picked_record():
    rng = np.random.default_rng(0)
    theta0 = rng.uniform(-1, 1, (784, 10)).astype("float32")
    records = [np.argsort(np.argsort(rng.random((10, 784)), axis=1), axis=1) for _ in range(5)]
    recorder = SimpleNamespace(records={"kernel": records}, steps=[0, 1, 2, 3, 4])
    html, frames = step_by_step.reconnection_html(theta0, recorder, max_frames=3)
    assert frames == 3 and "<script" in html
    plt.close("all")


def test_plot_profiles_side_by_side_titles_the_layer():
    theta0 = np.random.default_rng(0).uniform(-1, 1, (784, 10))
    fig = viz.plot_profiles_side_by_side(theta0, theta0[::-1])
    assert len(fig.axes) == 2
    assert fig.axes[0].get_title() == "θ0: 10 sorted vectors of 784"
    assert fig.axes[1].get_title() == "after LaPerm: the same sorted vectors"
    plt.close(fig)
