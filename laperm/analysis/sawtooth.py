"""What a sync does to the accuracy of one run, step by step (Section 5.3: the saw-tooth).

The rows come from :class:`laperm.method.callbacks.SyncProbe`: after every
step, the probe accuracy of the inner weights and of the weights a sync would
give at that moment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from laperm import data

def probe_data(probe_size: int, batch_size: int = 128, validation_size: int = 5000,
               seed: int = 0):
    """MNIST for one saw-tooth run: ``(training batches, x_probe, y_probe)``.

    The training images left after a validation split of ``validation_size``
    (``scale01`` input, shuffled with ``seed``, repeated), and the first
    ``probe_size`` validation images, preprocessed, as the fixed probe set.
    """
    (x_train, y_train), _ = data.load("mnist")
    (x_tr, y_tr), (x_val, y_val) = data.train_val_split(x_train, y_train, validation_size,
                                                         seed=seed)
    pre = data.make_preprocessor("scale01", x_tr)
    batches = data.make_dataset(x_tr, y_tr, batch_size, preprocess=pre, shuffle=True,
                                seed=seed).repeat()
    return batches, pre(x_val[:probe_size]), np.asarray(y_val[:probe_size]).ravel()


BEFORE = "inner acc just before the sync (step - 1)"
AFTER = "acc right after the sync"
CHANGE = "change at the sync"


def sync_jumps(steps: pd.DataFrame, sync_period: int) -> pd.DataFrame:
    """How the inner weights' accuracy changes across each sync.

    A sync happens after step ``k * i``; the inner weights' accuracy after
    step ``k * i - 1`` is compared with the synchronised accuracy after step
    ``k * i`` (then the inner weights are the synchronised ones).

    Args:
        steps: rows ``step, accuracy, weights``, ``weights`` starting with
            ``"inner"`` or ``"synchronised"``.
        sync_period: k.

    Returns:
        One row per sync, indexed ``sync at step``: :data:`BEFORE`,
        :data:`AFTER` (accuracies) and :data:`CHANGE` (their difference; NaN
        when the step before was not measured).
    """
    inner = steps[steps["weights"].str.startswith("inner")].set_index("step")["accuracy"]
    synced = steps[steps["weights"].str.startswith("synchronised")].set_index("step")["accuracy"]
    sync_steps = [s for s in inner.index if s % sync_period == 0]
    jumps = pd.DataFrame({
        BEFORE: [inner.get(s - 1, np.nan) for s in sync_steps],
        AFTER: [synced[s] for s in sync_steps],
    }, index=pd.Index(sync_steps, name="sync at step"))
    jumps[CHANGE] = jumps[AFTER] - jumps[BEFORE]
    return jumps
