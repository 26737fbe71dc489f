"""The ``laperm`` command: execute the book's sections and build the book.

Examples::

    laperm sections                                  # sections, parameters, profiles
    laperm run 05_1 --profile cpu -p epochs 5        # one section, one parameter changed
    laperm run 02 03 --profile smoke --force         # re-execute even if cached
    laperm book --profile cpu                        # every section, then the HTML
    laperm book --profile smoke --sections 00 07 08  # some sections, then the HTML
    laperm build                                     # only the HTML, from executed notebooks
    laperm notebook 05_1 -o /tmp                     # the page as .ipynb (for papermill)
    laperm reproduce conv7 --seeds 0 1 2 --baseline  # paper runs (= python -m laperm.reproduce)
    laperm crosscheck sync                           # (= python -m laperm.crosscheck)

Sections are the pages ``book/<name>.md``, MyST Markdown notebooks (names may
be shortened to a unique prefix).  The project is the checkout given by
``--root``, ``$LAPERM_ROOT`` or the current folder (:mod:`laperm.project`);
executed notebooks go to ``<build>/executed/``, the HTML to
``<build>/html/index.html``; ``<build>`` is ``--build-dir``,
``$LAPERM_BUILD_DIR`` or ``_build`` in the project.  See :mod:`laperm.book`
for the pipeline and its cache.

Parameter values are checked before any notebook starts: each has a declared
type and range (:data:`laperm.book.KNOBS`; booleans are true/false, yes/no or
1/0; a list parameter given one value is a list of one).

Exit codes: 0 success, 1 a section or the build failed, 2 a usage mistake
(unknown section, profile or parameter, a parameter value of the wrong type
or out of range, no project, or the ``book`` extra not installed), told in one
line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# The subcommands import what they need inside their functions, on purpose: a usage
# mistake is answered before papermill, Jupyter Book or the training code is imported.
from laperm.book.errors import SectionFailed, UsageError, missing_extra
from laperm.book.knobs import PROFILE_DESCRIPTIONS, PROFILE_NAMES
from laperm.book.layout import Project


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="laperm",
        description="Execute the LaPerm companion book's sections (papermill) and build it "
                    "(Jupyter Book).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="profiles:\n" + "\n".join(f"  {p:<6} {d}" for p, d in PROFILE_DESCRIPTIONS.items()),
    )
    parser.add_argument("--root", help="the project folder, a checkout of the repository "
                                       "(default: $LAPERM_ROOT, else the checkout enclosing the "
                                       "current folder)")
    parser.add_argument("--build-dir", help="build folder (default: $LAPERM_BUILD_DIR, else "
                                            "_build in the project)")
    # The same options after the command (`laperm run 05_1 --build-dir x`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--build-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add_exec_options(p):
        p.add_argument("--profile", default="cpu",
                       help=f"one of {', '.join(PROFILE_NAMES)} (default: cpu)")
        p.add_argument("--force", action="store_true",
                       help="re-execute even when the cached output is current")
        p.add_argument("-q", "--quiet", action="store_true",
                       help="do not echo the notebooks' output while they run")
        p.add_argument("--no-progress", action="store_true",
                       help="no progress bar over the notebook's cells")

    run = sub.add_parser(
        "run", help="execute one or more sections", parents=[common],
        description="Execute section pages with papermill into <build>/executed/.")
    run.add_argument("sections", nargs="+", metavar="SECTION",
                     help="section name or unique prefix (e.g. 05_1)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"),
                     help="set a notebook parameter (checked against its type: 5, 0.1, 1e-3, "
                          "true/false, none, [1,2]; `laperm sections` lists them)")
    add_exec_options(run)

    book = sub.add_parser(
        "book", help="execute every section, then build the HTML", parents=[common],
        description="Execute the sections in toc order (cached ones are skipped), then build "
                    "the book strictly into <build>/html.")
    book.add_argument("--sections", nargs="+", metavar="SECTION",
                      help="only these sections (default: all)")
    book.add_argument("--no-build", action="store_true", help="execute only, no HTML")
    add_exec_options(book)

    sub.add_parser("build", help="build the HTML from the executed notebooks only",
                   parents=[common],
                   description="Stage the executed notebooks and build the book strictly.")
    sub.add_parser("sections", help="list the sections, their parameters and profiles",
                   parents=[common])
    notebook = sub.add_parser(
        "notebook", help="write a section's page as a .ipynb (to run it with papermill)",
        parents=[common],
        description="Write book/<section>.md as a notebook without outputs (the same as "
                    "`jupytext --to ipynb`).")
    notebook.add_argument("sections", nargs="+", metavar="SECTION")
    # Listed for --help; their arguments are their own (main hands them over unparsed).
    for name, what in DELEGATED_HELP.items():
        sub.add_parser(name, help=what, add_help=False)
    notebook.add_argument("-o", "--out", default=".",
                          help="a folder, or a file name for one section (default: .)")
    return parser


def _setup_logging(quiet: bool) -> None:
    log = logging.getLogger("papermill")
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False


def _overrides(pairs) -> dict:
    """``-p NAME VALUE`` pairs as typed; :func:`laperm.book.sections.plan` checks and types them."""
    return {name: value for name, value in pairs}


def _execute(project, plans, args) -> list:
    from laperm.book.execute import execute

    _setup_logging(args.quiet)
    outcomes = []
    for p in plans:
        outcome = execute(project, p, force=args.force, log_output=not args.quiet,
                          progress_bar=not args.no_progress)
        if outcome.status == "cached":
            print(f"[laperm] {p.section}: cached (inputs unchanged; --force re-executes)")
        elif outcome.status == "FAILED":
            print(f"\n[laperm] FAILED {outcome.error}\n", file=sys.stderr)
            if outcome.output:
                print(f"[laperm] the failed notebook is {outcome.output}", file=sys.stderr)
        outcomes.append(outcome)
    return outcomes


def _cmd_run(project, args) -> int:
    from laperm.book.execute import summary_table
    from laperm.book.sections import plan

    plans = plan(project, args.sections, args.profile, _overrides(args.parameter))
    outcomes = _execute(project, plans, args)
    print(summary_table(outcomes))
    for o in outcomes:
        if o.output and o.status != "FAILED":
            print(f"[laperm] {o.section}: {o.output}")
    return 1 if any(o.status == "FAILED" for o in outcomes) else 0


def _build_and_report(project) -> int:
    """Render the HTML strictly and print where it is (0), or the error (1)."""
    from laperm.book.site import build_html

    try:
        index = build_html(project)
    except SectionFailed as exc:
        print(f"[laperm] {exc}", file=sys.stderr)
        return 1
    print(f"[laperm] the book: {index}")
    return 0


def _cmd_book(project, args) -> int:
    from laperm.book.execute import summary_table
    from laperm.book.sections import plan

    plans = plan(project, args.sections, args.profile)
    outcomes = _execute(project, plans, args)
    print("\n" + summary_table(outcomes))
    failed = [o.section for o in outcomes if o.status == "FAILED"]
    if failed:
        print(f"[laperm] {len(failed)} section(s) failed: {', '.join(failed)}; the HTML was not "
              "built (the other sections' executed notebooks are kept)", file=sys.stderr)
        return 1
    return 0 if args.no_build else _build_and_report(project)


def _cmd_build(project, args) -> int:
    return _build_and_report(project)


def _cmd_sections(project, args) -> int:
    from laperm.book.cache import load_cache
    from laperm.book.sections import section_names
    from laperm.book.source import page_parameters, page_profiles, page_title, read_page

    cache = load_cache(project)
    names = section_names(project)
    if not names:
        print(f"no sections in {project.book_dir}")
        return 0
    for name in names:
        page = read_page(project.page(name))
        params = [p for p in page_parameters(page) if p != "profile"]
        table = page_profiles(page)
        entry = cache.get(name)
        state = (f"executed {entry['executed_at']} ({entry['profile']})" if entry
                 and project.executed(name).is_file() else "not executed")
        print(f"{name}  {page_title(page)}  [{state}]")
        print(f"    parameters: {', '.join(params) or '(none besides profile)'}")
        if table:
            for prof, values in table.items():
                shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
                print(f"    {prof:<6} {shown}")
        else:
            print(f"    profiles: {', '.join(PROFILE_NAMES)}")
    return 0


def _cmd_notebook(project, args) -> int:
    from laperm.book.execute import write_notebook
    from laperm.book.sections import resolve_sections

    chosen = resolve_sections(project, args.sections)
    out = Path(args.out)
    if len(chosen) > 1 and not out.is_dir():
        raise UsageError(f"--out {out} must be an existing folder for several sections")
    if out.suffix != ".ipynb" and not out.is_dir():
        raise UsageError(f"--out {out}: give an existing folder or a file name ending in .ipynb")
    for section in chosen:
        print(f"[laperm] {section}: {write_notebook(project, section, out)}")
    return 0


COMMANDS = {"run": _cmd_run, "book": _cmd_book, "build": _cmd_build, "sections": _cmd_sections,
            "notebook": _cmd_notebook}


#: Commands with a parser of their own: ``laperm reproduce ...`` is ``python -m
#: laperm.reproduce ...`` and ``laperm crosscheck ...`` is ``python -m laperm.crosscheck ...``.
DELEGATED_HELP = {
    "reproduce": "train the paper's experiments into results/ (laperm reproduce --help)",
    "crosscheck": "run the authors' code beside ours (laperm crosscheck --help)",
}


def _delegate(command: str, argv: list[str]) -> int:
    if command == "reproduce":
        from laperm import reproduce

        return reproduce.main(argv, prog="laperm reproduce")
    from laperm.crosscheck import cli

    return cli.main(argv, prog="laperm crosscheck")


def main(argv=None) -> int:
    """Entry point of the ``laperm`` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED_HELP:
        return _delegate(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    try:
        missing = missing_extra(args.command)
        if missing:
            raise UsageError(missing)
        project = Project.find(args.root, args.build_dir)
        return COMMANDS[args.command](project, args)
    except UsageError as exc:
        print(f"laperm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("laperm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
