#!/usr/bin/env python3
"""Open every page of the built book in headless Chromium and check it.

For each page of the built table of contents (``<build>/site-src/_toc.yml``,
i.e. the pages that were actually rendered) this loads
``<build>/html/<page>.html`` in one headless Chromium (started once for all the
pages and driven over the DevTools protocol: :class:`Chromium`), waits for the
page's load event, its fonts and its formulas, and checks:

* the page loads and has a ``<title>`` and an ``<h1>``;
* a page whose executed notebook has image outputs shows at least as many
  ``<img>``/``<svg>`` in its cell outputs, and every local image file exists;
* MathJax, where a page loads it, comes from the book's own files, and the
  page's formulas were rendered;
* no output cell is an error or stderr stream (``.output.traceback``,
  ``.output.error``, ``.output.stderr``) and no output contains a Python
  traceback;
* the layout, measured in the browser at a 1280 px wide window by a script
  evaluated in the page (:data:`LAYOUT_SCRIPT`): no table, figure or output is
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

A page that does not load within ``--timeout`` seconds fails (``could not load``) and the
others are still checked.  Exit codes: 0 all pages pass, 1 some page fails, 3 Chromium not
found.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from laperm.book.sections import toc_entries

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
]
#: The browser window: the layout is measured at this width and height.
WINDOW = (1280, 1000)
#: The tallest screenshot, in px (a longer page is cut there).
MAX_SHOT_HEIGHT = 16000
#: A figure shown at less than this share of its pixel width has unreadable text.
MIN_FIGURE_SCALE = 0.8
#: Evaluated in the page once it has settled (:data:`SETTLE_SCRIPT`): measures the layout
#: and returns it (see :func:`layout_problems`).
LAYOUT_SCRIPT = """
(() => {
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
  return out;
})()
"""
#: Resolves once the page has settled: its load event came (images loaded), MathJax,
#: where the page loads it, has typeset the formulas, and the fonts are in.
SETTLE_SCRIPT = """
(async () => {
  if (document.readyState !== "complete")
    await new Promise((resolve) => addEventListener("load", resolve, {once: true}));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise)
    await MathJax.startup.promise.catch(() => null);
  await document.fonts.ready;
  return true;
})()
"""
#: The page's DOM as ``chromium --dump-dom`` prints it.
DOM_SCRIPT = ("(document.doctype ? new XMLSerializer().serializeToString(document.doctype) "
              "+ '\\n' : '') + document.documentElement.outerHTML")
#: The most columns a table of a section page may have (its row labels counted).
MAX_TABLE_COLUMNS = 8
#: The pages that keep the full tables: every column of every record (7.1), and the status
#: page's one row per section (08); they are reference pages, not section pages.
FULL_TABLE_PAGES = {"07_1_all_records", "08_status"}
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
HIDDEN_TAGS = {"remove-cell", "remove-output"}
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*-{20,}\s*$\n^\w+(Error|Exception)",
                       re.M)


class BrowserError(RuntimeError):
    """Chromium could not start, died, or refused a command."""


class Chromium:
    """One headless Chromium for many pages, driven over the DevTools protocol on a pipe.

    Started with ``--remote-debugging-pipe``, the browser reads protocol commands
    from its file descriptor 3 and writes the replies and events to its
    descriptor 4, each message a JSON object ended by a NUL byte.  A command is
    ``{"id": n, "method": ..., "params": {...}}``, with ``"sessionId"`` when it
    goes to a page (a session of :meth:`open_tab`); its reply has the same
    ``id`` and a ``"result"`` or an ``"error"``.  Events (messages without an
    ``id``) are not needed here and are dropped.  Only the standard library is needed.

    Use it as a context manager::

        with Chromium("/usr/bin/chromium", profile_dir) as browser:
            session = browser.open_tab(deadline)
            try:
                browser.call("Page.navigate", {"url": url}, session=session, deadline=deadline)
            finally:
                browser.close_tab(session)

    The browser starts on first use and is closed on exit, also after an
    exception or Ctrl-C (it runs in its own process group, which is killed if
    it does not close in time).  When it dies or stops answering, the next
    :meth:`open_tab` starts a new one.  Deadlines are :func:`time.monotonic` values;
    a command or event that does not come by its deadline raises :class:`TimeoutError`.
    """

    def __init__(self, binary: str, profile: Path, flags=CHROMIUM_FLAGS, window=WINDOW):
        self.command = [binary, *flags, f"--window-size={window[0]},{window[1]}",
                        f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        self._proc: subprocess.Popen | None = None
        self._log = None  # the browser's stderr, quoted when it dies
        self._send_fd = self._recv_fd = -1
        self._buffer = bytearray()
        self._next_id = 0
        self._targets: dict[str, str] = {}  # the open tabs: session id -> target id

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the process ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the browser (:meth:`open_tab` does when none runs)."""
        self.close()
        to_browser, from_browser = os.pipe(), os.pipe()
        # After the two os.pipe() calls descriptors 3 and 4 are open here (ours or older
        # ones), so pass_fds=(3, 4) is valid and Popen's own pipe is not among them.
        browser_in, browser_out = to_browser[0], from_browser[1]

        def onto_3_and_4():  # in the child, before exec: its ends of the pipes become 3 and 4
            high_in = fcntl.fcntl(browser_in, fcntl.F_DUPFD, 10)
            high_out = fcntl.fcntl(browser_out, fcntl.F_DUPFD, 10)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        self._log = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=self._log,
                                          pass_fds=(3, 4), preexec_fn=onto_3_and_4,
                                          start_new_session=True)
        except OSError as exc:
            os.close(to_browser[1])
            os.close(from_browser[0])
            raise BrowserError(f"could not start {self.command[0]}: {exc}") from exc
        finally:
            os.close(browser_in)
            os.close(browser_out)
        self._send_fd, self._recv_fd = to_browser[1], from_browser[0]

    def close(self, wait: float = 5.0) -> None:
        """Close the browser (Browser.close; killed after ``wait`` seconds); idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.poll() is None:
                    self._send(self._message("Browser.close", {}))
                    proc.wait(wait)
            except (OSError, subprocess.TimeoutExpired):
                pass
            finally:
                try:  # the browser if it is still there, and its helper processes
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        for fd in (self._send_fd, self._recv_fd):
            if fd >= 0:
                os.close(fd)
        self._send_fd = self._recv_fd = -1
        if self._log is not None:
            self._log.close()
            self._log = None
        self._buffer.clear()
        self._targets.clear()

    def _stderr_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-300:]

    def _died(self) -> BrowserError:
        try:
            code = self._proc.wait(5) if self._proc is not None else None
        except subprocess.TimeoutExpired:
            code = "(none yet; it closed the pipe)"
        error = BrowserError(f"chromium exit code {code}: {self._stderr_tail()}")
        self.close()
        return error

    # -- messages ------------------------------------------------------------------------------

    def _message(self, method: str, params: dict | None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        return message

    def _send(self, message: dict) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._send_fd, data):]

    def _receive(self, deadline: float) -> dict:
        """The next message from the browser."""
        while True:
            end = self._buffer.find(b"\0")
            if end >= 0:
                message = json.loads(self._buffer[:end])
                del self._buffer[:end + 1]
                return message
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._recv_fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(self._recv_fd, 1 << 20)
            if not chunk:
                raise self._died()
            self._buffer += chunk

    def call(self, method: str, params: dict | None = None, *, session: str | None = None,
             deadline: float) -> dict:
        """Send a command and return its result (BrowserError if it failed)."""
        if self._proc is None:
            self.start()
        message = self._message(method, params, session)
        try:
            self._send(message)
        except OSError as exc:  # the browser is gone
            raise self._died() from exc
        while True:  # events, and late replies to commands that timed out, are dropped
            try:
                reply = self._receive(deadline)
            except TimeoutError:
                raise TimeoutError(f"no answer from Chromium to {method}") from None
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message', reply['error'])}")
                return reply.get("result", {})

    # -- tabs ----------------------------------------------------------------------------------

    def open_tab(self, deadline: float) -> str:
        """A new blank tab; returns its session id for :meth:`call` and :meth:`evaluate`."""
        if self._proc is None or self._proc.poll() is not None:
            self.start()
        target = self.call("Target.createTarget", {"url": "about:blank"},
                           deadline=deadline)["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                            deadline=deadline)["sessionId"]
        self._targets[session] = target
        return session

    def close_tab(self, session: str, wait: float = 10.0) -> None:
        """Close a tab; a browser that does not answer in ``wait`` seconds is closed."""
        target = self._targets.pop(session, None)
        if target is None or self._proc is None:  # the browser was closed meanwhile
            return
        try:
            self.call("Target.closeTarget", {"targetId": target}, deadline=time.monotonic() + wait)
        except (BrowserError, TimeoutError):
            self.close()  # a hung page or browser: the next tab gets a new one

    def evaluate(self, expression: str, *, session: str, deadline: float):
        """The value of a JavaScript expression in a tab (a promise's is waited for)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True},
                           session=session, deadline=deadline)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"script error: {str(text)[:200]}")
        return result["result"].get("value")


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


def load_page(browser: Chromium, page: Path, timeout: float,
              screenshot: Path | None = None) -> tuple[str, dict]:
    """Open ``page`` in a new tab; its DOM once it settled, and :data:`LAYOUT_SCRIPT`'s
    measurements.

    With ``screenshot``, a PNG of the whole page (up to :data:`MAX_SHOT_HEIGHT` px tall)
    is saved there.  Raises TimeoutError when it takes over ``timeout`` seconds, and
    BrowserError when it cannot be loaded.
    """
    deadline = time.monotonic() + timeout
    step = "opening a tab"
    try:
        session = browser.open_tab(deadline)
        try:
            step = "loading the page"
            nav = browser.call("Page.navigate", {"url": page.resolve().as_uri()},
                               session=session, deadline=deadline)
            if nav.get("errorText"):
                raise BrowserError(nav["errorText"])
            browser.evaluate(SETTLE_SCRIPT, session=session, deadline=deadline)
            step = "measuring the layout"
            layout = browser.evaluate(LAYOUT_SCRIPT % {"scale": MIN_FIGURE_SCALE},
                                      session=session, deadline=deadline)
            dom = browser.evaluate(DOM_SCRIPT, session=session, deadline=deadline)
            if screenshot is not None:
                step = "taking the screenshot"
                # the window as tall as the page, as a reader scrolling through it sees it
                browser.call("Emulation.setDeviceMetricsOverride",
                             {"width": WINDOW[0], "height": _shot_height(layout),
                              "deviceScaleFactor": 1, "mobile": False},
                             session=session, deadline=deadline)
                shot = browser.call("Page.captureScreenshot",
                                    {"format": "png", "optimizeForSpeed": True},
                                    session=session, deadline=deadline)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
        finally:
            browser.close_tab(session)
    except TimeoutError as exc:
        raise TimeoutError(f"timed out after {timeout:g} s {step} ({exc})") from None
    return dom, layout


def _shot_height(layout: dict | None) -> int:
    """A screenshot height for the whole page: its measured height, within 1000-16000 px."""
    if not layout:
        return 4000
    return min(MAX_SHOT_HEIGHT, max(WINDOW[1], int(layout.get("height", WINDOW[1]))))


def layout_problems(m: dict | None) -> list[str]:
    """What :data:`LAYOUT_SCRIPT` measured, as problems (empty: the layout is fine)."""
    if not m:
        return ["the layout could not be measured"]
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


def check_dom(dom: str, page: Path, n_images: int, layout: dict | None,
              max_columns: int | None = MAX_TABLE_COLUMNS) -> list[str]:
    """Problems found in one page's DOM and its ``layout`` (:func:`load_page`; empty list:
    the page passes).

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
    problems += layout_problems(layout)
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
    with tempfile.TemporaryDirectory(prefix="laperm-chromium-") as user_data, \
            Chromium(chromium, Path(user_data)) as browser:
        for entry in toc_entries(toc):
            page = html / f"{entry}.html"
            n_images = expected_images(staged / f"{entry}.ipynb")
            if not page.is_file():
                problems = [f"{page} was not built"]
            else:
                shot = (args.screenshots / f"{Path(entry).name}.png") if args.screenshots else None
                try:
                    limit = None if Path(entry).name in FULL_TABLE_PAGES else MAX_TABLE_COLUMNS
                    dom, layout = load_page(browser, page, args.timeout, shot)
                    problems = check_dom(dom, page, n_images, layout, limit)
                except (BrowserError, TimeoutError) as exc:
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
