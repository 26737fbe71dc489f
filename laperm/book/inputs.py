"""What a page needs from outside the project, and the one notice it shows without it.

Some pages measure files this project does not ship: the authors' published
checkpoints (pages 2 and 6), the authors' code (page 4.1), ImageNet weights
(page 2). Where one is absent, the page says so **once, at its top**
(:func:`show_notice`), in one box: what is missing, how to get it, which parts
are skipped and what is shown in their place (a committed record, where one
exists). The parts themselves then print nothing, and no conclusion that
depends on the missing input is shown.

What was skipped and what was missing is also kept in the section's status
record (:func:`laperm.book.finish`), so the Status page lists it per section.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from laperm.analysis.authors_code import read_records, sync_tables
from laperm.book.layout import results_dir

#: How each missing input starts in the notice (also what
#: :func:`laperm.crosscheck.load_or_explain` writes).
NOT_EXECUTED = "**Not executed in this build:** "
#: The notice's title.
TITLE = "Inputs missing in this build"


@dataclass(frozen=True)
class MissingInput:
    """One input a page could not use.

    Attributes:
        what: what is missing, in a few words without local paths
            (``"the authors' checkpoints Conv7.h5, resnet50.h5 were not found"``).
        how: how a reader gets it (Markdown, one sentence without a full stop).
        skipped: the parts of the page not measured without it (``"(b) ..."``).
        instead: what the page shows in their place (``"the committed record of
            2026-12-01"``), or ``""`` when nothing replaces them.
    """

    what: str
    how: str
    skipped: tuple[str, ...] = ()
    instead: str = ""

    @classmethod
    def from_note(cls, note: str, skipped=(), instead: str = "") -> "MissingInput":
        """From a sentence ``"**Not executed in this build:** <what>; <how>."``
        (:func:`laperm.crosscheck.load_or_explain`'s note)."""
        text = note.removeprefix(NOT_EXECUTED).strip().removesuffix(".")
        what, _, how = text.partition("; ")
        return cls(what=what, how=how, skipped=tuple(skipped), instead=instead)


def _join(items) -> str:
    items = list(items)
    if not items:
        return ""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def notice_markdown(missing) -> str | None:
    """The notice (Markdown), one paragraph per missing input; None when nothing is missing.

    Each paragraph: ``**Not executed in this build:** <what>; <how>.``, then the
    parts skipped and what is shown instead.
    """
    missing = [m for m in missing if m is not None]
    if not missing:
        return None
    paragraphs = []
    for m in missing:
        text = f"{NOT_EXECUTED}{m.what}" + (f"; {m.how}" if m.how else "") + "."
        if m.skipped:
            text += f" Not measured here: {_join(m.skipped)}."
        text += (f" Shown instead: {m.instead}." if m.instead
                 else " Nothing is shown in their place, and no conclusion is drawn from them.")
        paragraphs.append(text)
    return "\n\n".join(paragraphs)


def notice_html(missing) -> str | None:
    """:func:`notice_markdown` in a warning box (HTML); None when nothing is missing."""
    text = notice_markdown(missing)
    if text is None:
        return None
    try:
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark").render(text)
    except ImportError:  # pragma: no cover - markdown-it comes with the book extra
        body = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n"))
    return (f'<div class="admonition warning laperm-missing-inputs">'
            f'<p class="admonition-title">{TITLE}</p>{body}</div>')


def record(sec, missing) -> None:
    """Keep the skipped parts and missing inputs in the section's status record."""
    for m in missing:
        if m is None:
            continue
        if m.what not in sec.missing_inputs:
            sec.missing_inputs.append(m.what)
        sec.skipped_parts.extend(p for p in m.skipped if p not in sec.skipped_parts)


def note_skipped(sec, part: str) -> None:
    """Record a part the profile skips (no input missing; the page says why where it is)."""
    if part not in sec.skipped_parts:
        sec.skipped_parts.append(part)


def show_notice(sec, missing) -> None:
    """Show the one notice of a page's missing inputs (nothing when none is missing) and
    record them for the Status page (``sec.missing_inputs``, ``sec.skipped_parts``).

    Returns None, so a page cell ending with this call shows no stray ``True``/``False``.

    Args:
        sec: the page's :class:`laperm.book.Section`.
        missing: :class:`MissingInput` items; None items are ignored.
    """
    missing = [m for m in missing if m is not None]
    record(sec, missing)
    if not missing:
        return
    from IPython.display import display

    display({"text/html": notice_html(missing), "text/markdown": notice_markdown(missing),
             "text/plain": notice_markdown(missing)}, raw=True)


# --------------------------------------------------------------------------
# The inputs of pages 2, 4.1 and 6
# --------------------------------------------------------------------------

#: The parts of page 4.1 that run the authors' code, and the record each falls back to.
AUTHORS_CODE_PARTS = {"sync": "the sync compared bit for bit",
                      "training": "the training compared position by position"}


def authors_code_missing(note: str, records: dict, rerun_distribution: bool = False
                         ) -> MissingInput:
    """Page 4.1 without the authors' code: what is skipped, and which committed
    records are shown instead.

    Args:
        note: :func:`laperm.crosscheck.load_or_explain`'s sentence.
        records: :func:`laperm.analysis.authors_code.read_records`.
        rerun_distribution: whether the profile would have re-run the distribution.
    """
    parts = dict(AUTHORS_CODE_PARTS)
    if rerun_distribution:
        parts["distribution"] = "the distribution over seeds re-run in this build"
    shown = [f"{text} ({_origin(records[name], name)})"
             for name, text in parts.items() if records.get(name)]
    skipped = [text for name, text in parts.items() if not records.get(name)]
    instead = ("the committed records of " + _join(shown)) if shown else ""
    return MissingInput.from_note(note, skipped=skipped, instead=instead)


def _origin(record: dict, command: str) -> str:
    hw = record.get("hardware", {})
    accelerator = hw.get("accelerator", "?")
    machine = (f"{hw.get('cpu_count', '?')}-core CPU" if accelerator.startswith("none")
               else accelerator)
    return (f"`python -m laperm.crosscheck {command}`, {str(record.get('date', '?'))[:10]}, "
            f"{machine}, commit {str(record.get('commit') or '?')[:10]}")


def crosscheck_records(sec, code, note: str) -> dict[str, dict | None]:
    """Page 4.1's committed records (``results/crosscheck``); without the authors'
    code (``code`` None, ``note`` saying why), also the page's one notice.

    Returns:
        :func:`laperm.analysis.authors_code.read_records` of the project's results.
    """
    records = read_records(results_dir() / "crosscheck")
    if code is None:
        show_notice(sec, [authors_code_missing(note, records, sec.rerun_distribution)])
    return records


def checkpoints_missing(files, parts, how: str) -> MissingInput | None:
    """The authors' published checkpoints ``files`` that were not found (None when
    none is missing); ``parts`` are skipped without them, ``how`` says where to get them."""
    files = list(files)
    if not files:
        return None
    return MissingInput(what=f"the authors' checkpoint{'s' if len(files) > 1 else ''} "
                             f"{_join(files)} {'were' if len(files) > 1 else 'was'} not found",
                        how=how, skipped=tuple(parts))


#: Where the authors' published checkpoints come from.
CHECKPOINTS_URL = "https://github.com/ihsuy/Train-by-Reconnect"


def how_to_get_checkpoints(files) -> str:
    """How a reader gets the authors' checkpoint ``files`` (Markdown, no full stop)."""
    named = _join([f"`{f}`" for f in files]) if len(files) <= 2 else "them"
    return (f"download {named} from the `pretrained` folder of "
            f"{CHECKPOINTS_URL} (MIT licence), put them in one folder and set "
            "`$LAPERM_REFERENCE_DIR` to it (or pass the page's `reference_dir` parameter)")


#: The checkpoints page 2 reads, and the part that needs them.
PROFILE_CHECKPOINTS = ("Conv7.h5", "resnet50.h5")
PROFILE_CHECKPOINT_PART = "(b) the authors' published checkpoints"
#: Page 2's part (c) and what it needs.
IMAGENET_PART = "(c) ImageNet-trained VGG16"


def weight_profile_inputs(reference_dir, imagenet: bool) -> list[MissingInput]:
    """What page 2 runs without: the authors' checkpoints (part b), the ImageNet
    weights (part c, used only with ``imagenet=True``)."""
    files = [f for f in PROFILE_CHECKPOINTS
             if reference_dir is None or not (reference_dir / f).is_file()]
    out = [checkpoints_missing(files, [PROFILE_CHECKPOINT_PART], how_to_get_checkpoints(files))]
    if not imagenet:
        out.append(MissingInput(
            what="the ImageNet weights of VGG16 are not used at this profile (`imagenet=False`)",
            how="re-run with `laperm run 02_weight_profiles -p imagenet true`, which downloads "
                "them once (about 530 MB)", skipped=(IMAGENET_PART,)))
    return [m for m in out if m is not None]


#: What page 6 measures on each published file.
CHECKPOINT_PARTS = ("its test accuracy against the published one", "its share of zeros",
                    "its values (F1 and F2)")


def published_checkpoints_missing(found, missing) -> MissingInput | None:
    """Page 6's notice: the published files ``missing`` (names), none of which is
    scored; when none was ``found``, the whole page is skipped."""
    if not missing:
        return None
    parts = ((f"for each missing file, {_join(CHECKPOINT_PARTS)}",) if found else
             ("every table, figure and sentence of this page",))
    return checkpoints_missing(missing, parts, how_to_get_checkpoints(missing))


def sync_or_record(code, records: dict):
    """Page 4.1's sync tables: ``(cases, differences by design)`` measured with the
    authors' ``code`` when it loaded, else read from the committed ``sync.json``
    (``records["sync"]``; ``(None, None)`` without it)."""
    if code is not None:
        # Deferred: importing laperm.crosscheck before the authors' code has loaded breaks
        # page 4.1 (its TensorFlow method targets lose their attributes).
        from laperm import crosscheck

        return crosscheck.compare_sync(code=code), crosscheck.sync_differences(code)
    return sync_tables(records.get("sync"))
