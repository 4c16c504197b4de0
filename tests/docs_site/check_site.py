"""Open the built documentation site in headless Chromium and check what a reader sees.

Run after ``mkdocs build`` (``.ci/run`` does both)::

    python tests/docs_site/check_site.py [SITE_DIR]

The site is served over http://127.0.0.1 on a free port, as a reader's browser would get
it (Material's search runs in a web worker that file:// URLs cannot start). Chromium is
driven through the DevTools protocol over a pipe, so the script waits for each condition
rather than for a guessed time, and needs nothing but the standard library::

    check_site ──HTTP──► http.server thread ──► SITE_DIR
        │ ▲
        │ └── fd 4: results, events (JSON, NUL-separated)
        └──── fd 3: commands ──► chromium --remote-debugging-pipe

Three pages are checked, and a screenshot of each is kept in SITE_DIR/_check/ (the CI
artifact): the home page (its heading and the navigation to the API reference), the API
reference (one rendered entry per public name, read from ``__all__``), and the search
(a query for "Pool" lists results, one of them on the API reference); a failed check
leaves <check>-failed.png instead. Exit status 0 when all pass, 1 with a message naming
each failed check, 2 when there is no built site or no Chromium.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from hooks import PUBLIC_MODULES, exports  # the site's own list of public modules

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    # without these Chromium waits on network services this offline machine never answers
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]
WAIT_S = 20.0  # for one condition on one page (the search index builds in ~1 s)


class CheckFailed(Exception):
    """A page did not show what it should."""


class Browser:
    """One headless Chromium, one tab, spoken to over --remote-debugging-pipe."""

    def __init__(self, chromium: str, profile: str) -> None:
        to_child, self._commands = os.pipe()
        self._results, from_child = os.pipe()

        def give_fds() -> None:  # runs in the child: the protocol wants fds 3 and 4
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        # close_fds=False keeps the two dup2'ed fds; every other fd Python opened is
        # close-on-exec already, so nothing else leaks into the browser
        self._proc = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=give_fds,
            close_fds=False,
        )
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        try:
            target = self._call("Target.createTarget", url="about:blank")["targetId"]
            attached = self._call("Target.attachToTarget", targetId=target, flatten=True)
            self._session = attached["sessionId"]
            self.page(
                "Emulation.setDeviceMetricsOverride",
                width=1280,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
        except BaseException:
            self._stop(grace_s=0)  # a browser that never answered must not outlive the check
            raise

    def close(self) -> None:
        try:
            self._call("Browser.close")
        except (OSError, CheckFailed):
            pass
        self._stop(grace_s=10)

    def _stop(self, grace_s: float) -> None:
        try:
            self._proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._commands)
        os.close(self._results)

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the tab."""
        return self._call(method, session=self._session, **params)

    def _call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + WAIT_S
        while True:  # events arrive in between; keep only our answer
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CheckFailed(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self._results], [], [], max(remaining, 0))
            if not readable:
                raise CheckFailed(f"Chromium did not answer in {WAIT_S:.0f} s")
            chunk = os.read(self._results, 1 << 16)
            if not chunk:
                raise CheckFailed(f"Chromium exited (status {self._proc.poll()})")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        decoded: dict[str, Any] = json.loads(message)
        return decoded

    def open(self, url: str) -> None:
        self.page("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", f"{url} did not load")

    def evaluate(self, expression: str) -> Any:
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise CheckFailed(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, failure: str) -> Any:
        """The first truthy value of a JS expression, polled; CheckFailed after WAIT_S."""
        deadline = time.monotonic() + WAIT_S
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CheckFailed(failure)
            time.sleep(0.1)

    def screenshot(self, path: Path) -> None:
        data = self.page("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """The site over HTTP on a free port of 127.0.0.1, for the duration of the block."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def check_home(browser: Browser, base: str, shots: Path) -> None:
    browser.open(f"{base}/")
    # the heading's own text, without the permalink's pilcrow
    heading = browser.evaluate(
        "[...document.querySelector('article h1')?.childNodes ?? []]"
        ".filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent).join('').trim()"
    )
    if heading != "anypool":
        raise CheckFailed(f"home page: the heading is {heading!r}, not 'anypool'")
    links = browser.evaluate(
        "[...document.querySelectorAll('nav.md-nav a')].map(a => a.textContent.trim())"
    )
    if "API reference" not in links:
        raise CheckFailed(f"home page: no 'API reference' in the navigation: {links}")
    browser.screenshot(shots / "home.png")


def check_reference(browser: Browser, base: str, shots: Path) -> None:
    browser.open(f"{base}/reference/")
    public = [
        f"{mod}.{name}" for mod, src in PUBLIC_MODULES.items() for name in exports(REPO / src)
    ]
    # each entry: a heading with the name's id, then its docstring or (for a type alias
    # without one) its rendered value
    rendered = browser.evaluate(
        "(ids => ids.filter(id => {"
        " const entry = document.getElementById(id)?.closest('.doc-object');"
        " return ['.doc-contents', '.doc-signature'].some("
        "   part => entry?.querySelector(part)?.textContent.trim());"
        f"}}))({json.dumps(public)})"
    )
    missing = sorted(set(public) - set(rendered))
    if missing:
        raise CheckFailed(f"API reference: no rendered entry for {', '.join(missing)}")
    # a method too, not only the class headings
    if not browser.evaluate("!!document.getElementById('anypool.Pool.submit')"):
        raise CheckFailed("API reference: anypool.Pool.submit is not rendered")
    # Pool's entry below the fixed header, once the header's title has changed over
    browser.evaluate("window.scrollTo(0, document.getElementById('anypool.Pool').offsetTop - 70)")
    time.sleep(0.5)
    browser.screenshot(shots / "reference.png")


def check_search(browser: Browser, base: str, shots: Path) -> None:
    # Material opens its search with the query of ?q= and runs it in a web worker
    browser.open(f"{base}/?q=Pool")
    hrefs = browser.wait_for(
        "[...document.querySelectorAll('.md-search-result__item a')].map(a => a.href)",
        "search for 'Pool': no result appeared",
    )
    # a result's link carries ?h=<query> for highlighting: compare the paths
    paths = {urllib.parse.urlsplit(href).path for href in hrefs}
    if "/reference/" not in paths:
        raise CheckFailed(f"search for 'Pool': no result on the API reference: {hrefs[:10]}")
    browser.screenshot(shots / "search.png")


def main(argv: list[str]) -> int:
    site = Path(argv[0] if argv else REPO / "site").resolve()
    if not (site / "index.html").is_file():
        print(f"{site} holds no built site: run mkdocs build first", file=sys.stderr)
        return 2
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    shots = site / "_check"
    shots.mkdir(exist_ok=True)
    failures = []
    with tempfile.TemporaryDirectory() as profile, serve(site) as base:
        try:
            browser = Browser(chromium, profile)
        except CheckFailed as exc:
            print(f"FAIL starting {chromium}: {exc}")
            return 1
        try:
            for check in (check_home, check_reference, check_search):
                started = time.monotonic()
                try:
                    check(browser, base, shots)
                except CheckFailed as exc:
                    failures.append(str(exc))
                    print(f"FAIL {check.__name__}: {exc}")
                    try:  # what the page showed instead, for the artifact
                        browser.screenshot(shots / f"{check.__name__}-failed.png")
                    except (CheckFailed, OSError):
                        pass  # the browser itself is gone: the message says why
                else:
                    print(f"ok   {check.__name__} ({time.monotonic() - started:.1f} s)")
        finally:
            browser.close()
    print(f"screenshots in {shots}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
