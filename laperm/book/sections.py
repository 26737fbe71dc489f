"""The book's sections and the validation of what a command asks of them.

A *section* is a page ``book/<name>.md`` (a MyST Markdown notebook, see
:mod:`laperm.book.source`) listed in ``_toc.yml``, in toc order; other pages
of ``book/`` follow.  Names may be abbreviated to a unique prefix (``05_1``
for ``05_1_conv7_mnist``).

Before anything runs, :func:`plan` checks the section, the profile and every
``-p NAME VALUE`` override against the page's ``parameters`` cell and each
value against its declared type and range (:data:`laperm.book.KNOBS`); a
mistake is a :class:`~laperm.book.errors.UsageError` (exit code 2).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Iterable

from laperm.book.errors import UsageError
from laperm.book.knobs import PROFILE_NAMES, typed_overrides
from laperm.book.layout import Project
from laperm.book.source import is_page, page_parameters, page_profiles, read_page

_SUFFIX = re.compile(r"\.(ipynb|md)$")


def load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text()) if path.is_file() else None


def toc_entries(toc_path: str | os.PathLike) -> list[str]:
    """The ``file``/``root`` entries of a ``_toc.yml`` in reading order (no suffix)."""
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    out.append(_SUFFIX.sub("", node[key]))
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(load_yaml(Path(toc_path)) or {})
    return out


def toc_files(project: Project) -> list[str]:
    """The entries of the project's ``_toc.yml`` in reading order (no suffix)."""
    return toc_entries(project.toc_path)


def section_names(project: Project) -> list[str]:
    """Section names: the toc's pages that exist, then the other pages of ``book/``."""
    names = []
    for entry in toc_files(project):
        path = project.root / f"{entry}.md"
        if path.parent == project.book_dir and is_page(path) and path.stem not in names:
            names.append(path.stem)
    for path in sorted(project.book_dir.glob("*.md")):
        if path.stem not in names and is_page(path):
            names.append(path.stem)
    return names


def resolve_section(name: str, valid: list[str]) -> str:
    """An exact section name, a unique prefix, or a path ``book/<name>.md``.

    Raises:
        UsageError: unknown or ambiguous name (the message lists the valid ones).
    """
    key = _SUFFIX.sub("", Path(name).name)
    if key in valid:
        return key
    matches = [s for s in valid if s.startswith(key)] if key else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"section {name!r} is ambiguous: {', '.join(matches)}")
    raise UsageError(
        f"unknown section {name!r}; valid sections: {', '.join(valid) or '(none found in book/)'}"
    )


def resolve_sections(project: Project, names: Iterable[str] | None) -> list[str]:
    """Resolve names (None or empty: every section), keeping toc order for all."""
    valid = section_names(project)
    if not names:
        return valid
    chosen = []
    for name in names:
        section = resolve_section(name, valid)
        if section not in chosen:
            chosen.append(section)
    return chosen


@dataclasses.dataclass
class Plan:
    """One validated execution: a section, its profile and its parameters."""

    section: str
    profile: str
    overrides: dict

    @property
    def parameters(self) -> dict:
        return {"profile": self.profile, **self.overrides}


def plan(project: Project, names: Iterable[str] | None, profile: str,
         overrides: dict | None = None) -> list[Plan]:
    """Validate sections, profile and parameter overrides (before executing).

    ``overrides`` may hold strings as typed on the command line; each is
    converted by :func:`laperm.book.knobs.typed_overrides`.

    Raises:
        UsageError: with a one-line message listing the valid choices.
    """
    if profile not in PROFILE_NAMES:
        raise UsageError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILE_NAMES)}")
    overrides = dict(overrides or {})
    if "profile" in overrides:
        raise UsageError("set the profile with --profile, not -p profile")
    chosen = resolve_sections(project, names)
    if not chosen:
        raise UsageError(f"no pages found in {project.book_dir}")
    plans = []
    for section in chosen:
        page = read_page(project.page(section))
        params = page_parameters(page)
        if "profile" not in params:
            raise UsageError(
                f"section {section!r} has no papermill parameters cell with `profile` "
                f"({project.page(section)}); tag its parameters cell `parameters`"
            )
        unknown = sorted(set(overrides) - set(params))
        if unknown:
            valid = [p for p in params if p != "profile"]
            raise UsageError(
                f"unknown parameter(s) {', '.join(unknown)} for section {section!r}; "
                f"its parameters: {', '.join(valid) or '(none besides profile)'}"
            )
        table = page_profiles(page)
        if table is not None and profile not in table:
            raise UsageError(
                f"section {section!r} defines no profile {profile!r}; its profiles: "
                f"{', '.join(table)}"
            )
        plans.append(Plan(section=section, profile=profile,
                          overrides=typed_overrides(overrides, section)))
    return plans
