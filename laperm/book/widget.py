"""A toy a student plays with in the static page: one weight vector, a slider, the sync.

:func:`sync_widget_html` writes a self-contained piece of HTML and JavaScript (no server,
no kernel, no library): a slider picks how many inner steps the weights have taken, and
the page shows, for that step,

* the inner weights ``w_t`` (what the inner optimizer made of ``theta0`` in ``t`` steps),
* the vector a sync would make of them, computed in the browser by LaPerm's rule:
  ``sort(theta0)[ranks(w_t)]``, the sorted initial values re-ordered by the current ranks.

Bars are coloured by the initial value they hold (dark: ``theta0``'s smallest, yellow:
its largest), as in :func:`laperm.viz.plot_one_sync`: the synced vector shows
``theta0``'s colours in new places.  The inner steps are gradient steps on a toy loss
(:func:`inner_trajectory`), computed here; only the sync runs in the page.

The synced vector is also written, in full precision, in the ``data-synced``
attribute of the element ``#<id>-synced`` (what the tests read after moving the slider).
"""

from __future__ import annotations

import html
import json
import uuid

import numpy as np

#: The page's colour map for the identity of an initial value (as the book's figures).
CMAP = "viridis"


def inner_trajectory(theta0, steps: int = 40, learning_rate: float = 0.08,
                     seed: int = 0) -> np.ndarray:
    """The inner weights after 0, 1, ..., ``steps`` gradient steps on a toy loss.

    The loss is ``0.5 * ||w - target||^2`` with a target drawn from ``seed`` (normal, the
    spread of ``theta0``), so each step moves ``w`` by ``learning_rate * (target - w)``:
    the entries cross each other one after another, and the ranks change step by step.

    Returns:
        ``(steps + 1, n)``, row 0 ``theta0``.
    """
    theta0 = np.asarray(theta0, dtype=np.float64).ravel()
    target = np.random.default_rng(seed).normal(0.0, theta0.std() or 1.0, theta0.shape)
    rows = [theta0]
    for _ in range(steps):
        w = rows[-1]
        rows.append(w - learning_rate * (w - target))
    return np.stack(rows)


def synced(w, theta0) -> np.ndarray:
    """LaPerm's sync of one vector, in numpy: ``sort(theta0)[ranks(w)]`` (stable ranks)."""
    w = np.asarray(w, dtype=np.float64)
    ranks = np.argsort(np.argsort(w, kind="stable"), kind="stable")
    return np.sort(np.asarray(theta0, dtype=np.float64))[ranks]


def _colours(n: int) -> list[str]:
    import matplotlib.colors as mcolors
    from matplotlib import colormaps

    cmap = colormaps[CMAP]
    return [mcolors.to_hex(cmap(i / max(n - 1, 1))) for i in range(n)]


def _vector_text(values) -> str:
    return "[" + ", ".join(f"{v:+.2f}" for v in values) + "]"


_STYLE = """
<style>
.laperm-toy {font-size: 0.9rem; max-width: 100%%; margin: 0.5em 0 1em 0;}
.laperm-toy .row {display: flex; align-items: center; gap: 0.6em; margin: 0.2em 0;}
.laperm-toy .name {width: 13em; flex: none; line-height: 1.2;}
.laperm-toy .bars {position: relative; height: %(height)dpx; flex: 1 1 auto; min-width: 0;
  border-bottom: 1px solid #ddd;}
.laperm-toy .bar {position: absolute; width: %(bar)s%%; border: 1px solid #333;
  box-sizing: border-box;}
.laperm-toy .zero {position: absolute; left: 0; right: 0; top: 50%%; border-top: 1px solid #999;}
.laperm-toy input[type=range] {flex: 1 1 auto; min-width: 0;}
.laperm-toy code {font-size: 0.85em; word-break: break-all;}
</style>
"""

_SCRIPT = """
<script>
(function () {
  const id = %(id)s, W = %(trajectory)s, theta0 = %(theta0)s, colours = %(colours)s,
        scale = %(scale)s, half = %(half)d;
  const root = document.getElementById(id);
  const sorted0 = theta0.slice().sort((a, b) => a - b);
  const ranksOf = (w) => {  // ranks(w) = argsort(argsort(w)), ties by position
    const order = w.map((v, i) => i).sort((a, b) => (w[a] - w[b]) || (a - b));
    const ranks = new Array(w.length);
    order.forEach((position, rank) => { ranks[position] = rank; });
    return ranks;
  };
  const initialRank = ranksOf(theta0);   // which initial value each position starts with
  const draw = (name, values, rankOfValue) => {
    const box = root.querySelector(".bars." + name);
    box.querySelectorAll(".bar").forEach((b) => b.remove());
    values.forEach((v, i) => {
      const bar = document.createElement("div"), h = Math.abs(v) / scale * half;
      bar.className = "bar";
      bar.style.left = (100 * i / values.length) + "%%";
      bar.style.height = h + "px";
      bar.style.top = (v >= 0 ? half - h : half) + "px";
      bar.style.background = colours[rankOfValue(v, i)];
      box.appendChild(bar);
    });
  };
  const show = (t) => {
    const w = W[t], ranks = ranksOf(w);
    const synced = ranks.map((r) => sorted0[r]);  // the sync: sort(theta0)[ranks(w)]
    draw("inner", w, (v, i) => initialRank[i]);
    draw("synced", synced, (v, i) => ranks[i]);
    const moved = synced.filter((v, i) => v !== theta0[i]).length;
    root.querySelector("#" + id + "-step").textContent = t;
    const out = root.querySelector("#" + id + "-synced");
    out.dataset.synced = JSON.stringify(synced);
    out.dataset.step = String(t);
    out.textContent = "[" + synced.map((v) => (v >= 0 ? "+" : "") + v.toFixed(2)).join(", ") + "]";
    root.querySelector("#" + id + "-moved").textContent = moved;
  };
  const slider = root.querySelector("#" + id + "-steps");
  slider.addEventListener("input", () => show(Number(slider.value)));
  draw("theta0", theta0, (v, i) => initialRank[i]);
  show(Number(slider.value));
})();
</script>
"""


def sync_widget_html(theta0, trajectory=None, steps: int = 40, seed: int = 0,
                     widget_id: str | None = None, height: int = 90) -> str:
    """The toy as HTML: ``theta0``, a slider for the inner steps, the inner weights and
    their sync (computed in the page by JavaScript).

    Args:
        theta0: the initial vector (a handful of values reads best: 6 to 24).
        trajectory: ``(T + 1, n)`` inner weights, row 0 ``theta0``; default
            :func:`inner_trajectory` (``steps``, ``seed``).
        steps: the slider's range when ``trajectory`` is not given.
        seed: the toy loss's target when ``trajectory`` is not given.
        widget_id: the HTML id of the toy (default: a fresh one, so that several toys
            can sit on one page).
        height: the height of a row of bars, in pixels.

    Returns:
        HTML with its own style and script; before any script runs it already shows
        step 0 (where the sync gives back ``theta0``).
    """
    theta0 = np.asarray(theta0, dtype=np.float64).ravel()
    trajectory = (inner_trajectory(theta0, steps, seed=seed) if trajectory is None
                  else np.asarray(trajectory, dtype=np.float64))
    if trajectory.ndim != 2 or trajectory.shape[1] != len(theta0):
        raise ValueError(f"the trajectory must have one row of {len(theta0)} weights per "
                         f"step, got shape {trajectory.shape}")
    n, last = len(theta0), len(trajectory) - 1
    widget_id = widget_id or f"laperm-toy-{uuid.uuid4().hex[:8]}"
    scale = float(max(np.abs(trajectory).max(), 1e-12))
    start = synced(trajectory[0], theta0)
    rows = "".join(
        f'<div class="row"><div class="name">{name}</div>'
        f'<div class="bars {cls}"><div class="zero"></div></div></div>'
        for cls, name in (("theta0", "θ<sub>0</sub>: the initial values"),
                          ("inner", "inner weights w<sub>t</sub> after "
                                    f'<b><span id="{widget_id}-step">0</span></b> steps'),
                          ("synced", "after a sync now: θ<sub>0</sub>'s values, "
                                     "in the order of w<sub>t</sub>")))
    body = (
        f'<div class="laperm-toy" id="{widget_id}">'
        f'<div class="row"><label class="name" for="{widget_id}-steps">inner steps t '
        f"(0 to {last})</label>"
        f'<input type="range" id="{widget_id}-steps" min="0" max="{last}" step="1" value="0">'
        "</div>"
        f"{rows}"
        f'<div>synced vector: <code id="{widget_id}-synced" data-step="0" '
        f"data-synced='{html.escape(json.dumps(start.tolist()))}'>{_vector_text(start)}</code>"
        f'; <span id="{widget_id}-moved">0</span> of {n} positions hold another initial '
        "value than at t = 0.</div></div>")
    script = _SCRIPT % {
        "id": json.dumps(widget_id), "trajectory": json.dumps(np.round(trajectory, 6).tolist()),
        "theta0": json.dumps(theta0.tolist()), "colours": json.dumps(_colours(n)),
        "scale": json.dumps(scale), "half": height // 2}
    return _STYLE % {"height": height, "bar": f"{80 / n:.3f}"} + body + script
