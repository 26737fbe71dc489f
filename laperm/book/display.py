"""How the book's pages show what they draw: figures fitted to the content column, animations.

:func:`show_figures_fitted` makes IPython show every matplotlib figure at most
:data:`MAX_FIGURE_PX` wide, by making it narrower (not scaling it down), so that
its text stays readable; :func:`laperm.book.setup` turns it on for every page.
:func:`source_of` and :func:`show_source` show the code a page ran where a reader
should read it (a training loop kept in the package, tested there).
"""

from __future__ import annotations

import ast
import importlib.util
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib import animation


#: The widest PNG (pixels) a figure is shown at in a notebook: the book's
#: content column shows about 690 px, and a figure shrunk much further has
#: text too small to read.
MAX_FIGURE_PX = 840


def _png_width(png: bytes) -> int:
    return int.from_bytes(png[16:20], "big")


def fitted_png(fig, max_px: int = MAX_FIGURE_PX) -> bytes:
    """The figure as PNG at most ``max_px`` wide, made narrower (not scaled down).

    A figure wider than ``max_px`` at its dpi is given a smaller size in
    inches, so its fonts keep their size in points and stay readable where
    the page shows it (the panels get narrower instead); its layout is redone
    where it uses ``tight_layout`` or a layout engine.

    Args:
        fig: a matplotlib figure.
        max_px: the widest PNG wanted.
    """
    from IPython.core.pylabtools import print_figure

    png = print_figure(fig, "png", bbox_inches="tight")
    for _ in range(8):  # parts of a fixed size (an outside legend) make it converge slower
        width = _png_width(png)
        if width <= max_px:
            break
        w, h = fig.get_size_inches()
        scale = max_px / width * 0.97
        fig.set_size_inches(w * scale, h * scale ** 0.5)
        if fig.get_layout_engine() is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    fig.tight_layout()
                except Exception:  # noqa: BLE001 - a figure that cannot be laid out keeps its layout
                    pass
        png = print_figure(fig, "png", bbox_inches="tight")
    return png


def show_figures_fitted(max_px: int = MAX_FIGURE_PX) -> bool:
    """In IPython, show every matplotlib figure through :func:`fitted_png`.

    Returns:
        Whether a running IPython shell was found (nothing changes outside one).
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    shell = get_ipython()
    if shell is None:
        return False
    from matplotlib.figure import Figure

    # The inline backend installs its own PNG formatter when it is activated,
    # at the first figure; activate it now so that ours comes after it.
    plt.close(plt.figure())
    formatter = shell.display_formatter.formatters["image/png"]
    formatter.for_type(Figure, lambda fig: fitted_png(fig, max_px))
    return True


def to_jshtml(anim: animation.Animation, fps: float | None = None,
              default_mode: str = "loop", embed_limit_mb: float | None = None) -> str:
    """HTML + JavaScript for an animation, playable in a notebook.

    Needs no ffmpeg (frames are embedded as PNG).  In Jupyter wrap it in
    ``IPython.display.HTML``.

    Args:
        anim: e.g. from :func:`animate_reconnection`.
        fps: frames per second; default from the animation's interval.
        default_mode: ``"loop"``, ``"once"`` or ``"reflect"``.
        embed_limit_mb: raise matplotlib's ``animation.embed_limit`` (MB) for
            long animations.

    Returns:
        An HTML string (contains ``<script``).
    """
    rc = {} if embed_limit_mb is None else {"animation.embed_limit": float(embed_limit_mb)}
    with plt.rc_context(rc):
        return anim.to_jshtml(fps=fps, default_mode=default_mode)


def source_of(module: str, name: str) -> str:
    """The source of function or class ``name`` in ``module``, read without importing it.

    A page can show code that needs a framework its environment lacks (the torch training
    loop of Section 4.2 where torch is not installed): the module's file is parsed, not run.

    Args:
        module: a dotted module name, e.g. ``"laperm.book.frameworks_torch"``.
        name: a function or class defined at the module's top level.

    Raises:
        LookupError: the module or the name does not exist.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise LookupError(f"no module {module!r}")
    text = Path(spec.origin).read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            return "\n".join(text.splitlines()[first - 1:node.end_lineno])
    raise LookupError(f"{module} has no top-level function or class {name!r}")


def show_source(module: str, name: str) -> None:
    """Display :func:`source_of` as a Python code block in the page's output."""
    from IPython.display import Markdown, display

    display(Markdown(f"```python\n{source_of(module, name)}\n```"))
