"""A real headless Chromium, driven over the DevTools protocol: load a page, read what it says, screenshot it.

Only what the report tests need: start ``chromium --headless`` on a new empty profile with a debugging port
on loopback, talk to its page target over one websocket (the ``websockets`` package's synchronous client),
collect console errors and uncaught exceptions while the page loads, evaluate expressions, take screenshots.
The browser runs in its own process group, which ``close()`` ends.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(Exception):
    pass


class Chromium:
    """One headless browser with one page."""

    def __init__(self, width: int = 1400, height: int = 900) -> None:
        executable = find_chromium()
        if executable is None:
            raise BrowserError("chromium is not installed (scripts/setup installs it)")
        self.profile = tempfile.mkdtemp(prefix="parallux-chromium-")
        self.log = Path(tempfile.mkdtemp(prefix="parallux-chromium-log-")) / "stderr.txt"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        self._ids = itertools.count(1)
        self._stack = contextlib.ExitStack()
        self.events: list[dict[str, Any]] = []
        try:
            self.socket = self._stack.enter_context(connect(self._page_socket_url(), max_size=None,
                                                            open_timeout=20))
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        except BaseException:
            self.close()
            raise

    def _page_socket_url(self) -> str:
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited with status {self.process.returncode} at start")
            if port_file.exists() and port_file.read_text().strip():
                port = int(port_file.read_text().split()[0])
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                    pages = [t for t in json.load(response) if t.get("type") == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.05)
        said = self.log.read_text(errors="replace").splitlines()[-15:]
        raise BrowserError("chromium did not open its debugging port within 30 s; it said:\n" + "\n".join(said))

    # -- protocol ------------------------------------------------------------------------------------------

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        ident = next(self._ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for_event(self, method: str, timeout: float = 60) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                self.events.remove(event)
                return event
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("method") == method:
                return message
            self.events.append(message)

    # -- what the tests use --------------------------------------------------------------------------------

    def load(self, url: str, ready: str, timeout: float = 60) -> float:
        """Navigate and wait until the expression ``ready`` is true; the seconds it took."""
        begin = time.monotonic()
        self.send("Page.navigate", {"url": url})
        self.wait_for_event("Page.loadEventFired", timeout)
        while not self.evaluate(ready):
            if time.monotonic() - begin > timeout:
                raise BrowserError(f"{ready} still false after {timeout} s; errors: {self.console_errors()}")
            time.sleep(0.02)
        return time.monotonic() - begin

    def evaluate(self, expression: str, await_promise: bool = False) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": await_promise})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        self.evaluate("0")  # collect what arrived meanwhile
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                errors.append(str(details.get("exception", {}).get("description") or details.get("text")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(str(params["entry"].get("text")))
        return errors

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        result = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full_page})
        path.write_bytes(base64.b64decode(result["data"]))

    def close(self) -> None:
        self._stack.close()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
        shutil.rmtree(self.log.parent, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
