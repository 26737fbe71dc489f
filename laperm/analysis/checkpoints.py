"""The authors' published checkpoints (book section 6): load, score, and read what they hold.

The authors released Keras weight files of their trained networks
(:data:`laperm.paper.PUBLISHED_CHECKPOINTS`).  This module loads each into the
matching :mod:`laperm.models` model (built with the authors' layers in their
order, since the files load by position), scores it on the test set the paper
used (offline CIFAR-10 has only its first 1000 exact test images: the label says
so), and reads what the files say about the method: the share of zero weights
against the pruning rate p, and the two values {0, v} of the shared-value
networks F1 and F2.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from laperm import data, models, paper, pruning
from laperm.analysis.verdict import binomial_se

#: Where the files come from (MIT licence).
CHECKPOINTS_URL = "https://github.com/ihsuy/Train-by-Reconnect"


@dataclass(frozen=True)
class Checkpoint:
    """One published file and the row of the paper's table it belongs to."""

    file: str
    experiment: str
    dataset: str
    pruned_percent: int


def published() -> list[Checkpoint]:
    """Every published file the paper's table names, in :data:`laperm.paper.PUBLISHED_CHECKPOINTS` order."""
    return [Checkpoint(file, key, paper.ROWS[key].dataset, round(100 * paper.ROWS[key].pruned))
            for file, key in paper.PUBLISHED_CHECKPOINTS.items()]


def available(reference_dir: Path | None) -> tuple[list[Checkpoint], list[str]]:
    """``(the published files found in reference_dir, the names of those missing)``."""
    found = [c for c in published()
             if reference_dir is not None and (Path(reference_dir) / c.file).is_file()]
    missing = sorted({c.file for c in published()} - {c.file for c in found})
    return found, missing


def checkpoint_model(experiment: str):
    """The model a published file loads into (F1/F2 with the biases the files store)."""
    name = paper.ROWS[experiment].model.lower()
    return models.get(name, use_bias=True) if name in ("f1", "f2") else models.get(name)


def test_sets(mnist_images: int, cifar_images: int, data_dir=None) -> dict[str, dict]:
    """The test sets the checkpoints are scored on, as the authors' notebooks prepared them.

    MNIST: ``x / 255``; CIFAR-10: ``x / 255`` minus the per-pixel mean of the ``/ 255``
    training images (their ResNet notebook).  At most ``mnist_images`` / ``cifar_images``
    images, the first ones.

    Returns:
        ``{"mnist": {"x", "y", "label"}, "cifar10": {...}}``; the label says how many test
        images and whether they are a subset or all the exact ones available offline.
    """
    sets = {}
    (_, _), (x, y) = data.load("mnist", data_dir)
    n = min(int(mnist_images), len(x))
    label = (f"MNIST, all {n} test images" if n == len(x)
             else f"MNIST, first {n} of the {len(x)} test images (subset)")
    sets["mnist"] = dict(x=x[:n] / 255.0, y=np.asarray(y[:n]).reshape(-1), label=label)
    (xc_train, _), (xc, yc) = data.load("cifar10", data_dir)
    pre = data.make_preprocessor("pixel_mean", xc_train)
    n = min(int(cifar_images), len(xc))
    label = f"CIFAR-10, first {n} of the {data.FULL_TEST_SIZE['cifar10']} test images"
    if n < len(xc):
        label += " (subset)"
    elif data.describe("cifar10", data_dir).is_reduced_test_set:
        label += " (all exact ones available offline)"
    sets["cifar10"] = dict(x=np.asarray(pre(xc[:n])), y=np.asarray(yc[:n]).reshape(-1),
                           label=label)
    return sets


def sampling_error_note(n: int, accuracy: float = 0.92) -> str:
    """The binomial standard error of an accuracy near ResNet50's on ``n`` test images, in words."""
    se = binomial_se(accuracy, n)
    return (f"binomial standard error of an accuracy of {accuracy:.0%} on {n} test images: "
            f"{100 * se:.2f} points (two standard errors: {200 * se:.1f} points)")


def describe_test_sets(sets: dict[str, dict]) -> str:
    """Each test set's label, then :func:`sampling_error_note` at the CIFAR-10 set's size.

    Args:
        sets: :func:`test_sets`.
    """
    lines = [f"{name}: {t['label']}" for name, t in sets.items()]
    return "\n".join(lines + [sampling_error_note(len(sets["cifar10"]["y"]))])


def score(checkpoints: list[Checkpoint], reference_dir: Path, sets: dict[str, dict]
          ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Test accuracy of each file against the published number, and its kernels' statistics.

    Returns:
        ``(results, kernel_stats)``: one row per file (``model, dataset/test set, published,
        measured, difference, std. error, n, p (%), seconds``) and, per file,
        :func:`laperm.pruning.kernel_stats` of the loaded model.
    """
    import keras

    rows, stats = [], {}
    for c in checkpoints:
        t0 = time.perf_counter()
        keras.backend.clear_session()
        model = checkpoint_model(c.experiment)
        model.load_weights(Path(reference_dir) / c.file)
        ts = sets[c.dataset]
        pred = model.predict(ts["x"], batch_size=500, verbose=0)
        acc = float(np.mean(np.argmax(pred, axis=1) == ts["y"]))
        n = len(ts["y"])
        stats[c.file] = pruning.kernel_stats(model)
        published_accuracy = paper.PAPER_ACCURACY[c.experiment]
        rows.append({"model": c.file.removesuffix(".h5"), "dataset/test set": ts["label"],
                     "published": published_accuracy, "measured": acc,
                     "difference": acc - published_accuracy, "std. error": binomial_se(acc, n),
                     "n": n, "p (%)": c.pruned_percent, "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows), stats


def note(row) -> str:
    """What one result row says, with its sampling error (a row of :func:`score`)."""
    parts = []
    full = paper.TEST_IMAGES["cifar10"]
    if row["dataset/test set"].startswith("CIFAR"):
        parts.append(f"published on {full} test images, measured on {row['n']}: "
                     f"standard error {100 * row['std. error']:.1f} pt")
    elif row["n"] < paper.TEST_IMAGES["mnist"]:
        parts.append(f"subset of {row['n']} test images: "
                     f"standard error {100 * row['std. error']:.1f} pt")
    gap = abs(row["difference"])
    side = "below" if row["difference"] < 0 else "above"
    if gap > 3 * max(row["std. error"], 1e-4):
        parts.append(f"the released file scores {row['measured']:.2%}, {100 * gap:.2f} pt "
                     f"{side} the published {row['published']:.2%} "
                     "(more than 3 standard errors)")
    elif row["n"] == paper.TEST_IMAGES["mnist"] and gap < 5e-5:
        parts.append("matches the published number exactly")
    else:
        parts.append("within 3 standard errors of the published number")
    if row["model"] == "F2":
        parts.append("file loads only into Dense layers with (all-zero) biases")
    return "; ".join(parts)


def zero_table(kernel_stats: dict[str, pd.DataFrame], checkpoints: list[Checkpoint]
               ) -> pd.DataFrame:
    """Share of zero weights per file (all kernels, the first, the others) against p."""
    p_of = {c.file: c.pruned_percent for c in checkpoints}
    rows = []
    for file, stats in kernel_stats.items():
        rest = stats.iloc[1:]
        rows.append({
            "model": file.removesuffix(".h5"), "p (%)": p_of[file], "kernels": len(stats),
            "weights in kernels": int(stats["size"].sum()),
            "zero fraction (all kernels)": 1 - pruning.overall_kept_fraction(stats),
            "zero fraction (first kernel)": 1 - stats["kept_fraction"].iloc[0],
            "zero fraction (other kernels)":
                1 - rest["nonzero"].sum() / rest["size"].sum() if len(rest) else np.nan,
        })
    zeros = pd.DataFrame(rows)
    if len(zeros):
        zeros["difference to p (pt)"] = 100 * zeros["zero fraction (all kernels)"] - zeros["p (%)"]
    return zeros


def shared_value_table(reference_dir: Path, checkpoints: list[Checkpoint]) -> pd.DataFrame:
    """Per kernel of the F1/F2 files: its distinct values, and whether they are exactly {0, v}."""
    rows = []
    for c in checkpoints:
        if c.experiment not in paper.SHARED_VALUE:
            continue
        v = paper.SHARED_VALUE[c.experiment]["value"]
        for _, r in pruning.h5_kernel_stats(Path(reference_dir) / c.file).iterrows():
            values = r["values"] or ()
            rows.append({
                "model": c.file.removesuffix(".h5"), "layer (name in the file)": r["layer"],
                "shape": r["shape"],
                "distinct values": ", ".join(f"{x:.6g}" for x in values) or "more than 4",
                "exactly {0, v}": set(np.float32(values)) == {np.float32(0), np.float32(v)},
                "v (paper)": v, "non-zero fraction": r["kept_fraction"],
            })
    return pd.DataFrame(rows)


def availability_text(found: list[Checkpoint], missing: list[str]) -> str:
    """Which of the authors' files were found (:func:`available`), and which are missing."""
    text = f"the authors' checkpoints found: {', '.join(c.file for c in found)}"
    return text + (f"\nmissing (skipped): {', '.join(missing)}" if missing else "")


#: What Section 6 says where none of the authors' files is found (Markdown).
NOT_FOUND = (
    "**The authors' checkpoints were not found** (looked at the `reference_dir` "
    "parameter, `$LAPERM_REFERENCE_DIR` and `../shared/reference/pretrained`). "
    "Download the `.h5` files from the `pretrained` folder of the authors' repository "
    f"{CHECKPOINTS_URL} (MIT license), put them in one folder and set "
    "`LAPERM_REFERENCE_DIR` to it. The rest of this page is skipped.")


def scores_style(results: pd.DataFrame):
    """:func:`score`'s table as the page shows it: each file's published and measured
    accuracy (percentages), the difference (points) and :func:`note`; no index.

    Returns:
        A pandas ``Styler``.
    """
    shown = results.assign(note=results.apply(note, axis=1)) if len(results) else \
        results.assign(note=[])
    return (shown[["model", "dataset/test set", "published", "measured", "difference", "note"]]
            .style.format({"published": "{:.2%}", "measured": "{:.2%}",
                           "difference": lambda d: f"{100 * d:+.2f} pt"}).hide(axis="index"))


def zeros_style(zeros: pd.DataFrame):
    """:func:`zero_table` as the page shows it: zero fractions as percentages, the
    difference to p in signed points, ``-`` where a value is missing; no index."""
    formats = {c: "{:.2%}" for c in zeros.columns if c.startswith("zero")}
    return (zeros.style.format({**formats, "difference to p (pt)": "{:+.2f}"}, na_rep="-")
            .hide(axis="index"))


def shared_style(shared: pd.DataFrame):
    """:func:`shared_value_table` as the page shows it: the non-zero fraction as a
    percentage; no index."""
    return shared.style.format({"non-zero fraction": "{:.2%}"}).hide(axis="index")


def summary(results: pd.DataFrame, zeros: pd.DataFrame, shared: pd.DataFrame) -> list[str]:
    """The page's findings, one sentence each, from the three tables: the scores first
    (MNIST, then CIFAR-10), then what the weights hold, then that the files load."""
    lines = []
    mnist = results[results["dataset/test set"].str.startswith("MNIST")]
    full = mnist[mnist["n"] == paper.TEST_IMAGES["mnist"]]
    if len(full):
        exact = ", ".join(full.loc[full["difference"].abs() < 5e-5, "model"]) or "none"
        off = ", ".join(f"{r.model} ({100 * r.difference:+.2f} pt)"
                        for r in full.itertuples() if abs(r.difference) >= 5e-5) or "none"
        lines.append("MNIST, full official test set: equal to the published number: "
                     f"{exact}; different: {off}.")
    part = mnist[mnist["n"] != paper.TEST_IMAGES["mnist"]]
    if len(part):
        within = int((part["difference"].abs() <= 2 * part["std. error"]).sum())
        scores = "; ".join(f"{r.model} {r.measured:.2%} (published {r.published:.2%})"
                           for r in part.itertuples())
        lines.append(f"MNIST on the first {int(part['n'].iloc[0]):,} test images (the paper "
                     f"used {paper.TEST_IMAGES['mnist']:,}): {scores}; {within} of {len(part)} "
                     "within 2 standard errors of the published number.")
    cifar = results[results["dataset/test set"].str.startswith("CIFAR")]
    if len(cifar):
        within = int((cifar["difference"].abs() <= 2 * cifar["std. error"]).sum())
        lines.append(
            f"ResNet50 on {int(cifar['n'].iloc[0])} CIFAR-10 test images (the paper used "
            f"{paper.TEST_IMAGES['cifar10']}): {within} of {len(cifar)} files within 2 standard "
            "errors of the published number" + (
                "; differences of this size say little either way." if within == len(cifar)
                else "; the others differ by more than 2 standard errors."))
    if len(zeros):
        worst = zeros["difference to p (pt)"].abs().max()
        verdict = ("consistent with permutations of randomly pruned (or masked) initial "
                   "weights, as LaPerm requires" if worst < 1.0 else "see the table above")
        lines.append(f"Zero fractions differ from the nominal p by at most {worst:.2f} "
                     f"points: {verdict}.")
    if len(shared):
        lines.append("F1 and F2: every kernel holds exactly two values, {0, v}."
                     if shared["exactly {0, v}"].all() else
                     "F1 and F2: some kernel holds other values than {0, v} (the table above).")
    lines.append(f"All {len(results)} files found load into the models of `laperm.models` "
                 "by layer order.")
    return lines
