"""The ``laperm`` command: execute the book's sections and build the book.

Examples::

    laperm sections                                  # sections, parameters, profiles
    laperm run 05_1 --profile cpu -p epochs 5        # one section, one parameter changed
    laperm run 02 03 --profile smoke --force         # re-execute even if cached
    laperm book --profile cpu                        # every section, then the HTML
    laperm book --profile smoke --sections 00 07 08  # some sections, then the HTML
    laperm build                                     # only the HTML, from executed notebooks

Sections are the notebooks ``book/<name>.ipynb`` (names may be shortened to a
unique prefix).  Executed notebooks go to ``<build>/executed/``, the HTML to
``<build>/html/index.html``; ``<build>`` is ``$LAPERM_BUILD_DIR`` or
``_build``.  See :mod:`laperm.bookbuild` for the pipeline and its cache.

Parameter values are checked before any notebook starts: each has a declared
type and range (:data:`laperm.book.KNOBS`; booleans are true/false, yes/no or
1/0; a list parameter given one value is a list of one).

Exit codes: 0 success, 1 a section or the build failed, 2 a usage mistake
(unknown section, profile or parameter, or a parameter value of the wrong type
or out of range), told in one line.
"""

from __future__ import annotations

import argparse
import logging
import sys

from laperm.book import PROFILE_DESCRIPTIONS, PROFILE_NAMES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="laperm",
        description="Execute the LaPerm companion book's sections (papermill) and build it "
                    "(Jupyter Book).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="profiles:\n" + "\n".join(f"  {p:<6} {d}" for p, d in PROFILE_DESCRIPTIONS.items()),
    )
    parser.add_argument("--root", help="the project folder (default: the current folder when it "
                                       "holds _toc.yml, else this package's repository)")
    parser.add_argument("--build-dir", help="build folder (default: $LAPERM_BUILD_DIR or _build)")
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
        description="Execute section notebooks with papermill into <build>/executed/.")
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
    """``-p NAME VALUE`` pairs as typed; :func:`laperm.bookbuild.plan` checks and types them."""
    return {name: value for name, value in pairs}


def _execute(project, plans, args) -> list:
    from laperm.bookbuild import execute

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
    from laperm.bookbuild import plan, summary_table

    plans = plan(project, args.sections, args.profile, _overrides(args.parameter))
    outcomes = _execute(project, plans, args)
    print(summary_table(outcomes))
    for o in outcomes:
        if o.output and o.status != "FAILED":
            print(f"[laperm] {o.section}: {o.output}")
    return 1 if any(o.status == "FAILED" for o in outcomes) else 0


def _build_and_report(project) -> int:
    """Render the HTML strictly and print where it is (0), or the error (1)."""
    from laperm.bookbuild import SectionFailed, build_html

    try:
        index = build_html(project)
    except SectionFailed as exc:
        print(f"[laperm] {exc}", file=sys.stderr)
        return 1
    print(f"[laperm] the book: {index}")
    return 0


def _cmd_book(project, args) -> int:
    from laperm.bookbuild import plan, summary_table

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


def _title(path) -> str:
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def _cmd_sections(project, args) -> int:
    from laperm.bookbuild import load_cache, notebook_parameters, notebook_profiles, sections

    cache = load_cache(project)
    names = sections(project)
    if not names:
        print(f"no sections in {project.book_dir}")
        return 0
    for name in names:
        path = project.notebook(name)
        params = [p for p in notebook_parameters(path) if p != "profile"]
        table = notebook_profiles(path)
        entry = cache.get(name)
        state = (f"executed {entry['executed_at']} ({entry['profile']})" if entry
                 and project.executed(name).is_file() else "not executed")
        print(f"{name}  {_title(path)}  [{state}]")
        print(f"    parameters: {', '.join(params) or '(none besides profile)'}")
        if table:
            for prof, values in table.items():
                shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
                print(f"    {prof:<6} {shown}")
        else:
            print(f"    profiles: {', '.join(PROFILE_NAMES)}")
    return 0


COMMANDS = {"run": _cmd_run, "book": _cmd_book, "build": _cmd_build, "sections": _cmd_sections}


def main(argv=None) -> int:
    """Entry point of the ``laperm`` command; returns the exit code."""
    from laperm.bookbuild import Project, UsageError

    args = _parser().parse_args(argv)
    try:
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
