"""How a run is judged (Section 4; the honesty rules of this project).

* The best epoch is chosen on a held-out validation split, never on the test
  set (the authors chose it on the test set).
* A LaPerm network is judged on its *synchronised* weights, a permutation of
  theta_0, with BatchNorm statistics re-estimated for those weights
  (:mod:`laperm.method.batchnorm`); the stale statistics and the unsynchronised
  weights (what the authors' CIFAR notebooks evaluated) are logged beside it.
"""

from __future__ import annotations

import time
from laperm.method.batchnorm import batchnorm_layers, recalibrated_batchnorm
from laperm.method.optimizer import find_laperm


def evaluate(model, dataset) -> tuple[float, float]:
    loss, acc = model.evaluate(dataset, verbose=0)[:2]
    return float(loss), float(acc)


def laperm_of(optimizer):
    return find_laperm(optimizer, required=False)


def best_so_far(rows: list[dict]) -> dict:
    """Best epoch on validation (the first of equals) among history rows."""
    best = {"best_val_accuracy": -1.0, "best_epoch": None, "test_accuracy_at_best": None}
    for row in rows:
        if row["val_accuracy"] > best["best_val_accuracy"]:
            best = {"best_val_accuracy": float(row["val_accuracy"]),
                    "best_epoch": int(row["epoch"]),
                    "test_accuracy_at_best": float(row["test_accuracy"])}
    return best


def evaluate_three_ways(config, model, laperm, pipes, on_best=None) -> dict:
    """The evaluations of one epoch (Section 4: judge the synchronised network).

    LaPerm runs: the unsynchronised weights (test set; what the authors' CIFAR
    notebooks evaluated), the synchronised weights with the stale BatchNorm
    statistics, and the synchronised weights with re-estimated statistics,
    the primary number (``val``/``test``).  Models without BatchNorm, and
    Adam runs, have one evaluation: as they are (for LaPerm: synchronised).
    ``on_best(val_accuracy)`` is called while the judged weights are in place.
    """
    nan = float("nan")
    out = {"test_unsynced": nan, "val_stale_bn": nan, "test_stale_bn": nan, "bn_seconds": nan}

    def judge():
        out["val"] = evaluate(model, pipes["val"])
        out["test"] = evaluate(model, pipes["test"])
        if on_best is not None:
            on_best(out["val"][1])

    if laperm is None:
        judge()
        return out
    laperm.check_finite_sync()
    out["test_unsynced"] = evaluate(model, pipes["test"])[1]
    with laperm.synchronised():
        if not batchnorm_layers(model) or not config.bn_batches:
            judge()
            return out
        out["val_stale_bn"] = evaluate(model, pipes["val"])[1]
        out["test_stale_bn"] = evaluate(model, pipes["test"])[1]
        t0 = time.perf_counter()
        with recalibrated_batchnorm(model, pipes["bn_images"](), batches=config.bn_batches,
                                    seed=config.seed):
            out["bn_seconds"] = time.perf_counter() - t0
            judge()
    return out


def evaluation_note(config, model, is_laperm: bool) -> str:
    has_bn = bool(batchnorm_layers(model))
    if not is_laperm:
        return "the weights as trained" + (
            "; BatchNorm statistics as trained" if has_bn else "")
    if has_bn and config.bn_batches:
        return (f"synchronised weights (a permutation of theta_0) with BatchNorm statistics "
                f"re-estimated on {config.bn_batches} batches of 50 training images "
                "(training mode, dropout active); also logged: stale statistics, and the "
                "unsynchronised weights")
    return "synchronised weights (a permutation of theta_0); also logged: the unsynchronised weights"
