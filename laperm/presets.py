"""The paper's LaPerm settings per experiment (derived from :mod:`laperm.paper`).

Where the authors' notebook and their results table disagree on the sync
period k (Conv7: 20 vs 1200; ResNet50: 800 vs 400) both are given: the table's
value under the plain name, the notebook's with a ``_notebook`` suffix.
"""

from __future__ import annotations

from laperm.paper import laperm_settings

#: LaPerm keyword arguments (sync period and which variables are permuted).
LAPERM_PRESETS: dict[str, dict] = {
    name: laperm_settings(name)
    for name in ("conv7", "conv7_notebook", "conv2", "conv4", "conv13", "resnet50",
                 "resnet50_notebook", "resnet50_pruned", "f1", "f2")
}


def laperm_preset(name: str) -> dict:
    """The LaPerm keyword arguments of one paper experiment.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    try:
        return dict(LAPERM_PRESETS[name])
    except KeyError:
        raise ValueError(
            f"Unknown LaPerm preset {name!r}; valid names: "
            f"{', '.join(sorted(LAPERM_PRESETS))}."
        ) from None
