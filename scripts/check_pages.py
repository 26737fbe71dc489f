#!/usr/bin/env python3
"""Open every page of the built book in headless Chromium and check it.

For each page of the built table of contents (``<build>/site-src/_toc.yml``,
i.e. the pages that were actually rendered) this loads
``<build>/html/<page>.html`` with ``chromium --headless --dump-dom`` and checks:

* the page loads and has a ``<title>`` and an ``<h1>``;
* a page whose executed notebook has image outputs shows at least as many
  ``<img>``/``<svg>`` in its cell outputs, and every local image file exists;
* MathJax, where a page loads it, comes from the book's own files, and the
  page's formulas were rendered;
* no output cell is an error or stderr stream (``.output.traceback``,
  ``.output.error``, ``.output.stderr``) and no output contains a Python
  traceback;
* the layout, measured in the browser at a 1280 px wide window by a script
  run in the page (:data:`LAYOUT_SCRIPT`): no table, figure or output is
  wider than the content column (code blocks may scroll), the page does not scroll sideways, and no
  figure is shrunk to less than :data:`MIN_FIGURE_SCALE` of its size (its
  text would be too small to read);
* the tables a reader takes in at a glance: no table in a cell's output is wider than
  the content column (above), and on a section page none has more than
  :data:`MAX_TABLE_COLUMNS` columns (row labels counted); the full tables stay on the
  pages of :data:`FULL_TABLE_PAGES`.

Usage::

    python scripts/check_pages.py                      # <build> = $LAPERM_BUILD_DIR or _build
    python scripts/check_pages.py --build-dir /tmp/b --screenshots /tmp/shots

Exit codes: 0 all pages pass, 1 some page fails, 3 Chromium not found.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from laperm.book.sections import toc_entries

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
]
WINDOW = "--window-size=1280,1000"
#: A figure shown at less than this share of its pixel width has unreadable text.
MIN_FIGURE_SCALE = 0.8
#: Run in the page after it loaded: measures the layout and writes it, as JSON,
#: into <pre id="laperm-layout">, which --dump-dom then returns.
LAYOUT_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const article = document.querySelector("article.bd-article") || document.querySelector("main");
  const col = article ? article.getBoundingClientRect() : {left: 0, right: innerWidth, width: innerWidth};
  const name = (e) => (e.closest(".cell") ? "cell " + [...document.querySelectorAll(".cell")]
                       .indexOf(e.closest(".cell")) + ": " : "") + e.tagName.toLowerCase()
                       + (e.className && typeof e.className === "string" ? "." + e.className.split(" ")[0] : "");
  const out = {column: Math.round(col.width), page: document.documentElement.scrollWidth,
               window: innerWidth, height: document.documentElement.scrollHeight,
               wide: [], shrunk: []};
  for (const e of article ? article.querySelectorAll("table, img, svg:not(.icon), .cell_output > .output") : []) {
    const r = e.getBoundingClientRect();
    const width = Math.max(r.width, e.scrollWidth || 0);
    if (r.width > 0 && r.left + width > col.right + 2)
      out.wide.push([name(e), Math.round(width)]);
    if (e.tagName === "IMG" && e.naturalWidth && r.width / e.naturalWidth < %(scale)s)
      out.shrunk.push([name(e), e.naturalWidth, Math.round(r.width)]);
  }
  const pre = document.createElement("pre");
  pre.id = "laperm-layout";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""
#: The most columns a table of a section page may have (its row labels counted).
MAX_TABLE_COLUMNS = 8
#: The pages that keep the full tables: every column of every record (7.1), and the status
#: page's one row per section (08); they are reference pages, not section pages.
FULL_TABLE_PAGES = {"07_1_all_records", "08_status"}
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
HIDDEN_TAGS = {"remove-cell", "remove-output"}
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*-{20,}\s*$\n^\w+(Error|Exception)",
                       re.M)


def find_chromium(explicit: str | None = None) -> str | None:
    for candidate in (explicit, os.environ.get("CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser"),
                      shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def expected_images(notebook: Path) -> int:
    """Number of image outputs a rendered notebook page must show."""
    if not notebook.is_file():
        return 0
    nb = json.loads(notebook.read_text())
    count = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        if HIDDEN_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if any(m in data for m in IMAGE_MIMES):
                count += 1
    return count


def dump_dom(chromium: str, page: Path, user_data: Path, timeout: float,
             screenshot: Path | None = None) -> str:
    """The page's DOM after load, with :data:`LAYOUT_SCRIPT`'s measurements in it.

    The script is added to a copy of the page beside it (so its relative links
    still resolve), which is removed afterwards.  With ``screenshot``, a PNG
    of the whole page (up to 16000 px tall) is saved there.
    """
    html = page.read_text(encoding="utf-8")
    probe = page.with_name(f".layout-{page.name}")
    script = LAYOUT_SCRIPT % {"scale": MIN_FIGURE_SCALE}
    probe.write_text(html.replace("</body>", script + "</body>", 1), encoding="utf-8")
    try:
        cmd = [chromium, *CHROMIUM_FLAGS, WINDOW, f"--user-data-dir={user_data}",
               "--virtual-time-budget=5000", "--dump-dom", probe.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        probe.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exit code {proc.returncode}: {proc.stderr.strip()[-300:]}")
    if screenshot is not None:
        height = _page_height(proc.stdout)
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={user_data}",
                        f"--window-size=1280,{height}", f"--screenshot={screenshot}",
                        "--virtual-time-budget=5000", page.resolve().as_uri()],
                       capture_output=True, timeout=timeout)
    return proc.stdout


def measurements(dom: str) -> dict | None:
    """What :data:`LAYOUT_SCRIPT` wrote into the DOM (None: it never ran)."""
    import html as html_module

    match = re.search(r'<pre id="laperm-layout"[^>]*>(.*?)</pre>', dom, re.S)
    return json.loads(html_module.unescape(match.group(1))) if match else None


def _page_height(dom: str) -> int:
    """A screenshot height for the whole page: its measured height, within 1000-16000 px."""
    m = measurements(dom)
    return 4000 if m is None else min(16000, max(1000, m.get("height", 1000)))


def layout_problems(dom: str) -> list[str]:
    """What :data:`LAYOUT_SCRIPT` measured, as problems (empty: the layout is fine)."""
    m = measurements(dom)
    if m is None:
        return ["the layout could not be measured (the page's load event never came)"]
    problems = []
    if m["page"] > m["window"] + 2:
        problems.append(f"the page scrolls sideways ({m['page']} px wide in a {m['window']} px window)")
    for what, width in m["wide"][:8]:
        problems.append(f"{what} is {width} px wide, the content column {m['column']} px")
    for what, natural, shown in m["shrunk"][:8]:
        problems.append(f"{what}: a {natural} px figure shown at {shown} px "
                        f"({shown / natural:.0%}; its text is too small to read)")
    return problems


def table_columns(table) -> int:
    """The columns of an HTML table (a BeautifulSoup tag): its widest row, colspans counted."""
    widths = [sum(int(cell.get("colspan", 1) or 1) for cell in row.find_all(["td", "th"],
                                                                          recursive=False))
              for row in table.find_all("tr")]
    return max(widths, default=0)


def table_column_problems(soup, max_columns: int | None = MAX_TABLE_COLUMNS) -> list[str]:
    """The tables in cell outputs with more than ``max_columns`` columns (None: no limit)."""
    if max_columns is None:
        return []
    problems = []
    for out in soup.select(".cell_output"):
        for table in out.find_all("table"):
            n = table_columns(table)
            if n > max_columns:
                head = " | ".join(c.get_text(" ", strip=True) for c in table.find("tr").find_all(
                    ["td", "th"]))[:100]
                problems.append(f"a table has {n} columns, at most {max_columns} on a section "
                                f"page (the full tables are on page 7.1): {head!r}")
    return problems


def check_dom(dom: str, page: Path, n_images: int,
              max_columns: int | None = MAX_TABLE_COLUMNS) -> list[str]:
    """Problems found in one page's DOM (empty list: the page passes).

    ``max_columns``: the most columns of a table in an output (None: no limit).
    """
    from bs4 import BeautifulSoup

    problems = []
    soup = BeautifulSoup(dom, "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else ""
    if not title:
        problems.append("no <title>")
    if not soup.find("h1"):
        problems.append("no <h1>")
    if not soup.find(class_="bd-article") and not soup.find("main"):
        problems.append("no article body (the page did not load?)")
    outputs = soup.select(".cell_output")
    bad = soup.select(".output.traceback, .output.error, .output.stderr, div.stderr")
    if bad:
        problems.append(f"{len(bad)} error/stderr output(s): {bad[0].get_text(' ', strip=True)[:120]!r}")
    for out in outputs:
        text = out.get_text("\n")
        if TRACEBACK.search(text):
            problems.append(f"traceback in an output: {text.strip()[:120]!r}")
            break
    images = [img for out in outputs for img in out.find_all(["img", "svg", "canvas"])]
    if len(images) < n_images:
        problems.append(f"{len(images)} image(s) in outputs, the notebook has {n_images}")
    for img in images:
        src = img.get("src") if img.name == "img" else None
        if src and not src.startswith(("data:", "http:", "https:")):
            target = (page.parent / unquote(urlparse(src).path)).resolve()
            if not target.is_file():
                problems.append(f"missing image file {src}")
    # Formulas must render offline: MathJax is served from the book itself.
    for script in soup.find_all("script", src=True):
        src = script["src"]
        if "mathjax" in src.lower():
            if src.startswith(("http:", "https:", "//")):
                problems.append(f"MathJax loads from the network: {src}")
            elif not (page.parent / unquote(urlparse(src).path)).resolve().is_file():
                problems.append(f"missing MathJax file {src}")
    if soup.select(".math") and not soup.find("mjx-container"):
        problems.append("formulas on the page were not rendered by MathJax")
    problems += table_column_problems(soup, max_columns)
    problems += layout_problems(dom)
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path,
                        default=Path(os.environ.get("LAPERM_BUILD_DIR", ROOT / "_build")))
    parser.add_argument("--chromium", help="the browser binary (default: /usr/bin/chromium)")
    parser.add_argument("--screenshots", type=Path, help="also save a PNG of every page here")
    parser.add_argument("--timeout", type=float, default=90, help="seconds per page")
    args = parser.parse_args(argv)

    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("check_pages: chromium not found (install the Debian package `chromium`)",
              file=sys.stderr)
        return 3
    build = args.build_dir.resolve()
    html, staged = build / "html", build / "site-src"
    toc = staged / "_toc.yml"
    if not (html / "index.html").is_file() or not toc.is_file():
        print(f"check_pages: no built book in {build} (run `laperm book` first)", file=sys.stderr)
        return 1
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="laperm-chromium-") as user_data:
        for entry in toc_entries(toc):
            page = html / f"{entry}.html"
            n_images = expected_images(staged / f"{entry}.ipynb")
            if not page.is_file():
                problems = [f"{page} was not built"]
            else:
                shot = (args.screenshots / f"{Path(entry).name}.png") if args.screenshots else None
                try:
                    limit = None if Path(entry).name in FULL_TABLE_PAGES else MAX_TABLE_COLUMNS
                    problems = check_dom(dump_dom(chromium, page, Path(user_data), args.timeout,
                                                  shot), page, n_images, limit)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    problems = [f"could not load: {exc}"]
            status = "ok" if not problems else "FAIL"
            failures += bool(problems)
            print(f"{status:<4}  {entry}  ({n_images} figure(s) expected)")
            for problem in problems:
                print(f"        - {problem}")
    print(f"check_pages: {failures} page(s) failed" if failures else "check_pages: all pages ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
