"""Text that follows what ran (issue 27, point 4): no profile's setting in a page's prose.

A page is executed at any of the profiles, but its Markdown is the same at every
one, so a sentence that gives the size of a run ("k = 50", "2 epochs", "12 % of the
training set") is wrong at every profile but one, unless the number is the paper's
own setting (which the prose may state as the paper's). The number has to come
from the execution instead (a cell that prints it).

The check: in the Markdown of every page (inline code left out), each number
written as a run size of one kind — ``k = N``, ``N epochs``, ``N steps``,
``N [test/training/...] images``, ``N % of the training set``, ``N seeds`` — is
compared with the page's ``PROFILES`` table. It fails when the number is the
value, in some profile, of a parameter of that kind whose value differs between
profiles, and is not among the paper's settings of that kind (``laperm.paper``).
Numbers in code cells and in the outputs are what the execution prints, and are
not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from laperm import paper
from laperm.book import findings
from laperm.book.source import page_profiles, read_page

BOOK = Path(__file__).resolve().parents[1] / "book"
PAGES = sorted(BOOK.glob("0*.md"))


def _paper(field: str) -> set[float]:
    return {float(getattr(cfg, field)) for cfg in paper.EXPERIMENTS.values()}


#: kind: (how the prose writes it, which parameters are of this kind, the paper's values)
KINDS = {
    "k": (r"\bk\s*=\s*(\d[\d,]*)",
          lambda name: "sync_period" in name or name.endswith("_k") or name == "k",
          _paper("sync_period")),
    "epochs": (r"(?<![\d.])(\d[\d,]*)\s+epochs?\b", lambda name: "epochs" in name,
               _paper("epochs")),
    "steps": (r"(?<![\d.])(\d[\d,]*)\s+(?:\w+\s+)?steps\b", lambda name: "steps" in name,
              set()),
    "images": (r"(?<![\d.])(\d[\d,]*)\s+(?:\w+\s+)?images\b",
               lambda name: "images" in name or name.endswith("_size"),
               {float(n) for n in paper.TEST_IMAGES.values()}
               | _paper("validation_size") | {50000.0, 60000.0}),
    "percent of the training set": (
        r"(?<![\d.])(\d+(?:\.\d+)?)\s*%\s+of\s+the\s+training", lambda name: "fraction" in name,
        {100 * v for v in _paper("train_fraction")}),
    "seeds": (r"(?<![\d.])(\d+)\s+seeds\b", lambda name: "seeds" in name, set()),
}


def _numbers(value) -> list[float]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, (list, tuple)):
        return [float(len(value))] + [x for v in value for x in _numbers(v)]
    return []


def profile_numbers(profiles: dict, kind: str) -> dict[float, set[str]]:
    """``{value: {"profile.parameter", ...}}`` of the parameters of ``kind`` whose value
    differs between profiles (fractions also as percentages)."""
    _, is_kind, _ = KINDS[kind]
    out: dict[float, set[str]] = {}
    names = {n for values in profiles.values() for n in values}
    for name in sorted(n for n in names if is_kind(n)):
        per = {p: values.get(name) for p, values in profiles.items()}
        if len({repr(v) for v in per.values()}) < 2:
            continue  # the same at every profile: prose may say it
        for p, value in per.items():
            numbers = _numbers(value)
            if kind == "percent of the training set":
                numbers = [round(100 * v, 6) for v in numbers]
            for v in numbers:
                out.setdefault(v, set()).add(f"{p}.{name}")
    return out


def profile_numbers_in_prose(page: Path) -> list[str]:
    """Every run size in the page's Markdown that is one profile's setting (see above)."""
    profiles = page_profiles(page) or {}
    found = []
    for cell in read_page(page).cells:
        if cell.cell_type != "markdown":
            continue
        text = re.sub(r"`[^`]*`", "", cell.source)
        for kind, (pattern, _, paper_values) in KINDS.items():
            numbers = profile_numbers(profiles, kind)
            for match in re.finditer(pattern, text):
                value = float(match.group(1).replace(",", ""))
                # 0 and 1 are limiting cases ("with k = 1 every step syncs"), not sizes
                if value > 1 and value in numbers and value not in paper_values:
                    context = " ".join(text[max(0, match.start() - 40):match.end() + 20].split())
                    found.append(f"{page.stem}: {kind} {match.group(1)} is "
                                 f"{', '.join(sorted(numbers[value]))}: ...{context}...")
    return found


def test_the_check_finds_a_profile_setting_in_prose(tmp_path):
    """Hand-made pages: the setting of one profile in a sentence is found; the paper's
    setting, a number that is the same at every profile, and inline code are not."""
    page = tmp_path / "05_9_x.md"
    page.write_text(
        "---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n"
        "  display_name: Python 3\n  language: python\n  name: python3\n---\n\n# x\n\n"
        "```{code-cell}\nPROFILES = {\"smoke\": dict(sawtooth_k=25, epochs=2, seeds=[0, 1], "
        "train_fraction=0.12),\n            \"cpu\": dict(sawtooth_k=50, epochs=45, seeds=[0, 1], "
        "train_fraction=1.0),\n            \"paper\": dict(sawtooth_k=50, epochs=45, seeds=[0, 1], "
        "train_fraction=1.0)}\n```\n\n"
        "Within one run (k = 50) for 2 epochs on 12 % of the training set; the paper trains "
        "for 45 epochs with 2 seeds and `k = 25` in code.\n")
    found = profile_numbers_in_prose(page)
    assert [f.split(":")[1].strip().split(" is ")[0] for f in found] == [
        "k 50", "epochs 2", "percent of the training set 12"]
    assert "cpu.sawtooth_k, paper.sawtooth_k" in found[0]


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_no_profile_setting_in_a_pages_prose(page):
    assert profile_numbers_in_prose(page) == []


# ---------------------------------------------------------------- the sweep's extremes


def _sweep(syncs):
    return pd.DataFrame({
        "optimizer": ["LaPerm (inner Adam)"] * 3 + ["Adam"], "k": [10, 50, 250, np.nan],
        "scale": ["s"] * 4, "test acc at best val": [0.97, 0.96, 0.90, 0.975],
        "syncs": syncs + [0]}, index=["k=10", "k=50", "k=250", "Adam"])


def test_a_run_that_never_synced_is_not_the_worst_k():
    assert findings.best_and_worst(_sweep([10, 2, 0]), "k") == [
        "Best k here: 10 (97.00%); worst: k = 50 (96.00%); k = 250 never synced in this run; "
        "Adam 97.50% (s)."]
    assert findings.best_and_worst(_sweep([10, 0, 0]), "k") == [
        "Only k = 10 synced here (97.00%); k = 50, k = 250 never synced in this run; "
        "Adam 97.50% (s)."]
    assert findings.best_and_worst(_sweep([0, 0, 0]), "k") == [
        "No LaPerm run synced here (k = 10, k = 50, k = 250 never synced in this run); "
        "Adam 97.50% (s)."]


# ---------------------------------------------------------------- code meant to be copied


def _own_code_cells() -> list[str]:
    """The code cells of the introduction's section "LaPerm in your own code"."""
    cells, inside = [], False
    for cell in read_page(BOOK / "00_introduction.md").cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("## "):
            inside = cell.source.lstrip().startswith("## LaPerm in your own code")
        elif cell.cell_type == "markdown" and "\n## " in cell.source:
            inside = "## LaPerm in your own code" in cell.source
        if inside and cell.cell_type == "code":
            cells.append(cell.source)
    return cells


def test_the_introductions_own_code_uses_nothing_of_the_page():
    cells = _own_code_cells()
    assert len(cells) >= 2
    for source in cells:
        assert not re.search(r"\b(sec|book|PROFILES)\b", source), source


@pytest.mark.slow
def test_the_introductions_own_code_runs_as_written(data_dir, monkeypatch):
    """The cells run in a fresh namespace, one after the other, as a reader pastes them."""
    monkeypatch.setenv("LAPERM_DATA_DIR", str(data_dir))
    namespace: dict = {}
    for source in _own_code_cells():
        exec(compile(source, "<own code>", "exec"), namespace)
    assert int(namespace["opt"].sync_count) == 2  # the custom loop: 2k steps, 2 syncs
