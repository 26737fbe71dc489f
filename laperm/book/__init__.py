"""The companion book: the API its pages call, and the pipeline that runs them.

Pages call the page API, imported here::

    from laperm import book
    sec = book.setup("05_1_conv7_mnist", profile, PROFILES, globals())
    ...
    book.finish(sec)

One job per module:

* :mod:`laperm.book.page`: the page API (:func:`setup`, :func:`finish`,
  :func:`show_table`, :func:`show_stored_runs`, run folders);
* :mod:`laperm.book.display`: figures fitted to the page, animations as HTML;
* :mod:`laperm.book.runs`: a Section 5 page's runs: configs at its scale, test set,
  the committed runs' three evaluations;
* :mod:`laperm.book.step_by_step`: page 4's worked example around its training (data,
  printouts, animation, accuracy table, findings);
* :mod:`laperm.book.frameworks`: page 4.2's three implementations side by side, with
  :mod:`~laperm.book.frameworks_torch` and :mod:`~laperm.book.frameworks_optax` (which
  import torch or JAX) training the same network;
* :mod:`laperm.book.tables`: plain HTML tables and computed sentences of the Results pages;
* :mod:`laperm.book.status`: the Status page's table of every section's last execution;
* :mod:`laperm.book.inputs`: the one notice of a page whose inputs are missing, and what
  it skipped (kept in the status record);
* :mod:`laperm.book.knobs`: the profiles and the parameters sections accept;
* :mod:`laperm.book.layout`: where sources, records and build outputs are;
* :mod:`laperm.book.source`: one page file (``book/<section>.md``, a MyST
  Markdown notebook) read with jupytext;
* :mod:`laperm.book.sections`: the section registry (``_toc.yml``) and the
  validation of a command's sections, profile and parameters;
* :mod:`laperm.book.cache`: when a section must be re-executed;
* :mod:`laperm.book.execute`: executing a page with papermill;
* :mod:`laperm.book.site`: the Jupyter Book build of the executed pages;
* :mod:`laperm.book.errors`: what the ``laperm`` command reports.

The page API imports nothing of the pipeline; the pipeline's modules import
the page-independent ones (knobs, layout, source) and each other in the
order above, never back.
"""

import importlib

from laperm.book.knobs import (BOOK_BUDGET_MIN, KNOBS, PROFILE_DESCRIPTIONS, PROFILE_NAMES,
                               Knob, check_parameter, check_parameters, profiles_table)
from laperm.book.layout import build_dir, reference_dir, results_dir, status_dir

# The page API (and the figures it shows) is imported on first use: the `laperm` command
# imports this package, and a page's dependencies (the training code, matplotlib) would
# make every command start seconds slower.
_LAZY = {
    "laperm.book.page": ("Section", "banner", "banner_text", "finish", "load_status",
                         "plot_curves", "quiet_kernel", "run_folder", "setup", "show_compact",
                         "show_stored_runs", "show_table"),
    "laperm.book.display": ("fitted_png", "show_figures_fitted", "show_source", "source_of",
                            "to_jshtml"),
    "laperm.book.runs": ("page_configs", "plot_curves_per_model", "print_configs",
                         "show_test_set", "show_three_evaluations"),
    "laperm.book.tables": ("show_frame",),
}
_SUBMODULES = ("cache", "display", "errors", "execute", "findings", "frameworks", "knobs",
               "layout", "page", "runs", "sections", "site", "source", "status", "step_by_step",
               "tables")

__all__ = sorted(["BOOK_BUDGET_MIN", "KNOBS", "PROFILE_DESCRIPTIONS", "PROFILE_NAMES", "Knob",
                  "build_dir", "check_parameter", "check_parameters", "profiles_table",
                  "reference_dir", "results_dir", "status_dir", *(n for names in _LAZY.values() for n in names)])


def __getattr__(name):
    for module, names in _LAZY.items():
        if name in names:
            return getattr(importlib.import_module(module), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"laperm.book.{name}")
    raise AttributeError(f"module 'laperm.book' has no attribute {name!r}")
