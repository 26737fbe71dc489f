"""Page 4 as a lecture (issue 27, point 6): its reused figures' data, and the page itself
(a summary at the top, the strongest figures, exercises with folded answers, the toy)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from laperm.book import step_by_step

PAGE = Path(__file__).resolve().parents[1] / "book" / "04_laperm.md"


def test_sawtooth_rows_measure_both_weights_after_every_step():
    rng = np.random.default_rng(0)
    x = rng.random((300, 28, 28)).astype("float32")
    y = rng.integers(0, 10, 300)
    rows = step_by_step.sawtooth_rows((x, y), (x[:40], y[:40]), sync_period=2,
                                      learning_rate=1e-2, periods=3)
    assert list(rows["step"]) == [s for s in range(1, 7) for _ in range(2)]  # 3 periods of k = 2
    at_sync = rows[rows["step"] == 4]  # right after a sync both are the same network
    assert at_sync["accuracy"].nunique() == 1
    assert isinstance(rows, pd.DataFrame) and set(rows["accuracy"]) <= set(np.arange(41) / 40)


def test_committed_digits_count_the_values_of_the_committed_kernel():
    import json

    kernel, sentence = step_by_step.committed_digits()
    meta = json.loads((PAGE.parents[1] / "pretrained" / "manifest.json").read_text())[
        step_by_step.COMMITTED_F1]
    assert kernel.shape == (784, 10)
    values = np.unique(np.round(kernel, 6))
    assert len(values) == 2 and values[0] == 0  # F1: one shared value and zeros
    assert f"{len(values)} distinct value(s): {{0, {values[1]:g}}}" in sentence
    assert f"{meta['test_accuracy']:.2%}" in sentence and f"k = {meta['k']}" in sentence


def test_page_4_reads_as_a_lecture():
    text = PAGE.read_text()
    title = text.index("# 4. LaPerm")
    summary = text.index("This page in one screen")
    assert title < summary < text.index("```{code-cell}", title)  # before any code
    for call in ("viz.plot_one_sync(", "viz.plot_sawtooth_zoom(", "step_by_step.committed_digits(",
                 "widget.sync_widget_html("):
        assert call in text, call
    exercises = text[text.index("## Exercises"):]
    n_exercises = len(re.findall(r"^\d\. ", exercises, flags=re.M))
    assert 3 <= n_exercises <= 4
    assert exercises.count("```{dropdown}") == n_exercises  # every answer folded
    code = sum(map(len, re.findall(r"```\{code-cell\}.*?```", text, flags=re.S)))
    assert code / len(text) <= 1 / 3 + 0.005  # at most a third code
