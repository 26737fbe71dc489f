"""laperm.analysis.checkpoints: what page 6 computes from the authors' files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from laperm import paper
from laperm.analysis import checkpoints


def test_the_published_files_and_where_they_are_found(tmp_path, reference_checkpoints):
    files = checkpoints.published()
    assert [c.file for c in files] == list(paper.PUBLISHED_CHECKPOINTS)
    by_file = {c.file: c for c in files}
    assert (by_file["F2.h5"].dataset, by_file["F2.h5"].pruned_percent) == ("mnist", 92)
    assert checkpoints.available(None) == ([], sorted(paper.PUBLISHED_CHECKPOINTS))
    (tmp_path / "F1.h5").write_bytes((reference_checkpoints / "F1.h5").read_bytes())
    found, missing = checkpoints.available(tmp_path)
    assert [c.file for c in found] == ["F1.h5"] and "F1.h5" not in missing


def test_f1_scores_as_published_on_a_subset_and_its_zeros_match_the_mask(
        reference_checkpoints, small_data_dir):
    sets = checkpoints.test_sets(300, 1000, data_dir=small_data_dir)
    assert sets["mnist"]["label"] == "MNIST, first 300 of the 500 test images (subset)"
    assert sets["cifar10"]["label"].startswith("CIFAR-10, first 200 of the 10000 test images")
    assert sets["mnist"]["x"].max() <= 1.0 and len(sets["cifar10"]["y"]) == 200
    f1 = [c for c in checkpoints.published() if c.file == "F1.h5"]
    results, stats = checkpoints.score(f1, reference_checkpoints, sets)
    row = results.iloc[0]
    assert (row["model"], row["n"], row["published"]) == ("F1", 300, paper.PAPER_ACCURACY["f1"])
    assert 0.7 < row["measured"] <= 1 and row["std. error"] == pytest.approx(
        np.sqrt(row["measured"] * (1 - row["measured"]) / 300))
    assert "subset of 300 test images" in checkpoints.note(row)
    zeros = checkpoints.zero_table(stats, f1)
    # F1's shared-value mask keeps 60% of the weights: 40% zeros, as the paper's p says
    assert abs(zeros.loc[0, "difference to p (pt)"]) < 1.0
    shared = checkpoints.shared_value_table(reference_checkpoints, f1)
    assert shared["exactly {0, v}"].all() and (shared["v (paper)"] == 0.08).all()
    lines = checkpoints.summary(results, zeros, shared)
    se = np.sqrt(row["measured"] * (1 - row["measured"]) / 300)
    assert lines[0] == (  # the scores first
        f"MNIST on the first 300 test images (the paper used 10,000): F1 {row['measured']:.2%} "
        f"(published 85.46%); {int(abs(row['difference']) <= 2 * se)} of 1 within 2 standard "
        "errors of the published number.")
    assert lines[-2] == "F1 and F2: every kernel holds exactly two values, {0, v}."
    assert lines[-1] == "All 1 files found load into the models of `laperm.models` by layer order."


@pytest.mark.parametrize("row, expected", [
    (dict(model="Conv7", n=10000, measured=0.9972, published=0.9972, difference=0.0,
          **{"std. error": 5e-4, "dataset/test set": "MNIST, all 10000 test images"}),
     "matches the published number exactly"),
    (dict(model="F2", n=10000, measured=0.7068, published=0.7814, difference=-0.0746,
          **{"std. error": 4.6e-3, "dataset/test set": "MNIST, all 10000 test images"}),
     "the released file scores 70.68%, 7.46 pt below the published 78.14% (more than 3 "
     "standard errors); file loads only into Dense layers with (all-zero) biases"),
    (dict(model="resnet50", n=1000, measured=0.938, published=0.9253, difference=0.0127,
          **{"std. error": 7.6e-3, "dataset/test set": "CIFAR-10, first 1000 ..."}),
     "published on 10000 test images, measured on 1000: standard error 0.8 pt; within 3 "
     "standard errors of the published number"),
])
def test_each_result_is_read_against_its_sampling_error(row, expected):
    assert checkpoints.note(pd.Series(row)) == expected


def test_the_sampling_error_in_words():
    assert checkpoints.sampling_error_note(1000) == (
        "binomial standard error of an accuracy of 92% on 1000 test images: 0.86 points "
        "(two standard errors: 1.7 points)")


def test_the_scores_figure():
    from laperm import viz

    rows = pd.DataFrame({"model": ["F1", "resnet50"], "published": [0.8546, 0.9253],
                         "measured": [0.8546, 0.938], "difference": [0.0, 0.0127],
                         "std. error": [3.5e-3, 7.6e-3],
                         "dataset/test set": ["MNIST, all 10000", "CIFAR-10, first 1000"]})
    fig = viz.plot_checkpoint_scores(rows)
    assert len(fig.axes) == 2 and [t.get_text() for t in fig.axes[0].get_yticklabels()] == [
        "resnet50", "F1"]
    # the legend lies under both panels, over no point
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    assert all(legend.y1 <= ax.get_window_extent().y0 for ax in fig.axes)
    assert viz.plot_checkpoint_scores(pd.DataFrame()) is None
