"""QtWebEngine set-up, and a local page that takes JavaScript calls before it is ready.

Importing this module imports QtWebEngine, which must happen before the QApplication
exists: import it first."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtWebEngineWidgets import QWebEngineView


def sandbox_off_reason() -> str | None:
    """Call before the QApplication exists. Returns why Chromium's sandbox is off,
    or None when it is on."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Chromium refuses to start as root with its sandbox on. This is the only
        # case where the console turns it off itself, and it says so.
        os.environ["QTWEBENGINE_DISABLE_SANDBOX"] = "1"
        return "running as root"
    if os.environ.get("QTWEBENGINE_DISABLE_SANDBOX"):
        return "QTWEBENGINE_DISABLE_SANDBOX is set"
    if "--no-sandbox" in os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", ""):
        return "QTWEBENGINE_CHROMIUM_FLAGS has --no-sandbox"
    return None


class LocalPage(QWebEngineView):
    """A page from a local file (setHtml fails above 2 MB). Calls made before the
    page has loaded wait for it, in order."""

    def __init__(self, path: Path, parent=None):
        super().__init__(parent)
        self.ready = False
        self.failed = False
        self._queue: list[tuple[str, Callable | None]] = []
        self.loadFinished.connect(self._loaded)
        self.load(QUrl.fromLocalFile(str(path.resolve())))

    def call(self, script: str, done: Callable | None = None) -> None:
        """Runs script in the page; done, if given, receives its result."""
        if self.ready:
            self._run(script, done)
        else:
            self._queue.append((script, done))

    def _run(self, script: str, done: Callable | None) -> None:
        if done is None:
            self.page().runJavaScript(script)
        else:
            self.page().runJavaScript(script, 0, done)

    def _loaded(self, ok: bool) -> None:
        self.ready, self.failed = ok, not ok
        if ok:
            queue, self._queue = self._queue, []
            for script, done in queue:
                self._run(script, done)
