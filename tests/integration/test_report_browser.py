"""The rendered report in a real browser: headless Chromium loads it from disk, offline, without errors.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages separated by
NUL bytes, commands on fd 3, replies on fd 4), which needs no port, no websocket library and no network. The
test checks that the page loads with no console error or exception, that every image decodes, that nothing but
data:/file: URLs is requested, and keeps a screenshot in test-artifacts/ for people to look at.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from emergence.report import render_report
from tests.fixtures.study_factory import make_study

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
TIMEOUT_S = 90.0
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


def find_browser() -> str | None:
    """Chromium (or Chrome) on PATH or at Debian's path."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


class DevToolsPipe:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, browser: str, user_data_dir: Path) -> None:
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # Park the child's ends above 10 so that moving them onto fds 3 and 4 cannot clobber one another.
        hi_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_chrome_r)
        os.close(from_chrome_w)

        def child_fds() -> None:
            os.dup2(hi_r, 3)  # dup2 clears close-on-exec: Chromium inherits fds 3 and 4
            os.dup2(hi_w, 4)

        # Chromium's log goes to a file: an unread stderr pipe could fill up and stall the browser.
        user_data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = user_data_dir.parent / "chromium.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115  # closed in close()
        self.proc = subprocess.Popen(
            [browser, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=child_fds,
            close_fds=False,
        )
        os.close(hi_r)
        os.close(hi_w)
        self._out = to_chrome_w
        self._in = from_chrome_r
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its reply (events that arrive meanwhile are kept in `events`)."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """Wait for an event by name (it may already have arrived)."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e.get("method") == method:
                    return e
            self.events.append(self._read(deadline - time.monotonic()))

    def _read(self, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._in], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"no reply from Chromium within {timeout:.0f} s (log: {self.log_path})")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                log = self.log_path.read_text(errors="replace")
                raise RuntimeError(f"Chromium closed the pipe; its log ends: {log[-2000:]}")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        """Ask the browser to quit, then make sure it has."""
        with contextlib.suppress(OSError):
            os.write(self._out, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._out, self._in):
            os.close(fd)
        self._log.close()


# Run in the page after load: decode every image and report which ones failed.
CHECK_IMAGES = """
(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return {
    count: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src.slice(0, 60)),
    sections: Array.from(document.querySelectorAll('main > section')).map(s => s.id),
    height: document.documentElement.scrollHeight,
  };
})()
"""


def require_browser() -> str:
    """The browser's path; without one, skip — or fail when EMERGENCE_REQUIRE_BROWSER=1 (CI)."""
    browser = find_browser()
    if browser is None:
        if os.environ.get("EMERGENCE_REQUIRE_BROWSER") == "1":
            pytest.fail("EMERGENCE_REQUIRE_BROWSER=1 but no chromium/chrome was found")
        pytest.skip("no chromium/chrome on PATH")
    return browser


def test_missing_browser_skips_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{__name__}.find_browser", lambda: None)
    monkeypatch.delenv("EMERGENCE_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_browser()
    monkeypatch.setenv("EMERGENCE_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="EMERGENCE_REQUIRE_BROWSER"):
        require_browser()


def test_report_loads_in_chromium(tmp_path: Path) -> None:
    browser = require_browser()
    study = make_study(tmp_path / "study")
    page = render_report(study)
    n_figures = len(list((study / "figures").glob("*.png")))

    cdp = DevToolsPipe(browser, tmp_path / "chromium-profile")
    try:
        target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.send(f"{domain}.enable", session=session)
        cdp.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 4000, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        cdp.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        cdp.wait_for("Page.loadEventFired")
        result = cdp.send(
            "Runtime.evaluate",
            {"expression": CHECK_IMAGES, "awaitPromise": True, "returnByValue": True},
            session=session,
        )
        info = result["result"]["value"]
        shot = cdp.send("Page.captureScreenshot", {"format": "png"}, session=session)
        ARTIFACTS.mkdir(exist_ok=True)
        png = base64.b64decode(shot["data"])
        (ARTIFACTS / "report-screenshot.png").write_bytes(png)
    finally:
        cdp.close()

    errors = [
        e["params"]
        for e in cdp.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert"))
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")
    ]
    assert errors == [], f"console errors: {errors}"
    urls = [
        e["params"]["request"]["url"] for e in cdp.events if e.get("method") == "Network.requestWillBeSent"
    ]
    external = [u for u in urls if not u.startswith(("data:", "file:", "about:"))]
    assert external == [], f"the report fetched external resources: {external}"
    assert info["broken"] == [], f"images that did not decode: {info['broken']}"
    assert info["count"] == n_figures >= 5
    for section in ("summary", "emergence", "training", "config", "environment"):
        assert section in info["sections"]
    assert any(s.startswith("task-") for s in info["sections"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
