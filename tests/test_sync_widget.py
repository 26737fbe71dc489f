"""Page 4's toy (laperm.book.widget): the HTML it writes, and the sync it computes in a
headless browser when the slider moves (issue 27, point 6)."""

from __future__ import annotations

import html as html_module
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from laperm.book import widget

CHROMIUM = "/usr/bin/chromium"
THETA0 = np.array([0.50, -0.20, 0.10, -0.70, 0.30, 0.90])


def test_inner_trajectory_starts_at_theta0_and_steps_towards_the_target():
    traj = widget.inner_trajectory(THETA0, steps=3, learning_rate=0.5, seed=1)
    assert traj.shape == (4, 6)
    np.testing.assert_array_equal(traj[0], THETA0)
    target = np.random.default_rng(1).normal(0.0, THETA0.std(), 6)
    np.testing.assert_allclose(traj[1], 0.5 * THETA0 + 0.5 * target)  # w - 0.5 (w - target)
    np.testing.assert_allclose(traj[3], THETA0 + (1 - 0.5 ** 3) * (target - THETA0))


def test_synced_is_laperms_rule():
    w = np.array([0.42, 0.35, -0.80, 0.05, 1.30, -0.15])
    # ranks of w: [4, 3, 0, 2, 5, 1]; sort(theta0) = [-0.7, -0.2, 0.1, 0.3, 0.5, 0.9]
    np.testing.assert_allclose(widget.synced(w, THETA0), [0.5, 0.3, -0.7, 0.1, 0.9, -0.2])
    np.testing.assert_array_equal(widget.synced(THETA0, THETA0), THETA0)


def test_the_html_is_self_contained_and_shows_step_0_without_a_script():
    page = widget.sync_widget_html(THETA0, steps=12, widget_id="toy")
    assert 'id="toy-steps" min="0" max="12"' in page and 'value="0"' in page
    assert "<script>" in page and "src=" not in page and "http" not in page  # no server, no CDN
    shown = re.search(r'<code id="toy-synced"[^>]*>(.*?)</code>', page).group(1)
    assert shown == "[+0.50, -0.20, +0.10, -0.70, +0.30, +0.90]"  # at t = 0 the sync is theta0
    data = re.search(r"data-synced='([^']*)'", page).group(1)
    assert json.loads(html_module.unescape(data)) == THETA0.tolist()
    trajectory = json.loads(re.search(r"W = (\[\[.*?\]\])", page).group(1))
    assert len(trajectory) == 13 and trajectory[0] == THETA0.tolist()
    assert widget.sync_widget_html(THETA0) != widget.sync_widget_html(THETA0)  # fresh ids
    with pytest.raises(ValueError, match="one row of 6 weights"):
        widget.sync_widget_html(THETA0, trajectory=np.zeros((3, 5)))


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"{CHROMIUM} not found")
def test_moving_the_slider_syncs_in_the_browser(tmp_path):
    """Headless Chromium moves the slider to step t; the page's synced vector is
    sort(theta0)[ranks(w_t)], as laperm.method.ops computes it."""
    from laperm.method import ops as lops

    t = 9
    trajectory = widget.inner_trajectory(THETA0, steps=20, seed=3)
    move = ("<script>window.addEventListener('load', () => {"
            "const s = document.getElementById('toy-steps');"
            f"s.value = {t}; s.dispatchEvent(new Event('input'));"
            "});</script>")
    page = tmp_path / "toy.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'></head><body>"
                    + widget.sync_widget_html(THETA0, trajectory, widget_id="toy")
                    + move + "</body></html>", encoding="utf-8")
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]
    code = re.search(r'<code id="toy-synced"([^>]*)>(.*?)</code>', proc.stdout)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', code.group(1)))
    assert attrs["data-step"] == str(t)
    in_browser = np.array(json.loads(html_module.unescape(attrs["data-synced"])))
    expected = np.asarray(lops.permute_to_ranks(trajectory[t].astype("float32"),
                                                lops.sorted_rows(THETA0.astype("float32"))))
    np.testing.assert_allclose(in_browser, expected, atol=1e-6)
    assert not np.allclose(in_browser, THETA0)  # the slider moved the ranks: a reconnection
    assert sorted(in_browser) == sorted(THETA0)  # and the values are theta0's
    moved = re.search(r'id="toy-moved">(\d+)<', proc.stdout).group(1)
    assert int(moved) == int(np.sum(in_browser != THETA0))
    assert code.group(2) == "[" + ", ".join(f"{v:+.2f}" for v in expected) + "]"
